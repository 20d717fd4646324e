/*
 * The merge panel (see panel.h).
 *
 * Rows on the left: the method, the scope, then the method's parameters
 * straight from the method table (crucible/methods.h): per-model ones (λ =
 * weight, density, ...) once per model, global ones (δ, normalize, ...)
 * once.  A value set at exactly this scope is bright; an inherited one is
 * dim.  On the right, the plan's summary: per class, how many tensors and
 * bytes are copied from each model, computed or still pending.
 *
 * A change is one store event; then the recipe, plan and decisions are
 * rebuilt (workbench.c), and the redraw shows the new decision column.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "browser.h"
#include "crucible/format.h"
#include "panel.h"
#include "run.h"
#include "workbench.h"
#include "worker.h"

enum { ROW_METHOD, ROW_SCOPE, ROW_PARAM0 };

struct prow {
	enum cr_param_id param;
	int model; /* -1 for a global parameter */
};

struct panel {
	struct app *app;
	struct browser *b;
	int sel;
	char scope[256];
	struct prow rows[64];
	int nrows; /* parameter rows */
	int y, x, h, w;
	char edit_key[32];
	int edit_model;
};

static struct workbench *WB(struct panel *p)
{
	return &p->app->wb;
}

static enum cr_method_id method_of(struct panel *p)
{
	const char *m = cr_state_get(&WB(p)->state, "*", -1, "merge_method");
	enum cr_method_id id = m ? cr_method_parse(m) : CR_M_NONE;
	return id == CR_M_NONE ? CR_M_AOE : id;
}

static void build_rows(struct panel *p)
{
	enum cr_method_id m = method_of(p);
	p->nrows = 0;
	/* Per-model parameters first (λ leads), then global ones, in table order. */
	for (int pass = 0; pass < 2; pass++)
		for (int id = 0; id < CR_P__COUNT; id++) {
			const struct cr_param_info *pi = cr_param_info(id);
			if (!cr_method_uses(m, id) || pi->per_model != (pass == 0) || id == CR_P_INT8_MASK)
				continue;
			if (pi->per_model) {
				for (int mo = 0; mo < WB(p)->nmodels && p->nrows < 64; mo++)
					p->rows[p->nrows++] = (struct prow){ id, mo };
			} else if (p->nrows < 64) {
				p->rows[p->nrows++] = (struct prow){ id, -1 };
			}
		}
	if (p->sel >= ROW_PARAM0 + p->nrows)
		p->sel = ROW_PARAM0 + p->nrows - 1;
}

struct panel *panel_new(struct app *a, struct browser *b)
{
	struct panel *p = cr_xcalloc(1, sizeof *p);
	p->app = a;
	p->b = b;
	snprintf(p->scope, sizeof p->scope, "*");
	build_rows(p);
	p->sel = ROW_PARAM0;
	return p;
}

void panel_free(struct panel *p)
{
	free(p);
}

static int classes_present(struct panel *p, int *present)
{
	int n = 0;
	memset(present, 0, CR_CLASS__COUNT * sizeof *present);
	const struct cr_ckpt *c = p->app->ckpt[0];
	for (size_t i = 0; i < c->ntensors; i++)
		present[c->tensors[i].cls] = 1;
	for (int k = 0; k < CR_CLASS__COUNT; k++)
		n += present[k];
	return n;
}

int panel_height(const struct panel *p, int rows)
{
	if (rows < 20)
		return 0;
	int present[CR_CLASS__COUNT];
	int ncls = classes_present((struct panel *)p, present);
	int need = 1 + (ROW_PARAM0 + p->nrows > ncls + 2 ? ROW_PARAM0 + p->nrows : ncls + 2);
	int most = rows / 2 - 2;
	return need < most ? need : most;
}

static const char *param_label(struct panel *p, const struct prow *r, char *buf, size_t len)
{
	const char *name = r->param == CR_P_WEIGHT  ? G->lambda
			   : r->param == CR_P_DELTA ? G->delta
						    : cr_param_info(r->param)->name;
	if (r->model >= 0)
		snprintf(buf, len, "%s %s", name, browser_model_name(p->b, r->model));
	else
		snprintf(buf, len, "%s", name);
	return buf;
}

static const char *scope_text(const char *scope, char *buf, size_t len)
{
	if (strcmp(scope, "*") == 0)
		snprintf(buf, len, "all tensors");
	else
		snprintf(buf, len, "%s", scope);
	return buf;
}

/* "1.4G" */
static const char *short_bytes(uint64_t n, char *buf, size_t len)
{
	static const char unit[] = "BKMGTP";
	double v = (double)n;
	int u = 0;
	while (v >= 1000 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)n);
	else
		snprintf(buf, len, v < 10 ? "%.1f%c" : "%.0f%c", v, unit[u]);
	return buf;
}

static void draw_row(struct panel *p, int y, int x, int w, const char *label, const char *value, int active,
		     int exact, int focused)
{
	char buf[256];
	int lw = 16;
	put_text(y, x, lw, CR_ROLE_PANEL_LABEL, label, 0);
	snprintf(buf, sizeof buf, "%s %s %s", G->arrow_left, value, G->arrow_right);
	if (active && focused)
		put_text(y, x + lw, w - lw, CR_ROLE_PANEL_ACTIVE, buf, 0);
	else if (active)
		put_text(y, x + lw, w - lw, CR_ROLE_CURSOR_IDLE, buf, 0);
	else
		put_text(y, x + lw, w - lw, exact ? CR_ROLE_PANEL_VALUE : CR_ROLE_DIM, buf, 0);
}

static void draw_summary(struct panel *p, int y, int x, int h, int w)
{
	struct workbench *wb = WB(p);
	char buf[128], a[32];
	if (!wb->plan || !wb->have_summary) {
		put_text(y, x, w, wb->error[0] ? CR_ROLE_ERROR : CR_ROLE_DIM,
			 wb->error[0] ? wb->error : "summary: waiting for the plan (opening the models)", 0);
		return;
	}
	const struct cr_plan_summary *s = &wb->summary;
	size_t np = s->nparents;
	/* Columns: copy from each model, compute, pending (when any). */
	int pending = 0;
	uint64_t tot_c[CR_MAX_INPUTS + 2] = { 0 }, tot_b[CR_MAX_INPUTS + 2] = { 0 };
	for (int k = 0; k < CR_CLASS__COUNT; k++)
		for (size_t j = 0; j < np + 2; j++) {
			tot_c[j] += s->count[k][j];
			tot_b[j] += s->bytes[k][j];
		}
	pending = tot_c[np + 1] > 0;
	int ncol = (int)np + 1 + pending;
	int cw = 13, lw = 14;
	if (lw + ncol * cw > w)
		cw = (w - lw) / (ncol ? ncol : 1);
	fill_row(y, x, w, CR_ROLE_HEADER);
	put_text(y, x, lw, CR_ROLE_HEADER, "where from", 0);
	for (int c = 0; c < ncol; c++) {
		const char *t = c < (int)np ? browser_model_name(p->b, c) : c == (int)np ? "merge" : "pending";
		put_text(y, x + lw + c * cw, cw - 1, c == (int)np ? CR_ROLE_DECISION_MERGE : CR_ROLE_HEADER, t, 1);
	}
	int row = 1;
	for (int k = 0; k <= CR_CLASS__COUNT && row < h; k++) {
		const uint64_t *cnt = k < CR_CLASS__COUNT ? s->count[k] : tot_c;
		const uint64_t *byt = k < CR_CLASS__COUNT ? s->bytes[k] : tot_b;
		uint64_t any = 0;
		for (size_t j = 0; j < np + 2; j++)
			any += cnt[j];
		if (!any)
			continue;
		put_text(y + row, x, lw, k < CR_CLASS__COUNT ? CR_ROLE_CLASS : CR_ROLE_PANEL_TITLE,
			 k < CR_CLASS__COUNT ? cr_class_name(k) : "total", 0);
		for (int c = 0; c < ncol; c++) {
			size_t j = c < (int)np ? (size_t)c : c == (int)np ? np : np + 1;
			if (cnt[j])
				snprintf(buf, sizeof buf, "%llu %s", (unsigned long long)cnt[j], short_bytes(byt[j], a, sizeof a));
			else
				snprintf(buf, sizeof buf, "-");
			enum cr_color_role role = !cnt[j]	 ? CR_ROLE_DIM
						  : j == np	 ? CR_ROLE_DECISION_MERGE
						  : j == 0	 ? CR_ROLE_PANEL_LABEL
						  : j < np	 ? CR_ROLE_DECISION_PARENT
								 : CR_ROLE_WARNING;
			put_text(y + row, x + lw + c * cw, cw - 1, role, buf, 1);
		}
		row++;
	}
}

/* A bar over the panel's last row while the worker runs: done part, then the rest. */
static void draw_progress(struct panel *p, int y, int x, int w)
{
	struct worker *wk = p->app->worker;
	enum work_kind k = worker_busy(wk);
	if (k == WORK_NONE)
		return;
	struct work_progress pr;
	double el;
	worker_get_progress(wk, &pr, &el);
	double frac = pr.bytes_total ? (double)pr.bytes_done / (double)pr.bytes_total
		      : pr.items_total ? (double)pr.items_done / (double)pr.items_total
				       : 0;
	char text[512], rate[32] = "", eta[32] = "";
	if (el > 0.1 && pr.bytes_done) {
		double bps = (double)pr.bytes_done / el;
		cr_fmt_bytes((uint64_t)bps, rate, sizeof rate);
		strcat(rate, "/s");
		double left = (double)(pr.bytes_total - pr.bytes_done) / bps;
		snprintf(eta, sizeof eta, "ETA %d:%02d", (int)left / 60, (int)left % 60);
	}
	snprintf(text, sizeof text, " %s %3.0f%%  %s  %s  %zu/%zu tensors  %s", k == WORK_MERGE ? "merge" : "scan",
		 100 * frac, rate, eta, pr.items_done, pr.items_total, pr.current);
	int done = (int)(frac * w);
	if (done > w)
		done = w;
	/* The text runs across both parts; each part keeps its role (tensor names are ASCII). */
	char line[1024];
	snprintf(line, sizeof line, "%-*.*s", w, w, text);
	attrset(role_attr(CR_ROLE_PROGRESS));
	mvaddnstr(y, x, line, done);
	attrset(role_attr(CR_ROLE_PROGRESS_TODO));
	mvaddnstr(y, x + done, line + done, w - done);
	attrset(A_NORMAL);
}

void panel_draw(struct panel *p, int y, int x, int h, int w, int focused)
{
	struct workbench *wb = WB(p);
	p->y = y;
	p->x = x;
	p->h = h;
	p->w = w;
	build_rows(p);
	char buf[512], sc[256];
	for (int i = 0; i < h; i++)
		fill_row(y + i, x, w, CR_ROLE_NORMAL);
	char run[256] = "";
	run_status_text(p->app, run, sizeof run);
	snprintf(buf, sizeof buf, "%s merge panel (Tab)  session %lld \"%s\"  undo %d  redo %d %s%s", G->hbar,
		 (long long)wb->session, wb->session_name ? wb->session_name : "", wb->undo_depth > 0 ? wb->undo_depth - 1 : 0,
		 wb->redo_depth, run[0] ? " " : "", run);
	put_text(y, x, w, focused ? CR_ROLE_PANEL_TITLE : CR_ROLE_BORDER, buf, 0);
	int lw = w >= 100 ? 44 : w / 2;
	int exact;
	enum cr_method_id m = method_of(p);
	draw_row(p, y + 1, x, lw, "method", cr_method_info(m)->name, p->sel == ROW_METHOD, 1, focused);
	draw_row(p, y + 2, x, lw, "scope", scope_text(p->scope, sc, sizeof sc), p->sel == ROW_SCOPE, 1, focused);
	for (int i = 0; i < p->nrows && 3 + i < h; i++) {
		const struct prow *r = &p->rows[i];
		const char *v = wb_value(wb, p->scope, r->model, cr_param_info(r->param)->name, &exact);
		draw_row(p, y + 3 + i, x, lw, param_label(p, r, buf, sizeof buf), v, p->sel == ROW_PARAM0 + i, exact,
			 focused);
	}
	if (3 + p->nrows < h)
		put_text(y + h - 1, x, lw, CR_ROLE_DIM,
			 focused ? "Up/Down pick  Left/Right change  Enter type  Tab tree"
				 : "Tab: edit here   c: scope = the row's class", 0);
	draw_summary(p, y + 1, x + lw + 2, h - 1, w - lw - 2);
	draw_progress(p, y + h - 1, x, w);
}

/* ---- changes ---- */

static void after_change(struct panel *p, const char *what)
{
	struct app *a = p->app;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	wb_refresh(WB(p), a->ckpt[0]);
	struct timespec tm;
	clock_gettime(CLOCK_MONOTONIC, &tm);
	wb_decide(WB(p), p->b);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	a->t_recipe = WB(p)->t_recipe_ms;
	a->t_plan = WB(p)->t_plan_ms;
	a->t_decide = (double)(t1.tv_sec - tm.tv_sec) * 1e3 + (double)(t1.tv_nsec - tm.tv_nsec) / 1e6;
	a->last_change_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	a->change_pending = 1;
	build_rows(p);
	if (WB(p)->error[0])
		app_message(a, CR_ROLE_ERROR, "%s", WB(p)->error);
	else if (what)
		app_message(a, CR_ROLE_OK, "%s", what);
}

static int set_value(struct panel *p, const char *key, int model, const char *value)
{
	cr_error err = { 0 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (wb_set(WB(p), p->scope, model, key, value, &err) < 0) {
		app_message(p->app, CR_ROLE_ERROR, "%s", err.msg);
		return V_HANDLED | V_REDRAW;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	p->app->last_event_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	char msg[512], sc[256];
	int exact;
	snprintf(msg, sizeof msg, "%s%s%s = %s on %s", key, model >= 0 ? " " : "",
		 model >= 0 ? browser_model_name(p->b, model) : "", wb_value(WB(p), p->scope, model, key, &exact),
		 scope_text(p->scope, sc, sizeof sc));
	after_change(p, msg);
	return V_HANDLED | V_REDRAW;
}

static int set_method(struct panel *p, enum cr_method_id m)
{
	cr_error err = { 0 };
	if (wb_set(WB(p), "*", -1, "merge_method", cr_method_info(m)->name, &err) < 0) {
		app_message(p->app, CR_ROLE_ERROR, "%s", err.msg);
		return V_HANDLED | V_REDRAW;
	}
	char msg[128];
	snprintf(msg, sizeof msg, "method %s: %s", cr_method_info(m)->name, cr_method_info(m)->desc);
	after_change(p, msg);
	return V_HANDLED | V_REDRAW;
}

static double step_of(struct panel *p, enum cr_param_id id)
{
	if (id == CR_P_WEIGHT)
		return p->app->cfg.lambda_step;
	if (id == CR_P_DELTA)
		return p->app->cfg.delta_step;
	return 0.05;
}

static int nudge(struct panel *p, int dir)
{
	const struct prow *r = &p->rows[p->sel - ROW_PARAM0];
	const struct cr_param_info *pi = cr_param_info(r->param);
	int exact;
	const char *cur = wb_value(WB(p), p->scope, r->model, pi->name, &exact);
	if (pi->is_bool)
		return set_value(p, pi->name, r->model, strcmp(cur, "true") == 0 ? "false" : "true");
	double v = strtod(cur, NULL), st = step_of(p, r->param);
	if (!isfinite(v))
		v = 0;
	/* Land on multiples of the step, so 0.05 steps give 0.05, 0.1, ... */
	v = (round(v / st) + dir) * st;
	double hi = r->param == CR_P_WEIGHT || r->param == CR_P_LAMBDA || r->param == CR_P_SCALE ? 10 : 1;
	if (v < 0)
		v = 0;
	if (v > hi)
		v = hi;
	char buf[64];
	cr_fmt_double(round(v * 1e9) / 1e9, buf, sizeof buf);
	return set_value(p, pi->name, r->model, buf);
}

static void scope_choices(struct panel *p, char list[][64], int *n)
{
	int present[CR_CLASS__COUNT];
	classes_present(p, present);
	*n = 0;
	snprintf(list[(*n)++], 64, "*");
	for (int k = 0; k < CR_CLASS__COUNT; k++)
		if (present[k])
			snprintf(list[(*n)++], 64, "class:%s", cr_class_name(k));
	if (p->b->filter[0] && strncmp(p->b->filter, "class:", 6) != 0)
		snprintf(list[(*n)++], 64, "filter:%.56s", p->b->filter);
}

static void set_scope(struct panel *p, const char *scope)
{
	snprintf(p->scope, sizeof p->scope, "%s", scope);
	char sc[256];
	app_message(p->app, CR_ROLE_OK, "scope: %s", scope_text(p->scope, sc, sizeof sc));
}

static void cycle_scope(struct panel *p, int dir)
{
	char list[CR_CLASS__COUNT + 2][64];
	int n, cur = -1;
	scope_choices(p, list, &n);
	for (int i = 0; i < n; i++)
		if (strcmp(list[i], p->scope) == 0)
			cur = i;
	cur = cur < 0 ? 0 : (cur + dir + n) % n;
	set_scope(p, list[cur]);
}

void panel_set_class_scope(struct panel *p, enum cr_class cls)
{
	char s[64];
	snprintf(s, sizeof s, "class:%s", cr_class_name(cls));
	set_scope(p, s);
	p->sel = p->sel < ROW_PARAM0 ? ROW_PARAM0 : p->sel;
}

static void on_typed_scope(struct app *a, const char *text, void *ctx)
{
	struct panel *p = ctx;
	if (!text)
		return;
	const char *s = strcmp(text, "all") == 0 || !text[0] ? "*" : text;
	char *canon = NULL;
	cr_error err = { 0 };
	/* Check the scope's syntax the way the store will. */
	if (cr_state_canonical(s, 0, WB(p)->nmodels, "weight", "1", &canon, &err) < 0) {
		app_message(a, CR_ROLE_ERROR, "%s", err.msg);
		return;
	}
	free(canon);
	set_scope(p, s);
}

static void on_typed_value(struct app *a, const char *text, void *ctx)
{
	struct panel *p = ctx;
	(void)a;
	if (!text || !text[0])
		return;
	set_value(p, p->edit_key, p->edit_model, text);
}

static void on_typed_method(struct app *a, const char *text, void *ctx)
{
	struct panel *p = ctx;
	if (!text || !text[0])
		return;
	enum cr_method_id m = cr_method_parse(text);
	if (m == CR_M_NONE) {
		app_message(a, CR_ROLE_ERROR, "unknown method '%s'", text);
		return;
	}
	set_method(p, m);
}

int panel_action(struct panel *p, enum tui_action act)
{
	int last = ROW_PARAM0 + p->nrows - 1;
	switch (act) {
	case ACT_PARAM_UP:
		if (p->sel > 0)
			p->sel--;
		return V_HANDLED | V_REDRAW;
	case ACT_PARAM_DOWN:
		if (p->sel < last)
			p->sel++;
		return V_HANDLED | V_REDRAW;
	case ACT_DEC:
	case ACT_INC: {
		int dir = act == ACT_INC ? 1 : -1;
		if (p->sel == ROW_METHOD)
			return set_method(p, (enum cr_method_id)((method_of(p) + dir + CR_M__COUNT) % CR_M__COUNT));
		if (p->sel == ROW_SCOPE) {
			cycle_scope(p, dir);
			return V_HANDLED | V_REDRAW;
		}
		return nudge(p, dir);
	}
	case ACT_EDIT: {
		char label[256], buf[128], sc[256];
		if (p->sel == ROW_METHOD) {
			prompt_start(p->app, "method: ", cr_method_info(method_of(p))->name, NULL, on_typed_method, p);
		} else if (p->sel == ROW_SCOPE) {
			prompt_start(p->app, "scope (all, class:NAME, layers:A-B, filter:TEXT): ",
				     strcmp(p->scope, "*") ? p->scope : "", NULL, on_typed_scope, p);
		} else {
			const struct prow *r = &p->rows[p->sel - ROW_PARAM0];
			snprintf(p->edit_key, sizeof p->edit_key, "%s", cr_param_info(r->param)->name);
			p->edit_model = r->model;
			snprintf(label, sizeof label, "%.100s on %.140s: ", param_label(p, r, buf, sizeof buf),
				 scope_text(p->scope, sc, sizeof sc));
			int exact;
			prompt_start(p->app, label, wb_value(WB(p), p->scope, r->model, p->edit_key, &exact), NULL,
				     on_typed_value, p);
		}
		return V_HANDLED | V_REDRAW;
	}
	default:
		return 0;
	}
}

static void on_export(struct app *a, const char *text, void *ctx)
{
	struct panel *p = ctx;
	if (!text || !text[0])
		return;
	cr_error err = { 0 };
	char *yaml = wb_recipe_yaml(WB(p), &err);
	struct cr_recipe *r = NULL;
	if (!yaml || cr_recipe_parse(yaml, strlen(yaml), text, &r, NULL, NULL, &err) < 0 ||
	    cr_recipe_save(r, text, &err) < 0)
		app_message(a, CR_ROLE_ERROR, "%s", err.msg);
	else
		app_message(a, CR_ROLE_OK, "recipe written to %s (run it with: crucible merge %s -o OUT)", text, text);
	cr_recipe_free(r);
	free(yaml);
}

int panel_browser_action(struct panel *p, enum tui_action act)
{
	struct app *a = p->app;
	switch (act) {
	case ACT_UNDO:
	case ACT_REDO: {
		int changed = 0;
		cr_error err = { 0 };
		if (wb_undo(WB(p), act == ACT_REDO, &changed, &err) < 0)
			app_message(a, CR_ROLE_ERROR, "%s", err.msg);
		else if (!changed)
			app_message(a, CR_ROLE_WARNING, "nothing to %s", act == ACT_REDO ? "redo" : "undo");
		else
			after_change(p, act == ACT_REDO ? "redone" : "undone");
		return V_HANDLED | V_REDRAW;
	}
	case ACT_EXPORT: {
		char def[512];
		snprintf(def, sizeof def, "session-%lld.yaml", (long long)WB(p)->session);
		prompt_start(a, "export recipe to: ", def, NULL, on_export, p);
		return V_HANDLED | V_REDRAW;
	}
	case ACT_MERGE:
		run_ask(a);
		return V_HANDLED | V_REDRAW;
	case ACT_CANCEL_RUN:
		run_ask_cancel(a);
		return V_HANDLED | V_REDRAW;
	default:
		return 0;
	}
}

int panel_mouse(struct panel *p, const MEVENT *ev)
{
	if (ev->y <= p->y || ev->y >= p->y + p->h || ev->x >= p->x + (p->w >= 100 ? 44 : p->w / 2))
		return 0;
	int row = ev->y - p->y - 1;
	if (row > ROW_PARAM0 + p->nrows - 1)
		return 0;
	if (ev->bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED)) {
		p->sel = row;
		return V_HANDLED | V_REDRAW;
	}
	if (ev->bstate & BUTTON4_PRESSED) {
		p->sel = row;
		return panel_action(p, ACT_INC);
	}
#ifdef BUTTON5_PRESSED
	if (ev->bstate & BUTTON5_PRESSED) {
		p->sel = row;
		return panel_action(p, ACT_DEC);
	}
#endif
	return 0;
}
