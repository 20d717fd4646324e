/*
 * The heat map: layers (rows) x classes (columns), each cell coloured by
 * the aggregate rel of that layer's tensors of that class for one parent.
 * Colours step through heat-0 .. heat-4 relative to the largest cell (as
 * ncdu scales its bars to the largest value in view), and each cell also
 * prints its number and a shade glyph so it reads without colour.  Rows
 * scroll when the model has more layers than the screen has lines.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"

struct heatmap {
	struct view view;
	struct browser *b;
	int parent; /* 0-based among the parents */
	int top, compact;
	int nlayers, minlayer; /* rows: minlayer .. minlayer + nlayers - 1 (minlayer -1 = outside layers) */
	int cls_present[CR_CLASS__COUNT];
	int *cell_group; /* [nlayers * CR_CLASS__COUNT] group index or -1 */
};

static double cell_rel(const struct heatmap *h, int row, int k)
{
	int g = h->cell_group[row * CR_CLASS__COUNT + k];
	if (g < 0)
		return NAN;
	const struct bgroup *gr = &h->b->groups[g];
	if (!gr->known[h->parent])
		return NAN;
	return gr->base_sq > 0 ? sqrt(gr->dd[h->parent] / gr->base_sq) : (gr->dd[h->parent] > 0 ? INFINITY : 0);
}

static int level(double r, double max)
{
	if (!(r > 0))
		return 0;
	if (!(max > 0) || isinf(r))
		return 4;
	int l = 1 + (int)(4 * r / max);
	return l > 4 ? 4 : l;
}

/*
 * Many layers (DeepSeek-V3's 62) do not fit one per line: then the map turns
 * on its side, one line per class and one column per layer, each cell a
 * shade glyph in its heat colour, so the whole model fits one screen.
 */
static void draw_compact(struct app *a, struct heatmap *h, double max)
{
	char buf[64];
	int labelw = 15, cw = (a->cols - labelw) / (h->nlayers ? h->nlayers : 1);
	if (cw > 3)
		cw = 3;
	if (cw < 1)
		cw = 1;
	fill_row(1, 0, a->cols, CR_ROLE_HEADER);
	put_text(1, 0, labelw, CR_ROLE_HEADER, "class \\ layer", 0);
	/* Layer numbers every 5 (or 10) columns. */
	int every = cw >= 3 ? 2 : cw == 2 ? 5 : 10;
	for (int r = 0; r < h->nlayers; r++) {
		int layer = h->minlayer + r;
		if (layer >= 0 && layer % every == 0 && labelw + r * cw + 3 <= a->cols) {
			snprintf(buf, sizeof buf, "%d", layer);
			put_text(1, labelw + r * cw, 3, CR_ROLE_HEADER, buf, 0);
		}
	}
	int y = 2;
	for (int k = 0; k < CR_CLASS__COUNT && y < a->rows - 4; k++) {
		if (!h->cls_present[k])
			continue;
		fill_row(y, 0, a->cols, CR_ROLE_NORMAL);
		put_text(y, 0, labelw, CR_ROLE_CLASS, cr_class_name(k), 0);
		for (int r = 0; r < h->nlayers && labelw + (r + 1) * cw <= a->cols; r++) {
			int x = labelw + r * cw;
			if (h->cell_group[r * CR_CLASS__COUNT + k] < 0)
				continue;
			double rel = cell_rel(h, r, k);
			if (isnan(rel)) {
				put_text(y, x, cw, CR_ROLE_DIM, G->utf8 ? "·" : ".", 0);
				continue;
			}
			int l = level(rel, max);
			buf[0] = '\0';
			for (int c = 0; c < cw; c++)
				strcat(buf, G->shade[l > 0 ? l : 0][0] != ' ' ? G->shade[l] : (G->utf8 ? "·" : "."));
			put_text(y, x, cw, (enum cr_color_role)(CR_ROLE_HEAT_0 + l), buf, 0);
		}
		y++;
	}
}

static void draw(struct app *a, struct view *v)
{
	struct heatmap *h = (struct heatmap *)v;
	struct browser *b = h->b;
	char buf[256];
	snprintf(buf, sizeof buf, "heat map of rel: %s vs base %s  ([ ] other parent, q back)",
		 browser_model_name(b, h->parent + 1), browser_model_name(b, 0));
	app_draw_frame(a, buf);
	int labelw = 15;
	int ncls = 0;
	for (int k = 0; k < CR_CLASS__COUNT; k++)
		ncls += h->cls_present[k];
	int cw = ncls ? (a->cols - labelw) / ncls : 8;
	if (cw > 15)
		cw = 15;
	if (cw < 4)
		cw = 4;
	double max = 0;
	for (int r = 0; r < h->nlayers; r++)
		for (int k = 0; k < CR_CLASS__COUNT; k++) {
			double x = cell_rel(h, r, k);
			if (isfinite(x) && x > max)
				max = x;
		}
	int body = a->rows - 5;
	if (body < 1)
		body = 1;
	h->compact = h->nlayers > body;
	if (h->compact) {
		draw_compact(a, h, max);
		goto legend;
	}
	int y = 1;
	fill_row(y, 0, a->cols, CR_ROLE_HEADER);
	put_text(y, 0, labelw, CR_ROLE_HEADER, "layer", 0);
	int x = labelw;
	for (int k = 0; k < CR_CLASS__COUNT; k++)
		if (h->cls_present[k] && x + cw <= a->cols) {
			put_text(y, x, cw - 1, CR_ROLE_HEADER, cr_class_name(k), 0);
			x += cw;
		}
	if (h->top > h->nlayers - body)
		h->top = h->nlayers - body;
	if (h->top < 0)
		h->top = 0;
	for (int i = 0; i < body; i++) {
		int r = h->top + i, yy = 2 + i;
		fill_row(yy, 0, a->cols, CR_ROLE_NORMAL);
		if (r >= h->nlayers)
			continue;
		int layer = h->minlayer + r;
		if (layer < 0)
			snprintf(buf, sizeof buf, "outside");
		else
			snprintf(buf, sizeof buf, "layer %d", layer);
		put_text(yy, 0, labelw, CR_ROLE_LAYER, buf, 0);
		x = labelw;
		for (int k = 0; k < CR_CLASS__COUNT; k++) {
			if (!h->cls_present[k] || x + cw > a->cols)
				continue;
			double rel = cell_rel(h, r, k);
			if (h->cell_group[r * CR_CLASS__COUNT + k] < 0) {
				put_text(yy, x, cw - 1, CR_ROLE_DIM, "", 0);
			} else if (isnan(rel)) {
				put_text(yy, x, cw - 1, CR_ROLE_DIM, G->ellipsis, 0);
			} else {
				int l = level(rel, max);
				char num[32];
				if (rel == 0)
					snprintf(num, sizeof num, "0");
				else if (rel >= 0.001)
					snprintf(num, sizeof num, "%.3f", rel);
				else
					snprintf(num, sizeof num, "%.0e", rel);
				snprintf(buf, sizeof buf, "%s%s %s", G->shade[l], G->shade[l], num);
				put_text(yy, x, cw - 1, (enum cr_color_role)(CR_ROLE_HEAT_0 + l), buf, 0);
			}
			x += cw;
		}
	}
legend:;
	/* Legend and scroll position. */
	int ly = a->rows - 3;
	fill_row(ly, 0, a->cols, CR_ROLE_NORMAL);
	x = 0;
	put_text(ly, x, 8, CR_ROLE_DIM, "scale:", 0);
	x += 8;
	for (int l = 0; l <= 4 && x + 16 < a->cols; l++) {
		if (l == 0)
			snprintf(buf, sizeof buf, "%s 0", G->shade[0]);
		else
			snprintf(buf, sizeof buf, "%s <=%.3g", G->shade[l], max * l / 4);
		put_text(ly, x, 15, (enum cr_color_role)(CR_ROLE_HEAT_0 + l), buf, 0);
		x += 16;
	}
	fill_row(ly + 1, 0, a->cols, CR_ROLE_NORMAL);
	if (h->compact)
		snprintf(buf, sizeof buf, "%d layers, one column each (the map is on its side to fit)", h->nlayers);
	else
		snprintf(buf, sizeof buf, "rows %d-%d of %d", h->nlayers ? h->top + 1 : 0,
			 h->top + body < h->nlayers ? h->top + body : h->nlayers, h->nlayers);
	put_text(ly + 1, 0, a->cols, CR_ROLE_DIM, buf, 0);
}

static int action(struct app *a, struct view *v, enum tui_action act, int key)
{
	(void)a;
	(void)key;
	struct heatmap *h = (struct heatmap *)v;
	int np = h->b->nparents;
	switch (act) {
	case ACT_PREV_PARENT:
		if (np)
			h->parent = (h->parent + np - 1) % np;
		return V_HANDLED | V_REDRAW;
	case ACT_NEXT_PARENT:
		if (np)
			h->parent = (h->parent + 1) % np;
		return V_HANDLED | V_REDRAW;
	case ACT_SCROLL_UP:
		h->top--;
		return V_HANDLED | V_REDRAW;
	case ACT_SCROLL_DOWN:
		h->top++;
		return V_HANDLED | V_REDRAW;
	default:
		return 0;
	}
}

static int mouse(struct app *a, struct view *v, const MEVENT *ev)
{
	(void)a;
	struct heatmap *h = (struct heatmap *)v;
	if (ev->bstate & BUTTON4_PRESSED)
		h->top -= 3;
#ifdef BUTTON5_PRESSED
	else if (ev->bstate & BUTTON5_PRESSED)
		h->top += 3;
#endif
	else
		return 0;
	return V_HANDLED | V_REDRAW;
}

static void destroy(struct view *v)
{
	struct heatmap *h = (struct heatmap *)v;
	free(h->cell_group);
	free(h);
}

static const struct view_ops heatmap_ops = {
	.name = "heatmap", .ctx = CTX_HEATMAP, .uses_list = 0, .draw = draw, .action = action, .mouse = mouse,
	.destroy = destroy,
};

struct view *heatmap_view_new(struct app *a, struct browser *b)
{
	(void)a;
	struct heatmap *h = cr_xcalloc(1, sizeof *h);
	h->view.ops = &heatmap_ops;
	h->b = b;
	int minl = 1 << 30, maxl = -2;
	for (size_t g = 0; g < b->ngroups; g++) {
		if (b->groups[g].cls == CR_CLASS_NONE)
			continue;
		if (b->groups[g].layer < minl)
			minl = b->groups[g].layer;
		if (b->groups[g].layer > maxl)
			maxl = b->groups[g].layer;
		h->cls_present[b->groups[g].cls] = 1;
	}
	if (maxl < minl)
		minl = maxl = 0;
	h->minlayer = minl;
	h->nlayers = maxl - minl + 1;
	h->cell_group = cr_xmalloc((size_t)h->nlayers * CR_CLASS__COUNT * sizeof *h->cell_group);
	for (int i = 0; i < h->nlayers * CR_CLASS__COUNT; i++)
		h->cell_group[i] = -1;
	for (size_t g = 0; g < b->ngroups; g++)
		if (b->groups[g].cls != CR_CLASS_NONE)
			h->cell_group[(b->groups[g].layer - minl) * CR_CLASS__COUNT + b->groups[g].cls] = (int)g;
	return &h->view;
}
