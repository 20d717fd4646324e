/*
 * Tensor detail: every statistic of one tensor for each parent (from the
 * finished scan), a histogram of P - B per parent drawn with block
 * characters (ASCII '#' without UTF-8), and for block-FP8 tensors the spread
 * of the block scales.  Up/Down move to the neighbouring tensor.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "crucible/format.h"
#include "crucible/stats.h"

struct detail {
	struct view view;
	struct browser *b;
	size_t t;
	float *scales;
	size_t nscales;
	char scale_err[1024];
};

static void load_scales(struct detail *d)
{
	free(d->scales);
	d->scales = NULL;
	d->nscales = 0;
	d->scale_err[0] = '\0';
	const struct cr_ckpt *c = d->b->app->ckpt[0];
	const struct cr_tensor *t = &c->tensors[d->t];
	if (!t->scale)
		return;
	size_t n = cr_tensor_scale_count(t);
	float *g = cr_xmalloc((n ? n : 1) * sizeof *g);
	cr_error err = { 0 };
	/* A few KB of scales: small enough to read on the UI thread. */
	if (cr_tensor_read_scales(c, t, g, &err) < 0) {
		snprintf(d->scale_err, sizeof d->scale_err, "%s", err.msg);
		free(g);
		return;
	}
	d->scales = g;
	d->nscales = n;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* The scan's record for UI tensor i (same catalog order, checked by name). */
static const struct cr_stats_tensor *stats_of(struct detail *d)
{
	const struct cr_stats *s = d->b->stats;
	const char *name = d->b->app->ckpt[0]->tensors[d->t].name;
	if (!s)
		return NULL;
	if (d->t < s->ntensors && strcmp(s->tensors[d->t].t->name, name) == 0)
		return &s->tensors[d->t];
	for (size_t i = 0; i < s->ntensors; i++)
		if (strcmp(s->tensors[i].t->name, name) == 0)
			return &s->tensors[i];
	return NULL;
}

/* Histogram of one pair: bins as columns, heights on a log scale so the tails show. */
static int draw_hist(int y, int x, int h, int w, const struct cr_stats_pair *p)
{
	static const char *const blocks[9] = { " ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
	int bins = CR_STATS_HIST_BINS, cw = w / bins;
	if (cw < 1 || h < 3)
		return 0;
	if (cw > 3)
		cw = 3;
	double top = 0;
	for (int i = 0; i < bins; i++)
		if (log1p((double)p->s.hist[i]) > top)
			top = log1p((double)p->s.hist[i]);
	int rows = h - 1;
	for (int r = 0; r < rows; r++) {
		move(y + r, x);
		for (int i = 0; i < bins; i++) {
			double v = top > 0 ? log1p((double)p->s.hist[i]) / top * rows : 0;
			double fill = v - (rows - 1 - r); /* how much of this cell is filled, 0..1 */
			const char *g;
			if (G->utf8)
				g = fill >= 1 ? blocks[8] : fill <= 0 ? blocks[0] : blocks[(int)(fill * 8)];
			else
				g = fill >= 0.5 ? "#" : " ";
			attrset(role_attr(i == CR_STATS_HIST_SIDE ? CR_ROLE_DIM : CR_ROLE_REL_MID));
			for (int c = 0; c < cw; c++)
				addstr(g);
		}
	}
	attrset(A_NORMAL);
	char buf[128];
	double edges[CR_STATS_HIST_BINS + 1];
	cr_stats_hist_edges(p->s.hist_width, edges);
	snprintf(buf, sizeof buf, "%-12.3g", edges[0]);
	put_text(y + rows, x, 12, CR_ROLE_DIM, buf, 0);
	put_text(y + rows, x + bins * cw / 2 - 1, 3, CR_ROLE_DIM, "0", 0);
	snprintf(buf, sizeof buf, "%.3g", edges[CR_STATS_HIST_BINS]);
	put_text(y + rows, x + bins * cw - 12, 12, CR_ROLE_DIM, buf, 1);
	return bins * cw;
}

static void draw(struct app *a, struct view *v)
{
	struct detail *d = (struct detail *)v;
	struct browser *b = d->b;
	const struct cr_tensor *t = &a->ckpt[0]->tensors[d->t];
	char buf[1024], sh[128], sz[32];
	snprintf(buf, sizeof buf, "tensor %s  (Up/Down: neighbours, q back)", t->name);
	app_draw_frame(a, buf);
	for (int y = 1; y < a->rows - 1; y++)
		fill_row(y, 0, a->cols, CR_ROLE_NORMAL);
	int y = 2, W = a->cols - 2;
	snprintf(buf, sizeof buf, "class %s   layer %d%s   dtype %s   shape %s   %s   decision %s", cr_class_name(t->cls),
		 t->layer, t->expert >= 0 ? "" : "", cr_dtype_name(t->dtype), cr_fmt_shape(t->shape, t->ndim, sh, sizeof sh),
		 cr_fmt_bytes(t->nbytes, sz, sizeof sz), browser_decision_text(b, b->dec[d->t]));
	put_text(y++, 1, W, CR_ROLE_PANEL_LABEL, buf, 0);
	if (d->nscales) {
		float *s = cr_xmalloc(d->nscales * sizeof *s);
		memcpy(s, d->scales, d->nscales * sizeof *s);
		qsort(s, d->nscales, sizeof *s, cmp_float);
		snprintf(buf, sizeof buf,
			 "FP8 block scales (%zu blocks of 128x128): min %.4g  p10 %.4g  median %.4g  p90 %.4g  max %.4g  "
			 "max/min %.3g",
			 d->nscales, s[0], s[d->nscales / 10], s[d->nscales / 2], s[d->nscales * 9 / 10], s[d->nscales - 1],
			 s[0] > 0 ? (double)s[d->nscales - 1] / s[0] : INFINITY);
		put_text(y++, 1, W, CR_ROLE_PANEL_TITLE, buf, 0);
		free(s);
	} else if (d->scale_err[0]) {
		put_text(y++, 1, W, CR_ROLE_ERROR, d->scale_err, 0);
	}
	const struct cr_stats_tensor *st = stats_of(d);
	if (!st) {
		y++;
		for (int p = 0; p < b->nparents; p++) {
			double r = b->rel[d->t * (size_t)b->nparents + (size_t)p];
			snprintf(buf, sizeof buf, "%s: rel %.6g  (full statistics once the scan has finished)",
				 browser_model_name(b, p + 1), r);
			put_text(y++, 1, W, isnan(r) ? CR_ROLE_DIM : rel_role(r), buf, 0);
		}
		return;
	}
	if (!isnan(st->sign_agree)) {
		snprintf(buf, sizeof buf, "sign agreement of P-B across the parents: %.2f%% of %llu elements",
			 100 * st->sign_agree, (unsigned long long)st->agree_n);
		put_text(y++, 1, W, CR_ROLE_PANEL_LABEL, buf, 0);
	}
	/* One block per parent: the numbers, then its histogram. */
	int per = b->nparents ? (a->rows - 2 - y) / b->nparents : 0;
	for (int p = 0; p < b->nparents && y < a->rows - 2; p++) {
		const struct cr_stats_pair *pr = &st->pairs[p];
		y++;
		snprintf(buf, sizeof buf, "%s vs %s: %s%s%s", browser_model_name(b, p + 1), browser_model_name(b, 0),
			 cr_stats_status_name(pr->status), pr->note ? ": " : "", pr->note ? pr->note : "");
		put_text(y++, 1, W, CR_ROLE_HEADER, buf, 0);
		if (pr->status != CR_STATS_OK && pr->status != CR_STATS_IDENTICAL)
			continue;
		snprintf(buf, sizeof buf,
			 "rel %.6g   cos %.8f   |B| %.6g   |P-B| %.6g   max|P-B| %.4g   mean|P-B| %.4g   NaN %llu  Inf %llu%s",
			 pr->rel, pr->cosine, pr->norm_base, pr->norm_delta, pr->max_abs, pr->mean_abs,
			 (unsigned long long)pr->s.nan, (unsigned long long)pr->s.inf,
			 pr->s.identical ? "   byte-identical to the base" : "");
		put_text(y++, 1, W, rel_role(pr->rel), buf, 0);
		int hh = per - 3;
		if (hh > 10)
			hh = 10;
		if (hh >= 3 && !pr->s.identical && pr->s.hist_width > 0) {
			put_text(y, 1, 16, CR_ROLE_DIM, "P-B histogram", 0);
			put_text(y + 1, 1, 16, CR_ROLE_DIM, "(log counts)", 0);
			draw_hist(y, 18, hh, a->cols - 20, pr);
			y += hh;
		}
	}
}

static int action(struct app *a, struct view *v, enum tui_action act, int key)
{
	(void)a;
	(void)key;
	struct detail *d = (struct detail *)v;
	if (act == ACT_DETAIL_PREV && d->t > 0)
		d->t--;
	else if (act == ACT_DETAIL_NEXT && d->t + 1 < d->b->ntensors)
		d->t++;
	else
		return 0;
	load_scales(d);
	return V_HANDLED | V_REDRAW;
}

static void destroy(struct view *v)
{
	struct detail *d = (struct detail *)v;
	free(d->scales);
	free(d);
}

static const struct view_ops detail_ops = {
	.name = "detail", .ctx = CTX_DETAIL, .uses_list = 0, .draw = draw, .action = action, .mouse = NULL,
	.destroy = destroy,
};

struct view *detail_view_new(struct app *a, struct browser *b, size_t tensor)
{
	(void)a;
	struct detail *d = cr_xcalloc(1, sizeof *d);
	d->view.ops = &detail_ops;
	d->b = b;
	d->t = tensor;
	load_scales(d);
	return &d->view;
}
