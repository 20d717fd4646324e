/*
 * Memory-read bandwidth: a vectorized sum over a large buffer, the fastest a
 * kernel that reads every byte once can go.  Prints GB/s (10^9 bytes).
 *   membw [MiB] [repeats]     (default 1024 MiB, best of 5)
 * Threads come from OMP_NUM_THREADS.  Pages are first touched in parallel so
 * each thread reads memory near it.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	size_t n = mib * (1024 * 1024 / sizeof(float));
	float *a = NULL;
	if (n == 0 || reps < 1 || posix_memalign((void **)&a, 4096, n * sizeof *a) != 0) {
		fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
		return 1;
	}
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		a[i] = (float)(i & 7);
	double best = 1e30, check = 0;
	for (int r = 0; r < reps; r++) {
		double t0 = omp_get_wtime();
		float s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
		for (size_t i = 0; i < n; i++)
			s += a[i];
		double t = omp_get_wtime() - t0;
		best = t < best ? t : best;
		check += s;
	}
	/* print the sum's sign so the loop cannot be optimized away */
	printf("%.1f\n", (double)(n * sizeof *a) / best / 1e9 + (check < 0 ? 1e-9 : 0));
	free(a);
	return 0;
}
