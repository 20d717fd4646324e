/*
 * Difference statistics: each parent P against the base B, tensor by tensor.
 *
 * A scan streams every tensor of the base and the parents in chunks (pread,
 * never a whole tensor in memory), converts to f32 (FP8 dequantized with its
 * block scales) and accumulates in f64.  OpenMP threads share the chunks;
 * partial sums are reduced in chunk order, so results do not depend on the
 * thread count.  Memory is bounded by the chunk size times the threads and
 * parents, whatever the model's size.  No globals: scans are independent.
 *
 * Definitions (per tensor, per parent; D = P - B, values as f32):
 * - Elements where P or B is NaN or +-Inf are counted (nan, inf: in P;
 *   base_nan, base_inf: in B) and left out of every sum, max and histogram.
 * - norm_base = sqrt(sum B^2) over the finite elements of B; norm_delta =
 *   sqrt(sum D^2); rel = norm_delta / norm_base (0 when both are 0, +Inf when
 *   only the base is 0); cosine = sum PB / sqrt(sum P^2 sum B^2) (1 when both
 *   are all zero, 0 when one is); mean_abs = sum |D| / n.
 * - identical: the parent's stored bytes (and FP8 scale bytes) equal the
 *   base's, found by comparing bytes chunk by chunk; then D = 0 everywhere
 *   (rel 0, cosine 1, max 0) and no value of P is converted.
 * - Sign agreement (per tensor, over the parents compared): an element
 *   agrees unless one parent's delta is > 0 and another's is < 0.  A zero
 *   delta (and a non-finite one) is neutral: it agrees with either sign, so
 *   an element unchanged in every parent agrees, and an identical parent
 *   never lowers the share.  NaN (not computed) with fewer than 2 parents.
 * - Histogram of D: CR_STATS_HIST_SIDE bins per side plus a bin for D == 0
 *   exactly, symmetric around 0, with bin width hist_width = W and range
 *   R = CR_STATS_HIST_SIDE * W >= max|D|, the smallest such R made of whole
 *   fine bins (so R < max|D| + 2^e * 20/512 < 1.08 max|D|).  In one
 *   streaming pass: each chunk bins into 512 fine bins per side over
 *   [0, 2^e), 2^e the smallest power of two above its max|D|; chunks
 *   merge by halving the finer one's resolution (exact: power-of-two
 *   ranges nest), and at the end whole fine bins are
 *   grouped into the output bins.  So the counts are exact for the reported
 *   edges.  Bin i (0 .. CR_STATS_HIST_BINS-1): i < SIDE is negative,
 *   D in (-(SIDE-i)W, -(SIDE-1-i)W], the outermost closed at -R; i == SIDE
 *   is D == 0; i > SIDE is D in [(i-SIDE-1)W, (i-SIDE)W) with D > 0, the
 *   outermost closed at R.  cr_stats_hist_edges gives the 2*SIDE+2 edges.
 *
 * Threads: cr_stats_scan runs on the caller's thread (a TUI calls it from
 * its worker) and uses OpenMP inside.  Both callbacks and every cache call
 * happen on that same thread, never on an OpenMP worker.  The results are
 * written by that thread while it scans: a UI thread should copy what it
 * needs inside on_tensor (under its own lock) rather than read *out while
 * the scan runs.  Progress comes between batches of up to 512 MiB, so a
 * cancel takes effect within about half a second at page-cache speed.
 *
 * A typical TUI use: scan everything with skip_histograms = 1 (half the
 * arithmetic) and the cache; for the detail view, scan the one selected
 * tensor (select callback) with histograms.
 */
#ifndef CRUCIBLE_STATS_H
#define CRUCIBLE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/checkpoint.h"
#include "crucible/error.h"

/* Bump when a definition or the layout of struct cr_stats_sums changes:
 * caches drop records made by another version. */
#define CR_STATS_VERSION 1

#define CR_STATS_HIST_SIDE 20
#define CR_STATS_HIST_BINS (2 * CR_STATS_HIST_SIDE + 1)

/* X(ID, "name", description) of a (tensor, parent) pair. */
#define CR_STATS_STATUSES(X)                                              \
	X(PENDING, "pending", "not scanned yet")                          \
	X(OK, "ok", "statistics computed")                                \
	X(IDENTICAL, "identical", "stored bytes equal the base's")        \
	X(MISSING, "missing", "tensor missing from the parent")           \
	X(SHAPE, "shape", "shape differs from the base's; skipped")       \
	X(UNSUPPORTED, "unsupported", "dtype without arithmetic; skipped") \
	X(FAILED, "failed", "read error")

enum cr_stats_status {
#define X(id, name, desc) CR_STATS_##id,
	CR_STATS_STATUSES(X)
#undef X
	CR_STATS__COUNT
};
const char *cr_stats_status_name(enum cr_stats_status s);

/* What a scan accumulates for one (tensor, parent) pair, and what caches
 * store: everything else is derived from it. */
struct cr_stats_sums {
	uint8_t identical;
	uint8_t has_hist;	   /* hist and hist_width are filled in */
	uint64_t nelem;		   /* elements of the tensor */
	uint64_t n;		   /* elements where P and B are both finite */
	uint64_t nan, inf;	   /* in P */
	uint64_t base_nan, base_inf; /* in B */
	double base_sq;		   /* sum B^2 over finite B */
	double sum_bb, sum_pp, sum_pb, sum_dd, sum_absd; /* over the n elements */
	double max_absd;
	double hist_width; /* W (0 when every delta is 0) */
	uint64_t hist[CR_STATS_HIST_BINS];
};

/* One (tensor, parent) result: the sums and the values derived from them. */
struct cr_stats_pair {
	enum cr_stats_status status;
	int cached;   /* came from the cache */
	char *note;   /* for MISSING/SHAPE/UNSUPPORTED/FAILED: one line; else NULL */
	struct cr_stats_sums s;
	double norm_base, norm_delta, rel, cosine, max_abs, mean_abs;
};

struct cr_stats_tensor {
	const struct cr_tensor *t; /* in the base's catalog */
	size_t index;		   /* in the base's catalog */
	int done;		   /* results final (all pairs) */
	uint64_t agree, agree_n;   /* sign agreement: agreeing / counted elements */
	double sign_agree;	   /* agree / agree_n, NaN when not computed */
	struct cr_stats_pair *pairs; /* [nparents] */
};

/* A tensor a parent has and the base has not. */
struct cr_stats_extra {
	size_t parent;
	const char *name; /* owned by the parent's catalog */
};

/* Results of a scan.  Points into the checkpoints: keep them open. */
struct cr_stats {
	size_t nparents;
	size_t ntensors; /* every base tensor, selected or not */
	struct cr_stats_tensor *tensors;
	size_t nextra;
	struct cr_stats_extra *extra;
	/* counters */
	uint64_t bytes_read;	  /* tensor and scale bytes read by the scan */
	size_t tensors_selected;
	size_t tensors_computed; /* read from the files */
	size_t tensors_cached;	 /* nothing read: every pair cached or skipped */
};

struct cr_stats_progress {
	uint64_t bytes_done, bytes_total; /* bytes to read (cached tensors excluded) */
	size_t tensors_done, tensors_total;
	const char *tensor; /* the tensor being read, or NULL */
};

/* Called between batches of chunks; returning nonzero cancels the scan. */
typedef int (*cr_stats_progress_fn)(const struct cr_stats_progress *p, void *user);
/* Called once per selected tensor as soon as all its pairs are final. */
typedef void (*cr_stats_tensor_fn)(const struct cr_stats *s, const struct cr_stats_tensor *t, void *user);
/* Which base tensors to scan (1 = scan); NULL selects all. */
typedef int (*cr_stats_select_fn)(const struct cr_tensor *t, void *user);

/*
 * Cache of per-pair sums, keyed by tensor name and the identity of the files
 * that hold the bytes: each file's path, size, mtime_ns and header_hash (see
 * struct cr_st_file), for the weights and, for block FP8, the scale shard.
 * A record whose files changed must not be returned; storing a key replaces
 * any record with the same name and paths.  Sign agreement depends on all
 * parents, so it has its own records keyed by the base and every parent.
 *
 * Return values: get_* 1 hit, 0 miss, -1 error (a scan treats an error as a
 * miss and carries on).  Calls come from the scan's thread only; one cache
 * object serves one scan at a time.  Implementations: the file cache below;
 * the session store (SQLite) provides another.
 */
struct cr_stats_src {
	const struct cr_st_file *weights;
	const struct cr_st_file *scales; /* NULL without block scales */
};
struct cr_stats_key {
	const char *tensor;
	struct cr_stats_src base;
	size_t nparents; /* 1 for pair records, >= 2 for agreement records */
	const struct cr_stats_src *parents;
};
struct cr_stats_cache_ops {
	int (*get_pair)(void *self, const struct cr_stats_key *k, struct cr_stats_sums *out, cr_error *err);
	int (*put_pair)(void *self, const struct cr_stats_key *k, const struct cr_stats_sums *v, cr_error *err);
	int (*get_agree)(void *self, const struct cr_stats_key *k, uint64_t *agree, uint64_t *counted,
			 cr_error *err);
	int (*put_agree)(void *self, const struct cr_stats_key *k, uint64_t agree, uint64_t counted, cr_error *err);
	/* Make stored records durable (called at the end of a scan). */
	int (*flush)(void *self, cr_error *err);
	void (*destroy)(void *self);
};
struct cr_stats_cache {
	const struct cr_stats_cache_ops *ops;
	void *self;
};

/*
 * File-backed cache: one small binary file per (base folder, parent folders)
 * under dir (NULL: $XDG_CACHE_HOME/crucible/stats, else ~/.cache/crucible/
 * stats), loaded when first needed, rewritten atomically (temp + rename) on
 * flush.  A damaged file is ignored and replaced.
 */
int cr_stats_cache_file_open(const char *dir, struct cr_stats_cache *out, cr_error *err);
/* Calls ops->destroy (which does not flush). */
void cr_stats_cache_close(struct cr_stats_cache *c);

struct cr_stats_options {
	int threads;	    /* OpenMP threads; 0: the OpenMP default */
	size_t chunk_elems; /* elements per chunk and input; 0: default (256 Ki) */
	struct cr_stats_cache *cache; /* NULL: no cache */
	cr_stats_select_fn select;
	cr_stats_progress_fn progress;
	cr_stats_tensor_fn on_tensor;
	void *user; /* passed to the three callbacks */
	/* Leave the histograms out (has_hist = 0 except for identical pairs):
	 * the bins are about half the arithmetic of a scan.  A TUI can scan
	 * without them and scan one tensor with them for its detail view. */
	int skip_histograms;
};

/*
 * Scan parents[0..nparents) against base.  On success *out holds a result
 * for every base tensor (unselected ones stay PENDING) and the tensors the
 * parents have beyond the base.  Pair-level problems (missing, shape, dtype,
 * read errors) are statuses with notes, not failures.  Returns -1 with
 * CR_E_CANCELLED when the progress callback asked to stop (*out then holds
 * the tensors finished so far), or -1 for a bad argument.
 */
int cr_stats_scan(const struct cr_ckpt *base, const struct cr_ckpt *const *parents, size_t nparents,
		  const struct cr_stats_options *opt, struct cr_stats **out, cr_error *err);
void cr_stats_free(struct cr_stats *s);

/* Fill the derived fields of p from p->s. */
void cr_stats_derive(struct cr_stats_pair *p);
/* The CR_STATS_HIST_BINS + 1 bin edges of a histogram with width w. */
void cr_stats_hist_edges(double w, double edges[CR_STATS_HIST_BINS + 1]);

/*
 * Aggregates of one parent over groups of tensors (pairs with status OK or
 * IDENTICAL only).  rel = sqrt(sum ||D||^2) / sqrt(sum ||B||^2); cosine and
 * sign agreement are element-weighted means of the tensors' values; mean_abs
 * = sum |D| / elements; max_abs is the maximum.
 */
enum cr_stats_group { CR_GROUP_LAYER_CLASS, CR_GROUP_CLASS, CR_GROUP_ALL };

struct cr_stats_agg {
	int layer;	   /* -1: outside layers, or all layers (CR_GROUP_CLASS) */
	enum cr_class cls; /* CR_CLASS_NONE for CR_GROUP_ALL */
	size_t tensors, identical, skipped;
	uint64_t elements, n, nan, inf;
	double base_sq, sum_dd, sum_absd, max_abs;
	double cos_w, agree_w; /* element-weighted sums of cosine and sign share */
	uint64_t agree_elems;  /* elements of the tensors with a sign share */
	double norm_base, norm_delta, rel, cosine, mean_abs, sign_agree;
};

/* Groups sorted by layer (outside-layer tensors first) then class order;
 * only groups with at least one tensor.  *out is malloc'd. */
size_t cr_stats_aggregate(const struct cr_stats *s, size_t parent, enum cr_stats_group by, struct cr_stats_agg **out);

#endif
