/*
 * Aggregates of per-tensor statistics over layer x class, class, or the
 * whole model (see crucible/stats.h).  Sums of squares add up, so the group
 * rel is sqrt(sum ||D||^2) / sqrt(sum ||B||^2): a group behaves like one
 * tensor made of its members, not like the mean of their ratios.  Called by
 * the front ends on a finished (or partial) scan; pure computation.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/stats.h"

static int agg_cmp(const void *a, const void *b)
{
	const struct cr_stats_agg *x = a, *y = b;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return (int)x->cls - (int)y->cls;
}

static void agg_finish(struct cr_stats_agg *g)
{
	g->norm_base = sqrt(g->base_sq);
	g->norm_delta = sqrt(g->sum_dd);
	g->rel = g->norm_base > 0 ? g->norm_delta / g->norm_base : (g->norm_delta > 0 ? INFINITY : 0.0);
	g->cosine = g->elements ? g->cos_w / (double)g->elements : NAN;
	g->mean_abs = g->n ? g->sum_absd / (double)g->n : 0.0;
	g->sign_agree = g->agree_elems ? g->agree_w / (double)g->agree_elems : NAN;
}

size_t cr_stats_aggregate(const struct cr_stats *s, size_t parent, enum cr_stats_group by, struct cr_stats_agg **out)
{
	struct cr_stats_agg *g = NULL;
	size_t ng = 0, cap = 0;

	*out = NULL;
	if (parent >= s->nparents)
		return 0;
	/* Direct index of a (layer, class) group: layers -1..maxl, classes + NONE. */
	int maxl = -1;
	for (size_t i = 0; i < s->ntensors; i++)
		maxl = s->tensors[i].t->layer > maxl ? s->tensors[i].t->layer : maxl;
	size_t ncls = CR_CLASS__COUNT + 1;
	size_t *slot = cr_xmalloc((size_t)(maxl + 2) * ncls * sizeof *slot);
	for (size_t k = 0; k < (size_t)(maxl + 2) * ncls; k++)
		slot[k] = SIZE_MAX;
	for (size_t i = 0; i < s->ntensors; i++) {
		const struct cr_stats_tensor *t = &s->tensors[i];
		const struct cr_stats_pair *p = &t->pairs[parent];
		int layer = by == CR_GROUP_LAYER_CLASS ? t->t->layer : -1;
		enum cr_class cls = by == CR_GROUP_ALL ? CR_CLASS_NONE : t->t->cls;
		if (p->status == CR_STATS_PENDING)
			continue;
		size_t *sl = &slot[(size_t)(layer + 1) * ncls + (cls == CR_CLASS_NONE ? CR_CLASS__COUNT : (size_t)cls)];
		size_t k = *sl;
		if (k == SIZE_MAX) {
			k = *sl = ng;
			if (ng == cap) {
				cap = cap ? 2 * cap : 16;
				g = cr_xrealloc(g, cap * sizeof *g);
			}
			memset(&g[ng], 0, sizeof g[ng]);
			g[ng].layer = layer;
			g[ng].cls = cls;
			ng++;
		}
		struct cr_stats_agg *a = &g[k];
		if (p->status != CR_STATS_OK && p->status != CR_STATS_IDENTICAL) {
			a->skipped++;
			continue;
		}
		uint64_t ne = p->s.nelem;
		a->tensors++;
		a->identical += p->status == CR_STATS_IDENTICAL;
		a->elements += ne;
		a->n += p->s.n;
		a->nan += p->s.nan;
		a->inf += p->s.inf;
		a->base_sq += p->s.base_sq;
		a->sum_dd += p->s.sum_dd;
		a->sum_absd += p->s.sum_absd;
		a->max_abs = p->max_abs > a->max_abs ? p->max_abs : a->max_abs;
		a->cos_w += p->cosine * (double)ne;
		if (t->agree_n) {
			a->agree_w += (double)t->agree;
			a->agree_elems += t->agree_n;
		}
	}
	free(slot);
	for (size_t k = 0; k < ng; k++)
		agg_finish(&g[k]);
	if (ng)
		qsort(g, ng, sizeof *g, agg_cmp);
	*out = g;
	return ng;
}
