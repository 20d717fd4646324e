/*
 * Times what the workbench does on every λ/δ change on the full DeepSeek-V3
 * layout (tools/mkskeleton.py): re-resolve the plan's parameters from an
 * edited recipe (cr_plan_refresh) and decide every tensor
 * (cr_plan_decide_all), with and without cached distances.
 * usage: plan_decide RECIPE_WITH_DELTA_A RECIPE_WITH_DELTA_B
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "crucible/plan.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	cr_error err;
	struct cr_recipe *a, *b;
	struct cr_plan *p;
	double t0 = now();
	if (cr_recipe_load(argv[1], &a, NULL, NULL, &err) < 0 || cr_recipe_load(argv[2], &b, NULL, NULL, &err) < 0 ||
	    cr_plan_build(a, &p, NULL, NULL, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	double t1 = now();
	uint8_t *dec = malloc(p->ntensors);
	int16_t *par = malloc(p->ntensors * sizeof *par);
	double *rel = malloc(p->ntensors * p->nparents * sizeof *rel);
	for (size_t i = 0; i < p->ntensors * p->nparents; i++)
		rel[i] = (double)(i % 97) / 970.0;
	double best_r = 1e9, best_d = 1e9, best_dr = 1e9;
	for (int rep = 0; rep < 5; rep++) {
		double s0 = now();
		if (cr_plan_refresh(p, rep & 1 ? a : b, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		double s1 = now();
		cr_plan_decide_all(p, NULL, dec, par);
		double s2 = now();
		cr_plan_decide_all(p, rel, dec, par);
		double s3 = now();
		best_r = fmin(best_r, s1 - s0);
		best_d = fmin(best_d, s2 - s1);
		best_dr = fmin(best_dr, s3 - s2);
	}
	printf("%zu tensors, %zu parents: open+plan %.0f ms; per change: refresh %.1f ms, decide_all %.1f ms "
	       "(with distances %.1f ms)\n",
	       p->ntensors, p->nparents, (t1 - t0) * 1e3, best_r * 1e3, best_d * 1e3, best_dr * 1e3);
	cr_plan_free(p);
	cr_recipe_free(a);
	cr_recipe_free(b);
	free(dec);
	free(par);
	free(rel);
	return 0;
}
