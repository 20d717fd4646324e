/*
 * The statistics kernel (internal to stats.c): one chunk of a tensor, the
 * base and its parents already in memory, into per-chunk partial sums.
 *
 * Chunks are processed in sub-blocks of SK_SUB elements so that the f32
 * buffers stay in L1.  Partial sums of a chunk are f64; the driver adds
 * chunk partials in chunk order, so the result is the same whatever thread
 * ran which chunk.
 *
 * Histogram (see crucible/stats.h): a chunk bins |D| into SK_FINE fine bins
 * per side over [0, 2^e), e the smallest exponent with 2^e > the chunk's
 * max|D|.  Slot layout: negative magnitudes k at SK_FINE-1-k, D == 0 at
 * SK_FINE, positive k at SK_FINE+1+k, non-finite pairs at SK_DISCARD.
 */
#ifndef CRUCIBLE_STATS_KERNEL_H
#define CRUCIBLE_STATS_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/dtype.h"
#include "crucible/stats.h"

#define SK_FINE_BITS 9
#define SK_FINE (1 << SK_FINE_BITS)
#define SK_ZERO SK_FINE
#define SK_DISCARD (2 * SK_FINE + 1)
#define SK_SLOTS (2 * SK_FINE + 2)
#define SK_SUB 1024

/* One input of a chunk: raw points at the chunk's first element. */
struct sk_in {
	enum cr_dtype dt;
	const void *raw;
	const float *grid; /* block-FP8 scale grid, or NULL */
	size_t cols;	   /* columns (for the grid) */
};

struct sk_base_part {
	uint64_t nfin, nan, inf;
	double sq;
};

struct sk_pair_part {
	int eq;	     /* bytes equal to the base's: nothing computed */
	int has_e;   /* some finite nonzero delta was binned */
	int e;	     /* histogram range 2^e */
	uint64_t n, nan, inf;
	double bb, pp, pb, dd, absd, max;
	uint32_t hist[SK_SLOTS];
};

/* Per-thread working memory for up to npar parents. */
struct sk_scratch {
	size_t npar;
	float *fb;	 /* [SK_SUB] */
	float *fp;	 /* [SK_SUB] */
	uint32_t *idx;	 /* [SK_SUB] */
	uint8_t *pos, *neg; /* [SK_SUB] */
	uint32_t *hb;	 /* second histogram per parent, [npar][SK_SLOTS] */
};
void sk_scratch_init(struct sk_scratch *s);
void sk_scratch_free(struct sk_scratch *s);

/*
 * Process elements [first, first+n) of a tensor.  eq[i] nonzero means the
 * parent's chunk bytes equal the base's (and its scales do too): it is not
 * converted and its part only gets eq = 1.  With agree set, *agree counts
 * the elements whose deltas have no conflicting signs across the parents.
 * Without hist no bins are counted (the sums are the same).
 */
void sk_chunk(const struct sk_in *base, const struct sk_in *par, size_t npar, const int *eq, uint64_t first,
	      size_t n, int agree, int hist, struct sk_scratch *s, struct sk_base_part *bp, struct sk_pair_part *pp,
	      uint64_t *agree_count);

/* A tensor's running totals for one parent. */
struct sk_acc {
	int all_eq;
	int has_e, e;
	uint64_t n, nan, inf;
	double bb, pp, pb, dd, absd, max;
	uint64_t hist[SK_SLOTS];
};
void sk_acc_init(struct sk_acc *a);
void sk_acc_add(struct sk_acc *a, const struct sk_pair_part *p, const struct sk_base_part *b);
/* Into cache-ready sums (base totals given separately). */
void sk_acc_finish(const struct sk_acc *a, const struct sk_base_part *base, uint64_t nelem, int hist,
		   struct cr_stats_sums *out);

#endif
