/*
 * Writing recipes as YAML with libyaml's emitter, in mergekit's shape (the
 * key order of the fixtures: merge_method, base_model, models or slices,
 * parameters, dtype, out_dtype, tokenizer_source, random_seed).
 *
 * What is written reads back as the same recipe (cr_recipe_parse gives equal
 * fields, lines aside), and mergekit (PyYAML) reads it the same way: strings
 * are double-quoted so a path like "1.5" or "true" stays a string, and
 * numbers always carry a '.' because PyYAML's YAML 1.1 resolver reads "1e-05"
 * as a string.  Gradients and layer ranges are flow lists, as mergekit writes.
 *
 * Called by the workbench (export) and `crucible merge` (the model card).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "crucible/recipe.h"

struct out {
	char *p;
	size_t len, cap;
};

static int on_write(void *data, unsigned char *bytes, size_t size)
{
	struct out *o = data;
	if (o->len + size + 1 > o->cap) {
		while (o->len + size + 1 > o->cap)
			o->cap = o->cap ? 2 * o->cap : 1024;
		o->p = cr_xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->len, bytes, size);
	o->len += size;
	o->p[o->len] = 0;
	return 1;
}

struct em {
	yaml_emitter_t e;
	int ok;
};

/* The emitter takes the event even when it fails; after a failure the rest is skipped. */
static void put(struct em *m, yaml_event_t *ev, int made)
{
	if (!made)
		m->ok = 0;
	else if (m->ok && !yaml_emitter_emit(&m->e, ev))
		m->ok = 0;
	else if (!m->ok)
		yaml_event_delete(ev);
}

static void scalar(struct em *m, const char *text, yaml_scalar_style_t style)
{
	yaml_event_t ev;
	int made = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)(uintptr_t)text, -1, 1, 1, style);
	put(m, &ev, made);
}

static void key(struct em *m, const char *k)
{
	scalar(m, k, YAML_PLAIN_SCALAR_STYLE);
}

static void string(struct em *m, const char *s)
{
	scalar(m, s, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void map_begin(struct em *m)
{
	yaml_event_t ev;
	put(m, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

static void map_end(struct em *m)
{
	yaml_event_t ev;
	put(m, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void seq_begin(struct em *m, int flow)
{
	yaml_event_t ev;
	put(m, &ev,
	    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
						 flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE));
}

static void seq_end(struct em *m)
{
	yaml_event_t ev;
	put(m, &ev, yaml_sequence_end_event_initialize(&ev));
}

/* The shortest decimal that reads back as v, with a '.' (see the top comment). */
static void number(struct em *m, double v)
{
	char s[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(s, sizeof s, "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	if (!strpbrk(s, ".n")) { /* no dot (and not nan/inf, which the reader never stores) */
		char *e = strchr(s, 'e');
		char tail[24] = "";
		if (e) {
			snprintf(tail, sizeof tail, "%s", e);
			*e = 0;
		}
		snprintf(s + strlen(s), sizeof s - strlen(s), ".0%s", tail);
	}
	scalar(m, s, YAML_PLAIN_SCALAR_STYLE);
}

static void pval(struct em *m, const struct cr_pval *v, int is_bool)
{
	if (v->n == 1) {
		if (is_bool && (v->v[0] == 0.0 || v->v[0] == 1.0))
			scalar(m, v->v[0] != 0.0 ? "true" : "false", YAML_PLAIN_SCALAR_STYLE);
		else
			number(m, v->v[0]);
		return;
	}
	seq_begin(m, 1);
	for (size_t i = 0; i < v->n; i++)
		number(m, v->v[i]);
	seq_end(m);
}

static void params(struct em *m, const struct cr_param_set *set)
{
	if (!set->n)
		return;
	key(m, "parameters");
	map_begin(m);
	for (size_t i = 0; i < set->n; i++) {
		const struct cr_param_entry *e = &set->items[i];
		const struct cr_param_info *info = cr_param_info(e->id);
		if (!info || !e->nconds) {
			m->ok = 0;
			return;
		}
		key(m, info->name);
		const struct cr_pcond *c0 = &e->conds[0];
		if (e->nconds == 1 && !c0->filter && c0->cls == CR_CLASS_NONE) {
			pval(m, &c0->val, info->is_bool);
			continue;
		}
		seq_begin(m, 0);
		for (size_t j = 0; j < e->nconds; j++) {
			const struct cr_pcond *c = &e->conds[j];
			map_begin(m);
			if (c->filter) {
				key(m, "filter");
				string(m, c->filter);
			}
			if (c->cls != CR_CLASS_NONE) {
				key(m, "class");
				scalar(m, cr_class_name(c->cls), YAML_PLAIN_SCALAR_STYLE);
			}
			key(m, "value");
			pval(m, &c->val, info->is_bool);
			map_end(m);
		}
		seq_end(m);
	}
	map_end(m);
}

static void layer_range(struct em *m, int a, int b)
{
	char s[16];
	key(m, "layer_range");
	seq_begin(m, 1);
	snprintf(s, sizeof s, "%d", a);
	scalar(m, s, YAML_PLAIN_SCALAR_STYLE);
	snprintf(s, sizeof s, "%d", b);
	scalar(m, s, YAML_PLAIN_SCALAR_STYLE);
	seq_end(m);
}

static void body(struct em *m, const struct cr_recipe *r)
{
	map_begin(m);
	key(m, "merge_method");
	string(m, cr_method_info(r->method)->name);
	if (r->base) {
		key(m, "base_model");
		string(m, r->base);
	}
	if (r->nmodels) {
		key(m, "models");
		seq_begin(m, 0);
		for (size_t i = 0; i < r->nmodels; i++) {
			map_begin(m);
			key(m, "model");
			string(m, r->models[i].path ? r->models[i].path : "");
			params(m, &r->models[i].params);
			map_end(m);
		}
		seq_end(m);
	}
	if (r->nslices) {
		key(m, "slices");
		seq_begin(m, 0);
		for (size_t i = 0; i < r->nslices; i++) {
			const struct cr_recipe_slice *sl = &r->slices[i];
			map_begin(m);
			key(m, "sources");
			seq_begin(m, 0);
			for (size_t j = 0; j < sl->nsources; j++) {
				const struct cr_recipe_source *s = &sl->sources[j];
				map_begin(m);
				key(m, "model");
				string(m, s->path ? s->path : "");
				if (s->has_range)
					layer_range(m, s->layer_start, s->layer_end);
				params(m, &s->params);
				map_end(m);
			}
			seq_end(m);
			params(m, &sl->params);
			map_end(m);
		}
		seq_end(m);
	}
	params(m, &r->params);
	if (r->dtype != CR_DT_NONE) {
		key(m, "dtype");
		string(m, cr_dtype_torch_name(r->dtype));
	}
	if (r->out_dtype != CR_DT_NONE) {
		key(m, "out_dtype");
		string(m, cr_dtype_torch_name(r->out_dtype));
	}
	if (r->tokenizer_source) {
		key(m, "tokenizer_source");
		string(m, r->tokenizer_source);
	}
	if (r->has_seed) {
		char s[24];
		snprintf(s, sizeof s, "%" PRIu64, r->seed);
		key(m, "random_seed");
		scalar(m, s, YAML_PLAIN_SCALAR_STYLE);
	}
	map_end(m);
}

char *cr_recipe_to_yaml(const struct cr_recipe *r)
{
	if (!r || !cr_method_info(r->method))
		return NULL;
	struct out o = { 0 };
	struct em m = { .ok = 1 };
	if (!yaml_emitter_initialize(&m.e))
		return NULL;
	yaml_emitter_set_output(&m.e, on_write, &o);
	yaml_emitter_set_unicode(&m.e, 1);
	yaml_emitter_set_width(&m.e, -1); /* never fold long paths */
	yaml_emitter_set_indent(&m.e, 2);
	yaml_event_t ev;
	put(&m, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
	put(&m, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
	body(&m, r);
	put(&m, &ev, yaml_document_end_event_initialize(&ev, 1));
	put(&m, &ev, yaml_stream_end_event_initialize(&ev));
	if (m.ok && !yaml_emitter_flush(&m.e))
		m.ok = 0;
	yaml_emitter_delete(&m.e);
	if (!m.ok) {
		free(o.p);
		return NULL;
	}
	return o.p;
}

int cr_recipe_save(const struct cr_recipe *r, const char *path, cr_error *err)
{
	char *text = cr_recipe_to_yaml(r);
	if (!text)
		return cr_fail(err, CR_E_RECIPE, "%s: the recipe cannot be written as YAML (no method, or a path that is "
				    "not UTF-8 text)", path);
	/* Never write what would not load back. */
	struct cr_recipe *check = NULL;
	cr_error perr;
	if (cr_recipe_parse(text, strlen(text), path, &check, NULL, NULL, &perr) < 0) {
		free(text);
		return cr_fail(err, CR_E_RECIPE, "not saved, the recipe is not valid: %s", perr.msg);
	}
	cr_recipe_free(check);
	size_t pl = strlen(path);
	char *tmp = cr_xmalloc(pl + 16);
	snprintf(tmp, pl + 16, "%s.tmpXXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = errno;
		free(text);
		free(tmp);
		return cr_fail(err, CR_E_IO, "%s: cannot create a temporary file: %s", path, strerror(e));
	}
	size_t len = strlen(text), done = 0;
	int e = 0;
	while (done < len) {
		ssize_t k = write(fd, text + done, len - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			e = errno;
			break;
		}
		done += (size_t)k;
	}
	if (!e && fchmod(fd, 0644) < 0)
		e = errno;
	if (!e && fsync(fd) < 0)
		e = errno;
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e)
		unlink(tmp);
	free(text);
	free(tmp);
	if (e)
		return cr_fail(err, CR_E_IO, "%s: %s", path, strerror(e));
	return 0;
}
