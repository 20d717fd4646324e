/*
 * Merge recipes: mergekit-style YAML, read (with validation) and written.
 *
 * The format (what cr_recipe_load accepts and cr_recipe_to_yaml writes)
 * -------------------------------------------------------------------
 * One YAML document whose top level is a mapping.  Keys:
 *
 *   merge_method: NAME        required; a name from CR_METHODS (crucible/methods.h),
 *                             e.g. linear, ties, slerp, aoe
 *   base_model: PATH          optional; required when the method's needs_base is 1
 *   models:                   a list of models to merge ...
 *     - model: PATH           required in each entry
 *       parameters: PARAMS    optional
 *   slices:                   ... or a list of output slices (exactly one of
 *     - sources:              models/slices must be given)
 *         - model: PATH
 *           layer_range: [A, B]   integers, 0 <= A < B <= 1000000: layers A..B-1;
 *                                 all sources of a slice have the same B - A
 *           parameters: PARAMS
 *       parameters: PARAMS    slice-level parameters
 *   parameters: PARAMS        top-level parameters
 *   dtype: NAME               optional; torch spelling (bfloat16, float16, float32,
 *   out_dtype: NAME           float8_e4m3fn, ...) or a safetensors name (BF16)
 *   random_seed: N            optional; integer 0 .. 2^64-1
 *   tokenizer_source: base    optional; only "base" (crucible copies the base's tokenizer)
 *
 * PARAMS is a mapping from a parameter name (CR_PARAMS in crucible/methods.h)
 * to a value, which is one of:
 *   - a scalar: a number, or a boolean (true/false, also YAML 1.1 yes/no/on/off),
 *     stored as 1.0 / 0.0;
 *   - a gradient: a list of numbers, interpolated over the layers (below);
 *   - a conditional list of mappings, each with `value` (a scalar or a gradient)
 *     and at most one of `filter: SUBSTRING` (matches tensor names containing it;
 *     "*" matches all) or `class: CLASS` (crucible extension: a tensor class from
 *     crucible/classify.h, e.g. routed_expert).  An entry with neither matches
 *     everything.  The first matching entry wins; when none matches, the lookup
 *     falls through to the next level.  A single such mapping (not in a list) is
 *     accepted too.
 * Any other key, at any level, is an error (so is `name`, `tokenizer`,
 * `chat_template`, a slice's `base_model`).  A key may appear once per mapping.
 *
 * YAML details: numbers are finite decimals ([+-]digits[.digits][e[+-]digits];
 * no .inf/.nan, no hex) written plain, or tagged !!float/!!int; a quoted or
 * !!str value is a string, never a number.  Strings (paths, names) may be
 * plain or quoted.  An empty value (`parameters:` with nothing after it, ~,
 * null) of an optional key means "absent".  Anchors are ignored but aliases
 * (*name) are refused, as are tags outside tag:yaml.org,2002:, more than
 * 100000 values, and more than one document.  CRLF and a BOM are fine.
 *
 * Precedence for the value of a per-model parameter: the model's (or slice
 * source's) own parameters, then the slice's, then the top level.  A global
 * parameter (per_model = 0 in CR_PARAMS, e.g. t, delta, normalize) is read from
 * the slice and top level only, as mergekit does; setting one on a model gives a
 * warning.
 *
 * Gradients: a tensor of decoder layer L in a model of N layers has position
 * t = cr_layer_t(L, N); a gradient of n values gives the value at t*(n-1),
 * interpolated linearly between the neighbouring values (mergekit's rule).
 *
 * Paths are relative to the folder of the recipe file; absolute paths are kept.
 *
 * Errors: one line "FILE:LINE: message" naming the key, with paths such as
 * models[1].parameters.weight[0] (indexes count from 0).  Errors: YAML syntax,
 * aliases, more than one document, an empty document, a non-mapping top level,
 * NUL bytes, files over CR_RECIPE_MAX_BYTES, nesting deeper than
 * CR_RECIPE_MAX_DEPTH, an unknown or duplicate key, method, parameter, class or
 * dtype, a wrong type, a bad layer_range, a missing merge_method, neither or
 * both of models/slices, a method that needs base_model without one.  A known
 * parameter the method does not use is a warning through the callback.
 *
 * Owns: struct cr_recipe and everything it points to.  Called by the merge
 * planner, the CLI (`crucible merge`) and the workbench (export).
 * Files: src/recipe_read.c (YAML -> recipe), src/recipe_write.c (recipe ->
 * YAML), src/recipe.c (lookups, paths, freeing).
 */
#ifndef CRUCIBLE_RECIPE_H
#define CRUCIBLE_RECIPE_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/classify.h"
#include "crucible/dtype.h"
#include "crucible/error.h"
#include "crucible/methods.h"

#define CR_RECIPE_MAX_BYTES (1u << 20) /* a recipe file is at most 1 MiB */
#define CR_RECIPE_MAX_DEPTH 32         /* YAML nesting; a valid recipe needs about 10 */

struct cr_pval {
	size_t n;  /* n == 1: scalar; n > 1: gradient over layers */
	double *v;
};

/* One entry of a conditional list. */
struct cr_pcond {
	char *filter;      /* substring ("*" = all); NULL when the entry has no filter */
	enum cr_class cls; /* `class: NAME`; CR_CLASS_NONE otherwise */
	struct cr_pval val;
};

/* A plain scalar or gradient is stored as one cond with filter NULL, cls NONE. */
struct cr_param_entry {
	enum cr_param_id id;
	size_t nconds;
	struct cr_pcond *conds;
	int line;
};

struct cr_param_set {
	size_t n;
	struct cr_param_entry *items;
};

/* path as written; resolved = relative to the recipe file's folder (absolute kept). */
struct cr_recipe_model {
	char *path, *resolved;
	struct cr_param_set params;
	int line;
};

struct cr_recipe_source {
	char *path, *resolved;
	int has_range; /* always 1 after parsing: layer_range is required */
	int layer_start, layer_end; /* [start, end) */
	struct cr_param_set params;
	int line;
};

struct cr_recipe_slice {
	size_t nsources;
	struct cr_recipe_source *sources;
	struct cr_param_set params;
	int line;
};

struct cr_recipe {
	char *file; /* path given to load, or the name given to parse */
	enum cr_method_id method;
	char *base, *base_resolved; /* NULL when absent */
	size_t nmodels;
	struct cr_recipe_model *models;
	size_t nslices;
	struct cr_recipe_slice *slices;
	struct cr_param_set params; /* top level */
	enum cr_dtype dtype, out_dtype; /* CR_DT_NONE when absent */
	int has_seed;
	uint64_t seed; /* random_seed */
	char *tokenizer_source; /* "base" or NULL */
	int line;               /* of merge_method */
};

typedef void (*cr_warn_fn)(void *ctx, const char *msg); /* may be NULL */

/* Read and validate a recipe file.  Returns 0 and sets *out, or -1 with err. */
int cr_recipe_load(const char *path, struct cr_recipe **out, cr_warn_fn warn, void *ctx, cr_error *err);
/* The same from memory; `file` names it in messages (NULL: "<recipe>") and its
 * folder is where relative paths resolve from. */
int cr_recipe_parse(const char *text, size_t len, const char *file, struct cr_recipe **out, cr_warn_fn warn,
		    void *ctx, cr_error *err);

/* Malloc'd YAML text in mergekit's shape (paths as written); NULL when the
 * recipe cannot be written (no method, a string that is not UTF-8). */
char *cr_recipe_to_yaml(const struct cr_recipe *r);
/* Write atomically: a temporary file in the same folder, then rename.  The
 * text is read back first, so a recipe that would not load (say, ties without
 * a base_model) is refused with that error and nothing is written. */
int cr_recipe_save(const struct cr_recipe *r, const char *path, cr_error *err);
void cr_recipe_free(struct cr_recipe *r);

/* Position of decoder layer `layer` in a model of num_layers layers, in [0,1]:
 * layer / (num_layers - 1); a layer < 0 (embeddings, lm_head, final norm:
 * tensors outside the layers) gives 0; a layer >= num_layers - 1 (including MTP
 * layers) gives 1; with num_layers <= 1 every layer >= 0 gives 1 (mergekit's
 * rule for a one-layer slice).  Tensors outside the layers get t = 0 as
 * DESIGN §6 says, and the expected/ fixtures agree (ties-llama's model.norm
 * and lm_head match chat weight 0.2, the gradient's start); mergekit's own
 * planner would give the tensors after the layers t = 1. */
double cr_layer_t(int layer, int num_layers);

/* Value of a gradient or scalar at t (clamped to [0,1]; NaN counts as 0). */
double cr_pval_at(const struct cr_pval *v, double t);

/* Value of parameter p for a tensor.  model: index into models[] or -1;
 * slice/source: indexes when the recipe uses slices, else -1.  Looks in the
 * model's or source's own parameters (per-model parameters only), then the
 * slice's, then the top level; within an entry the first conditional entry
 * that matches `tensor` (filter substring; tensor may be NULL, matching only
 * entries without a filter) or `cls` wins.  Returns 1 and sets *out when
 * found, 0 when not set anywhere (the caller uses cr_param_default). */
int cr_recipe_param(const struct cr_recipe *r, int model, int slice, int source, enum cr_param_id p,
		    const char *tensor, enum cr_class cls, double t, double *out);

/* The entry for p in a set, or NULL. */
const struct cr_param_entry *cr_param_set_find(const struct cr_param_set *s, enum cr_param_id p);

/* path relative to the folder of `file` (malloc'd); absolute paths, and any
 * path when file is NULL or has no '/', come back as they are. */
char *cr_recipe_resolve(const char *file, const char *path);

/* Building a recipe in code (the workbench's export).  Strings and values are
 * copied.  Paths resolve against the folder of `file` (NULL: as written).
 * Adding a model may move models[]: earlier pointers into it become stale. */
struct cr_recipe *cr_recipe_new(enum cr_method_id method, const char *file);
void cr_recipe_set_base(struct cr_recipe *r, const char *path); /* NULL removes it */
struct cr_recipe_model *cr_recipe_add_model(struct cr_recipe *r, const char *path);
/* Set p to a plain scalar (n == 1) or gradient (n > 1), replacing any entry for p. */
void cr_param_set_value(struct cr_param_set *s, enum cr_param_id p, size_t n, const double *v);
/* Append a conditional entry to p's list (created when absent); filter NULL and
 * cls CR_CLASS_NONE make the catch-all entry.  Entries are tried in order. */
void cr_param_set_add_cond(struct cr_param_set *s, enum cr_param_id p, const char *filter, enum cr_class cls,
			   size_t n, const double *v);
void cr_param_set_remove(struct cr_param_set *s, enum cr_param_id p);

#endif
