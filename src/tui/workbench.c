/*
 * The session behind the screen (see workbench.h).
 *
 * Invariants: `state` always equals the store's replay of the session's
 * events (every change goes through cr_store_set/undo/redo, which update
 * both); plans borrow their recipe, so every recipe made is kept until the
 * workbench is freed (a recipe is a few hundred bytes).
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "browser.h"
#include "workbench.h"

static struct cr_recipe **old_recipes;
static size_t nold_recipes;

static char *absolute(const char *path)
{
	char buf[PATH_MAX];
	if (realpath(path, buf))
		return cr_xstrdup(buf);
	return cr_xstrdup(path);
}

static int open_store(struct workbench *w, const char *db, cr_error *err)
{
	if (cr_store_open(db, &w->store, err) < 0)
		return -1;
	w->db_path = cr_xstrdup(cr_store_path(w->store));
	return 0;
}

static void update_depth(struct workbench *w)
{
	cr_error err = { 0 };
	if (cr_store_undo_depth(w->store, w->session, &w->undo_depth, &w->redo_depth, &err) < 0)
		w->undo_depth = w->redo_depth = 0;
}

int wb_create(struct workbench *w, const char *db, const char *base, const char *const *parents, int nparents,
	      cr_error *err)
{
	memset(w, 0, sizeof *w);
	cr_state_init(&w->state);
	if (open_store(w, db, err) < 0)
		return -1;
	w->nmodels = nparents + 1;
	w->model_paths = cr_xcalloc((size_t)w->nmodels, sizeof *w->model_paths);
	w->model_paths[0] = absolute(base);
	w->base_path = cr_xstrdup(w->model_paths[0]);
	char name[512];
	size_t pos = (size_t)snprintf(name, sizeof name, "%s", strrchr(w->base_path, '/') ? strrchr(w->base_path, '/') + 1 : w->base_path);
	for (int i = 0; i < nparents; i++) {
		w->model_paths[i + 1] = absolute(parents[i]);
		const char *s = strrchr(w->model_paths[i + 1], '/');
		if (pos < sizeof name)
			pos += (size_t)snprintf(name + pos, sizeof name - pos, " + %s", s ? s + 1 : w->model_paths[i + 1]);
	}
	w->session_name = cr_xstrdup(name);
	if (cr_store_session_create(w->store, name, w->base_path, (const char *const *)w->model_paths,
				    (size_t)w->nmodels, NULL, &w->session, err) < 0)
		return -1;
	/* The starting point: Assembly of Experts taking the base everywhere.  One
	 * batch, so undo never goes below it. */
	struct cr_change ch[CR_MAX_INPUTS + 1];
	size_t n = 0;
	ch[n++] = (struct cr_change){ "*", -1, "merge_method", "aoe" };
	for (int m = 0; m < w->nmodels && n < CR_MAX_INPUTS + 1; m++)
		ch[n++] = (struct cr_change){ "*", m, "weight", m == 0 ? "1" : "0" };
	if (cr_store_set_batch(w->store, w->session, ch, n, &w->state, err) < 0)
		return -1;
	update_depth(w);
	return 0;
}

int wb_load(struct workbench *w, const char *db, int64_t id, cr_error *err)
{
	memset(w, 0, sizeof *w);
	cr_state_init(&w->state);
	if (open_store(w, db, err) < 0)
		return -1;
	struct cr_session_info info;
	if (cr_store_session_get(w->store, id, &info, err) < 0)
		return -1;
	w->session = id;
	w->session_name = cr_xstrdup(info.name);
	w->base_path = cr_xstrdup(info.base);
	/* The models list normally starts with the base; put it first if it does not. */
	int has_base = 0;
	for (size_t i = 0; i < info.nparents; i++)
		has_base |= strcmp(info.parents[i], info.base) == 0;
	w->nmodels = (int)info.nparents + (has_base ? 0 : 1);
	w->model_paths = cr_xcalloc((size_t)w->nmodels, sizeof *w->model_paths);
	int m = 0;
	if (!has_base)
		w->model_paths[m++] = cr_xstrdup(info.base);
	for (size_t i = 0; i < info.nparents; i++)
		w->model_paths[m++] = cr_xstrdup(info.parents[i]);
	cr_session_info_free(&info);
	if (cr_store_session_state(w->store, id, -1, &w->state, err) < 0)
		return -1;
	update_depth(w);
	return 0;
}

void wb_free(struct workbench *w)
{
	for (int m = 0; m < CR_M__COUNT; m++)
		cr_plan_free(w->plans[m]);
	cr_recipe_free(w->recipe);
	for (size_t i = 0; i < nold_recipes; i++)
		cr_recipe_free(old_recipes[i]);
	free(old_recipes);
	old_recipes = NULL;
	nold_recipes = 0;
	free(w->plan_to_base);
	free(w->plan_rel);
	free(w->dec);
	free(w->dec_parent);
	for (int m = 0; m < w->nmodels; m++)
		free(w->model_paths[m]);
	free(w->model_paths);
	free(w->base_path);
	free(w->session_name);
	free(w->db_path);
	cr_state_free(&w->state);
	if (w->store)
		cr_store_close(w->store);
	memset(w, 0, sizeof *w);
}

char *wb_recipe_yaml(struct workbench *w, cr_error *err)
{
	return cr_state_to_yaml(&w->state, w->base_path, (const char *const *)w->model_paths, (size_t)w->nmodels, err);
}

/* Make w->recipe from the state; the previous one is kept alive for the plans that borrow it. */
static int make_recipe(struct workbench *w, cr_error *err)
{
	char *yaml = wb_recipe_yaml(w, err);
	if (!yaml)
		return -1;
	struct cr_recipe *r = NULL;
	int rc = cr_recipe_parse(yaml, strlen(yaml), "session recipe", &r, NULL, NULL, err);
	free(yaml);
	if (rc < 0)
		return -1;
	if (w->recipe) {
		old_recipes = cr_xrealloc(old_recipes, (nold_recipes + 1) * sizeof *old_recipes);
		old_recipes[nold_recipes++] = w->recipe;
	}
	w->recipe = r;
	return 0;
}

static void map_plan(struct workbench *w, const struct cr_ckpt *ui_base)
{
	struct cr_plan *p = w->plan;
	free(w->plan_to_base);
	free(w->plan_rel);
	free(w->dec);
	free(w->dec_parent);
	w->plan_to_base = cr_xmalloc((p->ntensors ? p->ntensors : 1) * sizeof *w->plan_to_base);
	w->plan_rel = cr_xmalloc((p->ntensors ? p->ntensors : 1) * p->nparents * sizeof *w->plan_rel);
	w->dec = cr_xmalloc(p->ntensors ? p->ntensors : 1);
	w->dec_parent = cr_xmalloc((p->ntensors ? p->ntensors : 1) * sizeof *w->dec_parent);
	for (size_t i = 0; i < p->ntensors; i++) {
		const struct cr_tensor *t = cr_ckpt_find(ui_base, p->t[i].name);
		w->plan_to_base[i] = t ? (size_t)(t - ui_base->tensors) : SIZE_MAX;
	}
}

void wb_adopt_plan(struct workbench *w, struct cr_plan *plan, const struct cr_ckpt *ui_base)
{
	if (!plan)
		return;
	enum cr_method_id m = plan->method;
	w->plan_pending = 0;
	if (w->plans[m] && w->plans[m] != plan)
		cr_plan_free(w->plans[m]);
	w->plans[m] = plan;
	if (w->recipe && w->recipe->method == m) {
		w->plan = plan;
		map_plan(w, ui_base);
		cr_error err = { 0 };
		if (cr_plan_refresh(plan, w->recipe, &err) < 0)
			snprintf(w->error, sizeof w->error, "%s", err.msg);
		else
			w->error[0] = '\0';
	} else {
		/* The method changed while the models were opening: plan for the current one. */
		wb_refresh(w, ui_base);
	}
}

void wb_refresh_recipe_only(struct workbench *w)
{
	cr_error err = { 0 };
	w->error[0] = '\0';
	if (make_recipe(w, &err) < 0)
		snprintf(w->error, sizeof w->error, "%s", err.msg);
	else
		w->plan_pending = 1;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

void wb_refresh(struct workbench *w, const struct cr_ckpt *ui_base)
{
	cr_error err = { 0 };
	w->error[0] = '\0';
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = make_recipe(w, &err);
	w->t_recipe_ms = ms_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	w->t_plan_ms = 0;
	if (rc < 0) {
		snprintf(w->error, sizeof w->error, "%s", err.msg);
		w->plan = NULL;
		return;
	}
	enum cr_method_id m = w->recipe->method;
	struct cr_plan *old = w->plan;
	if (!w->plans[m] && w->plan_pending) {
		/* The worker is opening the models for the first plan; it is adopted when it arrives. */
		w->plan = NULL;
		snprintf(w->error, sizeof w->error, "opening the models%s", "...");
		return;
	}
	if (!w->plans[m]) {
		/* A new method needs a new plan (it opens the checkpoints' headers again). */
		if (cr_plan_build(w->recipe, &w->plans[m], NULL, NULL, &err) < 0) {
			snprintf(w->error, sizeof w->error, "%s", err.msg);
			w->plans[m] = NULL;
			w->plan = NULL;
			return;
		}
	} else if (cr_plan_refresh(w->plans[m], w->recipe, &err) < 0) {
		snprintf(w->error, sizeof w->error, "%s", err.msg);
		w->plan = NULL;
		return;
	}
	w->t_plan_ms = ms_since(&t0);
	w->plan = w->plans[m];
	if (w->plan != old)
		map_plan(w, ui_base);
}

void wb_decide(struct workbench *w, struct browser *b)
{
	for (size_t i = 0; i < b->ntensors; i++)
		b->dec[i] = DEC_UNKNOWN;
	w->have_summary = 0;
	struct cr_plan *p = w->plan;
	if (!p) {
		browser_update_decisions(b);
		return;
	}
	size_t np = p->nparents, bp = (size_t)b->nparents;
	for (size_t i = 0; i < p->ntensors; i++) {
		size_t bi = w->plan_to_base[i];
		for (size_t j = 0; j < np; j++) {
			double r = NAN;
			if (j == 0 && p->has_base)
				r = 0;
			else if (bi != SIZE_MAX && j - (p->has_base ? 1 : 0) < bp)
				r = b->rel[bi * bp + j - (p->has_base ? 1 : 0)];
			w->plan_rel[i * np + j] = r;
		}
	}
	cr_plan_decide_all(p, w->plan_rel, w->dec, w->dec_parent);
	for (size_t i = 0; i < p->ntensors; i++) {
		size_t bi = w->plan_to_base[i];
		if (bi == SIZE_MAX)
			continue;
		switch ((enum cr_decision)w->dec[i]) {
		case CR_DEC_COPY:
			b->dec[bi] = (signed char)w->dec_parent[i];
			break;
		case CR_DEC_COMPUTE:
			b->dec[bi] = DEC_MERGE;
			break;
		default:
			b->dec[bi] = DEC_PENDING;
			break;
		}
	}
	cr_plan_summarize(p, w->plan_rel, &w->summary);
	w->have_summary = 1;
	browser_update_decisions(b);
}

int wb_set(struct workbench *w, const char *scope, int model, const char *key, const char *value, cr_error *err)
{
	if (cr_store_set(w->store, w->session, scope, model, key, value, &w->state, NULL, err) < 0)
		return -1;
	update_depth(w);
	return 0;
}

int wb_undo(struct workbench *w, int redo, int *changed, cr_error *err)
{
	*changed = 0;
	if (!redo && w->undo_depth <= 1)
		return 0; /* the session's starting point stays */
	int rc = redo ? cr_store_redo(w->store, w->session, &w->state, changed, err)
		      : cr_store_undo(w->store, w->session, &w->state, changed, err);
	update_depth(w);
	return rc;
}

const char *wb_value(const struct workbench *w, const char *scope, int model, const char *key, int *exact)
{
	static char def[64];
	*exact = 0;
	const char *v = cr_state_get(&w->state, scope, model, key);
	if (v) {
		*exact = 1;
		return v;
	}
	if ((v = cr_state_get(&w->state, "*", model, key)))
		return v;
	if (model >= 0 && (v = cr_state_get(&w->state, "*", -1, key)))
		return v;
	enum cr_param_id p = cr_param_parse(key);
	if (p == CR_P_NONE)
		return "";
	enum cr_method_id m = w->recipe ? w->recipe->method : CR_M_AOE;
	double d = cr_param_default(m, p);
	if (cr_param_info(p)->is_bool)
		snprintf(def, sizeof def, "%s", d != 0 ? "true" : "false");
	else
		cr_fmt_double(d, def, sizeof def);
	return def;
}
