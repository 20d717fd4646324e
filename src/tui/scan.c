/*
 * The start-up job on the worker thread: build the plan (which opens every
 * model's headers), then run the statistics scan over the plan's opened
 * checkpoints.  Results travel to the UI thread in a queue under the
 * worker's lock: each finished tensor's ||B||^2 and ||P-B||^2 per parent.
 * The UI drains the queue on every wake-up, so columns fill in as the scan
 * goes and the keyboard is never blocked.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "crucible/stats.h"
#include "crucible/store.h"
#include "scan.h"
#include "workbench.h"
#include "worker.h"

struct scan_item {
	size_t index; /* in the UI's base catalog */
	double base_sq;
	double dd[8], rel[8];
};

struct scan_job {
	struct worker *w;
	struct cr_recipe *recipe;	 /* read by the worker while building the plan */
	const struct cr_ckpt *ui_base; /* only cr_ckpt_find on it: read-only */
	int nparents, no_scan;
	char *db;
	/* under the worker's lock */
	struct cr_plan *plan;
	int plan_ready, plan_taken;
	struct scan_item *q;
	size_t nq, capq;
	/* owned by the worker until done */
	struct cr_stats *stats;
	double seconds;
};

static int on_progress(const struct cr_stats_progress *p, void *user)
{
	struct scan_job *j = user;
	struct work_progress wp = { 0 };
	wp.bytes_done = p->bytes_done;
	wp.bytes_total = p->bytes_total;
	wp.items_done = p->tensors_done;
	wp.items_total = p->tensors_total;
	if (p->tensor)
		snprintf(wp.current, sizeof wp.current, "%s", p->tensor);
	worker_progress(j->w, &wp);
	return worker_cancelled(j->w);
}

static void on_tensor(const struct cr_stats *s, const struct cr_stats_tensor *t, void *user)
{
	struct scan_job *j = user;
	const struct cr_tensor *ut = cr_ckpt_find(j->ui_base, t->t->name);
	if (!ut)
		return;
	struct scan_item it = { 0 };
	it.index = (size_t)(ut - j->ui_base->tensors);
	it.base_sq = NAN;
	for (size_t p = 0; p < s->nparents && p < 8; p++) {
		const struct cr_stats_pair *pr = &t->pairs[p];
		if (pr->status == CR_STATS_OK || pr->status == CR_STATS_IDENTICAL) {
			it.base_sq = pr->s.base_sq;
			it.dd[p] = pr->s.sum_dd;
			it.rel[p] = pr->rel;
		} else {
			it.dd[p] = it.rel[p] = NAN;
		}
	}
	worker_lock(j->w);
	if (j->nq == j->capq) {
		j->capq = j->capq ? j->capq * 2 : 1024;
		j->q = cr_xrealloc(j->q, j->capq * sizeof *j->q);
	}
	j->q[j->nq++] = it;
	worker_unlock(j->w);
}

static int run(struct worker *w, void *ctx, char *errbuf)
{
	struct scan_job *j = ctx;
	cr_error err = { 0 };
	struct cr_plan *plan = NULL;
	if (cr_plan_build(j->recipe, &plan, NULL, NULL, &err) < 0) {
		snprintf(errbuf, 1024, "%s", err.msg);
		return -1;
	}
	worker_lock(w);
	j->plan = plan;
	j->plan_ready = 1;
	worker_unlock(w);
	worker_wake(w);
	if (!plan->has_base || plan->nparents < 2 || j->no_scan)
		return 0;
	/* The session database caches the statistics (its own handle: this thread's), so reopening is instant. */
	struct cr_stats_cache cache, *cp = NULL;
	if (cr_store_stats_cache_open(j->db, &cache, &err) == 0)
		cp = &cache;
	struct cr_stats_options opt = { 0 };
	opt.cache = cp;
	opt.progress = on_progress;
	opt.on_tensor = on_tensor;
	opt.user = j;
	struct cr_stats *stats = NULL;
	/* The plan's parents stay open as long as the plan lives, and the plan outlives the stats. */
	int rc = cr_stats_scan(plan->parents[0], (const struct cr_ckpt *const *)plan->parents + 1, plan->nparents - 1,
			       &opt, &stats, &err);
	if (cp)
		cr_stats_cache_close(cp);
	j->stats = stats;
	if (rc < 0) {
		snprintf(errbuf, 1024, "%s", err.msg);
		return -1;
	}
	return 0;
}

/* UI thread. */
static int drain(struct app *a, void *ctx)
{
	struct scan_job *j = ctx;
	struct browser *b = a->browser;
	struct workbench *wb = &a->wb;
	struct cr_plan *plan = NULL;
	struct scan_item *q = NULL;
	size_t nq = 0;
	worker_lock(j->w);
	if (j->plan_ready && !j->plan_taken) {
		plan = j->plan;
		j->plan_taken = 1;
	}
	if (j->nq) {
		q = j->q;
		nq = j->nq;
		j->q = NULL;
		j->nq = j->capq = 0;
	}
	worker_unlock(j->w);
	if (plan)
		wb_adopt_plan(wb, plan, a->ckpt[0]);
	size_t np = (size_t)b->nparents;
	for (size_t k = 0; k < nq; k++) {
		size_t i = q[k].index;
		b->base_sq[i] = q[k].base_sq;
		for (size_t p = 0; p < np && p < 8; p++) {
			b->dd[i * np + p] = q[k].dd[p];
			b->rel[i * np + p] = q[k].rel[p];
		}
	}
	free(q);
	if (nq)
		browser_update_groups(b);
	if (plan || nq)
		wb_decide(wb, b);
	return V_REDRAW;
}

static int done(struct app *a, void *ctx, int rc, const char *err, int cancelled)
{
	struct scan_job *j = ctx;
	int flags = 0;
	if (a) {
		flags = drain(a, ctx) | V_REDRAW;
		if (j->stats) {
			a->browser->stats = j->stats;
			j->stats = NULL;
		}
		if (!j->plan_ready) {
			/* No plan came: say why wherever decisions would show. */
			a->wb.plan_pending = 0;
			snprintf(a->wb.error, sizeof a->wb.error, "%s", err && err[0] ? err : "no plan");
		}
		if (cancelled)
			app_message(a, CR_ROLE_WARNING, "statistics scan cancelled");
		else if (rc < 0)
			app_message(a, CR_ROLE_ERROR, "%s", err);
		else if (!j->no_scan)
			app_note(a, CR_ROLE_OK, "statistics ready for %zu tensors", a->browser->ntensors);
		else
			app_note(a, CR_ROLE_OK, "plan ready (no statistics scan)");
	} else {
		/* Shutting down: the UI is gone.  A plan never handed over is ours to free. */
		if (j->plan && !j->plan_taken) {
			cr_stats_free(j->stats);
			j->stats = NULL;
			cr_plan_free(j->plan);
		}
	}
	cr_stats_free(j->stats);
	free(j->q);
	free(j->db);
	free(j);
	return flags;
}

int scan_start(struct app *a)
{
	if (!a->wb.recipe)
		return -1;
	struct scan_job *j = cr_xcalloc(1, sizeof *j);
	j->w = a->worker;
	j->recipe = a->wb.recipe;
	j->ui_base = a->ckpt[0];
	j->nparents = a->nmodels - 1;
	j->no_scan = a->opt.no_scan;
	j->db = cr_xstrdup(a->wb.db_path);
	struct work_job job = { WORK_SCAN, j, run, drain, done };
	if (worker_start(a->worker, &job) < 0) {
		free(j->db);
		free(j);
		return -1;
	}
	return 0;
}
