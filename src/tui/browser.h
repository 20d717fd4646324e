/*
 * The tensor browser: the main screen.  A tree of layer -> class -> tensor
 * (or a flat list) with catalog columns, each parent's rel and the decision
 * under the current parameters, above the merge panel.
 *
 * The browser owns per-tensor display data filled in from the core: rel per
 * parent (NaN until the scan reaches the tensor), the decision per tensor,
 * and per-group aggregates.  It does no I/O and no merge math.
 */
#ifndef CRUCIBLE_TUI_BROWSER_H
#define CRUCIBLE_TUI_BROWSER_H

#include "tree.h"

struct cr_stats;

/* A tensor's decision: the model index copied (0 = base), or one of these. */
enum { DEC_MERGE = -2, DEC_UNKNOWN = -3, DEC_PENDING = -4, DEC_MIXED = -5 };

/* A layer or a layer x class summary row. */
struct bgroup {
	int layer;	   /* -1 outside layers */
	enum cr_class cls; /* CR_CLASS_NONE for a layer row */
	int node;
	size_t ntensors;
	uint64_t bytes;
	double base_sq, dd[8]; /* sums for the aggregate rel of each parent */
	int known[8];	       /* tensors with a rel for parent p */
	int decision;	       /* common decision of the tensors, DEC_UNKNOWN when mixed */
};

struct browser {
	struct view view;
	struct app *app;
	struct tree tree;
	struct tree_col cols[16];
	int ncols, col_rel0, col_decision;
	size_t ntensors;
	int nparents;	   /* models other than the base */
	double *rel;	   /* [ntensors * nparents], NaN = not known */
	double *base_sq;   /* [ntensors] ||B||^2, NaN = not known */
	double *dd;	   /* [ntensors * nparents] ||P-B||^2 */
	signed char *dec;  /* [ntensors] */
	int *tensor_node;  /* [ntensors] tree node of each tensor */
	struct bgroup *groups;
	size_t ngroups;
	double rel_max[8]; /* largest rel per parent, for bar scale */
	struct cr_stats *stats; /* the finished scan, for the detail view (NULL until then) */
	int panel_focus;
	int panel_rows;
	struct panel *panel;
	char filter[256];
};

/* Recompute the group aggregates after rel changed (and their decisions). */
void browser_update_groups(struct browser *b);
/* Only the groups' common decisions (after the decisions changed). */
void browser_update_decisions(struct browser *b);
/* Name of model m (0 = base). */
const char *browser_model_name(const struct browser *b, int m);
/* Text of a decision ("base", a parent's name, "merge", "?"). */
const char *browser_decision_text(const struct browser *b, int dec);

#endif
