/*
 * A checkpoint: a folder with config.json and model.safetensors or shards
 * listed by model.safetensors.index.json (or a single .safetensors file).
 *
 * The catalog is the list of logical tensors.  An FP8 weight and its
 * `NAME_scale_inv` are one logical tensor (the scale may live in another
 * shard); scale tensors do not appear in the list on their own.  Tensors are
 * sorted in natural name order (layers.2 before layers.10).  Opening reads
 * only headers, so the 163-shard DeepSeek-V3 layout opens in a fraction of a
 * second.
 */
#ifndef CRUCIBLE_CHECKPOINT_H
#define CRUCIBLE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/classify.h"
#include "crucible/dtype.h"
#include "crucible/error.h"
#include "crucible/safetensors.h"

struct cr_tensor {
	const char *name; /* owned by the shard's header */
	enum cr_dtype dtype;
	int ndim;
	const uint64_t *shape;
	uint64_t nelem;
	uint64_t nbytes; /* stored bytes of the weight (not the scale) */
	int shard;
	const struct cr_st_tensor *st;
	int scale_shard; /* -1 when there is no block scale */
	const struct cr_st_tensor *scale;
	enum cr_class cls;
	int layer, expert;
};

struct cr_ckpt {
	char *path;	  /* as given */
	char *dir;	  /* folder holding the shards */
	int is_file;	  /* opened as a single .safetensors file */
	char *config_text; /* config.json, or NULL */
	char *model_type, *arch;
	int num_layers, num_experts;
	size_t nshards;
	struct cr_st_file **shards;
	size_t ntensors;
	struct cr_tensor *tensors;
	size_t nscales; /* scale tensors folded into their weights */
	/* open-addressing name index */
	size_t hcap;
	int32_t *hslot;
};

int cr_ckpt_open(const char *path, struct cr_ckpt **out, cr_error *err);
void cr_ckpt_close(struct cr_ckpt *c);
const struct cr_tensor *cr_ckpt_find(const struct cr_ckpt *c, const char *name);
/*
 * Whether file (named inside folder dir) resolves inside dir, following
 * symbolic links: links within the folder are fine, and so are links from a
 * Hugging Face cache snapshot (.../snapshots/REV) into that cache's blobs/.
 * A file that does not resolve (missing) counts as inside: opening reports it.
 */
int cr_path_inside(const char *dir, const char *file);
/* Natural-order comparison of tensor names. */
int cr_natural_cmp(const char *a, const char *b);

/* Totals for `inspect`. */
struct cr_ckpt_summary {
	uint64_t params, bytes, dtype_bytes[CR_DT__COUNT], dtype_count[CR_DT__COUNT];
	uint64_t class_params[CR_CLASS__COUNT];
	int layers, experts;
};
void cr_ckpt_summarize(const struct cr_ckpt *c, struct cr_ckpt_summary *s);

/* Read stored bytes [off, off+len) of a tensor's weight. */
int cr_tensor_read_raw(const struct cr_ckpt *c, const struct cr_tensor *t, uint64_t off, void *buf, size_t len,
		       cr_error *err);
/* Read the whole scale grid of a block-FP8 tensor (rows/128 x cols/128). */
int cr_tensor_read_scales(const struct cr_ckpt *c, const struct cr_tensor *t, float *grid, cr_error *err);
size_t cr_tensor_scale_count(const struct cr_tensor *t);
int cr_tensor_cols(const struct cr_tensor *t, uint64_t *cols);
/*
 * Read elements [first, first+n) as f32, dequantizing block FP8 with the
 * given scale grid (NULL for other dtypes).  raw must hold n * element size
 * bytes.  Fails with a clear message for dtypes without math support.
 */
int cr_tensor_read_f32(const struct cr_ckpt *c, const struct cr_tensor *t, const float *grid, uint64_t first,
		       size_t n, void *raw, float *out, cr_error *err);

#endif
