/*
 * Merge methods and their parameters: one table each.  The recipe reader
 * validates names against these tables, the TUI and `--help` list them, and
 * the engine dispatches to each method's kernel (see method kernels in
 * src/methods*.c).  Adding a method or a parameter is one line here.
 *
 * Semantics and defaults are mergekit's (../shared/docs/DESIGN.md §6), plus
 * crucible's `aoe`.
 */
#ifndef CRUCIBLE_METHODS_H
#define CRUCIBLE_METHODS_H

#include <stdint.h>

/* Parameters.  X(ID, "name", default, per_model, is_bool, description)
 * per_model: 1 when the parameter is set for each model (it may also be set
 * at slice or top level as a default for all models); 0 for global ones. */
#define CR_PARAMS(X)                                                                              \
	X(WEIGHT, "weight", 1.0, 1, 0, "λ: how much of this model goes into the result")          \
	X(DENSITY, "density", 1.0, 1, 0, "fraction of the task vector kept")                      \
	X(GAMMA, "gamma", 0.01, 1, 0, "breadcrumbs: fraction of largest magnitudes removed")      \
	X(EPSILON, "epsilon", 0.15, 1, 0, "della: spread of keep probabilities around density")   \
	X(SCALE, "scale", 1.0, 1, 0, "passthrough: multiply the tensor")                          \
	X(T, "t", 0.5, 0, 0, "slerp: interpolation factor from base (0) to the other model (1)") \
	X(DELTA, "delta", 0.0, 0, 0, "aoe: a parent counts only if rel. distance to base > delta") \
	X(LAMBDA, "lambda", 1.0, 0, 0, "scale of the merged task vector")                         \
	X(NORMALIZE, "normalize", 1.0, 0, 1, "divide by the sum of weights")                      \
	X(RESCALE, "rescale", 1.0, 0, 1, "dare/della: rescale kept values")                       \
	X(INT8_MASK, "int8_mask", 0.0, 0, 1, "store masks as int8 (accepted, no effect)")         \
	X(FILTER_WISE, "filter_wise", 0.0, 0, 1, "model_stock: per-row instead of per-tensor")    \
	X(NUSLERP_FLATTEN, "nuslerp_flatten", 1.0, 0, 1, "nuslerp: treat the tensor as one vector") \
	X(NUSLERP_ROW_WISE, "nuslerp_row_wise", 0.0, 0, 1, "nuslerp: interpolate rows, not columns")

enum cr_param_id {
#define X(id, name, def, per_model, is_bool, desc) CR_P_##id,
	CR_PARAMS(X)
#undef X
	CR_P__COUNT,
	CR_P_NONE = -1
};

#define CR_PBIT(id) (1u << CR_P_##id)

/* Methods.  X(ID, "name", needs_base, params used (bit set), default normalize, description) */
#define CR_METHODS(X)                                                                                      \
	X(LINEAR, "linear", 0, CR_PBIT(WEIGHT) | CR_PBIT(NORMALIZE), 1, "weighted average of the models")  \
	X(TASK_ARITHMETIC, "task_arithmetic", 1,                                                           \
	  CR_PBIT(WEIGHT) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) | CR_PBIT(INT8_MASK), 0,                  \
	  "base + weighted sum of task vectors")                                                           \
	X(TIES, "ties", 1,                                                                                 \
	  CR_PBIT(WEIGHT) | CR_PBIT(DENSITY) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) | CR_PBIT(INT8_MASK), \
	  1, "trim by magnitude, elect sign, disjoint mean")                                               \
	X(DARE_TIES, "dare_ties", 1,                                                                       \
	  CR_PBIT(WEIGHT) | CR_PBIT(DENSITY) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) | CR_PBIT(RESCALE) |  \
		  CR_PBIT(INT8_MASK),                                                                      \
	  0, "random drop and rescale, then TIES sign election")                                           \
	X(DARE_LINEAR, "dare_linear", 1,                                                                   \
	  CR_PBIT(WEIGHT) | CR_PBIT(DENSITY) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) | CR_PBIT(RESCALE) |  \
		  CR_PBIT(INT8_MASK),                                                                      \
	  0, "random drop and rescale, then weighted sum")                                                 \
	X(BREADCRUMBS, "breadcrumbs", 1,                                                                   \
	  CR_PBIT(WEIGHT) | CR_PBIT(DENSITY) | CR_PBIT(GAMMA) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) |    \
		  CR_PBIT(INT8_MASK),                                                                      \
	  0, "drop the smallest and the largest magnitudes")                                               \
	X(BREADCRUMBS_TIES, "breadcrumbs_ties", 1,                                                         \
	  CR_PBIT(WEIGHT) | CR_PBIT(DENSITY) | CR_PBIT(GAMMA) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) |    \
		  CR_PBIT(INT8_MASK),                                                                      \
	  0, "breadcrumbs with TIES sign election")                                                        \
	X(DELLA, "della", 1,                                                                               \
	  CR_PBIT(WEIGHT) | CR_PBIT(DENSITY) | CR_PBIT(EPSILON) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) |  \
		  CR_PBIT(RESCALE) | CR_PBIT(INT8_MASK),                                                   \
	  1, "magnitude-ranked random drop, TIES sign election")                                           \
	X(DELLA_LINEAR, "della_linear", 1,                                                                 \
	  CR_PBIT(WEIGHT) | CR_PBIT(DENSITY) | CR_PBIT(EPSILON) | CR_PBIT(LAMBDA) | CR_PBIT(NORMALIZE) |  \
		  CR_PBIT(RESCALE) | CR_PBIT(INT8_MASK),                                                   \
	  0, "magnitude-ranked random drop, weighted sum")                                                 \
	X(SLERP, "slerp", 1, CR_PBIT(T), 0, "spherical interpolation of two models")                      \
	X(NUSLERP, "nuslerp", 0,                                                                           \
	  CR_PBIT(WEIGHT) | CR_PBIT(NUSLERP_FLATTEN) | CR_PBIT(NUSLERP_ROW_WISE), 0,                       \
	  "spherical interpolation by relative weights (of task vectors with a base)")                    \
	X(MODEL_STOCK, "model_stock", 1, CR_PBIT(FILTER_WISE), 0, "interpolate toward the base by geometry") \
	X(PASSTHROUGH, "passthrough", 0, CR_PBIT(SCALE), 0, "copy tensors (stack layers with slices)")     \
	X(AOE, "aoe", 1, CR_PBIT(WEIGHT) | CR_PBIT(DELTA) | CR_PBIT(NORMALIZE), 1,                         \
	  "Assembly of Experts: per-tensor interpolation gated by delta")

enum cr_method_id {
#define X(id, name, needs_base, params, def_norm, desc) CR_M_##id,
	CR_METHODS(X)
#undef X
	CR_M__COUNT,
	CR_M_NONE = -1
};

struct cr_param_info {
	const char *name;
	double def;
	int per_model, is_bool;
	const char *desc;
};

struct cr_method_info {
	const char *name;
	int needs_base;
	uint32_t params; /* CR_PBIT set */
	int default_normalize;
	const char *desc;
};

const struct cr_param_info *cr_param_info(enum cr_param_id p);
const struct cr_method_info *cr_method_info(enum cr_method_id m);
enum cr_param_id cr_param_parse(const char *name);
enum cr_method_id cr_method_parse(const char *name);
int cr_method_uses(enum cr_method_id m, enum cr_param_id p);
/* A parameter's default for a method (normalize differs by method). */
double cr_param_default(enum cr_method_id m, enum cr_param_id p);

#endif
