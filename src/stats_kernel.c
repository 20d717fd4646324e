/*
 * Statistics kernel (see stats_kernel.h): conversion to f32 and the fused
 * sums/histogram loops over one chunk.  The hot loops are written so that
 * the compiler vectorizes them (checked with -fopt-info-vec): no calls, no
 * early exits, selects instead of branches.  On x86-64 the chunk function is
 * built for AVX-512, AVX2 and the baseline, chosen at load time, because the
 * f64 accumulation is most of the arithmetic and wants wide vectors.
 */
#include "config.h"

/* -O2's "very cheap" vectorizer cost model skips loops of unknown length,
 * and with trapping math a conversion to int under a select is kept as a
 * branch; these loops are the point of the file (nothing here reads the
 * floating-point exception flags). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")
/* Statistics are measurements, not outputs: the AVX2/AVX-512 copies may fuse
 * multiply-adds (the last bits of a sum may differ between CPUs; merged
 * tensors never do, see hot.h). */
#pragma GCC optimize("fp-contract=fast")
#endif

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/error.h"
#include "crucible/fp8.h"
#include "e4m3.h"
#include "hot.h"
#include "stats_kernel.h"

#define SK_INLINE static inline __attribute__((always_inline))

void sk_scratch_init(struct sk_scratch *s)
{
	s->fb = cr_xmalloc(SK_SUB * sizeof *s->fb);
	s->fp = cr_xmalloc(SK_SUB * sizeof *s->fp);
	s->idx = cr_xmalloc(SK_SUB * sizeof *s->idx);
	s->pos = cr_xmalloc(SK_SUB);
	s->neg = cr_xmalloc(SK_SUB);
	s->hb = cr_xmalloc((s->npar ? s->npar : 1) * SK_SLOTS * sizeof *s->hb);
}

void sk_scratch_free(struct sk_scratch *s)
{
	free(s->fb);
	free(s->fp);
	free(s->idx);
	free(s->pos);
	free(s->neg);
	free(s->hb);
	memset(s, 0, sizeof *s);
}

/* out = e4m3(q) * s (see e4m3.h).  Returns nonzero when a NaN or Inf may
 * have been made: a NaN code, or a scale too large or not finite to rule
 * out an overflow. */
SK_INLINE uint32_t e4m3_run(const uint8_t *restrict q, float s, size_t n, float *restrict out)
{
	cr_e4m3_scale_run(q, s, n, out);
	return !(fabsf(s) < 0x1p7f);
}

/* Returns nonzero when a value may be NaN or Inf (all-ones exponent). */
SK_INLINE uint32_t bf16_run(const uint16_t *restrict h, size_t n, float *restrict out)
{
	uint32_t acc = 0;
#pragma omp simd reduction(| : acc)
	for (size_t j = 0; j < n; j++) {
		uint32_t u = (uint32_t)h[j] << 16;
		acc |= (u & 0x7f800000u) + 0x00800000u;
		float f;
		memcpy(&f, &u, sizeof f);
		out[j] = f;
	}
	return acc >> 31;
}

/* Nonzero when one of m floats is NaN or Inf. */
SK_INLINE uint32_t any_nonfinite(const float *restrict v, size_t m)
{
	/* An all-ones exponent carries into bit 31 when one is added to it. */
	uint32_t acc = 0;
#pragma omp simd reduction(| : acc)
	for (size_t j = 0; j < m; j++) {
		uint32_t u;
		memcpy(&u, &v[j], sizeof u);
		acc |= (u & 0x7f800000u) + 0x00800000u;
	}
	return acc >> 31;
}

/* Elements [first, first+n) of a tensor; in->raw is the chunk holding them,
 * starting at element `chunk_first`.  Returns nonzero when some value may
 * be NaN or Inf (zero means none is). */
SK_INLINE uint32_t convert(const struct sk_in *in, uint64_t chunk_first, uint64_t first, size_t n,
			   float *restrict out)
{
	size_t esz = cr_dtype_bits(in->dt) / 8;
	const uint8_t *raw = (const uint8_t *)in->raw + (first - chunk_first) * esz;

	if (in->dt == CR_DT_BF16 && !in->grid)
		return bf16_run((const uint16_t *)raw, n, out);
	if (in->dt == CR_DT_F8_E4M3 && !in->grid)
		return e4m3_run(raw, 1.0f, n, out) | cr_e4m3_any_nan(raw, n);
	if (!in->grid) {
		if (in->dt == CR_DT_F32)
			memcpy(out, raw, n * sizeof *out);
		else
			cr_convert_to_f32(in->dt, raw, out, n);
		return any_nonfinite(out, n);
	}
	/* Block scales: runs that stay within one 128-column block of a row. */
	size_t cols = in->cols, scols = cr_fp8_scale_dim(cols);
	uint32_t bad = 0;
	if (in->dt != CR_DT_F8_E4M3)
		cr_convert_to_f32(in->dt, raw, out, n);
	else
		bad = cr_e4m3_any_nan(raw, n); /* once for the whole range, not per block run */
	for (size_t done = 0; done < n;) {
		uint64_t idx = first + done;
		size_t r = (size_t)(idx / cols), c = (size_t)(idx % cols);
		size_t run = CR_FP8_BLOCK - c % CR_FP8_BLOCK;
		if (run > cols - c)
			run = cols - c;
		if (run > n - done)
			run = n - done;
		float s = in->grid[(r / CR_FP8_BLOCK) * scols + c / CR_FP8_BLOCK];
		if (in->dt == CR_DT_F8_E4M3) {
			bad |= e4m3_run(raw + done, s, run, out + done);
		} else {
			for (size_t j = 0; j < run; j++)
				out[done + j] *= s;
			bad = 1;
		}
		done += run;
	}
	return bad ? any_nonfinite(out, n) : 0;
}

struct sums {
	uint64_t n, nan, inf;
	double bb, pp, pb, dd, absd, max;
};

/* The fused loop: sums over pairs where both values are finite, counts of
 * non-finite values in P, and the fine-bin index of each delta for range
 * 2^e (inv = SK_FINE / 2^e; a wrong guess is redone by the caller). */
SK_INLINE void pair_loop(const float *restrict fb, const float *restrict fp, size_t m, double inv,
			 uint32_t *restrict idx, struct sums *out)
{
	uint64_t n = 0, nan = 0, inf = 0;
	double bb = 0, pp = 0, pb = 0, dd = 0, absd = 0, mx = 0;
#pragma omp simd reduction(+ : n, nan, inf, bb, pp, pb, dd, absd) reduction(max : mx)
	for (size_t j = 0; j < m; j++) {
		float p = fp[j], b = fb[j];
		float ap = fabsf(p), ab = fabsf(b);
		int ok = (ap <= FLT_MAX) & (ab <= FLT_MAX);
		nan += p != p;
		inf += ap == INFINITY;
		n += (uint64_t)ok;
		double pd = ok ? (double)p : 0.0, bd = ok ? (double)b : 0.0;
		double d = pd - bd, ad = fabs(d);
		bb += bd * bd;
		pp += pd * pd;
		pb += pd * bd;
		dd += d * d;
		absd += ad;
		mx = ad > mx ? ad : mx;
		double x = ad * inv;
		uint32_t k = (uint32_t)(int32_t)(x < (double)(SK_FINE - 1) ? x : (double)(SK_FINE - 1));
		uint32_t slot = d > 0 ? SK_FINE + 1 + k : (d < 0 ? SK_FINE - 1 - k : SK_ZERO);
		idx[j] = ok ? slot : SK_DISCARD;
	}
	*out = (struct sums){ n, nan, inf, bb, pp, pb, dd, absd, mx };
}

/* The same without non-finite values (the common case): no masks, and the
 * slot computed in double lanes (one width throughout vectorizes best);
 * sum B^2 is the base loop's. */
SK_INLINE void pair_loop_finite(const float *restrict fb, const float *restrict fp, size_t m, double inv,
				uint32_t *restrict idx, struct sums *out)
{
	double pp = 0, pb = 0, dd = 0, absd = 0, mx = 0;
#pragma omp simd reduction(+ : pp, pb, dd, absd) reduction(max : mx)
	for (size_t j = 0; j < m; j++) {
		double pd = fp[j], bd = fb[j];
		double d = pd - bd, ad = fabs(d);
		pp += pd * pd;
		pb += pd * bd;
		dd += d * d;
		absd += ad;
		mx = ad > mx ? ad : mx;
		double x = ad * inv;
		x = x < (double)(SK_FINE - 1) ? x : (double)(SK_FINE - 1);
		double sl = floor(x) + 1.0;
		sl = d != 0 ? copysign(sl, d) : 0.0;
		idx[j] = (uint32_t)(int32_t)(sl + (double)SK_ZERO);
	}
	*out = (struct sums){ m, 0, 0, 0, pp, pb, dd, absd, mx };
}

/* Sums only, for scans without histograms: half the work per element. */
SK_INLINE void sums_loop_finite(const float *restrict fb, const float *restrict fp, size_t m, struct sums *out)
{
	double pp = 0, pb = 0, dd = 0, absd = 0, mx = 0;
#pragma omp simd reduction(+ : pp, pb, dd, absd) reduction(max : mx)
	for (size_t j = 0; j < m; j++) {
		double pd = fp[j], bd = fb[j];
		double d = pd - bd, ad = fabs(d);
		pp += pd * pd;
		pb += pd * bd;
		dd += d * d;
		absd += ad;
		mx = ad > mx ? ad : mx;
	}
	*out = (struct sums){ m, 0, 0, 0, pp, pb, dd, absd, mx };
}


SK_INLINE void bin_loop(const float *restrict fb, const float *restrict fp, size_t m, double inv,
			uint32_t *restrict idx)
{
#pragma omp simd
	for (size_t j = 0; j < m; j++) {
		float p = fp[j], b = fb[j];
		int ok = (fabsf(p) <= FLT_MAX) & (fabsf(b) <= FLT_MAX);
		double pd = ok ? (double)p : 0.0, bd = ok ? (double)b : 0.0;
		double d = pd - bd;
		double x = fabs(d) * inv;
		uint32_t k = (uint32_t)(int32_t)(x < (double)(SK_FINE - 1) ? x : (double)(SK_FINE - 1));
		uint32_t slot = d > 0 ? SK_FINE + 1 + k : (d < 0 ? SK_FINE - 1 - k : SK_ZERO);
		idx[j] = ok ? slot : SK_DISCARD;
	}
}

SK_INLINE void sign_loop(const float *restrict fb, const float *restrict fp, size_t m, uint8_t *restrict pos,
			 uint8_t *restrict neg)
{
	for (size_t j = 0; j < m; j++) {
		float p = fp[j], b = fb[j];
		int ok = (fabsf(p) <= FLT_MAX) & (fabsf(b) <= FLT_MAX);
		pos[j] |= (uint8_t)(ok & (p > b));
		neg[j] |= (uint8_t)(ok & (p < b));
	}
}

/* Two histograms, even and odd elements, so consecutive increments of one
 * bin do not wait on each other. */
SK_INLINE void count_bins(const uint32_t *restrict idx, size_t m, uint32_t *restrict h0, uint32_t *restrict h1)
{
	size_t j = 0;
	for (; j + 1 < m; j += 2) {
		h0[idx[j]]++;
		h1[idx[j + 1]]++;
	}
	if (j < m)
		h0[idx[j]]++;
}

/* Move magnitude bins k to k >> s on both sides (the range grew by 2^s). */
#define FOLD_BODY(h, s)                                                     \
	do {                                                                \
		if ((s) <= 0)                                               \
			break;                                              \
		for (uint32_t k = 1; k < SK_FINE; k++) {                    \
			uint32_t nk = (s) >= 31 ? 0 : k >> (s);             \
			if (nk == k)                                        \
				continue;                                   \
			(h)[SK_FINE + 1 + nk] += (h)[SK_FINE + 1 + k];      \
			(h)[SK_FINE + 1 + k] = 0;                           \
			(h)[SK_FINE - 1 - nk] += (h)[SK_FINE - 1 - k];      \
			(h)[SK_FINE - 1 - k] = 0;                           \
		}                                                           \
	} while (0)

static void fold32(uint32_t *h, int s)
{
	FOLD_BODY(h, s);
}

static void fold64(uint64_t *h, int s)
{
	FOLD_BODY(h, s);
}

/* Smallest e with 2^e > x (x > 0, finite).  Strictly above: a value equal
 * to 2^e would need a bin 512 that does not nest under the folding. */
static int pow2_above_exp(double x)
{
	int e;
	frexp(x, &e);
	return e;
}

CR_HOT
void sk_chunk(const struct sk_in *base, const struct sk_in *par, size_t npar, const int *eq, uint64_t first,
	      size_t n, int agree, int hist, struct sk_scratch *s, struct sk_base_part *bp, struct sk_pair_part *pp,
	      uint64_t *agree_count)
{
	uint64_t agreed = 0;

	memset(bp, 0, sizeof *bp);
	for (size_t i = 0; i < npar; i++) {
		memset(&pp[i], 0, sizeof pp[i]);
		pp[i].eq = eq[i] != 0;
		if (!pp[i].eq)
			memset(s->hb + i * SK_SLOTS, 0, SK_SLOTS * sizeof *s->hb);
	}
	for (size_t off = 0; off < n; off += SK_SUB) {
		size_t m = n - off < SK_SUB ? n - off : SK_SUB;
		float *restrict fb = s->fb, *restrict fp = s->fp;

		uint32_t base_bad = convert(base, first, first + off, m, fb);
		uint64_t nfin = 0, nan = 0, inf = 0;
		double sq = 0;
		if (!base_bad) {
			nfin = m;
#pragma omp simd reduction(+ : sq)
			for (size_t j = 0; j < m; j++)
				sq += (double)fb[j] * (double)fb[j];
		} else {
#pragma omp simd reduction(+ : nfin, nan, inf, sq)
			for (size_t j = 0; j < m; j++) {
				float b = fb[j], ab = fabsf(b);
				int ok = ab <= FLT_MAX;
				double bd = ok ? (double)b : 0.0;
				nfin += (uint64_t)ok;
				nan += b != b;
				inf += ab == INFINITY;
				sq += bd * bd;
			}
		}
		bp->nfin += nfin;
		bp->nan += nan;
		bp->inf += inf;
		bp->sq += sq;
		if (agree) {
			memset(s->pos, 0, m);
			memset(s->neg, 0, m);
		}
		for (size_t i = 0; i < npar; i++) {
			struct sk_pair_part *p = &pp[i];
			if (p->eq)
				continue;
			uint32_t *h1 = s->hb + i * SK_SLOTS;
			uint32_t par_bad = convert(&par[i], first, first + off, m, fp);
			double inv = p->has_e ? ldexp(1.0, SK_FINE_BITS - p->e) : 0.0;
			struct sums r;
			int finite = !base_bad && !par_bad;
			if (finite && !hist)
				sums_loop_finite(fb, fp, m, &r);
			else if (finite)
				pair_loop_finite(fb, fp, m, inv, s->idx, &r);
			else
				pair_loop(fb, fp, m, inv, s->idx, &r);
			if (finite)
				r.bb = sq;
			if (!hist) {
				/* no bins */
			} else if (r.max > 0 && (!p->has_e || r.max >= ldexp(1.0, p->e))) {
				int e = pow2_above_exp(r.max);
				if (p->has_e) {
					fold32(p->hist, e - p->e);
					fold32(h1, e - p->e);
				}
				p->has_e = 1;
				p->e = e;
				bin_loop(fb, fp, m, ldexp(1.0, SK_FINE_BITS - e), s->idx);
			}
			if (hist)
				count_bins(s->idx, m, p->hist, h1);
			p->n += r.n;
			p->nan += r.nan;
			p->inf += r.inf;
			p->bb += r.bb;
			p->pp += r.pp;
			p->pb += r.pb;
			p->dd += r.dd;
			p->absd += r.absd;
			p->max = r.max > p->max ? r.max : p->max;
			if (agree)
				sign_loop(fb, fp, m, s->pos, s->neg);
		}
		if (agree) {
			uint64_t a = 0;
#pragma omp simd reduction(+ : a)
			for (size_t j = 0; j < m; j++)
				a += (uint64_t)!(s->pos[j] & s->neg[j]);
			agreed += a;
		}
	}
	for (size_t i = 0; i < npar; i++) {
		if (pp[i].eq)
			continue;
		const uint32_t *h1 = s->hb + i * SK_SLOTS;
		for (size_t k = 0; k < SK_SLOTS; k++)
			pp[i].hist[k] += h1[k];
	}
	if (agree_count)
		*agree_count = agreed;
}

void sk_acc_init(struct sk_acc *a)
{
	memset(a, 0, sizeof *a);
	a->all_eq = 1;
}

void sk_acc_add(struct sk_acc *a, const struct sk_pair_part *p, const struct sk_base_part *b)
{
	if (p->eq) {
		/* P == B bytewise: every finite pair has D = 0. */
		a->n += b->nfin;
		a->nan += b->nan;
		a->inf += b->inf;
		a->bb += b->sq;
		a->pp += b->sq;
		a->pb += b->sq;
		a->hist[SK_ZERO] += b->nfin;
		a->hist[SK_DISCARD] += b->nan + b->inf;
		return;
	}
	a->all_eq = 0;
	a->n += p->n;
	a->nan += p->nan;
	a->inf += p->inf;
	a->bb += p->bb;
	a->pp += p->pp;
	a->pb += p->pb;
	a->dd += p->dd;
	a->absd += p->absd;
	a->max = p->max > a->max ? p->max : a->max;
	uint32_t tmp[SK_SLOTS];
	const uint32_t *h = p->hist;
	if (p->has_e) {
		if (!a->has_e) {
			a->has_e = 1;
			a->e = p->e;
		} else if (p->e > a->e) {
			fold64(a->hist, p->e - a->e);
			a->e = p->e;
		} else if (p->e < a->e) {
			memcpy(tmp, p->hist, sizeof tmp);
			fold32(tmp, a->e - p->e);
			h = tmp;
		}
	}
	for (size_t k = 0; k < SK_SLOTS; k++)
		a->hist[k] += h[k];
}

void sk_acc_finish(const struct sk_acc *a, const struct sk_base_part *base, uint64_t nelem, int hist,
		   struct cr_stats_sums *o)
{
	memset(o, 0, sizeof *o);
	o->identical = (uint8_t)a->all_eq;
	/* identical: every finite delta is 0, so the histogram is known */
	o->has_hist = (uint8_t)(hist || a->all_eq);
	o->nelem = nelem;
	o->n = a->n;
	o->nan = a->nan;
	o->inf = a->inf;
	o->base_nan = base->nan;
	o->base_inf = base->inf;
	o->base_sq = base->sq;
	o->sum_bb = a->bb;
	o->sum_pp = a->pp;
	o->sum_pb = a->pb;
	o->sum_dd = a->dd;
	o->sum_absd = a->absd;
	o->max_absd = a->max;
	if (!o->has_hist)
		return;
	o->hist[CR_STATS_HIST_SIDE] = a->hist[SK_ZERO];
	if (!a->has_e || !(a->max > 0))
		return;
	/* Group whole fine bins (width 2^(e-9)) into SIDE output bins of g fine
	 * bins each, g the smallest with SIDE * g fine bins covering max|D|. */
	double wf = ldexp(1.0, a->e - SK_FINE_BITS);
	uint64_t g = (uint64_t)ceil(a->max / (CR_STATS_HIST_SIDE * wf));
	if (g < 1)
		g = 1;
	o->hist_width = (double)g * wf;
	for (uint64_t k = 0; k < SK_FINE; k++) {
		uint64_t j = k / g;
		if (j > CR_STATS_HIST_SIDE - 1)
			j = CR_STATS_HIST_SIDE - 1;
		o->hist[CR_STATS_HIST_SIDE + 1 + j] += a->hist[SK_FINE + 1 + k];
		o->hist[CR_STATS_HIST_SIDE - 1 - j] += a->hist[SK_FINE - 1 - k];
	}
}
