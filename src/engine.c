/*
 * The merge engine (see crucible/engine.h): shard layout, per-tensor
 * streaming through the method kernels, verbatim copies, checksums, the
 * resume manifest and the atomic finish.
 *
 * Invariants: a shard file exists in OUT.partial only while being written or
 * once complete (a failed shard is deleted by cr_st_writer_abort); the
 * manifest lists only shards that were finished and fsynced; OUT is created
 * by one rename of a complete folder.  Called by `crucible merge` and by the
 * workbench's worker thread.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "crucible/engine.h"
#include "crucible/fp8.h"
#include "hot.h"
#include "pool.h"
#include "writebehind.h"
#include "crucible/output.h"

#define BLOCK 2048 /* elements per cache-resident block of the element-wise path */
#define SUBREAD (32 * BLOCK) /* elements read per input at a time (128 KiB of BF16) */
#define DEFAULT_CHUNK 262144
#define COPY_CHUNK_BYTES (4u << 20)
#define MANIFEST ".crucible-manifest.json"

/* The engine's chunk loops run on its pool; the kernels' own passes on OpenMP. */
static int thread_id(void)
{
	int t = cr_pool_tid();
	if (t >= 0)
		return t;
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

/* ---------------------------------------------------------------- checksums */

#define CK_P 0x9e3779b97f4a7c15ull

static uint64_t powmod64(uint64_t b, uint64_t e)
{
	uint64_t r = 1;
	while (e) {
		if (e & 1)
			r *= b;
		b *= b;
		e >>= 1;
	}
	return r;
}

/* sum over 8-byte words w_j (at absolute word index j) of w_j * P^j, mod 2^64: additive over any split */
uint64_t cr_checksum_piece(const void *buf, size_t len, uint64_t off)
{
	const uint8_t *b = buf;
	uint64_t h = 0;
	while (len && (off & 7)) { /* head: bytes in a partial word */
		h += ((uint64_t)*b << (8 * (off & 7))) * powmod64(CK_P, off >> 3);
		b++;
		off++;
		len--;
	}
	uint64_t j = off >> 3, pj = powmod64(CK_P, j), p2 = CK_P * CK_P;
	uint64_t pj1 = pj * CK_P, h2 = 0;
	size_t nw = len / 8, w = 0;
	for (; w + 2 <= nw; w += 2) {
		uint64_t a, c;
		memcpy(&a, b + 8 * w, 8);
		memcpy(&c, b + 8 * w + 8, 8);
		h += a * pj;
		h2 += c * pj1;
		pj *= p2;
		pj1 *= p2;
	}
	h += h2;
	for (; w < nw; w++) {
		uint64_t a;
		memcpy(&a, b + 8 * w, 8);
		h += a * pj;
		pj *= CK_P;
	}
	off += 8 * nw;
	b += 8 * nw;
	len -= 8 * nw;
	while (len) {
		h += ((uint64_t)*b << (8 * (off & 7))) * powmod64(CK_P, off >> 3);
		b++;
		off++;
		len--;
	}
	return h;
}

uint64_t cr_checksum_final(uint64_t sum, uint64_t nbytes)
{
	uint64_t z = sum ^ (nbytes * 0xbf58476d1ce4e5b9ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int cr_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v >= 0) || !isfinite(v))
		return -1;
	double mul = 1;
	static const struct {
		const char *suf;
		double mul;
	} units[] = { { "", 1 },	  { "B", 1 },	      { "K", 1e3 },	     { "KB", 1e3 },	 { "M", 1e6 },
		      { "MB", 1e6 },	  { "G", 1e9 },	      { "GB", 1e9 },	     { "T", 1e12 },	 { "TB", 1e12 },
		      { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 }, { "TiB", 1099511627776.0 } };
	size_t i;
	for (i = 0; i < sizeof units / sizeof *units; i++)
		if (strcasecmp(end, units[i].suf) == 0 && (strlen(end) < 3 || strcmp(end + 1, units[i].suf + 1) == 0)) {
			mul = units[i].mul;
			break;
		}
	if (i == sizeof units / sizeof *units)
		return -1;
	double b = v * mul;
	if (b < 1 || b > 1.8e19)
		return -1;
	*out = (uint64_t)b;
	return 0;
}

/* ---------------------------------------------------------------- state */

struct shard {
	char *file;
	size_t first, n; /* tensors [first, first+n) of the plan order */
	uint64_t bytes;
	int kept;
};

struct eng {
	struct cr_plan *p;
	const struct cr_merge_opts *o;
	char *out, *partial;
	int nthreads;
	struct cr_scratch sc;
	uint8_t **raw;
	struct cr_wb *wb; /* every data write goes through it */
	struct cr_pool *pool; /* the chunk loops */
	float **srow, **blk;
	size_t target, cap;
	double *rel; /* ntensors x nparents */
	uint8_t *dec;
	int16_t *srcin; /* input copied */
	enum cr_dtype *dt;
	uint8_t *fp8;
	uint64_t *obytes, *cksum;
	size_t nshards;
	struct shard *sh;
	uint64_t done, total;
	size_t tdone;
	char planhash[17];
	json_t *manifest; /* array of finished shards */
	int cancelled;
};

struct rd_ctx {
	struct eng *e;
	size_t ti;
	float *grid[CR_MAX_INPUTS];
};

static int rd(void *ctx, int k, uint64_t first, size_t n, float *out, cr_error *err)
{
	struct rd_ctx *r = ctx;
	const struct cr_plan_input *in = &r->e->p->t[r->ti].in[k];
	return cr_tensor_read_f32(r->e->p->parents[in->parent], in->t, r->grid[k], first, n, r->e->raw[thread_id()],
				  out, err);
}

static int report(struct eng *e, const char *name)
{
	if (!e->o->progress)
		return 0;
	struct cr_merge_progress pr = { __atomic_load_n(&e->done, __ATOMIC_RELAXED), e->total, e->tdone, e->p->ntensors,
					name };
	if (e->o->progress(e->o->ctx, &pr)) {
		e->cancelled = 1;
		return -1;
	}
	return 0;
}

static uint64_t cols_of(const struct cr_plan_tensor *o)
{
	return o->ndim >= 2 ? o->shape[o->ndim - 1] : (o->nelem ? o->nelem : 1);
}

static int per_row_method(enum cr_method_id m)
{
	return m == CR_M_DELLA || m == CR_M_DELLA_LINEAR || m == CR_M_NUSLERP || m == CR_M_MODEL_STOCK;
}

/* ---------------------------------------------------------------- layout */

/* Decide what can be decided before writing, and fix every tensor's dtype. */
static int layout(struct eng *e, cr_error *err)
{
	struct cr_plan *p = e->p;
	size_t nt = p->ntensors;
	e->dec = cr_xcalloc(nt ? nt : 1, 1);
	e->srcin = cr_xcalloc(nt ? nt : 1, sizeof *e->srcin);
	e->dt = cr_xcalloc(nt ? nt : 1, sizeof *e->dt);
	e->fp8 = cr_xcalloc(nt ? nt : 1, 1);
	e->obytes = cr_xcalloc(nt ? nt : 1, sizeof *e->obytes);
	e->cksum = cr_xcalloc(nt ? nt : 1, sizeof *e->cksum);
	e->cap = e->target;
	for (size_t i = 0; i < nt; i++) {
		const struct cr_plan_tensor *o = &p->t[i];
		struct cr_kparams kp;
		cr_plan_kparams(p, i, e->rel + i * p->nparents, &kp);
		int src = -1;
		enum cr_decision d = cr_kernel_decide(&kp, &src);
		if (!cr_dtype_has_math(o->in[o->ref].t->dtype)) { /* integer buffers and the like: the reference's */
			d = CR_DEC_COPY;
			src = o->ref;
		}
		int fp8;
		enum cr_dtype dt = cr_plan_out_dtype(p, i, d, src, &fp8);
		if (d == CR_DEC_PENDING) {
			/* the dtype must not depend on the outcome, or the shard header could not be written first */
			int f2;
			for (int k = 0; k < o->ninputs; k++)
				if (cr_plan_out_dtype(p, i, CR_DEC_COPY, k, &f2) != cr_plan_out_dtype(p, i, CR_DEC_COMPUTE,
												       -1, &fp8) ||
				    f2 != fp8)
					return cr_fail(err, CR_E_UNSUPPORTED,
						       "tensor '%s': parents store it in different dtypes; set out_dtype",
						       o->name);
			dt = cr_plan_out_dtype(p, i, CR_DEC_COMPUTE, -1, &fp8);
		}
		if (fp8 && o->ndim != 2)
			fp8 = 0, dt = CR_DT_BF16;
		if (d != CR_DEC_COPY && !cr_dtype_has_math(dt))
			return cr_fail(err, CR_E_UNSUPPORTED, "tensor '%s': cannot compute in dtype %s", o->name,
				       cr_dtype_name(dt));
		e->dec[i] = (uint8_t)d;
		e->srcin[i] = (int16_t)src;
		e->dt[i] = dt;
		e->fp8[i] = (uint8_t)fp8;
		e->obytes[i] = cr_plan_out_bytes(p, i, dt, fp8);
		e->total += e->obytes[i];
		uint64_t cols = cols_of(o);
		uint64_t need = fp8 ? CR_FP8_BLOCK * cols : 1;
		if (per_row_method(p->method) && need % cols)
			need *= cols;
		if (need > e->cap)
			e->cap = (size_t)need;
	}
	if (e->cap > ((size_t)1 << 31))
		return cr_fail(err, CR_E_UNSUPPORTED, "a tensor row is too long to stream (%zu elements)", e->cap);

	/* shards of at most shard_size tensor bytes */
	uint64_t limit = e->o->shard_size ? e->o->shard_size : CR_DEFAULT_SHARD_SIZE;
	size_t cap = 8;
	e->sh = cr_xcalloc(cap, sizeof *e->sh);
	for (size_t i = 0; i < nt; i++) {
		struct shard *s = e->nshards ? &e->sh[e->nshards - 1] : NULL;
		if (!s || (s->n && s->bytes + e->obytes[i] > limit)) {
			if (e->nshards == cap)
				e->sh = cr_xrealloc(e->sh, (cap *= 2) * sizeof *e->sh);
			s = &e->sh[e->nshards++];
			memset(s, 0, sizeof *s);
			s->first = i;
		}
		s->n++;
		s->bytes += e->obytes[i];
	}
	if (!e->nshards)
		return cr_fail(err, CR_E_USAGE, "the plan has no tensors");
	for (size_t s = 0; s < e->nshards; s++) {
		char name[64];
		snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, e->nshards);
		e->sh[s].file = cr_xstrdup(name);
	}

	/* identity of the work, so --resume never mixes two different merges */
	uint64_t h = CR_FNV_INIT;
	const char *rt = e->o->recipe_text ? e->o->recipe_text : "";
	h = cr_fnv1a(rt, strlen(rt), h);
	h = cr_fnv1a(&p->method, sizeof p->method, h);
	for (size_t k = 0; k < p->nparents; k++)
		for (size_t s = 0; s < p->parents[k]->nshards; s++) {
			const struct cr_st_file *f = p->parents[k]->shards[s];
			h = cr_fnv1a(&f->header_hash, 8, h);
			h = cr_fnv1a(&f->file_size, 8, h);
			h = cr_fnv1a(&f->mtime_ns, 8, h);
		}
	for (size_t i = 0; i < nt; i++) {
		h = cr_fnv1a(p->t[i].name, strlen(p->t[i].name) + 1, h);
		h = cr_fnv1a(&e->dt[i], sizeof e->dt[i], h);
		h = cr_fnv1a(&e->fp8[i], 1, h);
		h = cr_fnv1a(p->t[i].g, sizeof p->t[i].g, h);
		h = cr_fnv1a(p->t[i].p, (size_t)p->t[i].ninputs * CR_P__COUNT * sizeof(double), h);
	}
	h = cr_fnv1a(&limit, 8, h);
	snprintf(e->planhash, sizeof e->planhash, "%016" PRIx64, h);
	return 0;
}

/* ---------------------------------------------------------------- one tensor */

static void add_sum(uint64_t *dst, uint64_t v)
{
	__atomic_add_fetch(dst, v, __ATOMIC_RELAXED);
}

/* A chunk is written: count it; the calling thread (thread 0 of the team) reports progress
 * and may be told to cancel, which stops the other threads at their next chunk. */
static void chunk_done(struct eng *e, uint64_t bytes, const char *name, int *failed)
{
	__atomic_add_fetch(&e->done, bytes, __ATOMIC_RELAXED);
	if (thread_id() == 0 && report(e, name) < 0)
		__atomic_store_n(failed, 1, __ATOMIC_RELAXED);
}

/* The first error of a loop is the one reported; the others only stop it. */
static int fail_once(int *failed, cr_error *err, const cr_error *e1)
{
	int expected = 0;
	if (__atomic_compare_exchange_n(failed, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED) && err)
		*err = *e1;
	return -1;
}

/* Queue a write of a pool buffer (or, for small writes, a copy of src); a
 * failed earlier write comes back here as this chunk's error. */
static int queue_write(struct eng *e, struct cr_st_writer *w, size_t i, uint64_t off, uint8_t *buf, size_t len,
		       cr_error *e1)
{
	if (cr_wb_put(e->wb, w, i, off, buf, len) == 0)
		return 0;
	cr_wb_failed(e->wb, e1);
	return -1;
}

static int queue_copy(struct eng *e, struct cr_st_writer *w, size_t i, uint64_t off, const void *src, size_t len,
		      cr_error *e1)
{
	if (cr_wb_put_copy(e->wb, w, i, off, src, len) == 0)
		return 0;
	cr_wb_failed(e->wb, e1);
	return -1;
}

struct copy_job {
	struct eng *e;
	const struct cr_ckpt *c;
	const struct cr_tensor *t;
	const char *name;
	struct cr_st_writer *w;
	size_t wi;
	uint64_t nb, chunk, *sum;
	int *failed;
	cr_error *err;
};

static void copy_chunk(void *ctx, size_t ch, int tid)
{
	struct copy_job *j = ctx;
	struct eng *e = j->e;
	(void)tid;
	if (__atomic_load_n(j->failed, __ATOMIC_RELAXED))
		return;
	uint64_t off = (uint64_t)ch * j->chunk, len = j->nb - off < j->chunk ? j->nb - off : j->chunk;
	uint8_t *buf = cr_wb_get(e->wb);
	cr_error e1;
	if (cr_tensor_read_raw(j->c, j->t, off, buf, (size_t)len, &e1) < 0) {
		cr_wb_release(e->wb, buf);
		fail_once(j->failed, j->err, &e1);
		return;
	}
	add_sum(j->sum, cr_checksum_piece(buf, (size_t)len, off));
	if (queue_write(e, j->w, j->wi, off, buf, (size_t)len, &e1) < 0) {
		fail_once(j->failed, j->err, &e1);
		return;
	}
	chunk_done(e, len, j->name, j->failed);
}

static int copy_raw(struct eng *e, size_t ti, int src, struct cr_st_writer *w, size_t wi, size_t si,
		    struct rd_ctx *rc, uint64_t *sum, cr_error *err)
{
	const struct cr_plan_tensor *o = &e->p->t[ti];
	const struct cr_plan_input *in = &o->in[src];
	const struct cr_ckpt *c = e->p->parents[in->parent];
	uint64_t nb = cr_st_writer_nbytes(w, wi);
	uint64_t chunk = COPY_CHUNK_BYTES < e->cap * 4 ? COPY_CHUNK_BYTES : e->cap * 4;
	int failed = 0;
	struct copy_job j = { e, c, in->t, o->name, w, wi, nb, chunk, sum, &failed, err };
	cr_pool_for(e->pool, (size_t)((nb + chunk - 1) / chunk), copy_chunk, &j);
	if (e->cancelled)
		return cr_fail(err, CR_E_CANCELLED, "cancelled");
	if (failed)
		return -1;
	if (e->fp8[ti]) {
		/* the scale grid, byte for byte as a float32 grid (rows of the sub-matrix only) */
		size_t n = cr_tensor_scale_count(in->t);
		float *grid = rc->grid[src];
		uint64_t sb = cr_st_writer_nbytes(w, si);
		if (!grid || sb > n * 4)
			return cr_fail(err, CR_E_FORMAT, "tensor '%s': scale grid does not match", o->name);
		if (queue_copy(e, w, si, 0, grid, (size_t)sb, err) < 0)
			return -1;
		add_sum(sum, cr_checksum_piece(grid, (size_t)sb, nb));
		e->done += sb;
	}
	return 0;
}

/* aoe without known distances: ‖W_i − W_base‖² and ‖W_base‖² measured while the output is written */
struct meas {
	int m, base;
	int who[CR_MAX_INPUTS];
	uint32_t need;
	double *part; /* nchunks x (m + 1) */
};

CR_HOT
static void measure(struct meas *ms, uint64_t c, float *const *x, size_t n)
{
	double *s = ms->part + c * (uint64_t)(ms->m + 1);
	const float *b = x[ms->base];
	for (int j = 0; j < ms->m; j++) {
		const float *v = x[ms->who[j]];
		double acc = 0.0;
#pragma omp simd reduction(+ : acc)
		for (size_t i = 0; i < n; i++) {
			float d = v[i] - b[i];
			acc += (double)d * (double)d;
		}
		s[j] += acc;
	}
	double acc = 0.0;
#pragma omp simd reduction(+ : acc)
	for (size_t i = 0; i < n; i++)
		acc += (double)b[i] * (double)b[i];
	s[ms->m] += acc;
}

/*
 * The output pass, one chunk per call on the engine's pool.  Element-wise
 * methods go through cache-sized blocks straight from the stored bytes
 * (fused); rawsrc >= 0 writes that input's stored bytes (a verbatim copy)
 * while ms measures distances on the way.  FP8 output is quantized in
 * 128-row stripes from the chunk's f32 result.
 */
struct compute_job {
	struct eng *e;
	const struct cr_plan_tensor *o;
	struct cr_kctx *k;
	struct cr_st_writer *w;
	size_t wi, si;
	struct rd_ctx *rc;
	uint64_t *sum;
	struct meas *ms;
	int rawsrc, fp8, fused;
	enum cr_dtype dt;
	size_t esz, scols;
	uint64_t cols, wbytes;
	uint32_t used, need;
	size_t esz_in[CR_MAX_INPUTS];
	int *failed;
	cr_error *err;
};

/* Element-wise: read each input in L2-sized pieces just ahead of their use (a
 * whole chunk read at once has left the cache by the time it is converted),
 * convert BLOCK elements at a time, run the kernel, and store the result as
 * bytes (or as f32 in `out` when it is to be quantized).  Returns -1 on error. */
static int fused_chunk(const struct compute_job *j, uint64_t c, int tid, uint64_t first, size_t n, uint8_t *ob,
		       float *out, cr_error *e1)
{
	struct eng *e = j->e;
	const struct cr_plan_tensor *o = j->o;
	int nbuf = e->sc.nbuf;
	float *blk[CR_MAX_INPUTS + 1];
	for (int i = 0; i <= o->ninputs; i++)
		blk[i] = e->blk[tid] + (size_t)i * BLOCK;
	uint32_t conv = (j->rawsrc >= 0 ? 0 : j->used) | (j->ms ? j->ms->need : 0);
	uint8_t *inb[CR_MAX_INPUTS]; /* a verbatim copy is read straight into the output */
	for (int i = 0; i < o->ninputs; i++)
		inb[i] = i == j->rawsrc ? ob : (uint8_t *)e->sc.buf[tid * nbuf + i];
	for (size_t off = 0; off < n; off += BLOCK) {
		if (off % SUBREAD == 0) {
			size_t sn = n - off < SUBREAD ? n - off : SUBREAD;
			for (int i = 0; i < o->ninputs; i++)
				if ((j->need & (1u << i)) &&
				    cr_tensor_read_raw(e->p->parents[o->in[i].parent], o->in[i].t,
						       (first + off) * j->esz_in[i], inb[i] + off * j->esz_in[i],
						       sn * j->esz_in[i], e1) < 0)
					return -1;
		}
		if (!conv)
			continue;
		size_t bn = n - off < BLOCK ? n - off : BLOCK;
		for (int i = 0; i < o->ninputs; i++) {
			if (!(conv & (1u << i)))
				continue;
			const uint8_t *src = inb[i] + off * j->esz_in[i];
			if (o->in[i].t->scale)
				cr_fp8_dequant_range(src, j->rc->grid[i], (size_t)o->in[i].t->shape[1],
						     (size_t)(first + off), bn, blk[i]);
			else
				cr_convert_to_f32(o->in[i].t->dtype, src, blk[i], bn);
		}
		if (j->ms)
			measure(j->ms, c, blk, bn);
		if (j->rawsrc >= 0)
			continue;
		float *res = j->fp8 ? out + off : blk[o->ninputs];
		if (cr_kernel_block(j->k, first + off, blk, bn, res, e1) < 0)
			return -1;
		if (!j->fp8)
			cr_convert_from_f32(j->dt, res, ob + off * j->esz, bn);
	}
	return 0;
}

static void compute_chunk(void *ctx, size_t ci, int tid)
{
	const struct compute_job *j = ctx;
	struct eng *e = j->e;
	const struct cr_plan_tensor *o = j->o;
	struct cr_kctx *k = j->k;
	if (__atomic_load_n(j->failed, __ATOMIC_RELAXED))
		return;
	int nbuf = e->sc.nbuf;
	uint64_t c = ci;
	float *x[CR_MAX_INPUTS];
	float *out = e->sc.buf[tid * nbuf + nbuf - 1];
	uint64_t first = c * k->chunk;
	size_t n = (size_t)(o->nelem - first < k->chunk ? o->nelem - first : k->chunk);
	cr_error e1;
	int bad = 0;
	uint8_t *ob = cr_wb_get(e->wb); /* the chunk's output bytes, queued for writing */
	if (j->fused) {
		bad = fused_chunk(j, c, tid, first, n, ob, out, &e1) < 0;
	} else {
		for (int i = 0; i < o->ninputs && !bad; i++) {
			x[i] = e->sc.buf[tid * nbuf + i];
			if (j->need & (1u << i))
				bad = rd(j->rc, i, first, n, x[i], &e1) < 0;
		}
		if (!bad && j->ms)
			measure(j->ms, c, x, n);
		if (!bad)
			bad = cr_kernel_chunk(k, c, x, n, out, &e1) < 0;
	}
	uint64_t part = 0, part_bytes = 0;
	int queued = 0; /* ob belongs to the writer once queued */
	if (!bad && j->fp8 && j->rawsrc < 0) {
		size_t cols = (size_t)j->cols, scols = j->scols;
		size_t rows = n / cols, r0 = (size_t)(first / cols);
		for (size_t r = 0; r < rows && !bad; r += CR_FP8_BLOCK) {
			size_t nr = rows - r < CR_FP8_BLOCK ? rows - r : CR_FP8_BLOCK;
			float *srow = e->srow[tid];
			cr_fp8_quant_stripe(out + r * cols, nr, cols, ob + r * cols, srow);
			uint64_t soff = (uint64_t)((r0 + r) / CR_FP8_BLOCK) * scols * 4;
			bad = queue_copy(e, j->w, j->si, soff, srow, scols * 4, &e1) < 0;
			part += cr_checksum_piece(srow, scols * 4, j->wbytes + soff);
		}
		part += cr_checksum_piece(ob, n, first);
		if (!bad) {
			queued = 1;
			bad = queue_write(e, j->w, j->wi, first, ob, n, &e1) < 0;
		}
		part_bytes = n + (n / cols + CR_FP8_BLOCK - 1) / CR_FP8_BLOCK * scols * 4;
	} else if (!bad) {
		if (!j->fused)
			cr_convert_from_f32(j->dt, out, ob, n);
		part += cr_checksum_piece(ob, n * j->esz, first * j->esz);
		queued = 1;
		bad = queue_write(e, j->w, j->wi, first * j->esz, ob, n * j->esz, &e1) < 0;
		part_bytes = n * j->esz;
	}
	if (bad && !queued)
		cr_wb_release(e->wb, ob);
	if (bad) {
		fail_once(j->failed, j->err, &e1);
		return;
	}
	add_sum(j->sum, part);
	chunk_done(e, part_bytes, o->name, j->failed);
}

static int compute(struct eng *e, size_t ti, struct cr_kctx *k, struct cr_st_writer *w, size_t wi, size_t si,
		   struct rd_ctx *rc, uint64_t *sum, struct meas *ms, int rawsrc, cr_error *err)
{
	const struct cr_plan_tensor *o = &e->p->t[ti];
	int failed = 0;
	struct compute_job j = { .e = e, .o = o, .k = k, .w = w, .wi = wi, .si = si, .rc = rc, .sum = sum, .ms = ms,
				 .rawsrc = rawsrc, .fp8 = e->fp8[ti], .dt = e->dt[ti], .failed = &failed, .err = err };
	j.esz = cr_dtype_bits(j.dt) / 8;
	j.cols = cols_of(o);
	j.wbytes = cr_st_writer_nbytes(w, wi);
	j.scols = j.fp8 ? cr_fp8_scale_dim((size_t)j.cols) : 0;
	j.used = rawsrc >= 0 ? 1u << rawsrc : cr_kernel_inputs_used(k);
	j.need = j.used | (ms ? ms->need : 0);
	j.fused = cr_kernel_elementwise(k) || rawsrc >= 0;
	for (int i = 0; i < o->ninputs; i++) {
		j.esz_in[i] = cr_dtype_bits(o->in[i].t->dtype) / 8;
		if ((j.need & (1u << i)) && j.esz_in[i] > 4)
			j.fused = 0; /* raw bytes must fit the f32 buffer */
	}
	if (rawsrc >= 0 && !j.fused)
		return cr_fail(err, CR_E_UNSUPPORTED, "tensor '%s': cannot copy while measuring", o->name);
	cr_pool_for(e->pool, (size_t)k->nchunks, compute_chunk, &j);
	if (e->cancelled)
		return cr_fail(err, CR_E_CANCELLED, "cancelled");
	if (failed)
		return -1;
	if (rawsrc >= 0 && j.fp8) { /* the copied tensor's scale grid, as stored */
		float *grid = rc->grid[rawsrc];
		uint64_t sb = cr_st_writer_nbytes(w, si);
		if (!grid || sb > cr_tensor_scale_count(o->in[rawsrc].t) * 4)
			return cr_fail(err, CR_E_FORMAT, "tensor '%s': scale grid does not match", o->name);
		if (queue_copy(e, w, si, 0, grid, (size_t)sb, err) < 0)
			return -1;
		add_sum(sum, cr_checksum_piece(grid, (size_t)sb, j.wbytes));
		e->done += sb;
	}
	return 0;
}

/* ---- test hook (hardening, issue 8): CRUCIBLE_TEST_DELAY_MS=N sleeps N ms
 * before each tensor and 20 N ms after writing the index (a window a polling
 * test hits even on a loaded machine), so tests/crash.sh can kill a merge at
 * chosen points.  Unset (always, outside tests) it costs nothing. */
static void test_delay_times(int times)
{
	static int ms = -1;
	if (ms < 0) {
		const char *v = getenv("CRUCIBLE_TEST_DELAY_MS");
		ms = v ? atoi(v) : 0;
		if (ms < 0)
			ms = 0;
	}
	if (ms > 0)
		usleep((useconds_t)ms * 1000 * (useconds_t)times);
}
#define test_delay() test_delay_times(1)
/* ---- end of test hook */

static int process_tensor(struct eng *e, size_t ti, struct cr_st_writer *w, size_t wi, size_t si, cr_error *err)
{
	test_delay();
	struct cr_plan *p = e->p;
	const struct cr_plan_tensor *o = &p->t[ti];
	struct rd_ctx rc = { .e = e, .ti = ti };
	const char *inames[CR_MAX_INPUTS];
	int rcode = 0;
	for (int k = 0; k < o->ninputs; k++) {
		inames[k] = p->parent_path[o->in[k].parent];
		const struct cr_tensor *t = o->in[k].t;
		if (t->scale) {
			rc.grid[k] = cr_xmalloc(cr_tensor_scale_count(t) * sizeof(float));
			if (cr_tensor_read_scales(p->parents[o->in[k].parent], t, rc.grid[k], err) < 0)
				rcode = -1;
		}
	}
	struct cr_kparams kp;
	struct cr_kctx k;
	memset(&k, 0, sizeof k);
	double *rel = e->rel + ti * p->nparents;
	cr_plan_kparams(p, ti, rel, &kp);
	uint64_t cols = cols_of(o);
	size_t align = e->fp8[ti] ? (size_t)(CR_FP8_BLOCK * cols) : 1;
	/* aoe with unmeasured distances: assume every parent clears δ, measure while writing, and
	 * redo the tensor only if the assumption was wrong (one pass instead of two) */
	struct meas ms = { 0 };
	int src, spec = 0;
	if (rcode == 0 && p->method == CR_M_AOE && cr_kernel_decide(&kp, &src) == CR_DEC_PENDING) {
		spec = 1;
		for (int i = 0; i < o->ninputs; i++)
			if (cr_dtype_bits(o->in[i].t->dtype) > 32)
				spec = 0;
		ms.base = kp.base;
		ms.need = 1u << kp.base;
		for (int i = 0; spec && i < o->ninputs; i++)
			if (i != kp.base && isnan(kp.rel[i]) && kp.p[i][CR_P_WEIGHT] != 0.0) {
				kp.rel[i] = INFINITY;
				ms.who[ms.m++] = i;
				ms.need |= 1u << i;
			}
	}
	if (rcode == 0 && !cr_dtype_has_math(o->in[o->ref].t->dtype)) {
		k.decision = CR_DEC_COPY; /* no arithmetic on this dtype: copied from the reference (layout) */
		k.source = o->ref;
	} else if (rcode == 0)
		rcode = cr_kernel_prepare(&k, &kp, o->name, inames, o->nelem, cols, p->seed, align, e->target, &e->sc, rd,
					  &rc, err);
	uint64_t sum = 0;
	for (int attempt = 0; rcode == 0 && attempt < 2; attempt++) {
		src = k.decision == CR_DEC_COPY ? k.source : -1;
		int fp8;
		enum cr_dtype dt = cr_plan_out_dtype(p, ti, k.decision, src, &fp8);
		if (fp8 && o->ndim != 2)
			fp8 = 0, dt = CR_DT_BF16;
		const struct cr_tensor *st = src >= 0 ? o->in[src].t : NULL;
		int raw = st && st->dtype == dt && (st->scale != NULL) == fp8 && (!o->in[src].submatrix || !fp8);
		if (dt != e->dt[ti] || fp8 != e->fp8[ti]) {
			rcode = cr_fail(err, CR_E_UNSUPPORTED, "tensor '%s': output dtype changed after layout", o->name);
			break;
		}
		if (spec && attempt == 0) {
			ms.part = cr_xcalloc((k.nchunks ? k.nchunks : 1) * (size_t)(ms.m + 1), sizeof(double));
			rcode = compute(e, ti, &k, w, wi, si, &rc, &sum, &ms, raw ? src : -1, err);
		} else if (raw) {
			rcode = copy_raw(e, ti, src, w, wi, si, &rc, &sum, err);
		} else {
			rcode = compute(e, ti, &k, w, wi, si, &rc, &sum, NULL, -1, err);
		}
		if (rcode < 0 || !spec || attempt > 0)
			break;
		/* the measured distances: was the assumption right? */
		double *tot = cr_xcalloc((size_t)ms.m + 1, sizeof(double));
		for (uint64_t c = 0; c < k.nchunks; c++)
			for (int j = 0; j <= ms.m; j++)
				tot[j] += ms.part[c * (uint64_t)(ms.m + 1) + (uint64_t)j];
		double bn = sqrt(tot[ms.m]);
		for (int j = 0; j < ms.m; j++) {
			double dn = sqrt(tot[j]);
			rel[o->in[ms.who[j]].parent] = bn > 0.0 ? dn / bn : (dn > 0.0 ? INFINITY : 0.0);
		}
		free(tot);
		free(ms.part);
		ms.part = NULL;
		struct cr_kctx k2;
		cr_plan_kparams(p, ti, rel, &kp);
		rcode = cr_kernel_prepare(&k2, &kp, o->name, inames, o->nelem, cols, p->seed, align, e->target, &e->sc, rd,
					  &rc, err);
		if (rcode < 0)
			break;
		if (k2.decision == k.decision && k2.source == k.source && memcmp(k2.w, k.w, sizeof k.w) == 0 &&
		    k2.c0 == k.c0) {
			cr_kernel_release(&k2);
			break;
		}
		/* some parent fell under δ: write the tensor again with the right weights */
		cr_st_writer_rewrite(w, wi, cr_st_writer_nbytes(w, wi));
		if (e->fp8[ti])
			cr_st_writer_rewrite(w, si, cr_st_writer_nbytes(w, si));
		e->done -= e->obytes[ti];
		sum = 0;
		cr_kernel_release(&k);
		k = k2;
	}
	free(ms.part);
	if (rcode == 0) {
		e->dec[ti] = (uint8_t)k.decision;
		e->srcin[ti] = (int16_t)(k.decision == CR_DEC_COPY ? k.source : -1);
	}
	cr_kernel_release(&k);
	for (int i = 0; i < o->ninputs; i++)
		free(rc.grid[i]);
	if (rcode < 0)
		return -1;
	e->cksum[ti] = cr_checksum_final(sum, e->obytes[ti]);
	e->tdone++;
	if (e->o->tensor_done)
		e->o->tensor_done(e->o->ctx, o->name, (enum cr_decision)e->dec[ti],
				  e->srcin[ti] >= 0 ? o->in[e->srcin[ti]].parent : -1, e->cksum[ti]);
	return report(e, o->name) < 0 ? cr_fail(err, CR_E_CANCELLED, "cancelled") : 0;
}

/* ---------------------------------------------------------------- shards */

static char *scale_name(const char *name)
{
	size_t n = strlen(name) + 11;
	char *s = cr_xmalloc(n);
	snprintf(s, n, "%s_scale_inv", name);
	return s;
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *s = cr_xmalloc(n);
	snprintf(s, n, "%s/%s", a, b);
	return s;
}

static int write_shard(struct eng *e, size_t s, cr_error *err)
{
	struct shard *sh = &e->sh[s];
	size_t n = 0;
	struct cr_st_entry *ent = cr_xcalloc(2 * sh->n + 1, sizeof *ent);
	size_t *wi = cr_xcalloc(sh->n + 1, sizeof *wi), *si = cr_xcalloc(sh->n + 1, sizeof *si);
	char **snames = cr_xcalloc(sh->n + 1, sizeof *snames);
	uint64_t (*gshape)[2] = cr_xcalloc(sh->n + 1, sizeof *gshape);
	for (size_t j = 0; j < sh->n; j++) {
		size_t ti = sh->first + j;
		const struct cr_plan_tensor *o = &e->p->t[ti];
		wi[j] = n;
		ent[n++] = (struct cr_st_entry){ o->name, e->dt[ti], o->ndim, o->shape };
		if (e->fp8[ti]) {
			snames[j] = scale_name(o->name);
			gshape[j][0] = cr_fp8_scale_dim((size_t)o->shape[0]);
			gshape[j][1] = cr_fp8_scale_dim((size_t)o->shape[1]);
			si[j] = n;
			ent[n++] = (struct cr_st_entry){ snames[j], CR_DT_F32, 2, gshape[j] };
		}
	}
	char *path = join(e->partial, sh->file);
	struct cr_st_writer *w = NULL;
	int rc = cr_st_writer_open(path, ent, n, NULL, 0, &w, err);
	for (size_t j = 0; j < sh->n && rc == 0; j++)
		rc = process_tensor(e, sh->first + j, w, wi[j], si[j], err);
	/* every queued write lands (or fails) before the shard is finished or removed */
	cr_error e1;
	if (cr_wb_flush(e->wb, &e1) < 0 && rc == 0) {
		rc = -1;
		if (err)
			*err = e1;
	}
	if (rc == 0)
		rc = cr_st_writer_finish(w, err);
	else if (w)
		cr_st_writer_abort(w);
	free(path);
	for (size_t j = 0; j < sh->n; j++)
		free(snames[j]);
	free(snames);
	free(gshape);
	free(ent);
	free(wi);
	free(si);
	return rc;
}

/* ---------------------------------------------------------------- manifest (resume) */

static int save_manifest(struct eng *e, cr_error *err)
{
	json_t *root = json_object();
	json_object_set_new(root, "plan", json_string(e->planhash));
	json_object_set(root, "shards", e->manifest);
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	char *tmp = join(e->partial, MANIFEST ".tmp"), *dst = join(e->partial, MANIFEST);
	int rc = cr_out_write_file(tmp, text, strlen(text), err);
	if (rc == 0 && rename(tmp, dst) < 0)
		rc = cr_fail(err, CR_E_IO, "%s: rename failed: %s", dst, strerror(errno));
	free(text);
	free(tmp);
	free(dst);
	return rc;
}

static json_t *shard_record(struct eng *e, size_t s)
{
	struct shard *sh = &e->sh[s];
	json_t *o = json_object(), *ts = json_array();
	json_object_set_new(o, "file", json_string(sh->file));
	for (size_t j = 0; j < sh->n; j++) {
		size_t ti = sh->first + j;
		char ck[17];
		snprintf(ck, sizeof ck, "%016" PRIx64, e->cksum[ti]);
		json_t *t = json_array();
		json_array_append_new(t, json_string(e->p->t[ti].name));
		json_array_append_new(t, json_integer(e->dec[ti]));
		json_array_append_new(t, json_integer(e->srcin[ti]));
		json_array_append_new(t, json_string(ck));
		json_array_append_new(ts, t);
	}
	json_object_set_new(o, "tensors", ts);
	return o;
}

/* Recompute a stored tensor's checksum from the file. */
static int file_checksum(const struct cr_st_file *f, const char *name, const char *sname, uint8_t *buf, size_t cap,
			 uint64_t *out, cr_error *err)
{
	const struct cr_st_tensor *t = cr_st_find(f, name);
	const struct cr_st_tensor *s = sname ? cr_st_find(f, sname) : NULL;
	if (!t || (sname && !s))
		return -1;
	uint64_t sum = 0, base = 0;
	for (int part = 0; part < 2; part++) {
		const struct cr_st_tensor *x = part ? s : t;
		if (!x)
			break;
		uint64_t nb = cr_st_tensor_nbytes(x);
		for (uint64_t off = 0; off < nb; off += cap) {
			size_t len = (size_t)(nb - off < cap ? nb - off : cap);
			if (cr_st_pread(f, x, off, buf, len, err) < 0)
				return -1;
			sum += cr_checksum_piece(buf, len, base + off);
		}
		base += nb;
	}
	*out = cr_checksum_final(sum, base);
	return 0;
}

/* Keep the finished shards of an earlier run whose bytes still match the manifest. */
static int resume_load(struct eng *e, cr_error *err)
{
	char *mpath = join(e->partial, MANIFEST);
	json_error_t je;
	json_t *root = json_load_file(mpath, 0, &je);
	free(mpath);
	if (!root)
		return 0;
	const char *ph = json_string_value(json_object_get(root, "plan"));
	json_t *shards = json_object_get(root, "shards");
	if (!ph || strcmp(ph, e->planhash) != 0 || !json_is_array(shards)) {
		json_decref(root);
		if (e->o->warn)
			e->o->warn(e->o->ctx, "resume: the unfinished output was made by a different plan; starting over");
		return 0;
	}
	size_t idx;
	json_t *rec;
	json_array_foreach(shards, idx, rec)
	{
		const char *file = json_string_value(json_object_get(rec, "file"));
		json_t *ts = json_object_get(rec, "tensors");
		size_t s;
		for (s = 0; s < e->nshards; s++)
			if (file && strcmp(e->sh[s].file, file) == 0)
				break;
		if (s == e->nshards || !json_is_array(ts) || json_array_size(ts) != e->sh[s].n)
			continue;
		char *path = join(e->partial, file);
		struct cr_st_file *f = NULL;
		cr_error e1;
		struct stat lst;
		/* only a plain file of our own is kept: not a link to a file elsewhere */
		int ok = lstat(path, &lst) == 0 && S_ISREG(lst.st_mode) && lst.st_nlink == 1 &&
			 cr_st_open(path, &f, &e1) == 0;
		free(path);
		for (size_t j = 0; ok && j < e->sh[s].n; j++) {
			size_t ti = e->sh[s].first + j;
			json_t *t = json_array_get(ts, j);
			const char *nm = json_string_value(json_array_get(t, 0));
			const char *ck = json_string_value(json_array_get(t, 3));
			if (!nm || !ck || strcmp(nm, e->p->t[ti].name) != 0) {
				ok = 0;
				break;
			}
			char *sn = e->fp8[ti] ? scale_name(nm) : NULL;
			uint64_t got;
			ok = file_checksum(f, nm, sn, e->raw[0], e->cap * 4, &got, &e1) == 0 &&
			     got == strtoull(ck, NULL, 16);
			free(sn);
			if (ok) {
				e->cksum[ti] = got;
				e->dec[ti] = (uint8_t)json_integer_value(json_array_get(t, 1));
				e->srcin[ti] = (int16_t)json_integer_value(json_array_get(t, 2));
			}
		}
		if (f)
			cr_st_close(f);
		if (!ok)
			continue;
		e->sh[s].kept = 1;
		json_array_append(e->manifest, rec);
		for (size_t j = 0; j < e->sh[s].n; j++) {
			size_t ti = e->sh[s].first + j;
			const struct cr_plan_tensor *o = &e->p->t[ti];
			e->done += e->obytes[ti];
			e->tdone++;
			if (e->o->tensor_done)
				e->o->tensor_done(e->o->ctx, o->name, (enum cr_decision)e->dec[ti],
						  e->srcin[ti] >= 0 ? o->in[e->srcin[ti]].parent : -1, e->cksum[ti]);
		}
	}
	json_decref(root);
	(void)err;
	return 0;
}

/* ---------------------------------------------------------------- finish */

static int finish(struct eng *e, cr_error *err)
{
	struct cr_plan *p = e->p;
	size_t n = 0;
	for (size_t i = 0; i < p->ntensors; i++)
		n += 1 + e->fp8[i];
	const char **names = cr_xcalloc(n + 1, sizeof *names), **files = cr_xcalloc(n + 1, sizeof *files);
	char **owned = cr_xcalloc(p->ntensors + 1, sizeof *owned);
	size_t k = 0;
	int any_fp8 = 0;
	uint64_t by_dt[CR_DT__COUNT] = { 0 };
	for (size_t s = 0; s < e->nshards; s++)
		for (size_t j = 0; j < e->sh[s].n; j++) {
			size_t ti = e->sh[s].first + j;
			names[k] = p->t[ti].name;
			files[k++] = e->sh[s].file;
			if (e->fp8[ti]) {
				owned[ti] = scale_name(p->t[ti].name);
				names[k] = owned[ti];
				files[k++] = e->sh[s].file;
				any_fp8 = 1;
			} else if (cr_dtype_is_float(e->dt[ti])) {
				by_dt[e->dt[ti]] += e->obytes[ti];
			}
		}
	int rc = cr_out_write_index(e->partial, names, files, k, e->total, err);
	test_delay_times(20);
	/* base's config: the plan's reference parent (0 = the base, or the first model) */
	const struct cr_ckpt *ref = p->parents[0];
	const char *tdt = NULL;
	if (!any_fp8) {
		int best = -1;
		for (int d = 0; d < CR_DT__COUNT; d++)
			if (by_dt[d] && (best < 0 || by_dt[d] > by_dt[best]))
				best = d;
		if (best >= 0)
			tdt = cr_dtype_torch_name((enum cr_dtype)best);
	}
	if (rc == 0)
		rc = cr_out_write_config(e->partial, ref->config_text, tdt, any_fp8, p->layers_out, err);
	if (rc == 0 && !ref->is_file)
		rc = cr_out_copy_support(e->partial, ref->dir, err);
	char *yaml = NULL;
	const char *rt = e->o->recipe_text;
	if (!rt && p->recipe)
		rt = yaml = cr_recipe_to_yaml(p->recipe);
	const char *base = strrchr(e->out, '/');
	if (rc == 0)
		rc = cr_out_write_card(e->partial, base ? base + 1 : e->out, cr_method_info(p->method)->name,
				       p->parent_path, p->nparents, rt, err);
	free(yaml);
	for (size_t i = 0; i < p->ntensors; i++)
		free(owned[i]);
	free(owned);
	free(names);
	free(files);
	if (rc < 0)
		return -1;
	char *m = join(e->partial, MANIFEST);
	unlink(m);
	free(m);
	if (cr_out_fsync_dir(e->partial, err) < 0)
		return -1;
	/* with --force, the old OUT is moved aside first and removed after the rename */
	struct stat st;
	char *old = NULL;
	if (lstat(e->out, &st) == 0) {
		size_t ln = strlen(e->out) + 32;
		old = cr_xmalloc(ln);
		snprintf(old, ln, "%s.old-%ld", e->out, (long)getpid());
		if (rename(e->out, old) < 0) {
			rc = cr_fail(err, CR_E_IO, "%s: cannot move aside: %s", e->out, strerror(errno));
			free(old);
			return rc;
		}
	}
	if (rename(e->partial, e->out) < 0)
		rc = cr_fail(err, CR_E_IO, "%s: cannot rename to %s: %s", e->partial, e->out, strerror(errno));
	if (old) {
		if (rc == 0)
			cr_out_rmrf(old, NULL);
		else
			rename(old, e->out);
		free(old);
	}
	if (rc == 0) {
		char *dir = cr_xstrdup(e->out);
		char *sl = strrchr(dir, '/');
		if (sl && sl != dir)
			*sl = 0;
		else if (sl)
			sl[1] = 0;
		else
			strcpy(dir, ".");
		cr_out_fsync_dir(dir, NULL);
		free(dir);
	}
	return rc;
}

/* ---------------------------------------------------------------- run */

static void eng_free(struct eng *e)
{
	cr_scratch_free(&e->sc);
	for (int t = 0; t < e->nthreads; t++) {
		if (e->raw)
			free(e->raw[t]);
		if (e->srow)
			free(e->srow[t]);
		if (e->blk)
			free(e->blk[t]);
	}
	free(e->raw);
	if (e->wb) {
		cr_wb_flush(e->wb, NULL);
		cr_wb_free(e->wb);
	}
	cr_pool_free(e->pool);
	free(e->srow);
	free(e->blk);
	free(e->rel);
	free(e->dec);
	free(e->srcin);
	free(e->dt);
	free(e->fp8);
	free(e->obytes);
	free(e->cksum);
	for (size_t s = 0; s < e->nshards; s++)
		free(e->sh[s].file);
	free(e->sh);
	json_decref(e->manifest);
	free(e->out);
	free(e->partial);
}

int cr_merge_run(struct cr_plan *plan, const struct cr_merge_opts *o, struct cr_merge_result *res, cr_error *err)
{
	struct eng e;
	memset(&e, 0, sizeof e);
	e.p = plan;
	e.o = o;
	if (!o->out || !*o->out)
		return cr_fail(err, CR_E_USAGE, "no output folder given");
	e.out = cr_xstrdup(o->out);
	for (size_t n = strlen(e.out); n > 1 && e.out[n - 1] == '/'; n--)
		e.out[n - 1] = 0;
	size_t ln = strlen(e.out) + 16;
	e.partial = cr_xmalloc(ln);
	snprintf(e.partial, ln, "%s.partial", e.out);
	e.manifest = json_array();
	int rc = 0;
	struct stat st;
	if (!o->force && lstat(e.out, &st) == 0) {
		rc = cr_fail(err, CR_E_EXISTS, "%s: already exists (use --force to replace it)", e.out);
		goto out;
	}
#ifdef _OPENMP
	if (o->threads > 0)
		omp_set_num_threads(o->threads);
	e.nthreads = omp_get_max_threads();
#else
	e.nthreads = 1;
#endif
	e.target = o->chunk ? o->chunk : DEFAULT_CHUNK;
	size_t np = plan->nparents ? plan->nparents : 1;
	e.rel = cr_xmalloc((plan->ntensors ? plan->ntensors : 1) * np * sizeof(double));
	for (size_t i = 0; i < plan->ntensors * np; i++)
		e.rel[i] = o->rel ? o->rel[i] : NAN;
	if (layout(&e, err) < 0) {
		rc = -1;
		goto out;
	}
	int maxin = 1;
	for (size_t i = 0; i < plan->ntensors; i++)
		if (plan->t[i].ninputs > maxin)
			maxin = plan->t[i].ninputs;
	cr_scratch_init(&e.sc, e.nthreads, maxin + 1, e.cap);
	e.raw = cr_xcalloc((size_t)e.nthreads, sizeof *e.raw);
	/* two output buffers per thread in flight: one being filled, one being written */
	e.wb = cr_wb_new(2 * (size_t)e.nthreads + 2, e.cap * 4);
	e.pool = cr_pool_new(e.nthreads);
	e.srow = cr_xcalloc((size_t)e.nthreads, sizeof *e.srow);
	e.blk = cr_xcalloc((size_t)e.nthreads, sizeof *e.blk);
	size_t maxcols = 1;
	for (size_t i = 0; i < plan->ntensors; i++)
		if (cols_of(&plan->t[i]) > maxcols)
			maxcols = (size_t)cols_of(&plan->t[i]);
	for (int t = 0; t < e.nthreads; t++) {
		e.raw[t] = cr_xmalloc(e.cap * 8);
		e.srow[t] = cr_xmalloc(cr_fp8_scale_dim(maxcols) * sizeof(float));
		e.blk[t] = cr_xmalloc((size_t)(maxin + 1) * BLOCK * sizeof(float));
	}

	if (!o->resume && cr_out_rmrf(e.partial, err) < 0) {
		rc = -1;
		goto out;
	}
	if (mkdir(e.partial, 0755) < 0 && errno != EEXIST) {
		rc = cr_fail(err, CR_E_IO, "%s: cannot create: %s", e.partial, strerror(errno));
		goto out;
	}
	/* never write through a symbolic link to a folder elsewhere (--resume keeps OUT.partial) */
	if (lstat(e.partial, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = cr_fail(err, CR_E_IO, "%s: not a folder (a symbolic link?): refusing to write through it", e.partial);
		goto out;
	}
	if (o->resume && resume_load(&e, err) < 0) {
		rc = -1;
		goto out;
	}
	for (size_t s = 0; s < e.nshards && rc == 0; s++) {
		if (e.sh[s].kept)
			continue;
		rc = write_shard(&e, s, err);
		if (rc == 0) {
			json_array_append_new(e.manifest, shard_record(&e, s));
			rc = save_manifest(&e, err);
		}
	}
	if (rc == 0)
		rc = finish(&e, err);
	if (rc < 0 && e.cancelled)
		cr_out_rmrf(e.partial, NULL);
	if (res) {
		memset(res, 0, sizeof *res);
		res->bytes = e.total;
		res->nshards = e.nshards;
		for (size_t s = 0; s < e.nshards; s++)
			res->shards_kept += e.sh[s].kept;
		for (size_t i = 0; i < plan->ntensors; i++) {
			res->copied += e.dec[i] == CR_DEC_COPY;
			res->computed += e.dec[i] == CR_DEC_COMPUTE;
		}
	}
out:
	eng_free(&e);
	return rc;
}
