/*
 * Tensor detail: every statistic of one tensor for each parent, a histogram
 * of P - B per parent drawn with block characters, and for block-FP8
 * tensors the spread of the block scales.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "crucible/format.h"

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

static void draw(struct app *a, struct view *v)
{
	struct detail *d = (struct detail *)v;
	struct browser *b = d->b;
	const struct cr_tensor *t = &a->ckpt[0]->tensors[d->t];
	char buf[512], sh[128], sz[32];
	snprintf(buf, sizeof buf, "tensor %s  (Up/Down: other tensors, q back)", t->name);
	app_draw_frame(a, buf);
	for (int y = 1; y < a->rows - 1; y++)
		fill_row(y, 0, a->cols, CR_ROLE_NORMAL);
	int y = 2;
	snprintf(buf, sizeof buf, "class %s  layer %d%s  dtype %s  shape %s  %s", cr_class_name(t->cls), t->layer,
		 t->expert >= 0 ? "" : "", cr_dtype_name(t->dtype), cr_fmt_shape(t->shape, t->ndim, sh, sizeof sh),
		 cr_fmt_bytes(t->nbytes, sz, sizeof sz));
	put_text(y++, 1, a->cols - 2, CR_ROLE_PANEL_LABEL, buf, 0);
	y++;
	for (int p = 0; p < b->nparents; p++) {
		double r = b->rel[d->t * (size_t)b->nparents + (size_t)p];
		snprintf(buf, sizeof buf, "%s: rel %.6g", browser_model_name(b, p + 1), r);
		put_text(y++, 1, a->cols - 2, isnan(r) ? CR_ROLE_DIM : rel_role(r), buf, 0);
	}
	y++;
	if (d->nscales) {
		float *s = cr_xmalloc(d->nscales * sizeof *s);
		memcpy(s, d->scales, d->nscales * sizeof *s);
		qsort(s, d->nscales, sizeof *s, cmp_float);
		snprintf(buf, sizeof buf, "FP8 block scales (%zu blocks of 128x128): min %.4g  median %.4g  max %.4g  max/min %.3g",
			 d->nscales, s[0], s[d->nscales / 2], s[d->nscales - 1],
			 s[0] > 0 ? (double)s[d->nscales - 1] / s[0] : INFINITY);
		put_text(y++, 1, a->cols - 2, CR_ROLE_PANEL_TITLE, buf, 0);
		free(s);
	} else if (d->scale_err[0]) {
		put_text(y++, 1, a->cols - 2, CR_ROLE_ERROR, d->scale_err, 0);
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
