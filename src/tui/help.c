/*
 * The help screen, generated from the key table (keys.h): one section per
 * context, the context the user came from first.  It is a list widget, so
 * it folds, searches and filters like every other list.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tree.h"

struct help {
	struct view view;
	struct tree tree;
	struct tree_col cols[2];
	enum key_ctx order[CTX__COUNT];
};

/* user: >= 0 a key_table index; < 0 section -(ctx + 1). */
static void cell(void *ctx, int user, int col, int y, int x, int w, attr_t sel)
{
	(void)ctx;
	char buf[128];
	if (user < 0) {
		if (col == 0) {
			if (sel)
				put_attr_text(y, x, w, sel, key_ctx_name((enum key_ctx)(-user - 1)), 0);
			else
				put_text(y, x, w, CR_ROLE_HELP_SECTION, key_ctx_name((enum key_ctx)(-user - 1)), 0);
		}
		return;
	}
	const struct key_binding *kb = &key_table[user];
	const char *s = col == 0 ? key_labels(kb, buf, sizeof buf) : kb->help;
	if (sel)
		put_attr_text(y, x, w, sel, s, 0);
	else
		put_text(y, x, w, col == 0 ? CR_ROLE_HELP_KEY : CR_ROLE_NORMAL, s, 0);
}

static int compare(void *ctx, int a, int b, int col)
{
	(void)col;
	struct help *h = ctx;
	if (a < 0 && b < 0) {
		int ia = 0, ib = 0;
		for (int i = 0; i < CTX__COUNT; i++) {
			if (h->order[i] == (enum key_ctx)(-a - 1))
				ia = i;
			if (h->order[i] == (enum key_ctx)(-b - 1))
				ib = i;
		}
		return (ia > ib) - (ia < ib);
	}
	return (a > b) - (a < b); /* table order */
}

static int match(void *ctx, int user, const char *text, int search)
{
	(void)ctx;
	(void)search;
	if (user < 0)
		return strcasestr(key_ctx_name((enum key_ctx)(-user - 1)), text) != NULL;
	char buf[128];
	return strcasestr(key_table[user].help, text) || strcasestr(key_labels(&key_table[user], buf, sizeof buf), text);
}

static const struct tree_ops help_tree_ops = { cell, compare, match };

static void draw(struct app *a, struct view *v)
{
	struct help *h = (struct help *)v;
	app_draw_frame(a, "crucible help: keys by screen (q or Esc closes; / searches, \\ filters)");
	tree_layout(&h->tree, 1, 0, a->rows - 2, a->cols);
	tree_draw(&h->tree);
}

static void on_search(struct app *a, const char *text, void *ctx)
{
	struct help *h = ctx;
	if (text && text[0] && !tree_search(&h->tree, text, 1, 0))
		app_message(a, CR_ROLE_WARNING, "no match for '%s'", text);
}

static void on_filter(struct app *a, const char *text, void *ctx)
{
	(void)a;
	struct help *h = ctx;
	if (text)
		tree_set_filter(&h->tree, text);
}

static int action(struct app *a, struct view *v, enum tui_action act, int key)
{
	(void)key;
	struct help *h = (struct help *)v;
	if (act == ACT_SEARCH) {
		prompt_start(a, "search: ", "", on_search, on_search, h);
		return V_HANDLED | V_REDRAW;
	}
	if (act == ACT_FILTER) {
		prompt_start(a, "filter: ", h->tree.filter, NULL, on_filter, h);
		return V_HANDLED | V_REDRAW;
	}
	if (act == ACT_HELP)
		return V_HANDLED; /* already here */
	return tree_action(&h->tree, act) & ~TREE_ACTIVATE;
}

static int mouse(struct app *a, struct view *v, const MEVENT *ev)
{
	(void)a;
	return tree_mouse(&((struct help *)v)->tree, ev) & ~TREE_ACTIVATE;
}

static void destroy(struct view *v)
{
	struct help *h = (struct help *)v;
	tree_free(&h->tree);
	free(h);
}

static const struct view_ops help_ops = {
	.name = "help", .ctx = CTX_GLOBAL, .uses_list = 1, .draw = draw, .action = action, .mouse = mouse,
	.destroy = destroy,
};

struct view *help_view_new(struct app *a, enum key_ctx from)
{
	(void)a;
	struct help *h = cr_xcalloc(1, sizeof *h);
	h->view.ops = &help_ops;
	h->cols[0] = (struct tree_col){ "key", 22, 0 };
	h->cols[1] = (struct tree_col){ "what it does", 0, 0 };
	/* The screen the user came from first, then the panel (for the browser), lists, everything else. */
	int n = 0;
	h->order[n++] = from;
	if (from == CTX_BROWSER)
		h->order[n++] = CTX_PANEL;
	if (from != CTX_LIST)
		h->order[n++] = CTX_LIST;
	if (from != CTX_GLOBAL)
		h->order[n++] = CTX_GLOBAL;
	for (int c = 0; c < CTX__COUNT; c++) {
		int seen = 0;
		for (int i = 0; i < n; i++)
			seen |= h->order[i] == (enum key_ctx)c;
		if (!seen)
			h->order[n++] = (enum key_ctx)c;
	}
	tree_init(&h->tree, &help_tree_ops, h, h->cols, 2);
	int section[CTX__COUNT];
	for (int c = 0; c < CTX__COUNT; c++) {
		section[c] = tree_add(&h->tree, 0, -(c + 1), 1);
		h->tree.nodes[section[c]].expanded = 1;
	}
	for (size_t i = 0; i < key_table_len; i++)
		tree_add(&h->tree, section[key_table[i].ctx], (int)i, 0);
	tree_refresh(&h->tree);
	return &h->view;
}
