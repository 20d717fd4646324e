/*
 * A faster cr_plan_refresh for live λ/δ changes.
 *
 * cr_plan_refresh resolves every parameter of every tensor through the
 * recipe: about 56 lookups per tensor, over 100 ms on the 46k-tensor
 * DeepSeek-V3 layout.  But a recipe can only tell tensors apart by class,
 * layer and which of its filter strings a name contains, so tensors that
 * agree on those get identical parameters.  fastplan_refresh resolves one
 * representative per such group (with the same public lookup,
 * cr_recipe_param, and the same defaults and rules as plan.c) and copies
 * the result to the rest.  tests/check_fastplan verifies it gives exactly
 * what cr_plan_refresh gives.  Falls back to cr_plan_refresh for slices,
 * duplicate model paths, or more filters than it tracks.
 *
 * (This belongs in plan.c; it lives here until the planner does the same.)
 */
#ifndef CRUCIBLE_TUI_FASTPLAN_H
#define CRUCIBLE_TUI_FASTPLAN_H

#include "crucible/plan.h"

int fastplan_refresh(struct cr_plan *p, const struct cr_recipe *r, cr_error *err);

#endif
