/*
 * Method kernels (see crucible/kernels.h): decisions, whole-tensor passes
 * and the per-chunk math of every merge method.
 *
 * Invariants: a pass over a tensor visits chunks in parallel but stores each
 * chunk's partial sums in its own slot and adds them in chunk order, so
 * results are bit-identical for any thread count.  Random masks come from
 * crucible/rng.h keyed by element index.  Called by the engine (one tensor at
 * a time, from its worker thread) and by tests/check_methods.c.
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
#include "hot.h"

static const char *const decision_names[CR_DEC__COUNT] = {
#define X(id, name) name,
	CR_DECISIONS(X)
#undef X
};

const char *cr_decision_name(enum cr_decision d)
{
	return (unsigned)d < CR_DEC__COUNT ? decision_names[d] : "?";
}

static int thread_id(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

/* ---------------------------------------------------------------- helpers */

static int is_gta(enum cr_method_id m)
{
	switch (m) {
	case CR_M_TASK_ARITHMETIC:
	case CR_M_TIES:
	case CR_M_DARE_TIES:
	case CR_M_DARE_LINEAR:
	case CR_M_BREADCRUMBS:
	case CR_M_BREADCRUMBS_TIES:
	case CR_M_DELLA:
	case CR_M_DELLA_LINEAR:
		return 1;
	default:
		return 0;
	}
}

static int uses_consensus(enum cr_method_id m)
{
	return m == CR_M_TIES || m == CR_M_DARE_TIES || m == CR_M_BREADCRUMBS_TIES || m == CR_M_DELLA;
}

enum sparsify { SP_NONE, SP_MAGNITUDE, SP_RANDOM, SP_OUTLIERS, SP_RANKED };

static enum sparsify sparsify_of(enum cr_method_id m)
{
	switch (m) {
	case CR_M_TIES:
		return SP_MAGNITUDE;
	case CR_M_DARE_TIES:
	case CR_M_DARE_LINEAR:
		return SP_RANDOM;
	case CR_M_BREADCRUMBS:
	case CR_M_BREADCRUMBS_TIES:
		return SP_OUTLIERS;
	case CR_M_DELLA:
	case CR_M_DELLA_LINEAR:
		return SP_RANKED;
	default:
		return SP_NONE;
	}
}

static uint32_t fkey(float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	return u & 0x7fffffffu;
}

/* Index of the first NaN or infinity in x[0..n), or -1. */
CR_HOT
static long bad_value(const float *x, size_t n)
{
	int any = 0;
	const uint32_t *u = (const uint32_t *)(const void *)x; /* bit tests: no FP compares, vectorizes */
#pragma omp simd reduction(| : any)
	for (size_t i = 0; i < n; i++)
		any |= (u[i] & 0x7f800000u) == 0x7f800000u;
	if (!any)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (fkey(x[i]) >= 0x7f800000u)
			return (long)i;
	return -1;
}

static int check_input(const struct cr_kctx *k, int i, const float *x, uint64_t first, size_t n, cr_error *err)
{
	long b = bad_value(x, n);
	if (b < 0)
		return 0;
	return cr_fail(err, CR_E_NUMERIC, "%s: tensor '%s': %s at element %llu (NaN and Inf are not merged)",
		       k->inames && k->inames[i] ? k->inames[i] : "input", k->name, isnan(x[b]) ? "NaN" : "Inf",
		       (unsigned long long)(first + (uint64_t)b));
}

/* ---------------------------------------------------------------- decisions */

enum cr_decision cr_kernel_decide(const struct cr_kparams *kp, int *source)
{
	int n = kp->n, base = kp->base;
	*source = -1;
	switch (kp->method) {
	case CR_M_PASSTHROUGH:
		if (n == 1 && kp->p[0][CR_P_SCALE] == 1.0) {
			*source = 0;
			return CR_DEC_COPY;
		}
		return CR_DEC_COMPUTE;
	case CR_M_LINEAR: {
		int nz = 0, j = -1;
		for (int i = 0; i < n; i++)
			if (kp->p[i][CR_P_WEIGHT] != 0.0) {
				nz++;
				j = i;
			}
		if (nz == 1 && (kp->g[CR_P_NORMALIZE] != 0.0 || kp->p[j][CR_P_WEIGHT] == 1.0)) {
			*source = j;
			return CR_DEC_COPY;
		}
		return CR_DEC_COMPUTE;
	}
	case CR_M_SLERP:
		if (n == 2 && base >= 0 && (kp->g[CR_P_T] == 0.0 || kp->g[CR_P_T] == 1.0)) {
			*source = kp->g[CR_P_T] == 0.0 ? base : 1 - base;
			return CR_DEC_COPY;
		}
		return CR_DEC_COMPUTE;
	case CR_M_AOE: {
		if (base < 0)
			return CR_DEC_COMPUTE;
		double delta = kp->g[CR_P_DELTA], sum = 0.0, raw[CR_MAX_INPUTS] = { 0 };
		for (int i = 0; i < n; i++) {
			double l = kp->p[i][CR_P_WEIGHT];
			sum += l;
			if (l == 0.0)
				continue;
			int src = i;
			if (i != base && delta >= 0.0) {
				if (isnan(kp->rel[i]))
					return CR_DEC_PENDING;
				if (!(kp->rel[i] > delta))
					src = base;
			}
			raw[src] += l;
		}
		int nz = 0, j = -1;
		for (int i = 0; i < n; i++)
			if (raw[i] != 0.0) {
				nz++;
				j = i;
			}
		if (nz == 1 && raw[j] == (kp->g[CR_P_NORMALIZE] != 0.0 ? sum : 1.0)) {
			*source = j;
			return CR_DEC_COPY;
		}
		return CR_DEC_COMPUTE;
	}
	default:
		break;
	}
	if (is_gta(kp->method) && base >= 0) {
		if (kp->g[CR_P_LAMBDA] == 0.0) {
			*source = base;
			return CR_DEC_COPY;
		}
		for (int i = 0; i < n; i++)
			if (i != base && kp->p[i][CR_P_WEIGHT] != 0.0 && kp->p[i][CR_P_DENSITY] > 0.0 &&
			    !(kp->rel[i] == 0.0))
				return CR_DEC_COMPUTE;
		*source = base;
		return CR_DEC_COPY;
	}
	return CR_DEC_COMPUTE;
}

/* ---------------------------------------------------------------- scratch */

int cr_scratch_init(struct cr_scratch *s, int nthreads, int nbuf, size_t cap)
{
	s->nthreads = nthreads;
	s->nbuf = nbuf;
	s->cap = cap;
	s->buf = cr_xcalloc((size_t)nthreads * (size_t)nbuf, sizeof(float *));
	for (int i = 0; i < nthreads * nbuf; i++)
		s->buf[i] = cr_xmalloc(cap * sizeof(float));
	return 0;
}

void cr_scratch_free(struct cr_scratch *s)
{
	if (!s->buf)
		return;
	for (int i = 0; i < s->nthreads * s->nbuf; i++)
		free(s->buf[i]);
	free(s->buf);
	s->buf = NULL;
}

/* ---------------------------------------------------------------- passes */

struct pass_env {
	struct cr_kctx *k;
	struct cr_scratch *s;
	cr_kernel_reader rd;
	void *rdctx;
};

typedef int (*chunk_fn)(struct cr_kctx *k, uint64_t c, float *const *x, size_t n, void *state, cr_error *err);

/* Run fn over every chunk in parallel with the inputs in `need` read and checked. */
static int run_pass(const struct pass_env *e, uint32_t need, chunk_fn fn, void *state, int parallel, cr_error *err)
{
	struct cr_kctx *k = e->k;
	int failed = 0;
	long long nch = (long long)k->nchunks;
#pragma omp parallel for schedule(dynamic, 1) if (parallel && nch > 1)
	for (long long c = 0; c < nch; c++) {
		if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
			continue;
		int tid = thread_id();
		float *x[CR_MAX_INPUTS];
		uint64_t first = (uint64_t)c * k->chunk;
		size_t n = (size_t)(k->nelem - first < k->chunk ? k->nelem - first : k->chunk);
		cr_error e1;
		int rc = 0;
		for (int i = 0; i < k->kp.n && rc == 0; i++) {
			x[i] = e->s->buf[tid * e->s->nbuf + i];
			if (!(need & (1u << i)))
				continue;
			rc = e->rd(e->rdctx, i, first, n, x[i], &e1);
			if (rc == 0)
				rc = check_input(k, i, x[i], first, n, &e1);
		}
		if (rc == 0)
			rc = fn(k, (uint64_t)c, x, n, state, &e1);
		if (rc < 0) {
#pragma omp critical(cr_kernel_err)
			{
				if (!failed && err)
					*err = e1;
				failed = 1;
			}
		}
	}
	return failed ? -1 : 0;
}

/* Gram matrix of vectors v_j = x[a_j] - x[b_j] (b_j < 0: x[a_j]). */
struct gram_state {
	int m;
	int a[CR_MAX_INPUTS + 1], b[CR_MAX_INPUTS + 1];
	double *part; /* nchunks x m x m */
	double g[(CR_MAX_INPUTS + 1) * (CR_MAX_INPUTS + 1)];
};

static int gram_chunk(struct cr_kctx *k, uint64_t c, float *const *x, size_t n, void *state, cr_error *err)
{
	(void)k;
	(void)err;
	struct gram_state *g = state;
	int m = g->m;
	double *out = g->part + c * (uint64_t)m * (uint64_t)m;
	for (int p = 0; p < m; p++)
		for (int q = p; q < m; q++) {
			const float *xa = x[g->a[p]], *xb = g->b[p] >= 0 ? x[g->b[p]] : NULL;
			const float *ya = x[g->a[q]], *yb = g->b[q] >= 0 ? x[g->b[q]] : NULL;
			double s = 0.0;
			for (size_t i = 0; i < n; i++) {
				float u = xb ? xa[i] - xb[i] : xa[i];
				float v = yb ? ya[i] - yb[i] : ya[i];
				s += (double)u * (double)v;
			}
			out[p * m + q] = out[q * m + p] = s;
		}
	return 0;
}

static int gram_pass(const struct pass_env *e, struct gram_state *g, cr_error *err)
{
	struct cr_kctx *k = e->k;
	uint32_t need = 0;
	for (int j = 0; j < g->m; j++) {
		need |= 1u << g->a[j];
		if (g->b[j] >= 0)
			need |= 1u << g->b[j];
	}
	size_t mm = (size_t)g->m * (size_t)g->m;
	g->part = cr_xcalloc(k->nchunks ? k->nchunks : 1, mm * sizeof(double));
	int rc = run_pass(e, need, gram_chunk, g, 1, err);
	memset(g->g, 0, sizeof g->g);
	for (uint64_t c = 0; c < k->nchunks && rc == 0; c++)
		for (size_t i = 0; i < mm; i++)
			g->g[i] += g->part[c * mm + i];
	free(g->part);
	g->part = NULL;
	return rc;
}

/* ---- exact rank thresholds for magnitude pruning ---- */

struct sel_state {
	int nact, act[CR_MAX_INPUTS]; /* inputs with an active keep range */
	int stage;		      /* 1: high 16 bits, 2: low 16 bits in the target bins, 3: tie counts */
	uint64_t *hist;		      /* per thread, per active input: 65536 (stage 1) or 2 x 65536 (stage 2) */
	uint32_t bin1[CR_MAX_INPUTS], bin2[CR_MAX_INPUTS];
	uint64_t *eqc; /* stage 3: per chunk, per active input: 2 counts */
	size_t per_thread;
	int sort_input;		   /* stage 4: the input whose keys are gathered */
	struct cr_sort_pair *pairs; /* stage 4: every key with its index */
};

static void task_vector(const float *x, const float *b, float *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = x[i] - b[i];
}

static int sel_chunk(struct cr_kctx *k, uint64_t c, float *const *x, size_t n, void *state, cr_error *err)
{
	(void)err;
	struct sel_state *s = state;
	const float *b = x[k->kp.base];
	uint64_t *h = s->hist ? s->hist + (size_t)thread_id() * s->per_thread : NULL;
	if (s->stage == 4) {
		const float *xi = x[s->sort_input];
		uint64_t first = c * k->chunk;
		for (size_t j = 0; j < n; j++) {
			s->pairs[first + j].key = fabsf(xi[j] - b[j]);
			s->pairs[first + j].idx = (uint32_t)(first + j);
		}
		return 0;
	}
	for (int a = 0; a < s->nact; a++) {
		int i = s->act[a];
		const float *xi = x[i];
		struct cr_keep *kp = &k->keep[i];
		if (s->stage == 1) {
			uint64_t *hh = h + (size_t)a * 65536;
			for (size_t j = 0; j < n; j++)
				hh[fkey(xi[j] - b[j]) >> 16]++;
		} else if (s->stage == 2) {
			uint64_t *h1 = h + (size_t)a * 2 * 65536, *h2 = h1 + 65536;
			for (size_t j = 0; j < n; j++) {
				uint32_t key = fkey(xi[j] - b[j]);
				if ((key >> 16) == s->bin1[i])
					h1[key & 0xffff]++;
				if ((key >> 16) == s->bin2[i])
					h2[key & 0xffff]++;
			}
		} else {
			uint64_t e1 = 0, e2 = 0;
			for (size_t j = 0; j < n; j++) {
				uint32_t key = fkey(xi[j] - b[j]);
				e1 += key == kp->k1;
				e2 += key == kp->k2;
			}
			s->eqc[(c * (uint64_t)s->nact + (uint64_t)a) * 2] = e1;
			s->eqc[(c * (uint64_t)s->nact + (uint64_t)a) * 2 + 1] = e2;
		}
	}
	return 0;
}

/* Find the bin holding ascending rank r in a 65536-bin histogram. */
static uint32_t find_rank(const uint64_t *h, uint64_t r, uint64_t *below)
{
	uint64_t cum = 0;
	for (uint32_t b = 0; b < 65536; b++) {
		if (cum + h[b] > r) {
			*below = cum;
			return b;
		}
		cum += h[b];
	}
	*below = cum;
	return 65535;
}

static int select_pass(const struct pass_env *e, cr_error *err)
{
	struct cr_kctx *k = e->k;
	struct sel_state s = { 0 };
	for (int i = 0; i < k->kp.n; i++)
		if (k->keep[i].active == 1)
			s.act[s.nact++] = i;
	if (!s.nact)
		return 0;
	uint32_t need = 1u << k->kp.base;
	for (int a = 0; a < s.nact; a++)
		need |= 1u << s.act[a];
	int nt = e->s->nthreads;
	int rc = 0;

	/* stage 1: histogram of the high 16 bits of each key */
	s.per_thread = (size_t)s.nact * 65536;
	s.hist = cr_xcalloc((size_t)nt * s.per_thread, sizeof(uint64_t));
	s.stage = 1;
	rc = run_pass(e, need, sel_chunk, &s, 1, err);
	uint64_t below1[CR_MAX_INPUTS], below2[CR_MAX_INPUTS];
	for (int a = 0; a < s.nact && rc == 0; a++) {
		uint64_t *h = s.hist + (size_t)a * 65536;
		for (int t = 1; t < nt; t++)
			for (size_t b = 0; b < 65536; b++)
				h[b] += s.hist[(size_t)t * s.per_thread + (size_t)a * 65536 + b];
		struct cr_keep *kp = &k->keep[s.act[a]];
		s.bin1[s.act[a]] = find_rank(h, kp->lo, &below1[a]);
		s.bin2[s.act[a]] = find_rank(h, kp->hi - 1, &below2[a]);
	}
	free(s.hist);
	if (rc < 0)
		return -1;

	/* stage 2: exact keys within the two bins */
	s.per_thread = (size_t)s.nact * 2 * 65536;
	s.hist = cr_xcalloc((size_t)nt * s.per_thread, sizeof(uint64_t));
	s.stage = 2;
	rc = run_pass(e, need, sel_chunk, &s, 1, err);
	int ties = 0;
	for (int a = 0; a < s.nact && rc == 0; a++) {
		int i = s.act[a];
		uint64_t *h = s.hist + (size_t)a * 2 * 65536;
		for (int t = 1; t < nt; t++)
			for (size_t b = 0; b < 2 * 65536; b++)
				h[b] += s.hist[(size_t)t * s.per_thread + (size_t)a * 2 * 65536 + b];
		struct cr_keep *kp = &k->keep[i];
		uint64_t in1, in2;
		uint32_t lo1 = find_rank(h, kp->lo - below1[a], &in1);
		uint32_t lo2 = find_rank(h + 65536, kp->hi - 1 - below2[a], &in2);
		kp->k1 = (s.bin1[i] << 16) | lo1;
		kp->k2 = (s.bin2[i] << 16) | lo2;
		kp->less1 = below1[a] + in1;
		kp->less2 = below2[a] + in2;
		uint64_t cnt2 = h[65536 + lo2];
		/* a run of equal keys straddles a boundary: replay mergekit's sort, or split by element order */
		if (kp->less1 < kp->lo || kp->less2 + cnt2 > kp->hi) {
			if (k->nelem <= CR_TIE_SORT_MAX)
				kp->tiebits = cr_xcalloc((size_t)(k->nelem + 7) / 8, 1);
			else
				ties = 1;
		}
	}
	free(s.hist);
	s.hist = NULL;
	for (int a = 0; a < s.nact && rc == 0; a++) {
		int i = s.act[a];
		struct cr_keep *kp = &k->keep[i];
		if (!kp->tiebits)
			continue;
		s.stage = 4;
		s.sort_input = i;
		s.pairs = cr_xmalloc((size_t)k->nelem * sizeof *s.pairs);
		rc = run_pass(e, need, sel_chunk, &s, 1, err);
		if (rc == 0) {
			uint64_t N = k->nelem;
			cr_std_sort(s.pairs, (size_t)N, kp->desc);
			uint64_t p0 = kp->desc ? N - kp->hi : kp->lo, p1 = kp->desc ? N - kp->lo : kp->hi;
			for (uint64_t q = p0; q < p1; q++) {
				uint32_t key = fkey(s.pairs[q].key), idx = s.pairs[q].idx;
				if (key == kp->k1 || key == kp->k2)
					kp->tiebits[idx / 8] |= (uint8_t)(1u << (idx % 8));
			}
		}
		free(s.pairs);
		s.pairs = NULL;
	}
	if (rc < 0 || !ties)
		return rc;

	/* stage 3: per-chunk counts of the boundary keys, for a deterministic tie break */
	s.stage = 3;
	s.eqc = cr_xcalloc((k->nchunks ? k->nchunks : 1) * (size_t)s.nact * 2, sizeof(uint64_t));
	rc = run_pass(e, need, sel_chunk, &s, 1, err);
	for (int a = 0; a < s.nact && rc == 0; a++) {
		struct cr_keep *kp = &k->keep[s.act[a]];
		if (kp->tiebits)
			continue;
		kp->eq1 = cr_xmalloc((k->nchunks + 1) * sizeof(uint64_t));
		kp->eq2 = cr_xmalloc((k->nchunks + 1) * sizeof(uint64_t));
		uint64_t c1 = 0, c2 = 0;
		for (uint64_t c = 0; c < k->nchunks; c++) {
			kp->eq1[c] = c1;
			kp->eq2[c] = c2;
			c1 += s.eqc[(c * (uint64_t)s.nact + (uint64_t)a) * 2];
			c2 += s.eqc[(c * (uint64_t)s.nact + (uint64_t)a) * 2 + 1];
		}
		kp->eq1[k->nchunks] = c1;
		kp->eq2[k->nchunks] = c2;
	}
	free(s.eqc);
	return rc;
}

/* ---- sparsification masks, shared by the L1 pass and the output ---- */

struct rank_pair {
	uint32_t key;
	uint32_t idx;
};

static int cmp_rank(const void *a, const void *b)
{
	const struct rank_pair *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* d holds input i's task vector for chunk c; zero the dropped elements. */
static void apply_mask(const struct cr_kctx *k, int i, uint64_t c, float *d, size_t n)
{
	const double *p = k->kp.p[i];
	uint64_t first = c * k->chunk;
	switch (sparsify_of(k->kp.method)) {
	case SP_RANDOM: {
		double dens = p[CR_P_DENSITY];
		if (dens >= 1.0)
			return;
		for (size_t j = 0; j < n; j++)
			if (!(cr_rng_uniform(k->key[i], first + j) < dens))
				d[j] = 0.0f;
		return;
	}
	case SP_RANKED: {
		double dens = p[CR_P_DENSITY], eps = p[CR_P_EPSILON];
		if (dens >= 1.0)
			return;
		if (dens <= 0.0) {
			memset(d, 0, n * sizeof(float));
			return;
		}
		size_t cols = (size_t)k->cols;
		struct rank_pair *rp = cr_xmalloc(cols * sizeof *rp);
		for (size_t r0 = 0; r0 < n; r0 += cols) {
			for (size_t j = 0; j < cols; j++) {
				rp[j].key = fkey(d[r0 + j]);
				rp[j].idx = (uint32_t)j;
			}
			qsort(rp, cols, sizeof *rp, cmp_rank);
			for (size_t r = 0; r < cols; r++) {
				size_t j = rp[r].idx;
				double norm = cols > 1 ? (double)r / (double)(cols - 1) : 0.0;
				double prob = (dens - eps) + norm * 2.0 * eps;
				if (!(cr_rng_uniform(k->key[i], first + r0 + j) < prob))
					d[r0 + j] = 0.0f;
			}
		}
		free(rp);
		return;
	}
	case SP_MAGNITUDE:
	case SP_OUTLIERS: {
		const struct cr_keep *kp = &k->keep[i];
		if (!kp->active)
			return;
		if (kp->active == 2) {
			memset(d, 0, n * sizeof(float));
			return;
		}
		uint64_t e1 = kp->eq1 ? kp->eq1[c] : 0, e2 = kp->eq2 ? kp->eq2[c] : 0;
		uint64_t t1 = kp->eq1 ? kp->eq1[k->nchunks] : 0, t2 = kp->eq2 ? kp->eq2[k->nchunks] : 0;
		for (size_t j = 0; j < n; j++) {
			uint32_t key = fkey(d[j]);
			int keep = key >= kp->k1 && key <= kp->k2;
			/* rank among equal keys: element order, or reversed for a descending sort */
			uint64_t r1 = kp->desc ? t1 - 1 - e1 : e1, r2 = kp->desc ? t2 - 1 - e2 : e2;
			if (kp->tiebits && (key == kp->k1 || key == kp->k2))
				keep = (kp->tiebits[(first + j) / 8] >> ((first + j) % 8)) & 1;
			if (keep && key == kp->k1 && kp->eq1 && kp->less1 + r1 < kp->lo)
				keep = 0;
			if (keep && key == kp->k2 && kp->eq2 && kp->less2 + r2 >= kp->hi)
				keep = 0;
			e1 += key == kp->k1;
			e2 += key == kp->k2;
			if (!keep)
				d[j] = 0.0f;
		}
		return;
	}
	case SP_NONE:
		return;
	}
}

/* L1 norms of each task vector before and after its mask (for rescale). */
struct l1_state {
	double *part; /* nchunks x n x 2 */
};

static int l1_chunk(struct cr_kctx *k, uint64_t c, float *const *x, size_t n, void *state, cr_error *err)
{
	(void)err;
	struct l1_state *s = state;
	const float *b = x[k->kp.base];
	for (int i = 0; i < k->kp.n; i++) {
		if (i == k->kp.base || k->resc[i] != 0.0f)
			continue;
		task_vector(x[i], b, x[i], n);
		double before = 0.0, after = 0.0;
		for (size_t j = 0; j < n; j++)
			before += fabs((double)x[i][j]);
		apply_mask(k, i, c, x[i], n);
		for (size_t j = 0; j < n; j++)
			after += fabs((double)x[i][j]);
		s->part[(c * (uint64_t)k->kp.n + (uint64_t)i) * 2] = before;
		s->part[(c * (uint64_t)k->kp.n + (uint64_t)i) * 2 + 1] = after;
	}
	return 0;
}

/* ---- nuslerp row-wise: per-column norms and dots ---- */

struct col_state {
	int a, b; /* the two inputs */
	double *acc; /* cols x 3: |v0|^2, |v1|^2, v0.v1 */
};

static int col_chunk(struct cr_kctx *k, uint64_t c, float *const *x, size_t n, void *state, cr_error *err)
{
	(void)c;
	(void)err;
	struct col_state *s = state;
	const float *b = k->use_base ? x[k->kp.base] : NULL;
	for (size_t j = 0; j < n; j++) {
		size_t col = (size_t)((c * k->chunk + j) % k->cols);
		float u = b ? x[s->a][j] - b[j] : x[s->a][j];
		float v = b ? x[s->b][j] - b[j] : x[s->b][j];
		s->acc[col * 3] += (double)u * u;
		s->acc[col * 3 + 1] += (double)v * v;
		s->acc[col * 3 + 2] += (double)u * v;
	}
	return 0;
}

/* ---------------------------------------------------------------- prepare */

static void slerp_coef(double t, double n0, double n1, double dot, float *c0, float *c1, int *lerp)
{
	/* mergekit's slerp: cos of the normalized vectors; near-parallel falls back to lerp */
	double a = n0 > 1e-8 ? n0 : 1.0, b = n1 > 1e-8 ? n1 : 1.0;
	double cs = dot / (a * b);
	if (fabs(cs) > 0.9995) {
		*lerp = 1;
		*c0 = (float)(1.0 - t);
		*c1 = (float)t;
		return;
	}
	double th = acos(cs), st = sin(th);
	*lerp = 0;
	*c0 = (float)(sin(th - th * t) / st);
	*c1 = (float)(sin(th * t) / st);
}

/* nuslerp's coefficients: (sin((1-t)θ) v0 + sin(tθ) v1) / sinθ, lerp when colinear */
static void nuslerp_coef(double t, double n0, double n1, double dot, float *c0, float *c1, int *lerp)
{
	double a = n0 > 1e-7 ? n0 : 1e-7, b = n1 > 1e-7 ? n1 : 1e-7;
	double cs = dot / (a * b);
	cs = cs < -1.0 ? -1.0 : cs > 1.0 ? 1.0 : cs;
	double th = acos(cs), st = sin(th);
	if (fabs(st) < 1e-8) {
		*lerp = 1;
		*c0 = (float)(1.0 - t);
		*c1 = (float)t;
		return;
	}
	*lerp = 0;
	*c0 = (float)(sin((1.0 - t) * th) / st);
	*c1 = (float)(sin(t * th) / st);
}

/* The two interpolated inputs of nuslerp (non-base, in order). */
static void nuslerp_pair(const struct cr_kctx *k, int *a, int *b)
{
	int m = 0, v[2] = { 0, 1 };
	for (int i = 0; i < k->kp.n && m < 2; i++)
		if (!k->use_base || i != k->kp.base)
			v[m++] = i;
	*a = v[0];
	*b = v[1];
}

static double nuslerp_t(const struct cr_kctx *k, int a, int b)
{
	double wa = k->kp.p[a][CR_P_WEIGHT], wb = k->kp.p[b][CR_P_WEIGHT];
	return wb / (wa + wb);
}

static int prepare_gta(struct cr_kctx *k, const struct pass_env *e, cr_error *err)
{
	struct cr_kparams *kp = &k->kp;
	enum sparsify sp = sparsify_of(kp->method);
	for (int i = 0; i < kp->n; i++) {
		k->resc[i] = 1.0f;
		if (i == kp->base)
			continue;
		double dens = kp->p[i][CR_P_DENSITY];
		if (dens < 0.0 || dens > 1.0 || isnan(dens))
			return cr_fail(err, CR_E_RECIPE, "tensor '%s': density %g of %s is outside [0, 1]", k->name,
				       dens, k->inames ? k->inames[i] : "input");
		if (sp == SP_RANKED && dens < 1.0 && dens > 0.0) {
			double eps = kp->p[i][CR_P_EPSILON];
			if (dens + eps >= 1.0 || dens - eps <= 0.0)
				return cr_fail(err, CR_E_RECIPE,
					       "tensor '%s': della needs density ± epsilon inside (0, 1), got %g ± %g",
					       k->name, dens, eps);
		}
		if (sp == SP_MAGNITUDE || sp == SP_OUTLIERS) {
			struct cr_keep *kk = &k->keep[i];
			uint64_t N = k->nelem;
			if (dens >= 1.0 || N == 0)
				continue;
			uint64_t target = (uint64_t)(dens * (double)N);
			uint64_t lo, hi;
			if (sp == SP_MAGNITUDE) { /* mergekit: top k of a descending sort */
				lo = N - target;
				hi = N;
				kk->desc = 1;
			} else {
				uint64_t ntop = (uint64_t)(kp->p[i][CR_P_GAMMA] * (double)N);
				int64_t nbot = (int64_t)N - (int64_t)target - (int64_t)ntop;
				if (nbot < 0) {
					ntop = (uint64_t)((int64_t)ntop + nbot);
					nbot = 0;
				}
				lo = (uint64_t)nbot;
				hi = N - ntop; /* ntop == 0 keeps the largest (mergekit would keep nothing) */
			}
			if (hi <= lo)
				kk->active = 2;
			else if (lo > 0 || hi < N) {
				kk->active = 1;
				kk->lo = lo;
				kk->hi = hi;
			}
		}
	}
	if (select_pass(e, err) < 0)
		return -1;
	int want_rescale = cr_method_uses(kp->method, CR_P_RESCALE) && kp->g[CR_P_RESCALE] != 0.0 &&
			   (sp == SP_RANDOM || sp == SP_RANKED);
	if (!want_rescale)
		return 0;
	/* mark the inputs that need an L1 rescale with resc 0 while measuring */
	int any = 0;
	uint32_t need = 1u << kp->base;
	for (int i = 0; i < kp->n; i++)
		if (i != kp->base && kp->p[i][CR_P_DENSITY] < 1.0 && kp->p[i][CR_P_DENSITY] > 0.0) {
			k->resc[i] = 0.0f;
			need |= 1u << i;
			any = 1;
		}
	if (!any)
		return 0;
	struct l1_state s = { cr_xcalloc((k->nchunks ? k->nchunks : 1) * (size_t)kp->n * 2, sizeof(double)) };
	int rc = run_pass(e, need, l1_chunk, &s, 1, err);
	for (int i = 0; i < kp->n && rc == 0; i++) {
		if (k->resc[i] != 0.0f)
			continue;
		double before = 0.0, after = 0.0;
		for (uint64_t c = 0; c < k->nchunks; c++) {
			before += s.part[(c * (uint64_t)kp->n + (uint64_t)i) * 2];
			after += s.part[(c * (uint64_t)kp->n + (uint64_t)i) * 2 + 1];
		}
		k->resc[i] = (before < 1e-7 || after < 1e-7) ? 1.0f : (float)(before / after);
	}
	free(s.part);
	return rc;
}

int cr_kernel_prepare(struct cr_kctx *k, const struct cr_kparams *kp, const char *name,
		      const char *const *inames, uint64_t nelem, uint64_t cols, uint64_t seed, size_t align,
		      size_t target, struct cr_scratch *scratch, cr_kernel_reader rd, void *rdctx, cr_error *err)
{
	memset(k, 0, sizeof *k);
	k->kp = *kp;
	k->name = name;
	k->inames = inames;
	k->nelem = nelem;
	k->cols = cols ? cols : 1;
	struct cr_kparams *p = &k->kp;
	enum cr_method_id m = p->method;
	if (p->n < 1 || p->n > CR_MAX_INPUTS)
		return cr_fail(err, CR_E_USAGE, "tensor '%s': %d inputs (1 to %d supported)", name, p->n,
			       CR_MAX_INPUTS);
	if ((is_gta(m) || m == CR_M_SLERP || m == CR_M_MODEL_STOCK || m == CR_M_AOE) && p->base < 0)
		return cr_fail(err, CR_E_RECIPE, "tensor '%s': method %s needs a base_model", name,
			       cr_method_info(m)->name);

	k->per_row = m == CR_M_DELLA || m == CR_M_DELLA_LINEAR ||
		     (m == CR_M_NUSLERP && p->g[CR_P_NUSLERP_FLATTEN] == 0.0 && p->g[CR_P_NUSLERP_ROW_WISE] == 0.0) ||
		     (m == CR_M_MODEL_STOCK && p->g[CR_P_FILTER_WISE] != 0.0);
	size_t a = align ? align : 1;
	if (k->per_row && a % k->cols)
		a *= (size_t)k->cols;
	size_t ch = target / a * a;
	if (ch == 0)
		ch = a;
	if (ch > scratch->cap)
		return cr_fail(err, CR_E_UNSUPPORTED, "tensor '%s': a chunk of %zu elements exceeds the buffer of %zu",
			       name, ch, scratch->cap);
	k->chunk = ch;
	k->nchunks = (nelem + ch - 1) / ch;
	struct pass_env e = { k, scratch, rd, rdctx };

	k->decision = cr_kernel_decide(p, &k->source);
	if (k->decision == CR_DEC_COPY)
		return 0;

	switch (m) {
	case CR_M_PASSTHROUGH:
		if (p->n != 1)
			return cr_fail(err, CR_E_RECIPE, "tensor '%s': passthrough takes one model, got %d", name, p->n);
		return 0;
	case CR_M_LINEAR: {
		double s = 0.0;
		for (int i = 0; i < p->n; i++) {
			k->w[i] = (float)p->p[i][CR_P_WEIGHT];
			s += k->w[i];
		}
		k->c0 = 1.0f;
		if (p->g[CR_P_NORMALIZE] != 0.0) {
			if (fabs(s) < 1e-8)
				return cr_fail(err, CR_E_RECIPE, "tensor '%s': linear weights sum to zero", name);
			k->c0 = (float)s;
		}
		return 0;
	}
	case CR_M_AOE: {
		double delta = p->g[CR_P_DELTA];
		if (k->decision == CR_DEC_PENDING) {
			/* measure ‖W_i − W_base‖ and ‖W_base‖ for the inputs whose distance is unknown */
			struct gram_state g = { 0 };
			int who[CR_MAX_INPUTS];
			for (int i = 0; i < p->n; i++)
				if (i != p->base && p->p[i][CR_P_WEIGHT] != 0.0 && isnan(p->rel[i])) {
					who[g.m] = i;
					g.a[g.m] = i;
					g.b[g.m++] = p->base;
				}
			g.a[g.m] = p->base;
			g.b[g.m++] = -1;
			if (gram_pass(&e, &g, err) < 0)
				return -1;
			double bn = sqrt(g.g[(g.m - 1) * g.m + (g.m - 1)]);
			for (int j = 0; j < g.m - 1; j++) {
				double dn = sqrt(g.g[j * g.m + j]);
				p->rel[who[j]] = bn > 0.0 ? dn / bn : (dn > 0.0 ? INFINITY : 0.0);
			}
			k->decision = cr_kernel_decide(p, &k->source);
			if (k->decision == CR_DEC_COPY)
				return 0;
		}
		double s = 0.0, w[CR_MAX_INPUTS] = { 0 };
		for (int i = 0; i < p->n; i++) {
			double l = p->p[i][CR_P_WEIGHT];
			s += l;
			int src = (i == p->base || delta < 0.0 || p->rel[i] > delta) ? i : p->base;
			w[src] += l;
		}
		if (p->g[CR_P_NORMALIZE] != 0.0 && s == 0.0)
			return cr_fail(err, CR_E_RECIPE, "tensor '%s': aoe weights sum to zero", name);
		for (int i = 0; i < p->n; i++)
			k->w[i] = (float)w[i];
		k->c0 = p->g[CR_P_NORMALIZE] != 0.0 ? (float)s : 1.0f;
		return 0;
	}
	case CR_M_SLERP: {
		if (p->n != 2)
			return cr_fail(err, CR_E_RECIPE, "tensor '%s': slerp takes the base and one other model, got %d",
				       name, p->n);
		struct gram_state g = { .m = 2, .a = { p->base, 1 - p->base }, .b = { -1, -1 } };
		if (gram_pass(&e, &g, err) < 0)
			return -1;
		slerp_coef(p->g[CR_P_T], sqrt(g.g[0]), sqrt(g.g[3]), g.g[1], &k->c0, &k->c1, &k->lerp);
		return 0;
	}
	case CR_M_NUSLERP: {
		k->use_base = p->base >= 0;
		if (p->n - k->use_base != 2)
			return cr_fail(err, CR_E_RECIPE, "tensor '%s': nuslerp takes two models (plus a base), got %d",
				       name, p->n - k->use_base);
		int ia, ib;
		nuslerp_pair(k, &ia, &ib);
		double t = nuslerp_t(k, ia, ib);
		if (!isfinite(t))
			return cr_fail(err, CR_E_RECIPE, "tensor '%s': nuslerp weights sum to zero", name);
		k->lt = (float)t;
		if (k->per_row)
			return 0;
		if (p->g[CR_P_NUSLERP_FLATTEN] == 0.0 && p->g[CR_P_NUSLERP_ROW_WISE] != 0.0 && k->cols < nelem) {
			struct col_state s = { ia, ib, cr_xcalloc((size_t)k->cols * 3, sizeof(double)) };
			uint32_t need = (1u << ia) | (1u << ib) | (k->use_base ? 1u << p->base : 0);
			int rc = run_pass(&e, need, col_chunk, &s, 0, err); /* sequential: sums in order */
			if (rc == 0) {
				k->colcoef = cr_xmalloc((size_t)k->cols * 3 * sizeof(float));
				for (uint64_t c = 0; c < k->cols; c++) {
					int l;
					nuslerp_coef(t, sqrt(s.acc[c * 3]), sqrt(s.acc[c * 3 + 1]), s.acc[c * 3 + 2],
						     &k->colcoef[c * 3], &k->colcoef[c * 3 + 1], &l);
					k->colcoef[c * 3 + 2] = (float)l;
				}
			}
			free(s.acc);
			return rc;
		}
		struct gram_state g = { .m = 2, .a = { ia, ib }, .b = { -1, -1 } };
		if (k->use_base)
			g.b[0] = g.b[1] = p->base;
		if (gram_pass(&e, &g, err) < 0)
			return -1;
		nuslerp_coef(t, sqrt(g.g[0]), sqrt(g.g[3]), g.g[1], &k->c0, &k->c1, &k->lerp);
		return 0;
	}
	case CR_M_MODEL_STOCK: {
		if (p->n < 3)
			return cr_fail(err, CR_E_RECIPE, "tensor '%s': model_stock needs the base and at least two models",
				       name);
		if (k->per_row)
			return 0;
		struct gram_state g = { 0 };
		for (int i = 0; i < p->n; i++)
			if (i != p->base) {
				g.a[g.m] = i;
				g.b[g.m++] = p->base;
			}
		if (gram_pass(&e, &g, err) < 0)
			return -1;
		double cs = 0.0;
		int np = 0;
		for (int i = 0; i < g.m; i++)
			for (int j = i + 1; j < g.m; j++) {
				double np_ = sqrt(g.g[i * g.m + i]) * sqrt(g.g[j * g.m + j]);
				double c = g.g[i * g.m + j] / (np_ > 1e-6 ? np_ : 1e-6);
				cs += c < -1.0 ? -1.0 : c > 1.0 ? 1.0 : c;
				np++;
			}
		cs /= np;
		double N = g.m;
		k->stock_t = (float)(N * cs / (1.0 + (N - 1.0) * cs));
		return 0;
	}
	default:
		break;
	}
	if (is_gta(m)) {
		for (int i = 0; i < p->n; i++) {
			k->w[i] = (float)p->p[i][CR_P_WEIGHT];
			k->key[i] = cr_rng_key(seed, name, (uint32_t)i);
		}
		return prepare_gta(k, &e, err);
	}
	return cr_fail(err, CR_E_UNSUPPORTED, "tensor '%s': method %s has no kernel", name, cr_method_info(m)->name);
}

void cr_kernel_release(struct cr_kctx *k)
{
	for (int i = 0; i < CR_MAX_INPUTS; i++) {
		free(k->keep[i].eq1);
		free(k->keep[i].eq2);
		free(k->keep[i].tiebits);
		k->keep[i].eq1 = k->keep[i].eq2 = NULL;
		k->keep[i].tiebits = NULL;
	}
	free(k->colcoef);
	k->colcoef = NULL;
}

uint32_t cr_kernel_inputs_used(const struct cr_kctx *k)
{
	uint32_t all = (k->kp.n >= 32) ? 0xffffffffu : ((1u << k->kp.n) - 1);
	if (k->decision == CR_DEC_COPY)
		return 1u << k->source;
	if (k->kp.method == CR_M_LINEAR || k->kp.method == CR_M_AOE) {
		uint32_t m = 0;
		for (int i = 0; i < k->kp.n; i++)
			if (k->w[i] != 0.0f)
				m |= 1u << i;
		return m ? m : 1u;
	}
	return all;
}

/* ---------------------------------------------------------------- chunks */

static void rows_nuslerp(const struct cr_kctx *k, float *const *x, size_t n, float *out)
{
	int ia, ib;
	nuslerp_pair(k, &ia, &ib);
	const float *b = k->use_base ? x[k->kp.base] : NULL;
	size_t cols = (size_t)k->cols;
	for (size_t r0 = 0; r0 < n; r0 += cols) {
		double n0 = 0, n1 = 0, d = 0;
		for (size_t j = r0; j < r0 + cols; j++) {
			float u = b ? x[ia][j] - b[j] : x[ia][j], v = b ? x[ib][j] - b[j] : x[ib][j];
			n0 += (double)u * u;
			n1 += (double)v * v;
			d += (double)u * v;
		}
		float c0, c1;
		int lerp;
		nuslerp_coef(k->lt, sqrt(n0), sqrt(n1), d, &c0, &c1, &lerp);
		for (size_t j = r0; j < r0 + cols; j++) {
			float u = b ? x[ia][j] - b[j] : x[ia][j], v = b ? x[ib][j] - b[j] : x[ib][j];
			float r = lerp ? (1.0f - k->lt) * u + k->lt * v : c0 * u + c1 * v;
			out[j] = b ? r + b[j] : r;
		}
	}
}

static void rows_stock(const struct cr_kctx *k, float *const *x, size_t n, float *out)
{
	const float *b = x[k->kp.base];
	size_t cols = (size_t)k->cols;
	int idx[CR_MAX_INPUTS], m = 0;
	for (int i = 0; i < k->kp.n; i++)
		if (i != k->kp.base)
			idx[m++] = i;
	for (size_t r0 = 0; r0 < n; r0 += cols) {
		double G[CR_MAX_INPUTS][CR_MAX_INPUTS];
		for (int p = 0; p < m; p++)
			for (int q = p; q < m; q++) {
				double s = 0;
				for (size_t j = r0; j < r0 + cols; j++)
					s += (double)(x[idx[p]][j] - b[j]) * (double)(x[idx[q]][j] - b[j]);
				G[p][q] = G[q][p] = s;
			}
		double cs = 0;
		int np = 0;
		for (int p = 0; p < m; p++)
			for (int q = p + 1; q < m; q++) {
				double pr = sqrt(G[p][p]) * sqrt(G[q][q]);
				double c = G[p][q] / (pr > 1e-6 ? pr : 1e-6);
				cs += c < -1.0 ? -1.0 : c > 1.0 ? 1.0 : c;
				np++;
			}
		cs /= np;
		float t = (float)(m * cs / (1.0 + (m - 1.0) * cs));
		for (size_t j = r0; j < r0 + cols; j++) {
			float s = 0.0f;
			for (int p = 0; p < m; p++)
				s += x[idx[p]][j];
			out[j] = t * (s / (float)m) + (1.0f - t) * b[j];
		}
	}
}

/* Inputs are checked through the output: a NaN or Inf that reaches the result is
 * reported with the input that holds it (one pass over the output, not one per input). */
static int check_output(const struct cr_kctx *k, uint64_t c, float *const *x, size_t n, const float *out,
			cr_error *err)
{
	long b = bad_value(out, n);
	if (b < 0)
		return 0;
	uint64_t first = c * k->chunk;
	uint32_t used = cr_kernel_inputs_used(k);
	for (int i = 0; i < k->kp.n; i++)
		if ((used & (1u << i)) && check_input(k, i, x[i], first, n, err) < 0)
			return -1;
	return cr_fail(err, CR_E_NUMERIC, "tensor '%s': the result is not finite at element %llu", k->name,
		       (unsigned long long)(first + (uint64_t)b));
}

CR_HOT static int chunk_math(const struct cr_kctx *k, uint64_t c, float *const *x, size_t n, float *out);

int cr_kernel_chunk(const struct cr_kctx *k, uint64_t c, float *const *x, size_t n, float *out, cr_error *err)
{
	if (k->decision == CR_DEC_COPY) {
		if (check_input(k, k->source, x[k->source], c * k->chunk, n, err) < 0)
			return -1;
		memcpy(out, x[k->source], n * sizeof(float));
		return 0;
	}
	/* inputs are modified in place by some methods: check them first when a NaN could be masked out */
	enum sparsify sp = sparsify_of(k->kp.method);
	if (sp != SP_NONE || uses_consensus(k->kp.method)) {
		uint32_t used = cr_kernel_inputs_used(k);
		for (int i = 0; i < k->kp.n; i++)
			if ((used & (1u << i)) && check_input(k, i, x[i], c * k->chunk, n, err) < 0)
				return -1;
	}
	chunk_math(k, c, x, n, out);
	return check_output(k, c, x, n, out, err);
}

int cr_kernel_elementwise(const struct cr_kctx *k)
{
	enum cr_method_id m = k->kp.method;
	return k->decision == CR_DEC_COPY || m == CR_M_LINEAR || m == CR_M_AOE || m == CR_M_PASSTHROUGH;
}

int cr_kernel_block(const struct cr_kctx *k, uint64_t first, float *const *x, size_t n, float *out, cr_error *err)
{
	if (k->decision == CR_DEC_COPY) {
		if (check_input(k, k->source, x[k->source], first, n, err) < 0)
			return -1;
		memcpy(out, x[k->source], n * sizeof(float));
		return 0;
	}
	chunk_math(k, 0, x, n, out);
	long b = bad_value(out, n);
	if (b < 0)
		return 0;
	uint32_t used = cr_kernel_inputs_used(k);
	for (int i = 0; i < k->kp.n; i++)
		if ((used & (1u << i)) && check_input(k, i, x[i], first, n, err) < 0)
			return -1;
	return cr_fail(err, CR_E_NUMERIC, "tensor '%s': the result is not finite at element %llu", k->name,
		       (unsigned long long)(first + (uint64_t)b));
}

CR_HOT
static int chunk_math(const struct cr_kctx *k, uint64_t c, float *const *x, size_t n, float *out)
{
	const struct cr_kparams *p = &k->kp;
	uint64_t first = c * k->chunk;
	enum cr_method_id m = p->method;
	switch (m) {
	case CR_M_PASSTHROUGH: {
		float s = (float)p->p[0][CR_P_SCALE];
		for (size_t j = 0; j < n; j++)
			out[j] = s * x[0][j];
		return 0;
	}
	case CR_M_LINEAR:
	case CR_M_AOE: {
		/* weighted sum in input order, then the division mergekit does */
		const float *v[CR_MAX_INPUTS];
		float w[CR_MAX_INPUTS], div = k->c0;
		int nw = 0;
		for (int i = 0; i < p->n; i++)
			if (k->w[i] != 0.0f) {
				v[nw] = x[i];
				w[nw++] = k->w[i];
			}
		if (nw == 0) {
			memset(out, 0, n * sizeof(float));
			return 0;
		}
		const float *a = v[0];
		float wa = w[0];
		if (nw == 2) {
			const float *b = v[1];
			float wb = w[1];
#pragma omp simd
			for (size_t j = 0; j < n; j++)
				out[j] = (wa * a[j] + wb * b[j]) / div;
			return 0;
		}
		if (nw == 3) {
			const float *b = v[1], *d = v[2];
			float wb = w[1], wd = w[2];
#pragma omp simd
			for (size_t j = 0; j < n; j++)
				out[j] = (wa * a[j] + wb * b[j] + wd * d[j]) / div;
			return 0;
		}
#pragma omp simd
		for (size_t j = 0; j < n; j++)
			out[j] = wa * a[j];
		for (int i = 1; i < nw; i++) {
			const float *b = v[i];
			float wb = w[i];
#pragma omp simd
			for (size_t j = 0; j < n; j++)
				out[j] += wb * b[j];
		}
		if (div != 1.0f) {
#pragma omp simd
			for (size_t j = 0; j < n; j++)
				out[j] /= div;
		}
		return 0;
	}
	case CR_M_SLERP: {
		const float *v0 = x[p->base], *v1 = x[1 - p->base];
		for (size_t j = 0; j < n; j++)
			out[j] = k->c0 * v0[j] + k->c1 * v1[j];
		return 0;
	}
	case CR_M_NUSLERP: {
		if (k->per_row) {
			rows_nuslerp(k, x, n, out);
			return 0;
		}
		int ia, ib;
		nuslerp_pair(k, &ia, &ib);
		const float *b = k->use_base ? x[p->base] : NULL;
		for (size_t j = 0; j < n; j++) {
			float u = b ? x[ia][j] - b[j] : x[ia][j], v = b ? x[ib][j] - b[j] : x[ib][j];
			float c0 = k->c0, c1 = k->c1;
			int lerp = k->lerp;
			if (k->colcoef) {
				size_t col = (size_t)((first + j) % k->cols);
				c0 = k->colcoef[col * 3];
				c1 = k->colcoef[col * 3 + 1];
				lerp = k->colcoef[col * 3 + 2] != 0.0f;
			}
			float r = lerp ? (1.0f - k->lt) * u + k->lt * v : c0 * u + c1 * v;
			out[j] = b ? r + b[j] : r;
		}
		return 0;
	}
	case CR_M_MODEL_STOCK: {
		if (k->per_row) {
			rows_stock(k, x, n, out);
			return 0;
		}
		const float *b = x[p->base];
		float t = k->stock_t, m1 = (float)(p->n - 1);
		for (size_t j = 0; j < n; j++) {
			float s = 0.0f;
			for (int i = 0; i < p->n; i++)
				if (i != p->base)
					s += x[i][j];
			out[j] = t * (s / m1) + (1.0f - t) * b[j];
		}
		return 0;
	}
	default:
		break;
	}

	/* task-vector methods: sparsify each task vector, weight, elect signs, mix */
	const float *b = x[p->base];
	int cons = uses_consensus(m);
	int normalize = p->g[CR_P_NORMALIZE] != 0.0;
	float lambda = (float)p->g[CR_P_LAMBDA];
	float wsum = 0.0f;
	for (int i = 0; i < p->n; i++) {
		if (i == p->base)
			continue;
		task_vector(x[i], b, x[i], n);
		apply_mask(k, i, c, x[i], n);
		if (k->resc[i] != 1.0f) { /* mergekit rescales, then weights */
			for (size_t j = 0; j < n; j++)
				x[i][j] = (x[i][j] * k->resc[i]) * k->w[i];
		} else {
			for (size_t j = 0; j < n; j++)
				x[i][j] *= k->w[i];
		}
		wsum += k->w[i];
	}
	if (fabsf(wsum) < 1e-8f)
		wsum = 1.0f;
	for (size_t j = 0; j < n; j++) {
		float mixed = 0.0f, div = wsum;
		if (cons) {
			float s = 0.0f;
			for (int i = 0; i < p->n; i++)
				if (i != p->base)
					s += x[i][j];
			int pos = s >= 0.0f;
			div = 0.0f;
			for (int i = 0; i < p->n; i++) {
				if (i == p->base)
					continue;
				float d = x[i][j];
				if ((pos && d > 0.0f) || (!pos && d < 0.0f)) {
					mixed += d;
					div += k->w[i];
				}
			}
			if (div == 0.0f)
				div = 1.0f;
		} else {
			for (int i = 0; i < p->n; i++)
				if (i != p->base)
					mixed += x[i][j];
		}
		if (normalize)
			mixed /= div;
		if (lambda != 1.0f)
			mixed *= lambda;
		out[j] = b[j] + mixed;
	}
	return 0;
}
