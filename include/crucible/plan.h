/*
 * A plan: a recipe resolved per output tensor.
 *
 * cr_plan_build opens every parent once, lines up their tensors (by name,
 * or by renumbered layer for `slices`), checks that names and shapes agree,
 * and resolves each tensor's method parameters with the recipe's precedence
 * (model, then slice, then top level; first matching filter/class wins;
 * gradients over the layer position t).  It does no tensor I/O.
 *
 * Parents: index 0 is the base model when the recipe has one; the others
 * follow in the order the recipe first names them.  For aoe, a base that the
 * recipe does not list among its models gets weight max(0, 1 − Σ others).  A tensor's inputs are the
 * parents it is merged from, each with its per-input parameters.
 *
 * Decisions (the TUI's live view): cr_plan_decide() is a pure function of a
 * tensor's resolved parameters and the per-parent relative distances
 * rel = ‖P−B‖F/‖B‖F (from the stats scan; NAN when unknown).  It returns
 * CR_DEC_COPY with the parent to copy verbatim (parent 0 = the base),
 * CR_DEC_COMPUTE, or CR_DEC_PENDING (aoe, when the answer depends on a
 * distance not measured yet; the engine measures it).  It allocates nothing
 * and costs well under a microsecond; cr_plan_decide_all() does every tensor
 * (the full DeepSeek-V3 layout, ~92k tensors, in a few ms).  After the user
 * changes λ/δ, edit the recipe and call cr_plan_refresh() (no I/O), then
 * decide again.
 *
 * Output dtypes (DESIGN.md §6): out_dtype, else dtype, sets the written
 * dtype; a float8_e4m3fn request writes block FP8 where the base tensor is
 * block FP8 and the base's dtype elsewhere.  With neither, a copied tensor
 * keeps its stored dtype (and FP8 scale) and a computed one takes the base
 * tensor's dtype (requantized FP8 for an FP8 base).
 */
#ifndef CRUCIBLE_PLAN_H
#define CRUCIBLE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/checkpoint.h"
#include "crucible/kernels.h"
#include "crucible/recipe.h"

#define CR_PLAN_MAXDIM 8

struct cr_plan_input {
	int parent;
	const struct cr_tensor *t; /* the parent's tensor (its own name and shape) */
	int submatrix;		   /* embed/lm_head with a larger vocabulary: the leading rows are used */
};

struct cr_plan_tensor {
	char *name; /* output name */
	enum cr_class cls;
	int layer, expert; /* output layer (-1 outside the layers) */
	int ndim;
	uint64_t shape[CR_PLAN_MAXDIM], nelem;
	int ref;     /* input whose dtype a computed tensor takes (the base, else input 0) */
	int base;    /* input index of the base, -1 */
	int ninputs;
	struct cr_plan_input *in;
	double *p; /* ninputs x CR_P__COUNT per-input parameters */
	double g[CR_P__COUNT]; /* per-tensor parameters */
};

struct cr_plan {
	const struct cr_recipe *recipe; /* borrowed: keep it alive while the plan lives */
	enum cr_method_id method;
	size_t nparents;
	struct cr_ckpt **parents;
	const char **parent_path; /* as resolved in the recipe (owned copies) */
	int has_base;		  /* parent 0 is the base */
	int layers_out;		  /* num_hidden_layers of the output, -1 = as the base */
	enum cr_dtype want;	  /* out_dtype, else dtype, else CR_DT_NONE */
	uint64_t seed;
	size_t ntensors;
	struct cr_plan_tensor *t;
};

/* Build the plan.  warn (may be NULL) hears about vocabulary sub-matrices. */
int cr_plan_build(const struct cr_recipe *r, struct cr_plan **out, cr_warn_fn warn, void *ctx, cr_error *err);
/* Re-resolve every tensor's parameters from r (same parents and method). */
int cr_plan_refresh(struct cr_plan *p, const struct cr_recipe *r, cr_error *err);
void cr_plan_free(struct cr_plan *p);

/* The kernel parameters of tensor i; rel: per parent (nparents) or NULL. */
void cr_plan_kparams(const struct cr_plan *p, size_t i, const double *rel, struct cr_kparams *kp);

/*
 * Decision for tensor i.  rel: this tensor's distances per parent
 * (p->nparents values, NAN unknown) or NULL.  *parent gets the parent copied
 * for CR_DEC_COPY, else -1.
 */
enum cr_decision cr_plan_decide(const struct cr_plan *p, size_t i, const double *rel, int *parent);
/* All tensors: rel is ntensors x nparents (or NULL); dec/parent per tensor. */
void cr_plan_decide_all(const struct cr_plan *p, const double *rel, uint8_t *dec, int16_t *parent);

/* The dtype written for tensor i given its decision; *fp8: with block scales. */
enum cr_dtype cr_plan_out_dtype(const struct cr_plan *p, size_t i, enum cr_decision d, int input, int *fp8);
/* Bytes written for tensor i (with its scale grid when FP8). */
uint64_t cr_plan_out_bytes(const struct cr_plan *p, size_t i, enum cr_dtype dt, int fp8);

/* Per class: count and bytes of each outcome; outcome j < nparents is
 * "copy parent j", then compute, then pending. */
struct cr_plan_summary {
	size_t nparents;
	uint64_t count[CR_CLASS__COUNT][CR_MAX_INPUTS + 2];
	uint64_t bytes[CR_CLASS__COUNT][CR_MAX_INPUTS + 2];
};
void cr_plan_summarize(const struct cr_plan *p, const double *rel, struct cr_plan_summary *s);

#endif
