/*
 * The list widget (see tree.h).
 *
 * Invariants: rows[] holds the visible nodes in display order and is rebuilt
 * by relayout() after any change of fold state, filter, sort or flat mode;
 * `cur` indexes rows[] (or is 0 with no rows); every node's `shown` says
 * whether it passes the filter (a group passes when one of its leaves does).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tree.h"

void tree_init(struct tree *t, const struct tree_ops *ops, void *ctx, const struct tree_col *cols, int ncols)
{
	memset(t, 0, sizeof *t);
	t->ops = ops;
	t->ctx = ctx;
	t->cols = cols;
	t->ncols = ncols < 16 ? ncols : 16;
	t->focused = 1;
	tree_clear(t);
}

void tree_clear(struct tree *t)
{
	for (int i = 0; i < t->nnodes; i++)
		free(t->nodes[i].kids);
	t->nnodes = 0;
	t->nrows = 0;
	t->cur = t->top = 0;
	tree_add(t, -1, -1, 1);
	t->nodes[0].expanded = 1;
}

void tree_free(struct tree *t)
{
	for (int i = 0; i < t->nnodes; i++)
		free(t->nodes[i].kids);
	free(t->nodes);
	free(t->rows);
	memset(t, 0, sizeof *t);
}

int tree_add(struct tree *t, int parent, int user, int group)
{
	if (t->nnodes == t->capnodes) {
		t->capnodes = t->capnodes ? t->capnodes * 2 : 256;
		t->nodes = cr_xrealloc(t->nodes, (size_t)t->capnodes * sizeof *t->nodes);
	}
	int id = t->nnodes++;
	struct tree_node *n = &t->nodes[id];
	memset(n, 0, sizeof *n);
	n->parent = parent;
	n->user = user;
	n->group = (unsigned char)group;
	n->shown = 1;
	if (parent >= 0) {
		struct tree_node *p = &t->nodes[parent];
		n->depth = p->depth + 1;
		if (p->nkids == p->capkids) {
			p->capkids = p->capkids ? p->capkids * 2 : 4;
			p->kids = cr_xrealloc(p->kids, (size_t)p->capkids * sizeof *p->kids);
		}
		p->kids[p->nkids++] = id;
	}
	return id;
}

int tree_is_group(const struct tree *t, int node)
{
	return node >= 0 && node < t->nnodes && t->nodes[node].group;
}

int tree_user(const struct tree *t, int node)
{
	return node >= 0 && node < t->nnodes ? t->nodes[node].user : -1;
}

int tree_current(const struct tree *t)
{
	return t->nrows ? t->rows[t->cur] : -1;
}

static void push_row(struct tree *t, int node)
{
	if (t->nrows == t->caprows) {
		t->caprows = t->caprows ? t->caprows * 2 : 1024;
		t->rows = cr_xrealloc(t->rows, (size_t)t->caprows * sizeof *t->rows);
	}
	t->rows[t->nrows++] = node;
}

/* Sorting: qsort_r with the tree as context. */
static int cmp_nodes(const void *pa, const void *pb, void *arg)
{
	struct tree *t = arg;
	int a = *(const int *)pa, b = *(const int *)pb;
	int c = t->ops->compare(t->ctx, t->nodes[a].user, t->nodes[b].user, t->sort_col);
	if (t->sort_desc)
		c = -c;
	return c ? c : (a > b) - (a < b);
}

static void sort_kids(struct tree *t)
{
	for (int i = 0; i < t->nnodes; i++)
		if (t->nodes[i].nkids > 1)
			qsort_r(t->nodes[i].kids, (size_t)t->nodes[i].nkids, sizeof(int), cmp_nodes, t);
}

static void walk(struct tree *t, int node, int all)
{
	const struct tree_node *n = &t->nodes[node];
	for (int i = 0; i < n->nkids; i++) {
		int k = n->kids[i];
		const struct tree_node *kn = &t->nodes[k];
		if (!kn->shown)
			continue;
		if (t->flat) {
			if (kn->group)
				walk(t, k, all);
			else
				push_row(t, k);
			continue;
		}
		push_row(t, k);
		if (kn->group && (kn->expanded || all))
			walk(t, k, all);
	}
}

/* Rebuild rows[], keeping the cursor on the same node when it is still visible. */
static void relayout(struct tree *t)
{
	int keep = tree_current(t);
	t->nrows = 0;
	walk(t, 0, 0);
	if (t->flat && t->nrows > 1)
		qsort_r(t->rows, (size_t)t->nrows, sizeof(int), cmp_nodes, t);
	t->cur = 0;
	if (keep >= 0) {
		/* The node, or its nearest visible ancestor. */
		for (int n = keep; n > 0; n = t->nodes[n].parent) {
			int found = -1;
			for (int r = 0; r < t->nrows; r++)
				if (t->rows[r] == n) {
					found = r;
					break;
				}
			if (found >= 0) {
				t->cur = found;
				break;
			}
		}
	}
}

void tree_refresh(struct tree *t)
{
	sort_kids(t);
	relayout(t);
}

void tree_sort(struct tree *t, int col, int desc)
{
	t->sort_col = col;
	t->sort_desc = desc;
	tree_refresh(t);
}

void tree_set_flat(struct tree *t, int flat)
{
	t->flat = flat;
	relayout(t);
}

static int mark_shown(struct tree *t, int node)
{
	struct tree_node *n = &t->nodes[node];
	if (!n->group) {
		n->shown = !t->filter[0] || t->ops->match(t->ctx, n->user, t->filter, 0);
		return n->shown;
	}
	int any = 0;
	for (int i = 0; i < n->nkids; i++)
		any |= mark_shown(t, n->kids[i]);
	n->shown = (unsigned char)(any || !t->filter[0]);
	if (any && t->filter[0])
		n->expanded = 1;
	return n->shown;
}

void tree_set_filter(struct tree *t, const char *text)
{
	snprintf(t->filter, sizeof t->filter, "%s", text ? text : "");
	mark_shown(t, 0);
	t->nodes[0].expanded = 1;
	relayout(t);
}

int tree_count_shown_leaves(const struct tree *t, int node)
{
	const struct tree_node *n = &t->nodes[node];
	if (!n->shown)
		return 0;
	if (!n->group)
		return 1;
	int c = 0;
	for (int i = 0; i < n->nkids; i++)
		c += tree_count_shown_leaves(t, n->kids[i]);
	return c;
}

void tree_select(struct tree *t, int node)
{
	for (int p = t->nodes[node].parent; p > 0; p = t->nodes[p].parent)
		t->nodes[p].expanded = 1;
	t->nrows = 0;
	walk(t, 0, 0);
	if (t->flat && t->nrows > 1)
		qsort_r(t->rows, (size_t)t->nrows, sizeof(int), cmp_nodes, t);
	for (int r = 0; r < t->nrows; r++)
		if (t->rows[r] == node) {
			t->cur = r;
			return;
		}
}

int tree_search(struct tree *t, const char *text, int dir, int again)
{
	snprintf(t->search, sizeof t->search, "%s", text);
	if (!text[0])
		return 0;
	/* Search every shown node in display order as if all groups were open. */
	int *saved = t->rows, nsaved = t->nrows, capsaved = t->caprows, cur = tree_current(t);
	t->rows = NULL;
	t->nrows = t->caprows = 0;
	walk(t, 0, 1);
	if (t->flat && t->nrows > 1)
		qsort_r(t->rows, (size_t)t->nrows, sizeof(int), cmp_nodes, t);
	int *all = t->rows, nall = t->nrows;
	t->rows = saved;
	t->nrows = nsaved;
	t->caprows = capsaved;
	int start = 0;
	for (int i = 0; i < nall; i++)
		if (all[i] == cur) {
			start = i;
			break;
		}
	int hit = -1;
	for (int k = again ? 1 : 0; k <= nall && nall; k++) {
		int i = ((start + dir * k) % nall + nall) % nall;
		if (t->ops->match(t->ctx, t->nodes[all[i]].user, text, 1)) {
			hit = all[i];
			break;
		}
	}
	free(all);
	if (hit < 0)
		return 0;
	tree_select(t, hit);
	return 1;
}

void tree_layout(struct tree *t, int y, int x, int h, int w)
{
	t->y = y;
	t->x = x;
	t->h = h;
	t->w = w;
	int fixed = 0, flex = -1;
	for (int c = 0; c < t->ncols; c++) {
		if (t->cols[c].width < 0)
			continue;
		if (t->cols[c].width == 0 && flex < 0)
			flex = c;
		else
			fixed += t->cols[c].width;
		fixed += c ? 1 : 0;
	}
	int room = w - fixed;
	int pos = x;
	for (int c = 0; c < t->ncols; c++) {
		if (t->cols[c].width < 0) {
			t->colx[c] = pos;
			t->colw[c] = 0;
			continue;
		}
		int cw = c == flex ? (room > 8 ? room : 8) : t->cols[c].width;
		if (pos + cw > x + w)
			cw = x + w - pos;
		if (cw < 0)
			cw = 0;
		t->colx[c] = pos;
		t->colw[c] = cw;
		pos += cw + 1;
	}
}

static void clamp(struct tree *t)
{
	int body = t->h - 1;
	if (t->cur >= t->nrows)
		t->cur = t->nrows ? t->nrows - 1 : 0;
	if (t->cur < 0)
		t->cur = 0;
	if (body < 1)
		body = 1;
	if (t->cur < t->top)
		t->top = t->cur;
	if (t->cur >= t->top + body)
		t->top = t->cur - body + 1;
	if (t->top > t->nrows - body)
		t->top = t->nrows - body;
	if (t->top < 0)
		t->top = 0;
}

void tree_draw(struct tree *t)
{
	if (t->h <= 0 || t->w <= 0)
		return;
	clamp(t);
	fill_row(t->y, t->x, t->w, CR_ROLE_HEADER);
	for (int c = 0; c < t->ncols; c++) {
		char title[64];
		int sorted = c == t->sort_col;
		snprintf(title, sizeof title, "%s%s", t->cols[c].title,
			 sorted ? (t->sort_desc ? G->sort_down : G->sort_up) : "");
		put_text(t->y, t->colx[c], t->colw[c], sorted ? CR_ROLE_HEADER_SORTED : CR_ROLE_HEADER, title,
			 t->cols[c].right);
	}
	for (int i = 0; i < t->h - 1; i++) {
		int y = t->y + 1 + i, r = t->top + i;
		if (r >= t->nrows) {
			fill_row(y, t->x, t->w, CR_ROLE_NORMAL);
			continue;
		}
		const struct tree_node *n = &t->nodes[t->rows[r]];
		attr_t sel = r == t->cur ? role_attr(t->focused ? CR_ROLE_CURSOR : CR_ROLE_CURSOR_IDLE) : 0;
		if (sel)
			put_attr_text(y, t->x, t->w, sel, "", 0);
		else
			fill_row(y, t->x, t->w, CR_ROLE_NORMAL);
		/* Column 0 carries the indentation and the fold mark. */
		int indent = t->flat ? 0 : 2 * (n->depth - 1);
		int px = t->colx[0], pw = t->colw[0];
		if (indent > pw - 4)
			indent = pw > 4 ? pw - 4 : 0;
		if (!t->flat) {
			const char *mark = n->group ? (n->expanded ? G->fold_open : G->fold_closed) : G->leaf;
			attr_t a = sel ? sel : role_attr(CR_ROLE_DIM);
			put_attr_text(y, px, indent + 2, a, "", 0);
			put_attr_text(y, px + indent, 1, a, mark, 0);
			px += indent + 2;
			pw -= indent + 2;
		}
		t->ops->cell(t->ctx, n->user, 0, y, px, pw, sel);
		for (int c = 1; c < t->ncols; c++)
			t->ops->cell(t->ctx, n->user, c, y, t->colx[c], t->colw[c], sel);
	}
}

static int fold(struct tree *t, int node, int open)
{
	struct tree_node *n = &t->nodes[node];
	if (!n->group || t->flat)
		return 0;
	if (open < 0)
		open = !n->expanded;
	n->expanded = (unsigned char)open;
	relayout(t);
	return V_REDRAW;
}

static int any_collapsed(const struct tree *t)
{
	for (int i = 1; i < t->nnodes; i++)
		if (t->nodes[i].group && t->nodes[i].shown && !t->nodes[i].expanded)
			return 1;
	return 0;
}

int tree_action(struct tree *t, enum tui_action act)
{
	int body = t->h > 2 ? t->h - 1 : 1, node = tree_current(t);
	switch (act) {
	case ACT_UP:
		t->cur--;
		break;
	case ACT_DOWN:
		t->cur++;
		break;
	case ACT_PAGE_UP:
		t->cur -= body;
		t->top -= body;
		break;
	case ACT_PAGE_DOWN:
		t->cur += body;
		t->top += body;
		break;
	case ACT_TOP:
		t->cur = 0;
		break;
	case ACT_BOTTOM:
		t->cur = t->nrows - 1;
		break;
	case ACT_TOGGLE:
		if (node < 0)
			return V_HANDLED;
		if (!t->nodes[node].group)
			return V_HANDLED | TREE_ACTIVATE;
		return V_HANDLED | fold(t, node, -1);
	case ACT_EXPAND:
		if (node >= 0)
			fold(t, node, 1);
		break;
	case ACT_COLLAPSE:
		if (node < 0 || t->flat)
			break;
		if (t->nodes[node].group && t->nodes[node].expanded) {
			fold(t, node, 0);
		} else if (t->nodes[node].parent > 0) {
			tree_select(t, t->nodes[node].parent);
		}
		break;
	case ACT_EXPAND_ALL: {
		int open = any_collapsed(t);
		for (int i = 1; i < t->nnodes; i++)
			if (t->nodes[i].group)
				t->nodes[i].expanded = (unsigned char)open;
		relayout(t);
		break;
	}
	case ACT_SORT:
		tree_sort(t, (t->sort_col + 1) % t->ncols, t->sort_desc);
		break;
	case ACT_SORT_REVERSE:
		tree_sort(t, t->sort_col, !t->sort_desc);
		break;
	case ACT_SEARCH_NEXT:
	case ACT_SEARCH_PREV:
		if (t->search[0])
			tree_search(t, t->search, act == ACT_SEARCH_NEXT ? 1 : -1, 1);
		break;
	default:
		return 0;
	}
	clamp(t);
	return V_HANDLED | V_REDRAW;
}

int tree_mouse(struct tree *t, const MEVENT *ev)
{
	if (ev->y < t->y || ev->y >= t->y + t->h || ev->x < t->x || ev->x >= t->x + t->w)
		return 0;
	if (ev->bstate & BUTTON4_PRESSED) {
		t->top -= 3;
		t->cur -= 3;
		clamp(t);
		return V_HANDLED | V_REDRAW;
	}
#ifdef BUTTON5_PRESSED
	if (ev->bstate & BUTTON5_PRESSED) {
		t->top += 3;
		t->cur += 3;
		clamp(t);
		return V_HANDLED | V_REDRAW;
	}
#endif
	if (!(ev->bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON1_DOUBLE_CLICKED)))
		return 0;
	if (ev->y == t->y) {
		for (int c = 0; c < t->ncols; c++)
			if (t->colw[c] > 0 && ev->x >= t->colx[c] && ev->x < t->colx[c] + t->colw[c] + 1) {
				tree_sort(t, c, c == t->sort_col ? !t->sort_desc : 0);
				break;
			}
		return V_HANDLED | V_REDRAW;
	}
	int r = t->top + ev->y - t->y - 1;
	if (r >= t->nrows)
		return V_HANDLED;
	int again = r == t->cur;
	t->cur = r;
	clamp(t);
	if (ev->bstate & BUTTON1_DOUBLE_CLICKED || (again && (ev->bstate & BUTTON1_CLICKED)))
		return tree_action(t, ACT_TOGGLE) | V_REDRAW;
	/* A click on a group's fold mark folds it. */
	const struct tree_node *n = &t->nodes[t->rows[r]];
	if (n->group && !t->flat && ev->x <= t->colx[0] + 2 * n->depth)
		return V_HANDLED | fold(t, t->rows[r], -1);
	return V_HANDLED | V_REDRAW;
}
