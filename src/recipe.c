/*
 * Recipe lookups and lifetime (see crucible/recipe.h): the layer position of a
 * tensor, gradient interpolation, parameter resolution with mergekit's
 * precedence, and freeing.  Reading is in recipe_read.c, writing in
 * recipe_write.c.
 *
 * It also has the small builder used to make a recipe in code.
 *
 * Resolution never allocates and never fails, so the planner can call it for
 * every tensor and parent from any thread.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crucible/recipe.h"

double cr_layer_t(int layer, int num_layers)
{
	if (layer < 0)
		return 0.0;
	if (num_layers <= 1 || layer >= num_layers - 1)
		return 1.0;
	return (double)layer / (double)(num_layers - 1);
}

double cr_pval_at(const struct cr_pval *v, double t)
{
	if (!v || v->n == 0)
		return 0.0;
	if (v->n == 1)
		return v->v[0];
	if (!(t > 0.0)) /* also NaN */
		t = 0.0;
	if (t > 1.0)
		t = 1.0;
	/* mergekit: position t*(n-1), linear between the neighbouring values */
	double scaled = t * (double)(v->n - 1);
	size_t i0 = (size_t)scaled;
	if (i0 >= v->n - 1)
		return v->v[v->n - 1];
	double frac = scaled - (double)i0;
	return (1.0 - frac) * v->v[i0] + frac * v->v[i0 + 1];
}

const struct cr_param_entry *cr_param_set_find(const struct cr_param_set *s, enum cr_param_id p)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->items[i].id == p)
			return &s->items[i];
	return NULL;
}

static int cond_matches(const struct cr_pcond *c, const char *tensor, enum cr_class cls)
{
	if (c->filter && strcmp(c->filter, "*") != 0 && !(tensor && strstr(tensor, c->filter)))
		return 0;
	if (c->cls != CR_CLASS_NONE && c->cls != cls)
		return 0;
	return 1;
}

/* 1 when the set has p and one of its entries matches. */
static int lookup(const struct cr_param_set *s, enum cr_param_id p, const char *tensor, enum cr_class cls, double t,
		  double *out)
{
	const struct cr_param_entry *e = cr_param_set_find(s, p);
	if (!e)
		return 0;
	for (size_t i = 0; i < e->nconds; i++)
		if (cond_matches(&e->conds[i], tensor, cls)) {
			*out = cr_pval_at(&e->conds[i].val, t);
			return 1;
		}
	return 0;
}

int cr_recipe_param(const struct cr_recipe *r, int model, int slice, int source, enum cr_param_id p,
		    const char *tensor, enum cr_class cls, double t, double *out)
{
	const struct cr_param_info *info = cr_param_info(p);
	if (!r || !info)
		return 0;
	double v;
	const struct cr_recipe_slice *sl = slice >= 0 && (size_t)slice < r->nslices ? &r->slices[slice] : NULL;
	/* Global parameters are not read from a model's own set (mergekit asks for them with model=None). */
	if (info->per_model) {
		if (model >= 0 && (size_t)model < r->nmodels && lookup(&r->models[model].params, p, tensor, cls, t, &v))
			goto found;
		if (sl && source >= 0 && (size_t)source < sl->nsources &&
		    lookup(&sl->sources[source].params, p, tensor, cls, t, &v))
			goto found;
	}
	if (sl && lookup(&sl->params, p, tensor, cls, t, &v))
		goto found;
	if (lookup(&r->params, p, tensor, cls, t, &v))
		goto found;
	return 0;
found:
	if (out)
		*out = v;
	return 1;
}

static void entry_clear(struct cr_param_entry *e);

static void param_set_free(struct cr_param_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		entry_clear(&s->items[i]);
	free(s->items);
	s->items = NULL;
	s->n = 0;
}

void cr_recipe_free(struct cr_recipe *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nmodels; i++) {
		free(r->models[i].path);
		free(r->models[i].resolved);
		param_set_free(&r->models[i].params);
	}
	free(r->models);
	for (size_t i = 0; i < r->nslices; i++) {
		struct cr_recipe_slice *s = &r->slices[i];
		for (size_t j = 0; j < s->nsources; j++) {
			free(s->sources[j].path);
			free(s->sources[j].resolved);
			param_set_free(&s->sources[j].params);
		}
		free(s->sources);
		param_set_free(&s->params);
	}
	free(r->slices);
	param_set_free(&r->params);
	free(r->file);
	free(r->base);
	free(r->base_resolved);
	free(r->tokenizer_source);
	free(r);
}

/* ---- building ---- */

char *cr_recipe_resolve(const char *file, const char *path)
{
	const char *slash = file ? strrchr(file, '/') : NULL;
	if (path[0] == '/' || !slash)
		return cr_xstrdup(path);
	size_t dl = (size_t)(slash - file) + 1, pl = strlen(path);
	char *s = cr_xmalloc(dl + pl + 1);
	memcpy(s, file, dl);
	memcpy(s + dl, path, pl + 1);
	return s;
}

struct cr_recipe *cr_recipe_new(enum cr_method_id method, const char *file)
{
	struct cr_recipe *r = cr_xcalloc(1, sizeof *r);
	r->file = cr_xstrdup(file ? file : "<recipe>");
	r->method = method;
	r->dtype = r->out_dtype = CR_DT_NONE;
	return r;
}

void cr_recipe_set_base(struct cr_recipe *r, const char *path)
{
	free(r->base);
	free(r->base_resolved);
	r->base = path ? cr_xstrdup(path) : NULL;
	r->base_resolved = path ? cr_recipe_resolve(r->file, path) : NULL;
}

struct cr_recipe_model *cr_recipe_add_model(struct cr_recipe *r, const char *path)
{
	r->models = cr_xrealloc(r->models, (r->nmodels + 1) * sizeof *r->models);
	struct cr_recipe_model *m = &r->models[r->nmodels++];
	memset(m, 0, sizeof *m);
	m->path = cr_xstrdup(path);
	m->resolved = cr_recipe_resolve(r->file, path);
	return m;
}

static void entry_clear(struct cr_param_entry *e)
{
	for (size_t j = 0; j < e->nconds; j++) {
		free(e->conds[j].filter);
		free(e->conds[j].val.v);
	}
	free(e->conds);
	e->conds = NULL;
	e->nconds = 0;
}

static struct cr_param_entry *entry_get(struct cr_param_set *s, enum cr_param_id p)
{
	struct cr_param_entry *e = (struct cr_param_entry *)cr_param_set_find(s, p);
	if (e)
		return e;
	s->items = cr_xrealloc(s->items, (s->n + 1) * sizeof *s->items);
	e = &s->items[s->n++];
	memset(e, 0, sizeof *e);
	e->id = p;
	return e;
}

void cr_param_set_add_cond(struct cr_param_set *s, enum cr_param_id p, const char *filter, enum cr_class cls,
			   size_t n, const double *v)
{
	struct cr_param_entry *e = entry_get(s, p);
	e->conds = cr_xrealloc(e->conds, (e->nconds + 1) * sizeof *e->conds);
	struct cr_pcond *c = &e->conds[e->nconds++];
	c->filter = filter ? cr_xstrdup(filter) : NULL;
	c->cls = cls;
	c->val.n = n;
	c->val.v = cr_xmalloc((n ? n : 1) * sizeof(double));
	if (n)
		memcpy(c->val.v, v, n * sizeof(double));
}

void cr_param_set_value(struct cr_param_set *s, enum cr_param_id p, size_t n, const double *v)
{
	entry_clear(entry_get(s, p));
	cr_param_set_add_cond(s, p, NULL, CR_CLASS_NONE, n, v);
}

void cr_param_set_remove(struct cr_param_set *s, enum cr_param_id p)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->items[i].id == p) {
			entry_clear(&s->items[i]);
			memmove(&s->items[i], &s->items[i + 1], (s->n - i - 1) * sizeof *s->items);
			s->n--;
			return;
		}
}
