/*
 * The session behind the screen: the store connection of the UI thread, the
 * session's parameter state, the recipe made from it and the plan that
 * decides each tensor.  Every parameter change is a store event (so undo,
 * redo and reopening replay it); after each change the recipe is rebuilt,
 * the plan refreshed and every tensor decided again.  No curses here.
 *
 * Index spaces: the browser's tensors are the base catalog's; the plan has
 * its own order, mapped with plan_to_base.  Models: 0 is the base, then the
 * parents in command-line order; the plan's parents are the same list.
 */
#ifndef CRUCIBLE_TUI_WORKBENCH_H
#define CRUCIBLE_TUI_WORKBENCH_H

#include <stdint.h>

#include "crucible/error.h"
#include "crucible/plan.h"
#include "crucible/recipe.h"
#include "crucible/state.h"
#include "crucible/store.h"

struct browser;

struct workbench {
	struct cr_store *store;
	char *db_path;
	int64_t session;
	char *session_name;
	char *base_path;	  /* absolute */
	char **model_paths;	  /* [nmodels], absolute; 0 is the base */
	int nmodels;
	struct cr_state state;
	struct cr_recipe *recipe; /* from the state; NULL when it does not parse */
	struct cr_plan *plans[CR_M__COUNT]; /* one per method tried (method changes need a new plan) */
	struct cr_plan *plan;		    /* the current method's, or NULL */
	size_t *plan_to_base;		    /* [plan->ntensors], SIZE_MAX when not in the base */
	double *plan_rel;		    /* [plan->ntensors * nmodels] */
	uint8_t *dec;
	int16_t *dec_parent;
	struct cr_plan_summary summary;
	int have_summary;
	char error[1024]; /* why there are no decisions, or "" */
	int undo_depth, redo_depth;
	int plan_pending;
	double t_recipe_ms, t_plan_ms; /* the last refresh's parts */ /* the worker is building the first plan */
};

/* Open the store and create a session for base + parents (paths as given). */
int wb_create(struct workbench *w, const char *db, const char *base, const char *const *parents, int nparents,
	      cr_error *err);
/* Open the store and load session id. */
int wb_load(struct workbench *w, const char *db, int64_t id, cr_error *err);
void wb_free(struct workbench *w);

/* Take the first plan (built on the worker) for the current method. */
void wb_adopt_plan(struct workbench *w, struct cr_plan *plan, const struct cr_ckpt *ui_base);
/* Recipe text of the current state (malloc'd). */
char *wb_recipe_yaml(struct workbench *w, cr_error *err);
/* Make the recipe only (before the first plan arrives from the worker). */
void wb_refresh_recipe_only(struct workbench *w);
/* Rebuild recipe -> plan -> decisions after the state changed; builds a plan for a new method. */
void wb_refresh(struct workbench *w, const struct cr_ckpt *ui_base);
/* Decisions again (new distances arrived). */
void wb_decide(struct workbench *w, struct browser *b);

/* Parameter changes, recorded as events.  value NULL unsets. */
int wb_set(struct workbench *w, const char *scope, int model, const char *key, const char *value, cr_error *err);
int wb_undo(struct workbench *w, int redo, int *changed, cr_error *err);

/* The value in effect for (scope, model, key) and whether it is set at exactly that scope. */
const char *wb_value(const struct workbench *w, const char *scope, int model, const char *key, int *exact);

#endif
