/*
 * The sessions screen: every session in the store (newest first) in the
 * list widget, and below it the selected session's event timeline and runs.
 * Open, fork, rename, delete, compare two (the parameters that differ), and
 * re-run a recorded run.  `crucible` alone starts here; `S` in the browser
 * opens it on top.  It keeps its own store connection (UI thread only).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "browser.h"
#include "crucible/format.h"
#include "run.h"
#include "sessions.h"
#include "tree.h"

struct sessions {
	struct view view;
	struct app *app;
	struct cr_store *st;
	struct tree tree;
	struct tree_col cols[6];
	struct cr_session_info *list;
	size_t n;
	int64_t marked; /* for compare, 0 = none */
	/* preview of the selected session */
	int64_t preview_id;
	char **lines;
	enum cr_color_role *roles;
	size_t nlines;
	int64_t pending_id; /* for prompts */
};

static void fmt_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

static void cell(void *ctx, int user, int col, int y, int x, int w, attr_t sel)
{
	struct sessions *s = ctx;
	const struct cr_session_info *i = &s->list[user];
	char buf[512];
	enum cr_color_role role = i->id == s->marked ? CR_ROLE_MATCH : CR_ROLE_NORMAL;
	switch (col) {
	case 0:
		snprintf(buf, sizeof buf, "%s%lld", i->id == s->marked ? "*" : "", (long long)i->id);
		break;
	case 1:
		snprintf(buf, sizeof buf, "%s", i->name);
		break;
	case 2:
		snprintf(buf, sizeof buf, "%zu", i->nparents);
		break;
	case 3:
		snprintf(buf, sizeof buf, "%lld", (long long)i->nevents);
		break;
	case 4:
		snprintf(buf, sizeof buf, "%d %s", i->nruns, i->last_status ? i->last_status : "");
		break;
	default:
		fmt_time(i->created_ms, buf, sizeof buf);
	}
	if (sel)
		put_attr_text(y, x, w, sel, buf, col == 0 || col == 2 || col == 3 ? 1 : 0);
	else
		put_text(y, x, w, role, buf, col == 0 || col == 2 || col == 3 ? 1 : 0);
}

static int compare(void *ctx, int a, int b, int col)
{
	struct sessions *s = ctx;
	const struct cr_session_info *x = &s->list[a], *y = &s->list[b];
	int c = 0;
	switch (col) {
	case 1:
		c = strcmp(x->name, y->name);
		break;
	case 2:
		c = (x->nparents > y->nparents) - (x->nparents < y->nparents);
		break;
	case 3:
		c = (x->nevents > y->nevents) - (x->nevents < y->nevents);
		break;
	case 4:
		c = (x->nruns > y->nruns) - (x->nruns < y->nruns);
		break;
	default:
		break;
	}
	return c ? c : (x->id > y->id) - (x->id < y->id);
}

static int match(void *ctx, int user, const char *text, int search)
{
	(void)search;
	struct sessions *s = ctx;
	const struct cr_session_info *i = &s->list[user];
	if (strcasestr(i->name, text) || strcasestr(i->base, text))
		return 1;
	for (size_t k = 0; k < i->nparents; k++)
		if (strcasestr(i->parents[k], text))
			return 1;
	return 0;
}

static const struct tree_ops sessions_tree_ops = { cell, compare, match };

static void clear_preview(struct sessions *s)
{
	for (size_t i = 0; i < s->nlines; i++)
		free(s->lines[i]);
	free(s->lines);
	free(s->roles);
	s->lines = NULL;
	s->roles = NULL;
	s->nlines = 0;
	s->preview_id = 0;
}

static void add_line(struct sessions *s, enum cr_color_role role, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_line(struct sessions *s, enum cr_color_role role, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	s->lines = cr_xrealloc(s->lines, (s->nlines + 1) * sizeof *s->lines);
	s->roles = cr_xrealloc(s->roles, (s->nlines + 1) * sizeof *s->roles);
	s->lines[s->nlines] = cr_xstrdup(buf);
	s->roles[s->nlines++] = role;
}

static const struct cr_session_info *current(struct sessions *s)
{
	int node = tree_current(&s->tree);
	return node >= 0 ? &s->list[tree_user(&s->tree, node)] : NULL;
}

static const char *model_label(const struct cr_session_info *i, int m)
{
	if (m < 0)
		return "all models";
	if ((size_t)m >= i->nparents)
		return "?";
	const char *sl = strrchr(i->parents[m], '/');
	return sl ? sl + 1 : i->parents[m];
}

static void load_preview(struct sessions *s)
{
	const struct cr_session_info *i = current(s);
	if (!i || i->id == s->preview_id)
		return;
	clear_preview(s);
	s->preview_id = i->id;
	cr_error err = { 0 };
	add_line(s, CR_ROLE_PANEL_TITLE, "session %lld \"%s\": base %s", (long long)i->id, i->name, i->base);
	struct cr_event *ev = NULL;
	size_t nev = 0;
	if (cr_store_events(s->st, i->id, &ev, &nev, &err) < 0) {
		add_line(s, CR_ROLE_ERROR, "%s", err.msg);
		return;
	}
	add_line(s, CR_ROLE_HEADER, "events (newest first)");
	for (size_t k = nev; k-- > 0;) {
		char t[32];
		fmt_time(ev[k].time_ms, t, sizeof t);
		add_line(s, ev[k].kind == CR_EV_SET ? CR_ROLE_NORMAL : CR_ROLE_DIM, "%5lld %s %-5s %s %s %s: %s -> %s",
			 (long long)ev[k].seq, t, cr_event_kind_name(ev[k].kind), ev[k].scope, model_label(i, ev[k].model),
			 ev[k].key, ev[k].old_value ? ev[k].old_value : "(unset)",
			 ev[k].new_value ? ev[k].new_value : "(unset)");
	}
	cr_events_free(ev, nev);
	struct cr_run_info *runs = NULL;
	size_t nr = 0;
	if (cr_store_runs(s->st, i->id, &runs, &nr, &err) < 0) {
		add_line(s, CR_ROLE_ERROR, "%s", err.msg);
		return;
	}
	add_line(s, CR_ROLE_HEADER, "runs (newest first; X re-runs the newest)");
	if (!nr)
		add_line(s, CR_ROLE_DIM, "no runs yet");
	for (size_t k = nr; k-- > 0;) {
		char t[32], sz[32];
		fmt_time(runs[k].started_ms, t, sizeof t);
		cr_fmt_bytes((uint64_t)runs[k].bytes, sz, sizeof sz);
		add_line(s,
			 runs[k].status == CR_RUN_DONE	   ? CR_ROLE_OK
			 : runs[k].status == CR_RUN_FAILED ? CR_ROLE_ERROR
							   : CR_ROLE_WARNING,
			 "run %lld %s %-11s %s  %lld tensors %s %.1f s%s%s", (long long)runs[k].id, t,
			 cr_run_status_name(runs[k].status), runs[k].output, (long long)runs[k].tensors, sz,
			 runs[k].seconds, runs[k].error ? "  " : "", runs[k].error ? runs[k].error : "");
	}
	cr_run_list_free(runs, nr);
}

static void reload(struct sessions *s)
{
	int64_t keep = current(s) ? current(s)->id : 0;
	cr_session_list_free(s->list, s->n);
	s->list = NULL;
	s->n = 0;
	clear_preview(s);
	cr_error err = { 0 };
	if (cr_store_session_list(s->st, &s->list, &s->n, &err) < 0)
		app_message(s->app, CR_ROLE_ERROR, "%s", err.msg);
	tree_clear(&s->tree);
	int sel = -1;
	for (size_t i = 0; i < s->n; i++) {
		int node = tree_add(&s->tree, 0, (int)i, 0);
		if (s->list[i].id == keep)
			sel = node;
	}
	tree_refresh(&s->tree);
	if (sel >= 0)
		tree_select(&s->tree, sel);
}

static void draw(struct app *a, struct view *v)
{
	struct sessions *s = (struct sessions *)v;
	char title[512];
	snprintf(title, sizeof title, "crucible sessions  %zu in %s", s->n, cr_store_path(s->st));
	app_draw_frame(a, title);
	int list_h = (a->rows - 2) / 2;
	if (list_h < 4)
		list_h = 4;
	tree_layout(&s->tree, 1, 0, list_h, a->cols);
	tree_draw(&s->tree);
	load_preview(s);
	int y = 1 + list_h;
	for (int r = 0; y + r < a->rows - 1; r++) {
		if ((size_t)r < s->nlines)
			put_text(y + r, 0, a->cols, s->roles[r], s->lines[r], 0);
		else
			fill_row(y + r, 0, a->cols, CR_ROLE_NORMAL);
	}
	if (!s->n)
		put_text(3, 2, a->cols - 4, CR_ROLE_DIM,
			 "no sessions yet: start one with  crucible --base BASE PARENT...  (or crucible demo)", 0);
}

/* ---- actions ---- */

static void on_rename(struct app *a, const char *text, void *ctx)
{
	struct sessions *s = ctx;
	cr_error err = { 0 };
	if (!text || !text[0])
		return;
	if (cr_store_session_rename(s->st, s->pending_id, text, &err) < 0)
		app_message(a, CR_ROLE_ERROR, "%s", err.msg);
	else
		app_message(a, CR_ROLE_OK, "session %lld renamed to \"%s\"", (long long)s->pending_id, text);
	reload(s);
}

static void on_delete(struct app *a, const char *text, void *ctx)
{
	struct sessions *s = ctx;
	cr_error err = { 0 };
	if (!text)
		return;
	if (a->have_wb && a->wb.session == s->pending_id) {
		app_message(a, CR_ROLE_ERROR, "session %lld is open in the workbench", (long long)s->pending_id);
		return;
	}
	if (cr_store_session_delete(s->st, s->pending_id, &err) < 0)
		app_message(a, CR_ROLE_ERROR, "%s", err.msg);
	else
		app_message(a, CR_ROLE_OK, "session %lld deleted", (long long)s->pending_id);
	if (s->marked == s->pending_id)
		s->marked = 0;
	reload(s);
}

static void on_rerun(struct app *a, const char *text, void *ctx)
{
	struct sessions *s = ctx;
	if (!text || !text[0])
		return;
	struct cr_run_info *runs = NULL;
	size_t nr = 0;
	cr_error err = { 0 };
	if (cr_store_runs(s->st, s->pending_id, &runs, &nr, &err) < 0 || !nr) {
		app_message(a, CR_ROLE_ERROR, "%s", nr ? err.msg : "this session has no runs");
		cr_run_list_free(runs, nr);
		return;
	}
	run_start_recipe(a, cr_store_path(s->st), s->pending_id, runs[nr - 1].recipe, text);
	cr_run_list_free(runs, nr);
	s->preview_id = 0;
}

struct diff_ctx {
	struct sessions *s;
	const struct cr_session_info *ia, *ib;
	size_t n;
};

static void on_diff(void *ctx, const char *scope, int model, const char *key, const char *va, const char *vb)
{
	struct diff_ctx *d = ctx;
	d->n++;
	add_line(d->s, CR_ROLE_NORMAL, "  %-24s %-14s %-14s  %-12s | %-12s", scope, model_label(d->ia, model), key,
		 va ? va : "(unset)", vb ? vb : "(unset)");
}

static void compare_marked(struct sessions *s, const struct cr_session_info *b)
{
	const struct cr_session_info *a = NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->list[i].id == s->marked)
			a = &s->list[i];
	if (!a)
		return;
	struct cr_state sa, sb;
	cr_state_init(&sa);
	cr_state_init(&sb);
	cr_error err = { 0 };
	clear_preview(s);
	s->preview_id = b->id; /* keep this text until the cursor moves */
	if (cr_store_session_state(s->st, a->id, -1, &sa, &err) < 0 || cr_store_session_state(s->st, b->id, -1, &sb, &err) < 0) {
		add_line(s, CR_ROLE_ERROR, "%s", err.msg);
	} else {
		add_line(s, CR_ROLE_PANEL_TITLE, "compare session %lld \"%s\" | session %lld \"%s\"", (long long)a->id,
			 a->name, (long long)b->id, b->name);
		if (strcmp(a->base, b->base) != 0)
			add_line(s, CR_ROLE_WARNING, "  bases differ: %s | %s", a->base, b->base);
		add_line(s, CR_ROLE_HEADER, "  %-24s %-14s %-14s  %-12s | %-12s", "scope", "model", "parameter",
			 "left", "right");
		struct diff_ctx d = { s, a, b, 0 };
		cr_state_diff(&sa, &sb, on_diff, &d);
		if (!d.n)
			add_line(s, CR_ROLE_OK, "  the two sessions set the same parameters");
		else
			add_line(s, CR_ROLE_DIM, "  %zu parameter%s differ", d.n, d.n == 1 ? "" : "s");
	}
	cr_state_free(&sa);
	cr_state_free(&sb);
	s->marked = 0;
}

static void on_search(struct app *a, const char *text, void *ctx)
{
	struct sessions *s = ctx;
	if (text && text[0] && !tree_search(&s->tree, text, 1, 0))
		app_message(a, CR_ROLE_WARNING, "no match for '%s'", text);
}

static void on_filter(struct app *a, const char *text, void *ctx)
{
	(void)a;
	struct sessions *s = ctx;
	if (text)
		tree_set_filter(&s->tree, text);
}

static int action(struct app *a, struct view *v, enum tui_action act, int key)
{
	(void)key;
	struct sessions *s = (struct sessions *)v;
	const struct cr_session_info *i = current(s);
	char buf[512];
	cr_error err = { 0 };
	switch (act) {
	case ACT_SEARCH:
		prompt_start(a, "search: ", "", on_search, on_search, s);
		return V_HANDLED | V_REDRAW;
	case ACT_FILTER:
		prompt_start(a, "filter: ", s->tree.filter, NULL, on_filter, s);
		return V_HANDLED | V_REDRAW;
	case ACT_OPEN:
	case ACT_TOGGLE:
		if (i)
			app_open_session(a, i->id);
		return V_HANDLED | V_REDRAW;
	case ACT_FORK: {
		if (!i)
			return V_HANDLED;
		int64_t nid;
		snprintf(buf, sizeof buf, "%s (fork)", i->name);
		if (cr_store_session_fork(s->st, i->id, buf, &nid, &err) < 0)
			app_message(a, CR_ROLE_ERROR, "%s", err.msg);
		else
			app_message(a, CR_ROLE_OK, "session %lld forked into session %lld", (long long)i->id, (long long)nid);
		reload(s);
		return V_HANDLED | V_REDRAW;
	}
	case ACT_RENAME:
		if (!i)
			return V_HANDLED;
		s->pending_id = i->id;
		prompt_start(a, "new name: ", i->name, NULL, on_rename, s);
		return V_HANDLED | V_REDRAW;
	case ACT_DELETE:
		if (!i)
			return V_HANDLED;
		s->pending_id = i->id;
		snprintf(buf, sizeof buf, "Delete session %lld \"%s\" with its events and runs?", (long long)i->id, i->name);
		confirm_start(a, buf, on_delete, s);
		return V_HANDLED | V_REDRAW;
	case ACT_MARK:
		if (!i)
			return V_HANDLED;
		if (s->marked && s->marked != i->id) {
			compare_marked(s, i);
		} else {
			s->marked = s->marked == i->id ? 0 : i->id;
			app_message(a, CR_ROLE_OK, "%s", s->marked ? "marked: move to another session and press C to compare"
								 : "unmarked");
		}
		return V_HANDLED | V_REDRAW;
	case ACT_RERUN:
		if (!i)
			return V_HANDLED;
		if (!i->nruns) {
			app_message(a, CR_ROLE_WARNING, "session %lld has no runs to repeat", (long long)i->id);
			return V_HANDLED | V_REDRAW;
		}
		s->pending_id = i->id;
		prompt_start(a, "re-run into folder: ", "", NULL, on_rerun, s);
		return V_HANDLED | V_REDRAW;
	default:
		return tree_action(&s->tree, act) & ~TREE_ACTIVATE;
	}
}

static int mouse(struct app *a, struct view *v, const MEVENT *ev)
{
	struct sessions *s = (struct sessions *)v;
	int r = tree_mouse(&s->tree, ev);
	if (r & TREE_ACTIVATE) {
		const struct cr_session_info *i = current(s);
		if (i)
			app_open_session(a, i->id);
	}
	return r & ~TREE_ACTIVATE;
}

static void destroy(struct view *v)
{
	struct sessions *s = (struct sessions *)v;
	clear_preview(s);
	cr_session_list_free(s->list, s->n);
	tree_free(&s->tree);
	if (s->st)
		cr_store_close(s->st);
	free(s);
}

static const struct view_ops sessions_ops = {
	.name = "sessions", .ctx = CTX_SESSIONS, .uses_list = 1, .draw = draw, .action = action, .mouse = mouse,
	.destroy = destroy,
};

struct view *sessions_view_new(struct app *a, const char *db, cr_error *err)
{
	struct sessions *s = cr_xcalloc(1, sizeof *s);
	s->view.ops = &sessions_ops;
	s->app = a;
	if (cr_store_open(db, &s->st, err) < 0) {
		free(s);
		return NULL;
	}
	s->cols[0] = (struct tree_col){ "id", 5, 1 };
	s->cols[1] = (struct tree_col){ "name", 0, 0 };
	s->cols[2] = (struct tree_col){ "models", 6, 1 };
	s->cols[3] = (struct tree_col){ "events", 6, 1 };
	s->cols[4] = (struct tree_col){ "runs", 16, 0 };
	s->cols[5] = (struct tree_col){ "created (UTC)", 16, 0 };
	tree_init(&s->tree, &sessions_tree_ops, s, s->cols, 6);
	s->tree.sort_desc = 1; /* newest first */
	reload(s);
	return &s->view;
}
