/*
 * Merge plans (see crucible/plan.h): parents, tensor alignment across them,
 * per-tensor parameters and decisions.
 *
 * Invariants after cr_plan_build: every input tensor exists and has the
 * output's shape (or, for embed/lm_head, at least its rows with the same
 * columns: a vocabulary sub-matrix); the tensors are in natural name order;
 * parent 0 is the base when there is one.  Called by the engine, the CLI and
 * the workbench.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/fp8.h"
#include "crucible/plan.h"

#define MAX_MISMATCH 4

struct builder {
	struct cr_plan *p;
	const struct cr_recipe *r;
	size_t cap;
	char mism[MAX_MISMATCH][256];
	int nmism;
	cr_warn_fn warn;
	void *ctx;
};

static int find_parent(struct cr_plan *p, const char *path)
{
	for (size_t i = 0; i < p->nparents; i++)
		if (strcmp(p->parent_path[i], path) == 0)
			return (int)i;
	return -1;
}

static int add_parent(struct cr_plan *p, const char *path, cr_error *err)
{
	int i = find_parent(p, path);
	if (i >= 0)
		return i;
	if (p->nparents >= CR_MAX_INPUTS)
		return cr_fail(err, CR_E_UNSUPPORTED, "recipe names more than %d models", CR_MAX_INPUTS);
	struct cr_ckpt *c;
	if (cr_ckpt_open(path, &c, err) < 0)
		return -1;
	p->parents = cr_xrealloc(p->parents, (p->nparents + 1) * sizeof *p->parents);
	p->parent_path = cr_xrealloc(p->parent_path, (p->nparents + 1) * sizeof *p->parent_path);
	p->parents[p->nparents] = c;
	p->parent_path[p->nparents] = cr_xstrdup(path);
	return (int)p->nparents++;
}

static void mismatch(struct builder *b, const char *fmt, const char *a, const char *c)
{
	if (b->nmism < MAX_MISMATCH)
		snprintf(b->mism[b->nmism], sizeof b->mism[0], fmt, a, c);
	b->nmism++;
}

/* Name with the decoder layer number replaced ("model.layers.7.x" -> layer L). */
static char *rename_layer(const char *name, int layer)
{
	const char *s = strstr(name, "layers.");
	if (!s || s[7] < '0' || s[7] > '9')
		return cr_xstrdup(name);
	const char *e = s + 7;
	while (*e >= '0' && *e <= '9')
		e++;
	size_t n = strlen(name) + 16;
	char *out = cr_xmalloc(n);
	snprintf(out, n, "%.*s%d%s", (int)(s + 7 - name), name, layer, e);
	return out;
}

/* Is shape a of an input acceptable for output shape o? 1 equal, 2 vocab sub-matrix, 0 no. */
static int shape_fits(const struct cr_tensor *in, const struct cr_plan_tensor *o)
{
	if (in->ndim == o->ndim) {
		int eq = 1;
		for (int d = 0; d < o->ndim; d++)
			eq &= in->shape[d] == o->shape[d];
		if (eq)
			return 1;
	}
	if ((o->cls == CR_CLASS_EMBED || o->cls == CR_CLASS_HEAD) && in->ndim == 2 && o->ndim == 2 &&
	    in->shape[1] == o->shape[1] && in->shape[0] > o->shape[0])
		return 2;
	return 0;
}

static void shape_str(const struct cr_tensor *t, char *buf, size_t n)
{
	size_t k = (size_t)snprintf(buf, n, "[");
	for (int d = 0; d < t->ndim && k < n; d++)
		k += (size_t)snprintf(buf + k, n - k, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
	if (k < n)
		snprintf(buf + k, n - k, "]");
}

/* Per-input model index into r->models (or slice source index) for parameter lookup. */
struct input_src {
	int parent;
	int model;  /* index into models[], -1 */
	int slice;  /* -1 unless slices */
	int source; /* -1 unless slices */
	int layer;  /* the input's own layer (slices), or -1 to use the output name */
};

static int add_tensor(struct builder *b, const char *oname, const struct cr_tensor *proto,
		      const struct input_src *src, int nsrc, int base_input, int out_layer, cr_error *err)
{
	struct cr_plan *p = b->p;
	if (proto->ndim > CR_PLAN_MAXDIM)
		return cr_fail(err, CR_E_UNSUPPORTED, "tensor '%s': %d dimensions (at most %d)", proto->name,
			       proto->ndim, CR_PLAN_MAXDIM);
	if (p->ntensors == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 256;
		p->t = cr_xrealloc(p->t, b->cap * sizeof *p->t);
	}
	struct cr_plan_tensor *o = &p->t[p->ntensors];
	memset(o, 0, sizeof *o);
	o->name = cr_xstrdup(oname);
	o->cls = proto->cls;
	o->layer = out_layer;
	o->expert = proto->expert;
	o->ndim = proto->ndim;
	for (int d = 0; d < o->ndim; d++)
		o->shape[d] = proto->shape[d];
	o->nelem = proto->nelem;
	o->base = base_input;
	o->ref = base_input >= 0 ? base_input : 0;
	o->ninputs = nsrc;
	o->in = cr_xcalloc((size_t)nsrc, sizeof *o->in);
	o->p = cr_xcalloc((size_t)nsrc * CR_P__COUNT, sizeof(double));
	for (int k = 0; k < nsrc; k++) {
		struct cr_ckpt *c = p->parents[src[k].parent];
		char *iname = src[k].layer >= 0 ? rename_layer(oname, src[k].layer) : cr_xstrdup(oname);
		const struct cr_tensor *t = cr_ckpt_find(c, iname);
		o->in[k].parent = src[k].parent;
		o->in[k].t = t;
		if (!t) {
			mismatch(b, "tensor '%s' is missing from %s", iname, p->parent_path[src[k].parent]);
		} else {
			int fit = shape_fits(t, o);
			if (fit == 0) {
				char s1[96], s2[96];
				shape_str(t, s1, sizeof s1);
				shape_str(proto, s2, sizeof s2);
				char what[200];
				snprintf(what, sizeof what, "%s in %s vs %s", s1, p->parent_path[src[k].parent], s2);
				mismatch(b, "tensor '%s' has shape %s", iname, what);
			} else if (fit == 2) {
				o->in[k].submatrix = 1;
				if (b->warn) {
					char msg[512];
					snprintf(msg, sizeof msg,
						 "%s: tensor '%s': vocabulary of %llu rows, using the first %llu",
						 p->parent_path[src[k].parent], iname, (unsigned long long)t->shape[0],
						 (unsigned long long)o->shape[0]);
					b->warn(b->ctx, msg);
				}
			}
		}
		free(iname);
	}
	p->ntensors++;
	return 0;
}

static void resolve_params(struct cr_plan *p, const struct cr_recipe *r, struct cr_plan_tensor *o,
			   const struct input_src *src, int slice)
{
	int nl = p->layers_out >= 0 ? p->layers_out : (p->nparents ? p->parents[0]->num_layers : 0);
	double t = cr_layer_t(o->layer, nl);
	for (int q = 0; q < CR_P__COUNT; q++) {
		double v, def = cr_param_default(p->method, (enum cr_param_id)q);
		/* every parameter at every level, so that the plan shows what the recipe says */
		o->g[q] = cr_recipe_param(r, -1, slice, -1, (enum cr_param_id)q, o->name, o->cls, t, &v) ? v : def;
		for (int k = 0; k < o->ninputs; k++) {
			double *dst = &o->p[(size_t)k * CR_P__COUNT + (size_t)q];
			if (cr_recipe_param(r, src[k].model, src[k].slice, src[k].source, (enum cr_param_id)q, o->name,
					    o->cls, t, &v))
				*dst = v;
			else
				*dst = def;
		}
	}
	/* aoe: a base that the recipe does not list among the models gets what the others leave of 1 */
	if (p->method == CR_M_AOE && o->base >= 0 && src[o->base].model < 0 && src[o->base].source < 0) {
		double rest = 1.0;
		for (int k = 0; k < o->ninputs; k++)
			if (k != o->base)
				rest -= o->p[(size_t)k * CR_P__COUNT + CR_P_WEIGHT];
		o->p[(size_t)o->base * CR_P__COUNT + CR_P_WEIGHT] = rest > 0.0 ? rest : 0.0;
	}
}

/* Input list for the models form. */
static int model_inputs(struct cr_plan *p, const struct cr_recipe *r, const int *mparent, struct input_src *src,
			int *base_input)
{
	int n = 0;
	*base_input = -1;
	int with_base = p->has_base && p->method != CR_M_LINEAR && p->method != CR_M_PASSTHROUGH;
	if (with_base) {
		src[n] = (struct input_src){ 0, -1, -1, -1, -1 };
		for (size_t m = 0; m < r->nmodels; m++)
			if (mparent[m] == 0) {
				src[n].model = (int)m;
				break;
			}
		*base_input = n++;
	}
	for (size_t m = 0; m < r->nmodels; m++) {
		if (with_base && mparent[m] == 0)
			continue;
		src[n++] = (struct input_src){ mparent[m], (int)m, -1, -1, -1 };
		if (p->has_base && mparent[m] == 0 && *base_input < 0)
			*base_input = n - 1;
	}
	return n;
}

static int cmp_tensor(const void *a, const void *b)
{
	const struct cr_plan_tensor *x = a, *y = b;
	return cr_natural_cmp(x->name, y->name);
}

static int build_models(struct builder *b, const int *mparent, cr_error *err)
{
	struct cr_plan *p = b->p;
	const struct cr_recipe *r = b->r;
	struct input_src src[CR_MAX_INPUTS];
	int base_input;
	int n = model_inputs(p, r, mparent, src, &base_input);
	if (n == 0)
		return cr_fail(err, CR_E_RECIPE, "%s: the recipe has no models to merge", r->file);
	const struct cr_ckpt *ref = p->parents[src[base_input >= 0 ? base_input : 0].parent];
	for (size_t i = 0; i < ref->ntensors; i++) {
		const struct cr_tensor *t = &ref->tensors[i];
		if (add_tensor(b, t->name, t, src, n, base_input, t->layer, err) < 0)
			return -1;
		resolve_params(p, r, &p->t[p->ntensors - 1], src, -1);
	}
	/* tensors that other parents have and the reference lacks */
	for (int k = 0; k < n; k++) {
		const struct cr_ckpt *c = p->parents[src[k].parent];
		if (c == ref)
			continue;
		for (size_t i = 0; i < c->ntensors; i++)
			if (!cr_ckpt_find(ref, c->tensors[i].name))
				mismatch(b, "tensor '%s' of %s is missing from the base", c->tensors[i].name,
					 p->parent_path[src[k].parent]);
	}
	return 0;
}

static int build_slices(struct builder *b, cr_error *err)
{
	struct cr_plan *p = b->p;
	const struct cr_recipe *r = b->r;
	int total = 0;
	for (size_t s = 0; s < r->nslices; s++) {
		const struct cr_recipe_slice *sl = &r->slices[s];
		if (sl->nsources == 0)
			return cr_fail(err, CR_E_RECIPE, "%s:%d: slice %zu has no sources", r->file, sl->line, s);
		total += sl->sources[0].layer_end - sl->sources[0].layer_start;
	}
	p->layers_out = total;

	/* non-layer tensors (embeddings, final norm, head): from the base, or the first source */
	struct input_src src[CR_MAX_INPUTS];
	int n = 0, base_input = -1;
	const struct cr_recipe_slice *s0 = &r->slices[0];
	if (p->method == CR_M_PASSTHROUGH) {
		int par = p->has_base ? 0 : find_parent(p, s0->sources[0].resolved);
		src[n++] = (struct input_src){ par, -1, p->has_base ? -1 : 0, p->has_base ? -1 : 0, -1 };
	} else {
		if (p->has_base) {
			src[n] = (struct input_src){ 0, -1, 0, -1, -1 };
			base_input = n++;
		}
		for (size_t k = 0; k < s0->nsources; k++) {
			int par = find_parent(p, s0->sources[k].resolved);
			if (p->has_base && par == 0) {
				src[base_input].source = (int)k;
				continue;
			}
			src[n++] = (struct input_src){ par, -1, 0, (int)k, -1 };
		}
	}
	const struct cr_ckpt *ref = p->parents[src[base_input >= 0 ? base_input : 0].parent];
	for (size_t i = 0; i < ref->ntensors; i++) {
		const struct cr_tensor *t = &ref->tensors[i];
		if (t->layer >= 0)
			continue;
		if (add_tensor(b, t->name, t, src, n, base_input, -1, err) < 0)
			return -1;
		resolve_params(p, r, &p->t[p->ntensors - 1], src, 0);
	}

	int out = 0;
	for (size_t s = 0; s < r->nslices; s++) {
		const struct cr_recipe_slice *sl = &r->slices[s];
		int nl = sl->sources[0].layer_end - sl->sources[0].layer_start;
		if (p->method == CR_M_PASSTHROUGH && sl->nsources != 1)
			return cr_fail(err, CR_E_RECIPE, "%s:%d: passthrough takes one source per slice, got %zu",
				       r->file, sl->line, sl->nsources);
		n = 0;
		base_input = -1;
		for (size_t k = 0; k < sl->nsources; k++) {
			const struct cr_recipe_source *so = &sl->sources[k];
			if (so->layer_end - so->layer_start != nl)
				return cr_fail(err, CR_E_RECIPE, "%s:%d: the sources of slice %zu differ in length",
					       r->file, so->line, s);
			int par = find_parent(p, so->resolved);
			src[n] = (struct input_src){ par, -1, (int)s, (int)k, 0 };
			if (p->has_base && par == 0 && p->method != CR_M_PASSTHROUGH)
				base_input = n;
			n++;
		}
		const struct cr_ckpt *first = p->parents[src[0].parent];
		for (int j = 0; j < nl; j++) {
			int l0 = sl->sources[0].layer_start + j;
			if (l0 >= first->num_layers && first->num_layers > 0)
				return cr_fail(err, CR_E_RECIPE, "%s:%d: layer %d is beyond the %d layers of %s", r->file,
					       sl->sources[0].line, l0, first->num_layers, p->parent_path[src[0].parent]);
			for (size_t i = 0; i < first->ntensors; i++) {
				const struct cr_tensor *t = &first->tensors[i];
				if (t->layer != l0)
					continue;
				char *oname = rename_layer(t->name, out + j);
				for (int k = 0; k < n; k++)
					src[k].layer = sl->sources[k].layer_start + j;
				int rc = add_tensor(b, oname, t, src, n, base_input, out + j, err);
				free(oname);
				if (rc < 0)
					return -1;
				resolve_params(p, r, &p->t[p->ntensors - 1], src, (int)s);
			}
		}
		out += nl;
	}
	return 0;
}

int cr_plan_build(const struct cr_recipe *r, struct cr_plan **out, cr_warn_fn warn, void *ctx, cr_error *err)
{
	struct cr_plan *p = cr_xcalloc(1, sizeof *p);
	struct builder b = { .p = p, .r = r, .warn = warn, .ctx = ctx };
	p->recipe = r;
	p->method = r->method;
	p->layers_out = -1;
	p->want = r->out_dtype != CR_DT_NONE ? r->out_dtype : r->dtype;
	p->seed = r->has_seed ? r->seed : 0;
	int rc = 0;
	int *mparent = cr_xcalloc(r->nmodels + 1, sizeof(int));
	if (r->base_resolved) {
		rc = add_parent(p, r->base_resolved, err);
		p->has_base = rc == 0;
	}
	for (size_t m = 0; m < r->nmodels && rc >= 0; m++)
		rc = mparent[m] = add_parent(p, r->models[m].resolved, err);
	for (size_t s = 0; s < r->nslices && rc >= 0; s++)
		for (size_t k = 0; k < r->slices[s].nsources && rc >= 0; k++)
			rc = add_parent(p, r->slices[s].sources[k].resolved, err);
	if (rc >= 0) {
		const struct cr_method_info *mi = cr_method_info(r->method);
		if (mi && mi->needs_base && !p->has_base)
			rc = cr_fail(err, CR_E_RECIPE, "%s: method %s needs a base_model", r->file, mi->name);
	}
	if (rc >= 0)
		rc = r->nslices ? build_slices(&b, err) : build_models(&b, mparent, err);
	free(mparent);
	if (rc >= 0 && b.nmism) {
		char msg[1024];
		size_t k = (size_t)snprintf(msg, sizeof msg, "parents do not match (%d problem%s): ", b.nmism,
					    b.nmism == 1 ? "" : "s");
		for (int i = 0; i < b.nmism && i < MAX_MISMATCH && k < sizeof msg; i++)
			k += (size_t)snprintf(msg + k, sizeof msg - k, "%s%s", i ? "; " : "", b.mism[i]);
		if (b.nmism > MAX_MISMATCH && k < sizeof msg)
			snprintf(msg + k, sizeof msg - k, "; ...");
		rc = cr_fail(err, CR_E_MISMATCH, "%s", msg);
	}
	if (rc < 0) {
		cr_plan_free(p);
		return -1;
	}
	qsort(p->t, p->ntensors, sizeof *p->t, cmp_tensor);
	for (size_t i = 1; i < p->ntensors; i++)
		if (strcmp(p->t[i - 1].name, p->t[i].name) == 0) {
			cr_fail(err, CR_E_RECIPE, "%s: the slices produce tensor '%s' twice", r->file, p->t[i].name);
			cr_plan_free(p);
			return -1;
		}
	*out = p;
	return 0;
}

/*
 * A refresh resolves one tensor per group and copies the result.  A recipe
 * tells tensors apart only by class, layer and which of its filter strings
 * a name contains (and the base input decides the aoe rest weight), so
 * tensors that agree on those get identical parameters: on the 46k-tensor
 * DeepSeek-V3 layout a λ change then resolves a few hundred tensors, not
 * 46k (2 ms instead of over 100 ms).  More filters than fit a mask: every
 * tensor is resolved.
 */
#define MAX_GROUP_FILTERS 64

struct group_key {
	int cls, layer, base;
	uint64_t mask; /* bit f: filter f is a substring of the name */
};

/* Distinct filter strings of a parameter set added to f[0..n); -1 when over the limit. */
static int add_filters(const struct cr_param_set *s, const char **f, int n)
{
	for (size_t i = 0; i < s->n && n >= 0; i++)
		for (size_t c = 0; c < s->items[i].nconds && n >= 0; c++) {
			const char *x = s->items[i].conds[c].filter;
			if (!x || strcmp(x, "*") == 0)
				continue;
			int seen = 0;
			for (int k = 0; k < n; k++)
				seen |= strcmp(f[k], x) == 0;
			if (!seen)
				n = n == MAX_GROUP_FILTERS ? -1 : (f[n] = x, n + 1);
		}
	return n;
}

static uint64_t group_hash(const struct group_key *k)
{
	uint64_t h = (uint64_t)(k->cls + 1) * 0x9E3779B97F4A7C15ull;
	h ^= (uint64_t)(k->layer + 2) * 0xC2B2AE3D27D4EB4Full;
	h ^= (uint64_t)(k->base + 2) * 0x27D4EB2F165667C5ull;
	h ^= k->mask * 0x165667B19E3779F9ull;
	return h ^ (h >> 29);
}

static void refresh_grouped(struct cr_plan *p, const struct cr_recipe *r, const struct input_src *src,
			    const char *const *filters, int nf)
{
	size_t cap = 1024;
	while (cap < 2 * p->ntensors)
		cap *= 2;
	size_t *slot = cr_xcalloc(cap, sizeof *slot); /* representative + 1; 0 = empty */
	struct group_key *key = cr_xmalloc((p->ntensors ? p->ntensors : 1) * sizeof *key);
	for (size_t i = 0; i < p->ntensors; i++) {
		struct cr_plan_tensor *o = &p->t[i];
		struct group_key *k = &key[i];
		*k = (struct group_key){ (int)o->cls, o->layer, o->base, 0 };
		for (int f = 0; f < nf; f++)
			if (strstr(o->name, filters[f]))
				k->mask |= 1ull << f;
		size_t h = group_hash(k) & (cap - 1);
		while (slot[h]) {
			const struct group_key *q = &key[slot[h] - 1];
			if (q->cls == k->cls && q->layer == k->layer && q->base == k->base && q->mask == k->mask)
				break;
			h = (h + 1) & (cap - 1);
		}
		if (!slot[h]) {
			slot[h] = i + 1;
			resolve_params(p, r, o, src, -1);
			continue;
		}
		const struct cr_plan_tensor *rep = &p->t[slot[h] - 1];
		memcpy(o->g, rep->g, sizeof o->g);
		memcpy(o->p, rep->p, (size_t)o->ninputs * CR_P__COUNT * sizeof *o->p);
	}
	free(key);
	free(slot);
}

int cr_plan_refresh(struct cr_plan *p, const struct cr_recipe *r, cr_error *err)
{
	if (r->method != p->method)
		return cr_fail(err, CR_E_USAGE, "the recipe's method changed: build a new plan");
	/* Rebuild the input sources from the parents recorded in the plan. */
	int *mparent = cr_xcalloc(r->nmodels + 1, sizeof(int));
	for (size_t m = 0; m < r->nmodels; m++) {
		mparent[m] = find_parent(p, r->models[m].resolved);
		if (mparent[m] < 0) {
			free(mparent);
			return cr_fail(err, CR_E_USAGE, "the recipe's models changed: build a new plan");
		}
	}
	p->recipe = r;
	p->want = r->out_dtype != CR_DT_NONE ? r->out_dtype : r->dtype;
	p->seed = r->has_seed ? r->seed : 0;
	if (r->nslices) { /* slices: parameters by slice and source, found again per tensor */
		free(mparent);
		return cr_fail(err, CR_E_UNSUPPORTED, "refreshing a plan built from slices: build a new plan");
	}
	struct input_src src[CR_MAX_INPUTS];
	int base_input;
	int n = model_inputs(p, r, mparent, src, &base_input);
	free(mparent);
	for (size_t i = 0; i < p->ntensors; i++)
		if (p->t[i].ninputs != n)
			return cr_fail(err, CR_E_USAGE, "the recipe's models changed: build a new plan");
	const char *filters[MAX_GROUP_FILTERS];
	int nf = add_filters(&r->params, filters, 0);
	for (size_t m = 0; m < r->nmodels && nf >= 0; m++)
		nf = add_filters(&r->models[m].params, filters, nf);
	if (nf >= 0) {
		refresh_grouped(p, r, src, filters, nf);
		return 0;
	}
	long long nt = (long long)p->ntensors;
#pragma omp parallel for schedule(static) if (nt > 4096)
	for (long long i = 0; i < nt; i++)
		resolve_params(p, r, &p->t[i], src, -1);
	return 0;
}

void cr_plan_free(struct cr_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->ntensors; i++) {
		free(p->t[i].name);
		free(p->t[i].in);
		free(p->t[i].p);
	}
	free(p->t);
	for (size_t i = 0; i < p->nparents; i++) {
		cr_ckpt_close(p->parents[i]);
		free((char *)p->parent_path[i]);
	}
	free(p->parents);
	free(p->parent_path);
	free(p);
}

void cr_plan_kparams(const struct cr_plan *p, size_t i, const double *rel, struct cr_kparams *kp)
{
	const struct cr_plan_tensor *o = &p->t[i];
	kp->method = p->method;
	kp->n = o->ninputs;
	kp->base = o->base;
	memcpy(kp->g, o->g, sizeof kp->g);
	for (int k = 0; k < o->ninputs; k++) {
		memcpy(kp->p[k], o->p + (size_t)k * CR_P__COUNT, sizeof kp->p[k]);
		kp->rel[k] = rel ? rel[o->in[k].parent] : NAN;
		if (k == o->base)
			kp->rel[k] = 0.0;
	}
}

enum cr_decision cr_plan_decide(const struct cr_plan *p, size_t i, const double *rel, int *parent)
{
	struct cr_kparams kp;
	cr_plan_kparams(p, i, rel, &kp);
	int src;
	enum cr_decision d = cr_kernel_decide(&kp, &src);
	*parent = d == CR_DEC_COPY ? p->t[i].in[src].parent : -1;
	return d;
}

void cr_plan_decide_all(const struct cr_plan *p, const double *rel, uint8_t *dec, int16_t *parent)
{
	for (size_t i = 0; i < p->ntensors; i++) {
		int par;
		dec[i] = (uint8_t)cr_plan_decide(p, i, rel ? rel + i * p->nparents : NULL, &par);
		parent[i] = (int16_t)par;
	}
}

enum cr_dtype cr_plan_out_dtype(const struct cr_plan *p, size_t i, enum cr_decision d, int input, int *fp8)
{
	const struct cr_plan_tensor *o = &p->t[i];
	const struct cr_tensor *ref = o->in[o->ref].t;
	if (d == CR_DEC_COPY && input >= 0) {
		const struct cr_tensor *s = o->in[input].t;
		if (p->want == CR_DT_NONE || !cr_dtype_has_math(s->dtype)) {
			*fp8 = s->scale != NULL;
			return s->dtype;
		}
	}
	if (!cr_dtype_has_math(ref->dtype)) {
		*fp8 = ref->scale != NULL;
		return ref->dtype;
	}
	if (p->want == CR_DT_NONE || (p->want == CR_DT_F8_E4M3 && !ref->scale)) {
		*fp8 = ref->scale != NULL;
		return ref->dtype;
	}
	*fp8 = p->want == CR_DT_F8_E4M3;
	return p->want;
}

uint64_t cr_plan_out_bytes(const struct cr_plan *p, size_t i, enum cr_dtype dt, int fp8)
{
	const struct cr_plan_tensor *o = &p->t[i];
	int ok = 1;
	uint64_t n = cr_dtype_nbytes(dt, o->nelem, &ok);
	if (fp8 && o->ndim == 2)
		n += 4 * (uint64_t)cr_fp8_scale_dim((size_t)o->shape[0]) * cr_fp8_scale_dim((size_t)o->shape[1]);
	return n;
}

void cr_plan_summarize(const struct cr_plan *p, const double *rel, struct cr_plan_summary *s)
{
	memset(s, 0, sizeof *s);
	s->nparents = p->nparents;
	for (size_t i = 0; i < p->ntensors; i++) {
		int par, input = -1;
		enum cr_decision d = cr_plan_decide(p, i, rel ? rel + i * p->nparents : NULL, &par);
		size_t col = d == CR_DEC_COPY ? (size_t)par : d == CR_DEC_COMPUTE ? p->nparents : p->nparents + 1;
		if (d == CR_DEC_COPY)
			for (int k = 0; k < p->t[i].ninputs; k++)
				if (p->t[i].in[k].parent == par)
					input = k;
		int fp8;
		enum cr_dtype dt = cr_plan_out_dtype(p, i, d, input, &fp8);
		enum cr_class c = p->t[i].cls;
		s->count[c][col]++;
		s->bytes[c][col] += cr_plan_out_bytes(p, i, dt, fp8);
	}
}
