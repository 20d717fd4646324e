/*
 * Method kernels: the math of every merge method over f32, one tensor at a
 * time, streamed in chunks.
 *
 * A tensor is merged in two steps.  cr_kernel_prepare() takes the resolved
 * parameters and runs the whole-tensor passes a method needs (norms and dot
 * products for slerp, nuslerp, model_stock and aoe's distances; exact rank
 * thresholds by a two-pass radix histogram for TIES and breadcrumbs; the L1
 * norms of the randomly pruned task vectors for DARE and DELLA's rescale).
 * Those passes read the inputs through a callback, chunk by chunk, so memory
 * never holds a whole tensor.  Then cr_kernel_chunk() computes any chunk of
 * the output from the inputs' values for that chunk, in any order, on any
 * thread.  Chunk boundaries are fixed by prepare (k->chunk elements, aligned
 * as the caller asked), and every reduction is summed in chunk order, so the
 * result does not depend on the thread count.
 *
 * Semantics are mergekit's (DESIGN.md §6), with its known defects fixed:
 * breadcrumbs whose gamma*n rounds to 0 keeps the largest values instead of
 * zeroing the tensor.  A NaN or infinity in an input is an error naming the
 * tensor and parent (it is never spread silently).
 */
#ifndef CRUCIBLE_KERNELS_H
#define CRUCIBLE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/error.h"
#include "crucible/methods.h"

#define CR_MAX_INPUTS 16

/* What the merge does with one output tensor.  X(ID, "name") */
#define CR_DECISIONS(X)                 \
	X(COPY, "copy")      /* one input's values, unchanged */ \
	X(COMPUTE, "compute") /* merged values */                \
	X(PENDING, "pending") /* aoe: decided once distances are measured */

enum cr_decision {
#define X(id, name) CR_DEC_##id,
	CR_DECISIONS(X)
#undef X
	CR_DEC__COUNT
};
const char *cr_decision_name(enum cr_decision d);

/* Resolved parameters of one output tensor. */
struct cr_kparams {
	enum cr_method_id method;
	int n;	  /* inputs */
	int base; /* input index of the base model, -1 without one */
	double p[CR_MAX_INPUTS][CR_P__COUNT]; /* per input: weight, density, gamma, epsilon, scale */
	double g[CR_P__COUNT];		      /* per tensor: t, delta, lambda, normalize, rescale, ... */
	/* aoe: each input's ‖W_i − W_base‖F / ‖W_base‖F, or NAN when not measured yet */
	double rel[CR_MAX_INPUTS];
};

/*
 * The decision a method makes for a tensor from its parameters alone (and
 * aoe's distances when known).  Pure and cheap: the TUI calls it for every
 * tensor on each λ/δ change.  *source gets the input to copy for CR_DEC_COPY.
 * Rules: passthrough with scale 1 copies; linear with one nonzero weight
 * (that is 1, or normalized) copies it; slerp with t 0 or 1 copies an end;
 * task-vector methods with no surviving task vector copy the base; aoe
 * copies when after δ gating all weight lands on one input, and is PENDING
 * when that depends on an unmeasured distance.
 */
enum cr_decision cr_kernel_decide(const struct cr_kparams *kp, int *source);

/* Reads elements [first, first+n) of input i as f32.  Called from several
 * threads at once; returns -1 and fills err on failure. */
typedef int (*cr_kernel_reader)(void *ctx, int input, uint64_t first, size_t n, float *out, cr_error *err);

/* Per-thread scratch: nthreads x nbuf buffers of cap floats each. */
struct cr_scratch {
	int nthreads, nbuf;
	size_t cap;
	float **buf; /* buf[thread * nbuf + j] */
};
int cr_scratch_init(struct cr_scratch *s, int nthreads, int nbuf, size_t cap);
void cr_scratch_free(struct cr_scratch *s);

/* Rank range kept by magnitude pruning of one input's task vector. */
struct cr_keep {
	int active;	     /* 0: keep everything, 1: keep the rank range, 2: keep nothing */
	int desc;	     /* equal keys rank by descending element order (a stable descending sort) */
	uint64_t lo, hi;     /* keep ascending ranks [lo, hi) */
	uint32_t k1, k2;     /* keys (|x| bit patterns) at rank lo and hi-1 */
	uint64_t less1, less2; /* elements with key < k1, < k2 */
	uint64_t *eq1, *eq2; /* per chunk: elements equal to k1 / k2 before it (NULL: no tie to break) */
	uint8_t *tiebits;    /* bit per element: kept, for keys k1 or k2 when ties straddle (see below) */
};

/*
 * Ties at a pruning boundary.  mergekit ranks with torch's unstable CPU sort
 * (libstdc++ std::sort over (value, index) pairs), so which of several equal
 * magnitudes survive depends on that algorithm.  For tensors of at most
 * CR_TIE_SORT_MAX elements whose boundary is a run of equal keys, crucible
 * replays the same introsort on the keys (8 bytes per element, held for that
 * tensor only) and gets mergekit's exact choice.  Larger tensors break such
 * ties by element order, streaming.
 */
#define CR_TIE_SORT_MAX ((uint64_t)1 << 24)

/* libstdc++'s std::sort (introsort, median-of-3, heapsort fallback, final
 * insertion sort) over keys with their indices; desc: descending order. */
struct cr_sort_pair {
	float key;
	uint32_t idx;
};
void cr_std_sort(struct cr_sort_pair *a, size_t n, int desc);

/* Everything the chunk kernel needs for one tensor. */
struct cr_kctx {
	struct cr_kparams kp;
	const char *name;
	const char *const *inames; /* input names for messages (parent paths) */
	uint64_t nelem, cols; /* cols: row length for per-row methods */
	size_t chunk;	      /* elements per chunk (the last may be shorter) */
	uint64_t nchunks;
	enum cr_decision decision;
	int source; /* input copied when decision is COPY */
	/* derived */
	float w[CR_MAX_INPUTS];	    /* effective weights (linear, aoe after gating) */
	float resc[CR_MAX_INPUTS];  /* L1 rescale factors (dare, della) */
	uint64_t key[CR_MAX_INPUTS]; /* rng keys */
	struct cr_keep keep[CR_MAX_INPUTS];
	float c0, c1, lt; /* slerp / nuslerp coefficients; lt: lerp t */
	int lerp, use_base;
	float stock_t; /* model_stock */
	int per_row;   /* chunk boundaries on rows; per-row math */
	float *colcoef; /* nuslerp row-wise: per column c0, c1, lerp flag (3 x cols) */
};

/*
 * Fill k for one tensor: decide, run the whole-tensor passes, fix chunking.
 * align: chunk sizes must be multiples of this many elements (the caller's
 * need, e.g. 128 rows for FP8 output); target: preferred chunk size, at most
 * scratch->cap.  Returns -1 on a read error, a NaN/Inf in an input, or a
 * parameter out of range, naming the tensor.
 */
int cr_kernel_prepare(struct cr_kctx *k, const struct cr_kparams *kp, const char *name,
		      const char *const *inames, uint64_t nelem, uint64_t cols, uint64_t seed, size_t align,
		      size_t target, struct cr_scratch *scratch, cr_kernel_reader rd, void *rdctx, cr_error *err);
void cr_kernel_release(struct cr_kctx *k);

/* Inputs the output needs read (bit i for input i). */
uint32_t cr_kernel_inputs_used(const struct cr_kctx *k);

/*
 * Output chunk c (elements [c*chunk, ...+n)): x[i] holds input i's values
 * (modified in place); out gets the result.  Returns -1 with err on NaN/Inf.
 */
int cr_kernel_chunk(const struct cr_kctx *k, uint64_t c, float *const *x, size_t n, float *out, cr_error *err);

/*
 * Element-wise methods (copy, linear, aoe, passthrough) need nothing but the
 * element's values, so the engine may run them on small blocks of any
 * position to keep the work in cache.  cr_kernel_block computes elements
 * [first, first+n) like cr_kernel_chunk (with the same NaN/Inf check).
 */
int cr_kernel_elementwise(const struct cr_kctx *k);
int cr_kernel_block(const struct cr_kctx *k, uint64_t first, float *const *x, size_t n, float *out, cr_error *err);

#endif
