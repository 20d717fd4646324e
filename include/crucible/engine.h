/*
 * The merge engine: runs a plan into a complete Hugging Face folder.
 *
 * Streaming: each output tensor is processed in chunks (about 1M elements;
 * whole 128-row stripes when written as block FP8) by OpenMP threads that
 * pread the inputs, convert to f32, run the method kernel (crucible/kernels.h)
 * and pwrite the result into its place in the shard.  Peak memory is
 * threads x (inputs + 2) chunk buffers plus the method's per-tensor state
 * (scale grids, per-chunk partial sums), never the model size.
 *
 * Output (DESIGN.md §4): OUT.partial/ receives the shards
 * (model-0000i-of-0000N.safetensors, at most shard_size bytes of tensor data
 * each unless one tensor is larger), model.safetensors.index.json,
 * config.json (from the base: torch_dtype set to what was written,
 * quantization_config kept only when FP8 was written, num_hidden_layers for
 * slices), the base's tokenizer and generation files, and a README.md model
 * card holding the recipe.  Everything is fsynced and the folder renamed to
 * OUT, so a folder named OUT is always complete.  An existing OUT is an error
 * unless force is set.
 *
 * Resume: OUT.partial/.crucible-manifest.json records each finished shard
 * with its tensors' decisions and checksums.  With resume set, shards whose
 * recomputed checksums match are kept and the rest rewritten.  Without it a
 * stale OUT.partial is removed first.
 *
 * Checksums: per output tensor, a 64-bit sum over its bytes (weight, then
 * scale grid for FP8) that does not depend on the order chunks were written:
 * see cr_checksum_piece.
 *
 * Callbacks run on the thread that called cr_merge_run, between chunks:
 * progress may return nonzero to cancel (OUT.partial is removed and the call
 * fails with CR_E_CANCELLED); tensor_done reports each finished tensor.
 *
 * NaN/Inf: a NaN or infinity in a value a computed tensor reads is an error
 * naming the parent and tensor (the run fails; OUT.partial is kept for
 * --resume after the parent is fixed).  Tensors copied verbatim are copied as
 * stored.
 */
#ifndef CRUCIBLE_ENGINE_H
#define CRUCIBLE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/plan.h"

#define CR_DEFAULT_SHARD_SIZE (5ull * 1000 * 1000 * 1000)

struct cr_merge_progress {
	uint64_t done, total; /* output bytes */
	size_t tensors_done, ntensors;
	const char *tensor; /* being written */
};

/* Return nonzero to cancel. */
typedef int (*cr_progress_fn)(void *ctx, const struct cr_merge_progress *p);
/* decision: CR_DEC_COPY (parent = the parent copied, 0 = base) or CR_DEC_COMPUTE (parent -1). */
typedef void (*cr_tensor_fn)(void *ctx, const char *name, enum cr_decision decision, int parent,
			     uint64_t checksum);

struct cr_merge_opts {
	const char *out;     /* output folder */
	uint64_t shard_size; /* 0: CR_DEFAULT_SHARD_SIZE */
	int threads;	     /* 0: OpenMP's default */
	int resume, force;
	const double *rel;	 /* optional ntensors x nparents distances (NAN unknown): spares aoe a pass */
	const char *recipe_text; /* model card text; NULL: cr_recipe_to_yaml(plan->recipe) */
	size_t chunk;		 /* elements per chunk; 0: 1M (tests use small values) */
	cr_progress_fn progress;
	cr_tensor_fn tensor_done;
	cr_warn_fn warn;
	void *ctx;
};

struct cr_merge_result {
	uint64_t bytes; /* tensor bytes in the output */
	size_t nshards, copied, computed, shards_kept;
};

int cr_merge_run(struct cr_plan *plan, const struct cr_merge_opts *o, struct cr_merge_result *res, cr_error *err);

/* Parse "5GB", "500MB", "1.5G", "4096" (bytes; K/M/G/T powers of 1000, KiB/MiB/GiB
 * powers of 1024).  Returns 0 or -1. */
int cr_parse_size(const char *s, uint64_t *out);

/*
 * Checksum piece: the contribution of `len` bytes found at byte offset `off`
 * of a tensor's output.  A tensor's checksum is cr_checksum_final(sum of all
 * its pieces, total bytes); pieces may split the bytes anywhere.
 */
uint64_t cr_checksum_piece(const void *buf, size_t len, uint64_t off);
uint64_t cr_checksum_final(uint64_t sum, uint64_t nbytes);

#endif
