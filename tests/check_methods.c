/*
 * Method kernels against values worked out independently here (by hand or by
 * a direct whole-array computation in double), including the edge cases:
 * zero weights, density 1, t = 0 and 1, parallel vectors, breadcrumbs on a
 * tensor under 100 elements, NaN in a parent, chunking and thread counts.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "crucible/kernels.h"
#include "crucible/rng.h"
#include "testutil.h"

struct mem {
	int n;
	const float *x[CR_MAX_INPUTS];
};

static int mem_read(void *ctx, int i, uint64_t first, size_t n, float *out, cr_error *err)
{
	(void)err;
	struct mem *m = ctx;
	memcpy(out, m->x[i] + first, n * sizeof(float));
	return 0;
}

static const char *names[CR_MAX_INPUTS] = { "base", "p1", "p2", "p3" };

/* Run a method over in-memory inputs with the given chunk size; out gets nelem values. */
static int run(struct cr_kparams *kp, const float *const *x, uint64_t nelem, uint64_t cols, size_t chunk,
	       uint64_t seed, float *out, enum cr_decision *dec, cr_error *err)
{
	struct mem m = { kp->n, { 0 } };
	for (int i = 0; i < kp->n; i++)
		m.x[i] = x[i];
	struct cr_scratch sc = { 0 };
	int nt = 1;
#ifdef _OPENMP
	nt = omp_get_max_threads();
#endif
	size_t cap = chunk > cols ? chunk : (size_t)cols;
	cr_scratch_init(&sc, nt, kp->n + 1, cap);
	struct cr_kctx k;
	int rc = cr_kernel_prepare(&k, kp, "model.layers.0.mlp.weight", names, nelem, cols, seed, 1, chunk, &sc,
				   mem_read, &m, err);
	if (rc == 0) {
		if (dec)
			*dec = k.decision;
		for (uint64_t c = 0; c < k.nchunks && rc == 0; c++) {
			uint64_t first = c * k.chunk;
			size_t n = (size_t)(nelem - first < k.chunk ? nelem - first : k.chunk);
			float *xb[CR_MAX_INPUTS];
			for (int i = 0; i < kp->n; i++) {
				xb[i] = sc.buf[i];
				memcpy(xb[i], x[i] + first, n * sizeof(float));
			}
			rc = cr_kernel_chunk(&k, c, xb, n, out + first, err);
		}
	}
	cr_kernel_release(&k);
	cr_scratch_free(&sc);
	return rc;
}

static void params(struct cr_kparams *kp, enum cr_method_id m, int n, int base)
{
	memset(kp, 0, sizeof *kp);
	kp->method = m;
	kp->n = n;
	kp->base = base;
	for (int q = 0; q < CR_P__COUNT; q++) {
		kp->g[q] = cr_param_default(m, (enum cr_param_id)q);
		for (int i = 0; i < n; i++)
			kp->p[i][q] = cr_param_default(m, (enum cr_param_id)q);
	}
	for (int i = 0; i < n; i++)
		kp->rel[i] = NAN;
}

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static void fill(float *x, size_t n, uint32_t seed, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = scale * ((float)lcg(&seed) / 16777216.0f - 0.5f);
}

/* ---------------------------------------------------------------- linear */

START_TEST(linear_weights_and_zero)
{
	float a[5] = { 1, 2, 3, 4, 5 }, b[5] = { -1, 0, 1, 2, 3 }, c[5] = { 10, 10, 10, 10, 10 }, out[5];
	const float *x[3] = { a, b, c };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_LINEAR, 3, -1);
	kp.p[0][CR_P_WEIGHT] = 0.5;
	kp.p[1][CR_P_WEIGHT] = 0.3;
	kp.p[2][CR_P_WEIGHT] = 0.2;
	ck_assert_int_eq(run(&kp, x, 5, 5, 2, 0, out, NULL, &err), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_float_eq_tol(out[i], (0.5 * a[i] + 0.3 * b[i] + 0.2 * c[i]) / 1.0, 1e-6);
	/* unnormalized with weights summing to 2 */
	kp.g[CR_P_NORMALIZE] = 0;
	kp.p[2][CR_P_WEIGHT] = 1.2;
	ck_assert_int_eq(run(&kp, x, 5, 5, 5, 0, out, NULL, &err), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_float_eq_tol(out[i], 0.5 * a[i] + 0.3 * b[i] + 1.2 * c[i], 1e-5);
	/* all weights zero: an error that names the tensor, not NaN */
	kp.g[CR_P_NORMALIZE] = 1;
	kp.p[0][CR_P_WEIGHT] = kp.p[1][CR_P_WEIGHT] = kp.p[2][CR_P_WEIGHT] = 0;
	ck_assert_int_eq(run(&kp, x, 5, 5, 5, 0, out, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "model.layers.0.mlp.weight"));
	/* one nonzero weight: that model's values, by copy */
	kp.p[1][CR_P_WEIGHT] = 0.7;
	enum cr_decision d;
	ck_assert_int_eq(run(&kp, x, 5, 5, 5, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COPY);
	ck_assert_mem_eq(out, b, sizeof b);
}
END_TEST

START_TEST(nan_in_parent_is_reported)
{
	float a[6] = { 1, 2, 3, 4, 5, 6 }, b[6] = { 1, 2, NAN, 4, 5, 6 }, out[6];
	const float *x[2] = { a, b };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_LINEAR, 2, -1);
	ck_assert_int_eq(run(&kp, x, 6, 6, 4, 0, out, NULL, &err), -1);
	ck_assert_int_eq(err.code, CR_E_NUMERIC);
	ck_assert_ptr_nonnull(strstr(err.msg, "model.layers.0.mlp.weight"));
	ck_assert_ptr_nonnull(strstr(err.msg, "p1"));
	ck_assert_ptr_nonnull(strstr(err.msg, "element 2"));
	/* in a whole-tensor pass too (slerp's norms) */
	params(&kp, CR_M_SLERP, 2, 0);
	ck_assert_int_eq(run(&kp, x, 6, 6, 4, 0, out, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "NaN"));
	/* and an infinity */
	b[2] = INFINITY;
	params(&kp, CR_M_TIES, 2, 0);
	kp.p[1][CR_P_DENSITY] = 0.5;
	ck_assert_int_eq(run(&kp, x, 6, 6, 4, 0, out, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "Inf"));
}
END_TEST

/* ---------------------------------------------------------------- task vectors */

START_TEST(task_arithmetic_and_zero_weights)
{
	float b[4] = { 1, 1, 1, 1 }, p[4] = { 2, 0, 1, 3 }, q[4] = { 1, 3, 0, 1 }, out[4];
	const float *x[3] = { b, p, q };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_TASK_ARITHMETIC, 3, 0);
	kp.p[1][CR_P_WEIGHT] = 0.7;
	kp.p[2][CR_P_WEIGHT] = 0.3;
	ck_assert_int_eq(run(&kp, x, 4, 4, 4, 0, out, NULL, &err), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_float_eq_tol(out[i], b[i] + 0.7 * (p[i] - b[i]) + 0.3 * (q[i] - b[i]), 1e-6);
	kp.p[1][CR_P_WEIGHT] = kp.p[2][CR_P_WEIGHT] = 0;
	enum cr_decision d;
	ck_assert_int_eq(run(&kp, x, 4, 4, 4, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COPY);
	ck_assert_mem_eq(out, b, sizeof b);
}
END_TEST

START_TEST(ties_sign_election_by_weighted_sum)
{
	/* task vectors [1,-2,3,0] and [-3,1,1,0]: sums [-2,-1,4,0] elect [-,-,+,+]; zero counts positive */
	float b[4] = { 0, 0, 0, 0 }, p[4] = { 1, -2, 3, 0 }, q[4] = { -3, 1, 1, 0 }, out[4];
	const float *x[3] = { b, p, q };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_TIES, 3, 0);
	ck_assert_int_eq(run(&kp, x, 4, 4, 4, 0, out, NULL, &err), 0); /* density 1: no pruning */
	float want[4] = { -3, -2, 2, 0 };
	for (int i = 0; i < 4; i++)
		ck_assert_float_eq_tol(out[i], want[i], 1e-6);
	/* density 0.5 keeps the two largest magnitudes of each task vector */
	kp.p[1][CR_P_DENSITY] = kp.p[2][CR_P_DENSITY] = 0.5;
	ck_assert_int_eq(run(&kp, x, 4, 4, 1, 0, out, NULL, &err), 0);
	/* pruned: p -> [0,-2,3,0], q -> [-3,1,0,0] (1 and 1 tie: the later index is kept by std::sort's order? no:
	 * four elements use insertion sort, which is stable, so index 1 stays first) */
	float want2[4] = { -3, -2, 3, 0 };
	for (int i = 0; i < 4; i++)
		ck_assert_float_eq_tol(out[i], want2[i], 1e-6);
}
END_TEST

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Exact top-k over many chunks against a brute-force selection (no ties). */
START_TEST(ties_threshold_matches_brute_force)
{
	enum { N = 20000 };
	float *b = malloc(N * 4), *p = malloc(N * 4), *out = malloc(N * 4);
	fill(b, N, 1, 1.0f);
	fill(p, N, 2, 1.0f);
	const float *x[2] = { b, p };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_TIES, 2, 0);
	kp.p[1][CR_P_DENSITY] = 0.3;
	ck_assert_int_eq(run(&kp, x, N, N, 777, 0, out, NULL, &err), 0);
	/* independent threshold: the k-th largest |p-b| of a sorted copy */
	float *mag = malloc(N * 4), *srt = malloc(N * 4);
	for (int i = 0; i < N; i++)
		srt[i] = mag[i] = fabsf(p[i] - b[i]);
	qsort(srt, N, 4, cmp_desc);
	int k = (int)(0.3 * N), kept = 0;
	ck_assert(srt[k - 1] != srt[k]); /* no tie at the boundary in this data */
	for (int i = 0; i < N; i++) {
		int keep = mag[i] >= srt[k - 1];
		kept += keep;
		ck_assert_float_eq_tol(out[i], keep ? p[i] : b[i], 1e-6);
	}
	ck_assert_int_eq(kept, k);
	free(b);
	free(p);
	free(out);
	free(mag);
	free(srt);
}
END_TEST

START_TEST(breadcrumbs_small_tensor_not_zeroed)
{
	/* 50 elements, gamma 0.01: gamma*n rounds to 0 (mergekit would zero the tensor); density 0.9 drops
	 * the 5 smallest magnitudes and keeps the rest */
	enum { N = 50 };
	float b[N], p[N], out[N];
	for (int i = 0; i < N; i++) {
		b[i] = 0;
		p[i] = (float)((i * 37) % N + 1) * (i % 2 ? -1.0f : 1.0f); /* distinct magnitudes 1..50 */
	}
	const float *x[2] = { b, p };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_BREADCRUMBS, 2, 0);
	kp.p[1][CR_P_DENSITY] = 0.9;
	kp.p[1][CR_P_GAMMA] = 0.01;
	ck_assert_int_eq(run(&kp, x, N, N, 16, 0, out, NULL, &err), 0);
	int nz = 0;
	for (int i = 0; i < N; i++) {
		float want = fabsf(p[i]) > 5 ? p[i] : 0.0f;
		ck_assert_float_eq_tol(out[i], want, 1e-6);
		nz += out[i] != 0;
	}
	ck_assert_int_eq(nz, 45);
	/* gamma 0.1: 5 largest removed as well */
	kp.p[1][CR_P_GAMMA] = 0.1;
	kp.p[1][CR_P_DENSITY] = 0.8;
	ck_assert_int_eq(run(&kp, x, N, N, 16, 0, out, NULL, &err), 0);
	for (int i = 0; i < N; i++) {
		float m = fabsf(p[i]);
		ck_assert_float_eq_tol(out[i], m > 5 && m <= 45 ? p[i] : 0.0f, 1e-6);
	}
}
END_TEST

/* DARE: density 1 is task arithmetic; the mask is the counter RNG's; rescale keeps the L1 norm;
 * chunk size and thread count do not change a bit. */
START_TEST(dare_density_rescale_determinism)
{
	enum { N = 5000 };
	float *b = malloc(N * 4), *p = malloc(N * 4), *o1 = malloc(N * 4), *o2 = malloc(N * 4);
	fill(b, N, 3, 1.0f);
	fill(p, N, 4, 1.0f);
	const float *x[2] = { b, p };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_DARE_LINEAR, 2, 0);
	ck_assert_int_eq(run(&kp, x, N, N, 1000, 9, o1, NULL, &err), 0);
	for (int i = 0; i < N; i++)
		ck_assert_float_eq_tol(o1[i], b[i] + (p[i] - b[i]), 1e-6);
	kp.p[1][CR_P_DENSITY] = 0.4;
	ck_assert_int_eq(run(&kp, x, N, N, 1000, 9, o1, NULL, &err), 0);
	uint64_t key = cr_rng_key(9, "model.layers.0.mlp.weight", 1);
	double l1 = 0, l1k = 0;
	int kept = 0;
	for (int i = 0; i < N; i++) {
		float d = p[i] - b[i];
		l1 += fabs(d);
		if (cr_rng_uniform(key, (uint64_t)i) < 0.4) {
			l1k += fabs(d);
			kept++;
		} else {
			ck_assert_float_eq(o1[i], b[i]);
		}
	}
	ck_assert_int_gt(kept, N * 35 / 100);
	ck_assert_int_lt(kept, N * 45 / 100);
	double l1o = 0;
	for (int i = 0; i < N; i++)
		l1o += fabs((double)o1[i] - b[i]);
	ck_assert_double_eq_tol(l1o, l1, 1e-3 * l1); /* rescaled to the original L1 norm */
	(void)l1k;
#ifdef _OPENMP
	omp_set_num_threads(1);
#endif
	ck_assert_int_eq(run(&kp, x, N, N, 333, 9, o2, NULL, &err), 0);
#ifdef _OPENMP
	omp_set_num_threads(2);
#endif
	ck_assert_mem_eq(o1, o2, N * 4);
	/* another seed, another mask */
	ck_assert_int_eq(run(&kp, x, N, N, 1000, 10, o2, NULL, &err), 0);
	ck_assert_int_ne(memcmp(o1, o2, N * 4), 0);
	free(b);
	free(p);
	free(o1);
	free(o2);
}
END_TEST

START_TEST(della_density_one_and_epsilon_range)
{
	enum { N = 64 };
	float b[N], p[N], out[N];
	fill(b, N, 5, 1.0f);
	fill(p, N, 6, 1.0f);
	const float *x[2] = { b, p };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_DELLA, 2, 0);
	ck_assert_int_eq(run(&kp, x, N, 16, 32, 1, out, NULL, &err), 0);
	for (int i = 0; i < N; i++)
		ck_assert_float_eq_tol(out[i], p[i], 1e-6); /* density 1, normalize: base + delta */
	kp.p[1][CR_P_DENSITY] = 0.1;
	kp.p[1][CR_P_EPSILON] = 0.15;
	ck_assert_int_eq(run(&kp, x, N, 16, 32, 1, out, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "epsilon"));
	/* a valid range: large magnitudes in each row are kept more often than small ones */
	kp.p[1][CR_P_DENSITY] = 0.5;
	kp.p[1][CR_P_EPSILON] = 0.4;
	ck_assert_int_eq(run(&kp, x, N, 16, 32, 1, out, NULL, &err), 0);
}
END_TEST

/* ---------------------------------------------------------------- slerp family */

START_TEST(slerp_ends_orthogonal_parallel)
{
	float b[2] = { 1, 0 }, p[2] = { 0, 1 }, out[2];
	const float *x[2] = { b, p };
	struct cr_kparams kp;
	cr_error err;
	enum cr_decision d;
	params(&kp, CR_M_SLERP, 2, 0);
	kp.g[CR_P_T] = 0;
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COPY);
	ck_assert_mem_eq(out, b, sizeof b);
	kp.g[CR_P_T] = 1;
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, &d, &err), 0);
	ck_assert_mem_eq(out, p, sizeof p);
	kp.g[CR_P_T] = 0.5; /* quarter circle: both sin(pi/4) */
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COMPUTE);
	ck_assert_float_eq_tol(out[0], sqrt(0.5), 1e-6);
	ck_assert_float_eq_tol(out[1], sqrt(0.5), 1e-6);
	kp.g[CR_P_T] = 0.25; /* angle pi/8 from b */
	ck_assert_int_eq(run(&kp, x, 2, 2, 1, 0, out, &d, &err), 0);
	ck_assert_float_eq_tol(out[0], cos(M_PI / 8), 1e-6);
	ck_assert_float_eq_tol(out[1], sin(M_PI / 8), 1e-6);
	/* parallel vectors (p = 3b): lerp */
	float b2[3] = { 1, 2, 3 }, p2[3] = { 3, 6, 9 }, o2[3];
	const float *x2[2] = { b2, p2 };
	kp.g[CR_P_T] = 0.3;
	ck_assert_int_eq(run(&kp, x2, 3, 3, 3, 0, o2, &d, &err), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_float_eq_tol(o2[i], 0.7 * b2[i] + 0.3 * p2[i], 1e-6);
}
END_TEST

START_TEST(nuslerp_task_vectors)
{
	/* base b, task vectors (1,0) and (0,1), weights 1 and 3: t = 0.75 of a quarter circle */
	float b[2] = { 5, 5 }, p[2] = { 6, 5 }, q[2] = { 5, 6 }, out[2];
	const float *x[3] = { b, p, q };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_NUSLERP, 3, 0);
	kp.p[1][CR_P_WEIGHT] = 1;
	kp.p[2][CR_P_WEIGHT] = 3;
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, NULL, &err), 0);
	ck_assert_float_eq_tol(out[0], 5 + cos(0.75 * M_PI / 2), 1e-6);
	ck_assert_float_eq_tol(out[1], 5 + sin(0.75 * M_PI / 2), 1e-6);
	/* colinear task vectors: lerp */
	float q2[2] = { 7, 5 };
	x[2] = q2;
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, NULL, &err), 0);
	ck_assert_float_eq_tol(out[0], 5 + 0.25 * 1 + 0.75 * 2, 1e-6);
	/* per-row (nuslerp_flatten false): each row its own angle */
	float rb[4] = { 0, 0, 0, 0 }, rp[4] = { 1, 0, 2, 0 }, rq[4] = { 0, 1, 4, 0 }, ro[4];
	const float *rx[3] = { rb, rp, rq };
	kp.g[CR_P_NUSLERP_FLATTEN] = 0;
	kp.p[1][CR_P_WEIGHT] = kp.p[2][CR_P_WEIGHT] = 1;
	ck_assert_int_eq(run(&kp, rx, 4, 2, 2, 0, ro, NULL, &err), 0);
	ck_assert_float_eq_tol(ro[0], sqrt(0.5), 1e-6);
	ck_assert_float_eq_tol(ro[1], sqrt(0.5), 1e-6);
	ck_assert_float_eq_tol(ro[2], 3, 1e-6); /* row 2 colinear: (2+4)/2 */
}
END_TEST

START_TEST(model_stock_geometry)
{
	/* orthogonal offsets: cos 0, t = 0, the base; equal offsets: cos 1, t = 1, the average */
	float b[2] = { 1, 1 }, p[2] = { 2, 1 }, q[2] = { 1, 2 }, out[2];
	const float *x[3] = { b, p, q };
	struct cr_kparams kp;
	cr_error err;
	params(&kp, CR_M_MODEL_STOCK, 3, 0);
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, NULL, &err), 0);
	ck_assert_float_eq_tol(out[0], 1, 1e-6);
	ck_assert_float_eq_tol(out[1], 1, 1e-6);
	float q2[2] = { 3, 1 };
	x[2] = q2; /* offsets (1,0) and (2,0): cos 1 */
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, NULL, &err), 0);
	ck_assert_float_eq_tol(out[0], 2.5, 1e-6);
	/* cos 0.5 between (1,0) and (1,sqrt3): t = 2*0.5/1.5 */
	float q3[2] = { 2, 1 + (float)sqrt(3.0) };
	x[2] = q3;
	ck_assert_int_eq(run(&kp, x, 2, 2, 2, 0, out, NULL, &err), 0);
	double t = 2 * 0.5 / 1.5;
	ck_assert_float_eq_tol(out[0], t * 2 + (1 - t) * 1, 1e-5);
	ck_assert_float_eq_tol(out[1], t * (1 + (1 + sqrt(3.0))) / 2 + (1 - t) * 1, 1e-5);
}
END_TEST

/* ---------------------------------------------------------------- aoe, passthrough */

START_TEST(aoe_gating_and_verbatim)
{
	enum { N = 8 };
	float b[N], p[N], q[N], out[N];
	for (int i = 0; i < N; i++) {
		b[i] = 1.0f + (float)i;
		p[i] = b[i] * 1.10f; /* rel 0.10 */
		q[i] = b[i] * 1.02f; /* rel 0.02 */
	}
	const float *x[3] = { b, p, q };
	struct cr_kparams kp;
	cr_error err;
	enum cr_decision d;
	params(&kp, CR_M_AOE, 3, 0);
	kp.g[CR_P_DELTA] = 0.05;
	kp.p[0][CR_P_WEIGHT] = 0.2;
	kp.p[1][CR_P_WEIGHT] = 0.5;
	kp.p[2][CR_P_WEIGHT] = 0.3; /* q is under delta: counts as the base */
	ck_assert_int_eq(run(&kp, x, N, N, 3, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COMPUTE);
	for (int i = 0; i < N; i++)
		ck_assert_float_eq_tol(out[i], 0.5 * b[i] + 0.5 * p[i], 1e-5);
	/* one-hot on p: p verbatim */
	kp.p[0][CR_P_WEIGHT] = kp.p[2][CR_P_WEIGHT] = 0;
	kp.p[1][CR_P_WEIGHT] = 1;
	ck_assert_int_eq(run(&kp, x, N, N, 3, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COPY);
	ck_assert_mem_eq(out, p, sizeof p);
	/* one-hot on q, which is under delta: the base verbatim */
	kp.p[1][CR_P_WEIGHT] = 0;
	kp.p[2][CR_P_WEIGHT] = 2; /* normalized to 1 */
	ck_assert_int_eq(run(&kp, x, N, N, 3, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COPY);
	ck_assert_mem_eq(out, b, sizeof b);
	/* known distances decide without reading: the pure decision function */
	kp.rel[1] = 0.1;
	kp.rel[2] = 0.02;
	int src;
	ck_assert_int_eq(cr_kernel_decide(&kp, &src), CR_DEC_COPY);
	ck_assert_int_eq(src, 0);
	kp.g[CR_P_DELTA] = 0.01; /* now q counts */
	ck_assert_int_eq(cr_kernel_decide(&kp, &src), CR_DEC_COPY);
	ck_assert_int_eq(src, 2);
	kp.rel[2] = NAN;
	ck_assert_int_eq(cr_kernel_decide(&kp, &src), CR_DEC_PENDING);
	/* unnormalized weights summing to 0.6 */
	kp.g[CR_P_NORMALIZE] = 0;
	kp.g[CR_P_DELTA] = 0.05;
	kp.rel[1] = kp.rel[2] = NAN;
	kp.p[0][CR_P_WEIGHT] = 0.1;
	kp.p[1][CR_P_WEIGHT] = 0.5;
	kp.p[2][CR_P_WEIGHT] = 0;
	ck_assert_int_eq(run(&kp, x, N, N, 3, 0, out, &d, &err), 0);
	for (int i = 0; i < N; i++)
		ck_assert_float_eq_tol(out[i], 0.1 * b[i] + 0.5 * p[i], 1e-5);
}
END_TEST

START_TEST(passthrough_scale)
{
	float a[3] = { 1, -2, 3 }, out[3];
	const float *x[1] = { a };
	struct cr_kparams kp;
	cr_error err;
	enum cr_decision d;
	params(&kp, CR_M_PASSTHROUGH, 1, -1);
	ck_assert_int_eq(run(&kp, x, 3, 3, 3, 0, out, &d, &err), 0);
	ck_assert_int_eq(d, CR_DEC_COPY);
	kp.p[0][CR_P_SCALE] = 2;
	ck_assert_int_eq(run(&kp, x, 3, 3, 3, 0, out, &d, &err), 0);
	ck_assert_float_eq(out[1], -4);
}
END_TEST

START_TEST(std_sort_replay_orders)
{
	/* sorted by key in both directions; equal keys follow introsort's (fixed) order */
	enum { N = 1000 };
	struct cr_sort_pair a[N];
	uint32_t s = 7;
	for (int i = 0; i < N; i++) {
		a[i].key = (float)(lcg(&s) % 50);
		a[i].idx = (uint32_t)i;
	}
	cr_std_sort(a, N, 1);
	int seen[N] = { 0 };
	for (int i = 0; i < N; i++) {
		if (i)
			ck_assert(a[i - 1].key >= a[i].key);
		seen[a[i].idx]++;
	}
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(seen[i], 1);
	cr_std_sort(a, N, 0);
	for (int i = 1; i < N; i++)
		ck_assert(a[i - 1].key <= a[i].key);
}
END_TEST

START_TEST(rng_counter_based)
{
	uint64_t k1 = cr_rng_key(1, "a", 0), k2 = cr_rng_key(1, "a", 1), k3 = cr_rng_key(2, "a", 0);
	ck_assert(k1 != k2 && k1 != k3);
	double sum = 0;
	for (int i = 0; i < 100000; i++) {
		double u = cr_rng_uniform(k1, (uint64_t)i);
		ck_assert(u >= 0 && u < 1);
		sum += u;
	}
	ck_assert_double_eq_tol(sum / 100000, 0.5, 0.01);
	ck_assert(cr_rng_uniform(k1, 12345) == cr_rng_uniform(k1, 12345));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("methods");
	TCase *tc = tcase_create("kernels");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, linear_weights_and_zero);
	tcase_add_test(tc, nan_in_parent_is_reported);
	tcase_add_test(tc, task_arithmetic_and_zero_weights);
	tcase_add_test(tc, ties_sign_election_by_weighted_sum);
	tcase_add_test(tc, ties_threshold_matches_brute_force);
	tcase_add_test(tc, breadcrumbs_small_tensor_not_zeroed);
	tcase_add_test(tc, dare_density_rescale_determinism);
	tcase_add_test(tc, della_density_one_and_epsilon_range);
	tcase_add_test(tc, slerp_ends_orthogonal_parallel);
	tcase_add_test(tc, nuslerp_task_vectors);
	tcase_add_test(tc, model_stock_geometry);
	tcase_add_test(tc, aoe_gating_and_verbatim);
	tcase_add_test(tc, passthrough_scale);
	tcase_add_test(tc, std_sort_replay_orders);
	tcase_add_test(tc, rng_counter_based);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
