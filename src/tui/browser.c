/*
 * The tensor browser (see browser.h): builds the tree from the base's
 * catalog, draws its cells and handles the browser's keys.  The merge panel
 * (panel.c) shares the screen below the tree.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "browser.h"
#include "crucible/format.h"
#include "panel.h"
#include "sessions.h"

enum { COL_NAME, COL_CLASS, COL_DTYPE, COL_SHAPE, COL_SIZE, COL_REL0 };

static struct browser *of(struct view *v)
{
	return (struct browser *)v;
}

const char *browser_model_name(const struct browser *b, int m)
{
	return m >= 0 && m < b->app->nmodels ? b->app->model_name[m] : "?";
}

const char *browser_decision_text(const struct browser *b, int dec)
{
	if (dec == DEC_MERGE)
		return "merge";
	if (dec == DEC_UNKNOWN)
		return "?";
	if (dec == DEC_PENDING)
		return "pending";
	if (dec == DEC_MIXED)
		return "mixed";
	if (dec == 0)
		return "base";
	return browser_model_name(b, dec);
}

static const struct cr_tensor *tensor(const struct browser *b, int i)
{
	return &b->app->ckpt[0]->tensors[i];
}

static struct bgroup *group(struct browser *b, int user)
{
	return &b->groups[-user - 1];
}

/* A tensor's name without the "model.layers.N." part its layer row already says. */
static const char *short_name(const struct cr_tensor *t)
{
	const char *p = strstr(t->name, "layers.");
	if (!p || t->layer < 0)
		return t->name;
	p += 7;
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == '.' ? p + 1 : t->name;
}

static double group_rel(const struct bgroup *g, int p)
{
	if (!g->known[p])
		return NAN;
	if (g->base_sq > 0)
		return sqrt(g->dd[p]) / sqrt(g->base_sq);
	return g->dd[p] > 0 ? INFINITY : 0;
}

static double row_rel(struct browser *b, int user, int p)
{
	if (user >= 0)
		return b->rel[(size_t)user * (size_t)b->nparents + (size_t)p];
	return group_rel(group(b, user), p);
}

static int row_decision(struct browser *b, int user)
{
	return user >= 0 ? b->dec[user] : group(b, user)->decision;
}

static void fmt_rel(double r, char *buf, size_t len)
{
	if (isnan(r))
		snprintf(buf, len, "%s", G->ellipsis);
	else if (r == 0)
		snprintf(buf, len, "0");
	else if (isinf(r))
		snprintf(buf, len, "inf");
	else if (r >= 0.001)
		snprintf(buf, len, "%.4f", r);
	else
		snprintf(buf, len, "%.1e", r);
}

static void cell(void *ctx, int user, int col, int y, int x, int w, attr_t sel)
{
	struct browser *b = ctx;
	char buf[256];
	const struct cr_tensor *t = user >= 0 ? tensor(b, user) : NULL;
	struct bgroup *g = user < 0 ? group(b, user) : NULL;
	enum cr_color_role role = t ? CR_ROLE_TENSOR : g->cls == CR_CLASS_NONE ? CR_ROLE_LAYER : CR_ROLE_CLASS;
#define PUT(s, right) (sel ? put_attr_text(y, x, w, sel, (s), (right)) : put_text(y, x, w, role, (s), (right)))
	if (col == COL_NAME) {
		if (t) {
			PUT(b->tree.flat ? t->name : short_name(t), 2);
		} else if (g->cls == CR_CLASS_NONE) {
			if (g->layer < 0)
				PUT("outside layers", 0);
			else {
				snprintf(buf, sizeof buf, "layer %d%s", g->layer,
					 b->app->ckpt[0]->num_layers && g->layer >= b->app->ckpt[0]->num_layers ? " (mtp)" : "");
				PUT(buf, 0);
			}
		} else {
			PUT(cr_class_name(g->cls), 0);
		}
	} else if (col == COL_CLASS) {
		if (t)
			PUT(cr_class_name(t->cls), 0);
		else {
			snprintf(buf, sizeof buf, "%zu tensor%s", g->ntensors, g->ntensors == 1 ? "" : "s");
			role = CR_ROLE_DIM;
			PUT(buf, 0);
		}
	} else if (col == COL_DTYPE) {
		PUT(t ? cr_dtype_name(t->dtype) : "", 0);
	} else if (col == COL_SHAPE) {
		PUT(t ? cr_fmt_shape(t->shape, t->ndim, buf, sizeof buf) : "", 0);
	} else if (col == COL_SIZE) {
		PUT(cr_fmt_bytes(t ? t->nbytes : g->bytes, buf, sizeof buf), 1);
	} else if (col >= b->col_rel0 && col < b->col_rel0 + b->nparents) {
		int p = col - b->col_rel0;
		double r = row_rel(b, user, p);
		fmt_rel(r, buf, sizeof buf);
		int nw = 7, bw = w - nw - 1;
		if (bw < 2) {
			bw = 0;
			nw = w;
		}
		if (bw > 0) {
			double scale = b->rel_max[p] > 0 ? b->rel_max[p] : 1;
			if (sel)
				put_attr_text(y, x, bw, sel, "", 0);
			if (!isnan(r))
				put_bar(y, x, bw, r / scale, rel_role(r));
			else
				put_text(y, x, bw, CR_ROLE_DIM, "", 0);
			x += bw + 1;
		}
		if (sel)
			put_attr_text(y, x, nw, sel, buf, 1);
		else
			put_text(y, x, nw, isnan(r) ? CR_ROLE_DIM : rel_role(r), buf, 1);
	} else if (col == b->col_decision) {
		int d = row_decision(b, user);
		role = d == DEC_MERGE ? CR_ROLE_DECISION_MERGE
		       : d == 0	      ? CR_ROLE_DECISION_BASE
		       : d > 0	      ? CR_ROLE_DECISION_PARENT
				      : CR_ROLE_DIM;
		PUT(browser_decision_text(b, d), 0);
	}
#undef PUT
}

static int cmp_num(double a, double b)
{
	/* Unknown values (NaN) sort last. */
	if (isnan(a) || isnan(b))
		return isnan(a) - isnan(b);
	return (a > b) - (a < b);
}

static int compare(void *ctx, int ua, int ub, int col)
{
	struct browser *b = ctx;
	if ((ua < 0) != (ub < 0))
		return ua < 0 ? -1 : 1;
	if (ua < 0) {
		struct bgroup *ga = group(b, ua), *gb = group(b, ub);
		int c = 0;
		if (col == COL_SIZE)
			c = (ga->bytes > gb->bytes) - (ga->bytes < gb->bytes);
		else if (col == COL_CLASS)
			c = (ga->ntensors > gb->ntensors) - (ga->ntensors < gb->ntensors);
		else if (col >= b->col_rel0 && col < b->col_rel0 + b->nparents)
			c = cmp_num(group_rel(ga, col - b->col_rel0), group_rel(gb, col - b->col_rel0));
		if (c)
			return c;
		if (ga->layer != gb->layer)
			return ga->layer < gb->layer ? -1 : 1;
		return (ga->cls > gb->cls) - (ga->cls < gb->cls);
	}
	const struct cr_tensor *a = tensor(b, ua), *t = tensor(b, ub);
	int c = 0;
	switch (col) {
	case COL_NAME:
		break;
	case COL_CLASS:
		c = (a->cls > t->cls) - (a->cls < t->cls);
		break;
	case COL_DTYPE:
		c = strcmp(cr_dtype_name(a->dtype), cr_dtype_name(t->dtype));
		break;
	case COL_SHAPE:
		c = (a->nelem > t->nelem) - (a->nelem < t->nelem);
		break;
	case COL_SIZE:
		c = (a->nbytes > t->nbytes) - (a->nbytes < t->nbytes);
		break;
	default:
		if (col >= b->col_rel0 && col < b->col_rel0 + b->nparents)
			c = cmp_num(row_rel(b, ua, col - b->col_rel0), row_rel(b, ub, col - b->col_rel0));
		else if (col == b->col_decision)
			c = (b->dec[ua] > b->dec[ub]) - (b->dec[ua] < b->dec[ub]);
	}
	return c ? c : cr_natural_cmp(a->name, t->name);
}

/* class:NAME (a prefix of a class name), else a case-insensitive substring of the name. */
static int match(void *ctx, int user, const char *text, int search)
{
	struct browser *b = ctx;
	if (user < 0) {
		if (!search)
			return 0;
		struct bgroup *g = group(b, user);
		char label[64];
		if (g->cls == CR_CLASS_NONE)
			snprintf(label, sizeof label, "layer %d", g->layer);
		else
			snprintf(label, sizeof label, "%s", cr_class_name(g->cls));
		return strcasestr(label, text) != NULL;
	}
	const struct cr_tensor *t = tensor(b, user);
	if (!search && strncmp(text, "class:", 6) == 0) {
		const char *want = text + 6;
		return want[0] && strncmp(cr_class_name(t->cls), want, strlen(want)) == 0;
	}
	return strcasestr(t->name, text) != NULL;
}

static const struct tree_ops tree_ops = { cell, compare, match };

void browser_update_decisions(struct browser *b)
{
	for (size_t g = 0; g < b->ngroups; g++)
		b->groups[g].decision = DEC_MIXED - 1; /* none seen yet */
	for (size_t i = 0; i < b->ntensors; i++) {
		int node = b->tensor_node[i];
		for (int up = b->tree.nodes[node].parent; up > 0; up = b->tree.nodes[up].parent) {
			struct bgroup *gr = group(b, b->tree.nodes[up].user);
			if (gr->decision == DEC_MIXED - 1)
				gr->decision = b->dec[i];
			else if (gr->decision != b->dec[i])
				gr->decision = DEC_MIXED;
			else
				break; /* the layer above agrees already or is mixed: nothing new to learn */
		}
	}
	for (size_t g = 0; g < b->ngroups; g++)
		if (b->groups[g].decision == DEC_MIXED - 1)
			b->groups[g].decision = DEC_UNKNOWN;
}

void browser_update_groups(struct browser *b)
{
	int np = b->nparents;
	for (size_t g = 0; g < b->ngroups; g++) {
		struct bgroup *gr = &b->groups[g];
		gr->base_sq = 0;
		memset(gr->dd, 0, sizeof gr->dd);
		memset(gr->known, 0, sizeof gr->known);
	}
	for (int p = 0; p < np; p++)
		b->rel_max[p] = 0;
	for (size_t i = 0; i < b->ntensors; i++) {
		int node = b->tensor_node[i];
		for (int up = b->tree.nodes[node].parent; up > 0; up = b->tree.nodes[up].parent) {
			struct bgroup *gr = group(b, b->tree.nodes[up].user);
			if (!isnan(b->base_sq[i]))
				gr->base_sq += b->base_sq[i];
			for (int p = 0; p < np; p++) {
				double d = b->dd[i * (size_t)np + (size_t)p];
				if (!isnan(d)) {
					gr->dd[p] += d;
					gr->known[p]++;
				}
			}
		}
		for (int p = 0; p < np; p++) {
			double r = b->rel[i * (size_t)np + (size_t)p];
			if (r > b->rel_max[p] && isfinite(r))
				b->rel_max[p] = r;
		}
	}
	browser_update_decisions(b);
}

static int add_group(struct browser *b, int parent, int layer, enum cr_class cls, size_t *cap)
{
	if (b->ngroups == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		b->groups = cr_xrealloc(b->groups, *cap * sizeof *b->groups);
	}
	struct bgroup *g = &b->groups[b->ngroups];
	memset(g, 0, sizeof *g);
	g->layer = layer;
	g->cls = cls;
	g->decision = DEC_UNKNOWN;
	int user = -(int)b->ngroups - 1;
	b->ngroups++;
	g->node = tree_add(&b->tree, parent, user, 1);
	return (int)b->ngroups - 1;
}

static void build_tree(struct browser *b)
{
	const struct cr_ckpt *c = b->app->ckpt[0];
	int maxlayer = -1;
	for (size_t i = 0; i < c->ntensors; i++)
		if (c->tensors[i].layer > maxlayer)
			maxlayer = c->tensors[i].layer;
	int nl = maxlayer + 2; /* slot 0: outside layers */
	int *layer_group = cr_xmalloc((size_t)nl * sizeof *layer_group);
	int *lc_group = cr_xmalloc((size_t)nl * CR_CLASS__COUNT * sizeof *lc_group);
	for (int i = 0; i < nl; i++)
		layer_group[i] = -1;
	for (int i = 0; i < nl * CR_CLASS__COUNT; i++)
		lc_group[i] = -1;
	size_t cap = 0;
	/* Layer rows in layer order (outside layers first), class rows in class order. */
	for (size_t i = 0; i < c->ntensors; i++) {
		int slot = c->tensors[i].layer + 1;
		if (layer_group[slot] < 0)
			layer_group[slot] = 0;
	}
	for (int s = 0; s < nl; s++)
		if (layer_group[s] == 0)
			layer_group[s] = add_group(b, 0, s - 1, CR_CLASS_NONE, &cap);
	for (size_t i = 0; i < c->ntensors; i++) {
		int slot = c->tensors[i].layer + 1, k = slot * CR_CLASS__COUNT + (int)c->tensors[i].cls;
		if (lc_group[k] < 0)
			lc_group[k] = 0;
	}
	for (int s = 0; s < nl; s++)
		for (int k = 0; k < CR_CLASS__COUNT; k++)
			if (lc_group[s * CR_CLASS__COUNT + k] == 0)
				lc_group[s * CR_CLASS__COUNT + k] =
					add_group(b, b->groups[layer_group[s]].node, s - 1, (enum cr_class)k, &cap);
	b->tensor_node = cr_xmalloc(c->ntensors * sizeof *b->tensor_node);
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		struct bgroup *lg = &b->groups[layer_group[t->layer + 1]];
		struct bgroup *cg = &b->groups[lc_group[(t->layer + 1) * CR_CLASS__COUNT + (int)t->cls]];
		b->tensor_node[i] = tree_add(&b->tree, cg->node, (int)i, 0);
		lg->ntensors++;
		lg->bytes += t->nbytes;
		cg->ntensors++;
		cg->bytes += t->nbytes;
	}
	free(layer_group);
	free(lc_group);
	/* Layers start folded except the first one, so the screen shows the shape of the model. */
	tree_refresh(&b->tree);
}

static void set_columns(struct browser *b, int width)
{
	int n = 0, np = b->nparents;
	int relw = width >= 130 ? 16 : width >= 110 ? 13 : 9;
	b->cols[n++] = (struct tree_col){ "name", 0, 0 };
	b->cols[n++] = (struct tree_col){ "class", 13, 0 };
	b->cols[n++] = (struct tree_col){ "dtype", 7, 0 };
	b->cols[n++] = (struct tree_col){ "shape", width >= 100 ? 12 : -1, 0 }; /* hidden when narrow */
	b->cols[n++] = (struct tree_col){ "size", 9, 1 };
	b->col_rel0 = n;
	for (int p = 0; p < np && n < 15; p++)
		b->cols[n++] = (struct tree_col){ b->app->model_name[p + 1], relw, 0 };
	b->col_decision = n;
	b->cols[n++] = (struct tree_col){ "decision", 8, 0 };
	b->ncols = n;
	b->tree.ncols = n;
}

/* ---- the view ---- */

static void draw(struct app *a, struct view *v)
{
	struct browser *b = of(v);
	char title[512];
	snprintf(title, sizeof title, "crucible  base %s  parents", a->model_name[0]);
	for (int m = 1; m < a->nmodels; m++) {
		size_t l = strlen(title);
		snprintf(title + l, sizeof title - l, " %s", a->model_name[m]);
	}
	size_t l = strlen(title);
	snprintf(title + l, sizeof title - l, "  %zu tensors", b->ntensors);
	app_draw_frame(a, title);
	int panel_h = panel_height(b->panel, a->rows);
	int tree_h = a->rows - 2 - panel_h;
	set_columns(b, a->cols);
	b->tree.focused = !b->panel_focus;
	tree_layout(&b->tree, 1, 0, tree_h, a->cols);
	tree_draw(&b->tree);
	if (panel_h > 0)
		panel_draw(b->panel, 1 + tree_h, 0, panel_h, a->cols, b->panel_focus);
}

static void on_search(struct app *a, const char *text, void *ctx)
{
	struct browser *b = ctx;
	if (text && !tree_search(&b->tree, text, 1, 0) && text[0])
		app_message(a, CR_ROLE_WARNING, "no match for '%s'", text);
	else if (text)
		a->status[0] = '\0';
}

static void on_filter(struct app *a, const char *text, void *ctx)
{
	struct browser *b = ctx;
	if (!text)
		return;
	if (strncmp(text, "class:", 6) == 0 && text[6] && cr_class_parse(text + 6) == CR_CLASS_NONE) {
		/* Accept a prefix of a class name, but say so when nothing fits. */
		int any = 0;
		for (int k = 0; k < CR_CLASS__COUNT; k++)
			any |= strncmp(cr_class_name(k), text + 6, strlen(text + 6)) == 0;
		if (!any) {
			app_message(a, CR_ROLE_ERROR, "unknown class '%s'", text + 6);
			return;
		}
	}
	snprintf(b->filter, sizeof b->filter, "%s", text);
	tree_set_filter(&b->tree, text);
	if (text[0])
		app_message(a, CR_ROLE_OK, "filter '%s': %d tensors", text, tree_count_shown_leaves(&b->tree, 0));
	else
		app_message(a, CR_ROLE_OK, "filter cleared");
}

static int current_tensor(struct browser *b)
{
	int node = tree_current(&b->tree);
	return node >= 0 && !tree_is_group(&b->tree, node) ? tree_user(&b->tree, node) : -1;
}

static int action(struct app *a, struct view *v, enum tui_action act, int key)
{
	struct browser *b = of(v);
	if (b->panel_focus) {
		int r = panel_action(b->panel, act);
		if (r)
			return r;
	}
	switch (act) {
	case ACT_FOCUS:
		b->panel_focus = !b->panel_focus;
		return V_HANDLED | V_REDRAW;
	case ACT_FLAT:
		tree_set_flat(&b->tree, !b->tree.flat);
		return V_HANDLED | V_REDRAW;
	case ACT_SEARCH:
		prompt_start(a, "search: ", "", on_search, on_search, b);
		return V_HANDLED | V_REDRAW;
	case ACT_FILTER:
		prompt_start(a, "filter (text or class:NAME): ", b->filter, NULL, on_filter, b);
		return V_HANDLED | V_REDRAW;
	case ACT_HEATMAP:
		app_push(a, heatmap_view_new(a, b));
		return V_HANDLED | V_REDRAW;
	case ACT_SESSIONS: {
		cr_error err = { 0 };
		struct view *sv = sessions_view_new(a, a->wb.db_path, &err);
		if (sv)
			app_push(a, sv);
		else
			app_message(a, CR_ROLE_ERROR, "%s", err.msg);
		return V_HANDLED | V_REDRAW;
	}
	case ACT_DETAIL: {
		int t = current_tensor(b);
		if (t >= 0)
			app_push(a, detail_view_new(a, b, (size_t)t));
		else
			app_message(a, CR_ROLE_WARNING, "select a tensor row for its detail");
		return V_HANDLED | V_REDRAW;
	}
	case ACT_SCOPE_ROW: {
		int node = tree_current(&b->tree);
		if (node < 0)
			return V_HANDLED;
		int u = tree_user(&b->tree, node);
		enum cr_class cls = u >= 0 ? tensor(b, u)->cls : group(b, u)->cls;
		if (cls == CR_CLASS_NONE) {
			app_message(a, CR_ROLE_WARNING, "a layer row has no single class; pick a class or tensor row");
			return V_HANDLED | V_REDRAW;
		}
		panel_set_class_scope(b->panel, cls);
		return V_HANDLED | V_REDRAW;
	}
	default:
		break;
	}
	int r = panel_browser_action(b->panel, act);
	if (r)
		return r;
	if (!b->panel_focus) {
		r = tree_action(&b->tree, act);
		if (r & TREE_ACTIVATE) {
			int t = current_tensor(b);
			if (t >= 0)
				app_push(a, detail_view_new(a, b, (size_t)t));
		}
		return r & ~TREE_ACTIVATE;
	}
	(void)key;
	return 0;
}

static int mouse(struct app *a, struct view *v, const MEVENT *ev)
{
	struct browser *b = of(v);
	int r = tree_mouse(&b->tree, ev);
	if (r) {
		b->panel_focus = 0;
		if (r & TREE_ACTIVATE) {
			int t = current_tensor(b);
			if (t >= 0)
				app_push(a, detail_view_new(a, b, (size_t)t));
		}
		return r & ~TREE_ACTIVATE;
	}
	r = panel_mouse(b->panel, ev);
	if (r)
		b->panel_focus = 1;
	return r;
}

static const struct view_ops browser_ops = {
	.name = "browser",
	.ctx = CTX_BROWSER,
	.uses_list = 1,
	.draw = draw,
	.action = action,
	.mouse = mouse,
	.destroy = NULL, /* owned by the app: browser_free */
};

struct browser *browser_new(struct app *a)
{
	struct browser *b = cr_xcalloc(1, sizeof *b);
	b->view.ops = &browser_ops;
	b->app = a;
	b->nparents = a->nmodels - 1;
	b->ntensors = a->ckpt[0]->ntensors;
	size_t n = b->ntensors * (size_t)(b->nparents ? b->nparents : 1);
	b->rel = cr_xmalloc(n * sizeof *b->rel);
	b->dd = cr_xmalloc(n * sizeof *b->dd);
	for (size_t i = 0; i < n; i++)
		b->rel[i] = b->dd[i] = NAN;
	b->base_sq = cr_xmalloc(b->ntensors * sizeof *b->base_sq);
	b->dec = cr_xmalloc(b->ntensors ? b->ntensors : 1);
	for (size_t i = 0; i < b->ntensors; i++) {
		b->base_sq[i] = NAN;
		b->dec[i] = DEC_UNKNOWN;
	}
	set_columns(b, a->cols);
	tree_init(&b->tree, &tree_ops, b, b->cols, b->ncols);
	build_tree(b);
	/* Open the first layer that has experts (or the first layer) so the first screen shows tensors. */
	for (size_t g = 0; g < b->ngroups; g++)
		if (b->groups[g].cls == CR_CLASS_NONE && b->groups[g].layer >= 0) {
			b->tree.nodes[b->groups[g].node].expanded = 1;
			break;
		}
	tree_refresh(&b->tree);
	browser_update_groups(b);
	b->panel = panel_new(a, b);
	return b;
}

struct view *browser_view(struct browser *b)
{
	return &b->view;
}

void browser_free(struct browser *b)
{
	if (!b)
		return;
	panel_free(b->panel);
	tree_free(&b->tree);
	free(b->rel);
	free(b->dd);
	free(b->base_sq);
	free(b->dec);
	free(b->tensor_node);
	free(b->groups);
	free(b);
}
