/*
 * The merge run (see run.h).
 *
 * The job parses the recipe text and builds its own plan on the worker
 * thread (the UI's plan keeps serving live decisions meanwhile), opens its
 * own store connection, records the run and each written tensor, and runs
 * the engine.  Cancelling sets the worker's flag; the engine sees it
 * between chunks, removes OUT.partial and fails with CR_E_CANCELLED, so no
 * folder named OUT is left behind.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "browser.h"
#include "crucible/engine.h"
#include "crucible/format.h"
#include "run.h"
#include "workbench.h"
#include "worker.h"

struct run_job {
	struct worker *w;
	char *yaml, *out, *db;
	int64_t session;
	struct cr_store *st; /* the worker's connection */
	int64_t run_id;
	int slow_ms;
	struct cr_merge_result res;
	double seconds;
};

/* The last finished run, for the panel. */
static char last_result[512];

static int on_progress(void *ctx, const struct cr_merge_progress *p)
{
	struct run_job *j = ctx;
	/* Tests slow the run down to have time to cancel it (CRUCIBLE_TUI_SLOW_RUN=milliseconds per call). */
	if (j->slow_ms > 0)
		usleep((useconds_t)j->slow_ms * 1000);
	struct work_progress wp = { 0 };
	wp.bytes_done = p->done;
	wp.bytes_total = p->total;
	wp.items_done = p->tensors_done;
	wp.items_total = p->ntensors;
	if (p->tensor)
		snprintf(wp.current, sizeof wp.current, "%s", p->tensor);
	worker_progress(j->w, &wp);
	return worker_cancelled(j->w);
}

static void on_tensor(void *ctx, const char *name, enum cr_decision d, int parent, uint64_t checksum)
{
	struct run_job *j = ctx;
	if (!j->st)
		return;
	char src[32], sum[32];
	snprintf(src, sizeof src, "%d", parent);
	snprintf(sum, sizeof sum, "%016llx", (unsigned long long)checksum);
	cr_error err = { 0 };
	cr_store_run_tensor(j->st, j->run_id, name, cr_decision_name(d), parent >= 0 ? src : NULL, sum, &err);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run(struct worker *w, void *ctx, char *errbuf)
{
	struct run_job *j = ctx;
	cr_error err = { 0 };
	struct cr_recipe *r = NULL;
	struct cr_plan *plan = NULL;
	double t0 = now();
	int rc = -1;
	if (cr_recipe_parse(j->yaml, strlen(j->yaml), "session recipe", &r, NULL, NULL, &err) < 0)
		goto out;
	if (cr_store_open(j->db, &j->st, &err) < 0) {
		j->st = NULL;
		goto out;
	}
	if (cr_store_run_begin(j->st, j->session, j->yaml, "/", j->out, &j->run_id, &err) < 0)
		goto out;
	if (cr_plan_build(r, &plan, NULL, NULL, &err) < 0)
		goto finish;
	struct cr_merge_opts o = { 0 };
	o.out = j->out;
	o.recipe_text = j->yaml;
	o.progress = on_progress;
	o.tensor_done = on_tensor;
	o.ctx = j;
	rc = cr_merge_run(plan, &o, &j->res, &err);
finish:
	j->seconds = now() - t0;
	{
		cr_error e2 = { 0 };
		enum cr_run_status s = rc == 0 ? CR_RUN_DONE : err.code == CR_E_CANCELLED ? CR_RUN_CANCELLED : CR_RUN_FAILED;
		cr_store_run_flush(j->st, &e2);
		cr_store_run_finish(j->st, j->run_id, s, (int64_t)j->res.bytes, (int64_t)(j->res.copied + j->res.computed),
				    j->seconds, rc == 0 ? NULL : err.msg, &e2);
	}
out:
	(void)w;
	if (rc < 0)
		snprintf(errbuf, 1024, "%s", err.msg);
	cr_plan_free(plan);
	cr_recipe_free(r);
	if (j->st)
		cr_store_close(j->st);
	j->st = NULL;
	return rc;
}

static int done(struct app *a, void *ctx, int rc, const char *err, int cancelled)
{
	struct run_job *j = ctx;
	char sz[32];
	if (rc == 0)
		snprintf(last_result, sizeof last_result, "merge done: %s (%zu copied, %zu computed, %s in %.1f s)", j->out,
			 j->res.copied, j->res.computed, cr_fmt_bytes(j->res.bytes, sz, sizeof sz), j->seconds);
	else if (cancelled)
		snprintf(last_result, sizeof last_result, "merge cancelled: %s was not created", j->out);
	else
		snprintf(last_result, sizeof last_result, "merge failed: %s", err);
	if (a)
		app_message(a, rc == 0 ? CR_ROLE_OK : cancelled ? CR_ROLE_WARNING : CR_ROLE_ERROR, "%s", last_result);
	free(j->yaml);
	free(j->out);
	free(j->db);
	free(j);
	return V_REDRAW;
}

int run_start_recipe(struct app *a, const char *db, int64_t session, const char *recipe_yaml, const char *out)
{
	if (worker_busy(a->worker) == WORK_SCAN) {
		app_message(a, CR_ROLE_WARNING, "the statistics scan is still running (x cancels it); try again after it");
		return -1;
	}
	if (worker_busy(a->worker)) {
		app_message(a, CR_ROLE_WARNING, "a merge is already running");
		return -1;
	}
	struct stat st;
	if (stat(out, &st) == 0) {
		app_message(a, CR_ROLE_ERROR, "%s already exists; choose a new folder", out);
		return -1;
	}
	struct run_job *j = cr_xcalloc(1, sizeof *j);
	j->w = a->worker;
	j->yaml = cr_xstrdup(recipe_yaml);
	char abs[PATH_MAX];
	if (out[0] != '/' && getcwd(abs, sizeof abs)) {
		size_t l = strlen(abs);
		snprintf(abs + l, sizeof abs - l, "/%s", out);
		j->out = cr_xstrdup(abs);
	} else {
		j->out = cr_xstrdup(out);
	}
	j->db = cr_xstrdup(db);
	j->session = session;
	const char *slow = getenv("CRUCIBLE_TUI_SLOW_RUN");
	j->slow_ms = slow ? atoi(slow) : 0;
	last_result[0] = '\0';
	struct work_job job = { WORK_MERGE, j, run, NULL, done };
	if (worker_start(a->worker, &job) < 0) {
		free(j->yaml);
		free(j->out);
		free(j->db);
		free(j);
		app_message(a, CR_ROLE_ERROR, "cannot start the merge thread");
		return -1;
	}
	app_message(a, CR_ROLE_OK, "merge started into %s", j->out);
	return 0;
}

static void on_out(struct app *a, const char *text, void *ctx)
{
	(void)ctx;
	if (!text || !text[0])
		return;
	cr_error err = { 0 };
	char *yaml = wb_recipe_yaml(&a->wb, &err);
	if (!yaml) {
		app_message(a, CR_ROLE_ERROR, "%s", err.msg);
		return;
	}
	run_start_recipe(a, a->wb.db_path, a->wb.session, yaml, text);
	free(yaml);
}

void run_ask(struct app *a)
{
	if (worker_busy(a->worker) == WORK_MERGE) {
		app_message(a, CR_ROLE_WARNING, "a merge is already running (x cancels it)");
		return;
	}
	if (!a->have_wb || !a->wb.plan) {
		app_message(a, CR_ROLE_ERROR, "no plan yet: %s", a->wb.error[0] ? a->wb.error : "still opening the models");
		return;
	}
	/* Suggest BASE-merged in the current folder: typing replaces it, Enter takes it. */
	char def[512] = "";
	if (a->wb.base_path) {
		const char *slash = strrchr(a->wb.base_path, '/');
		snprintf(def, sizeof def, "%s-merged", slash && slash[1] ? slash + 1 : a->wb.base_path);
	}
	prompt_start(a, "merge into folder: ", def, NULL, on_out, NULL);
}

static void on_cancel(struct app *a, const char *text, void *ctx)
{
	(void)ctx;
	if (text && worker_busy(a->worker)) {
		worker_cancel(a->worker);
		app_message(a, CR_ROLE_WARNING, "cancelling%s", G->ellipsis);
	}
}

void run_ask_cancel(struct app *a)
{
	enum work_kind k = worker_busy(a->worker);
	if (k == WORK_NONE)
		app_message(a, CR_ROLE_WARNING, "nothing is running");
	else
		confirm_start(a, k == WORK_MERGE ? "Cancel the running merge?" : "Cancel the statistics scan?", on_cancel,
			      NULL);
}

void run_status_text(struct app *a, char *buf, size_t len)
{
	buf[0] = '\0';
	if (worker_busy(a->worker) != WORK_MERGE) {
		snprintf(buf, len, "%s", last_result);
		return;
	}
	if (!a->worker) {
		buf[0] = '\0';
		return;
	}
	struct work_progress p;
	double el;
	worker_get_progress(a->worker, &p, &el);
	double frac = p.bytes_total ? (double)p.bytes_done / (double)p.bytes_total : 0;
	char rate[32] = "?", eta[32] = "?";
	if (el > 0.1 && p.bytes_done) {
		double bps = (double)p.bytes_done / el;
		cr_fmt_bytes((uint64_t)bps, rate, sizeof rate);
		double left = (double)(p.bytes_total - p.bytes_done) / bps;
		snprintf(eta, sizeof eta, "%d:%02d", (int)left / 60, (int)left % 60);
	}
	snprintf(buf, len, "merging %3.0f%%  %s/s  ETA %s  %zu/%zu  %s", 100 * frac, rate, eta, p.items_done,
		 p.items_total, p.current);
}
