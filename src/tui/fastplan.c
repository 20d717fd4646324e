/* Grouped plan refresh (see fastplan.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fastplan.h"

#define MAX_FILTERS 64

struct group_key {
	int cls, layer;
	uint64_t mask; /* filter i is a substring of the name */
};

static void add_filters(const struct cr_param_set *s, const char **f, int *n, int *overflow)
{
	for (size_t i = 0; i < s->n; i++)
		for (size_t c = 0; c < s->items[i].nconds; c++) {
			const char *x = s->items[i].conds[c].filter;
			if (!x || strcmp(x, "*") == 0)
				continue;
			int seen = 0;
			for (int k = 0; k < *n; k++)
				seen |= strcmp(f[k], x) == 0;
			if (seen)
				continue;
			if (*n == MAX_FILTERS) {
				*overflow = 1;
				return;
			}
			f[(*n)++] = x;
		}
}

static uint64_t hash_key(const struct group_key *k)
{
	uint64_t h = (uint64_t)(k->cls + 1) * 0x9E3779B97F4A7C15ull;
	h ^= (uint64_t)(k->layer + 2) * 0xC2B2AE3D27D4EB4Full;
	h ^= k->mask * 0x165667B19E3779F9ull;
	return h ^ (h >> 29);
}

int fastplan_refresh(struct cr_plan *p, const struct cr_recipe *r, cr_error *err)
{
	if (r->method != p->method || r->nslices || p->ntensors == 0 || r->nmodels > CR_MAX_INPUTS)
		return cr_plan_refresh(p, r, err);
	/* Model of each parent, by path; duplicate paths are ambiguous: leave them to the planner. */
	int parent_model[CR_MAX_INPUTS];
	for (size_t j = 0; j < p->nparents && j < CR_MAX_INPUTS; j++) {
		parent_model[j] = -1;
		for (size_t m = 0; m < r->nmodels; m++)
			if (strcmp(r->models[m].resolved, p->parent_path[j]) == 0) {
				if (parent_model[j] >= 0)
					return cr_plan_refresh(p, r, err);
				parent_model[j] = (int)m;
			}
	}
	for (size_t m = 0; m < r->nmodels; m++) {
		int found = 0;
		for (size_t j = 0; j < p->nparents; j++)
			found |= strcmp(r->models[m].resolved, p->parent_path[j]) == 0;
		if (!found) /* a new model: the planner reports it */
			return cr_plan_refresh(p, r, err);
	}
	const char *filters[MAX_FILTERS];
	int nf = 0, overflow = 0;
	add_filters(&r->params, filters, &nf, &overflow);
	for (size_t m = 0; m < r->nmodels && !overflow; m++)
		add_filters(&r->models[m].params, filters, &nf, &overflow);
	if (overflow)
		return cr_plan_refresh(p, r, err);
	int ninputs = p->t[0].ninputs;
	for (size_t i = 1; i < p->ntensors; i++)
		if (p->t[i].ninputs != ninputs)
			return cr_plan_refresh(p, r, err);

	p->recipe = r;
	p->want = r->out_dtype != CR_DT_NONE ? r->out_dtype : r->dtype;
	p->seed = r->has_seed ? r->seed : 0;
	int nl = p->layers_out >= 0 ? p->layers_out : (p->nparents ? p->parents[0]->num_layers : 0);
	size_t cap = 1024;
	while (cap < 2 * p->ntensors && cap < (1u << 22))
		cap *= 2;
	size_t *slot = cr_xcalloc(cap, sizeof *slot); /* representative tensor + 1, 0 = empty */
	uint64_t *mask = cr_xmalloc(p->ntensors * sizeof *mask);
	size_t per = (size_t)ninputs * CR_P__COUNT;
	for (size_t i = 0; i < p->ntensors; i++) {
		struct cr_plan_tensor *o = &p->t[i];
		struct group_key k = { (int)o->cls, o->layer, 0 };
		for (int f = 0; f < nf; f++)
			if (strstr(o->name, filters[f]))
				k.mask |= 1ull << f;
		mask[i] = k.mask;
		size_t h = hash_key(&k) & (cap - 1), rep = 0;
		for (;;) {
			if (!slot[h])
				break;
			const struct cr_plan_tensor *q = &p->t[slot[h] - 1];
			if ((int)q->cls == k.cls && q->layer == k.layer && mask[slot[h] - 1] == k.mask && q->base == o->base) {
				rep = slot[h];
				break;
			}
			h = (h + 1) & (cap - 1);
		}
		if (rep) {
			const struct cr_plan_tensor *q = &p->t[rep - 1];
			memcpy(o->g, q->g, sizeof o->g);
			memcpy(o->p, q->p, per * sizeof *o->p);
			continue;
		}
		slot[h] = i + 1;
		/* Resolve this representative exactly as plan.c's resolve_params does: only the
		 * parameters the method reads, per-model ones per input, global ones once. */
		double t = cr_layer_t(o->layer, nl), v;
		for (int q = 0; q < CR_P__COUNT; q++) {
			double def = cr_param_default(p->method, (enum cr_param_id)q);
			int used = cr_method_uses(p->method, (enum cr_param_id)q);
			int per_model = cr_param_info((enum cr_param_id)q)->per_model;
			o->g[q] = used && !per_model &&
					  cr_recipe_param(r, -1, -1, -1, (enum cr_param_id)q, o->name, o->cls, t, &v)
				  ? v
				  : def;
			for (int in = 0; in < ninputs; in++) {
				int model = parent_model[o->in[in].parent];
				double *dst = &o->p[(size_t)in * CR_P__COUNT + (size_t)q];
				*dst = used && per_model &&
						       cr_recipe_param(r, model, -1, -1, (enum cr_param_id)q, o->name, o->cls, t, &v)
					       ? v
					       : def;
			}
		}
		/* aoe: a base the recipe does not list among the models gets what the others leave of 1. */
		if (p->method == CR_M_AOE && o->base >= 0 && parent_model[o->in[o->base].parent] < 0) {
			double rest = 1.0;
			for (int in = 0; in < ninputs; in++)
				if (in != o->base)
					rest -= o->p[(size_t)in * CR_P__COUNT + CR_P_WEIGHT];
			o->p[(size_t)o->base * CR_P__COUNT + CR_P_WEIGHT] = rest > 0.0 ? rest : 0.0;
		}
	}
	free(slot);
	free(mask);
	return 0;
}
