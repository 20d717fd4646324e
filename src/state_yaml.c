/*
 * Conversion between a session's state (crucible/state.h) and recipe YAML.
 *
 * Export builds the recipe with libyaml's emitter, so quoting is always
 * right; import reads a recipe with libyaml's document loader into the
 * assignments that reproduce it.  Both keep mergekit's first-match rule
 * exact: import drops conditional entries that can never match (after an
 * unconditional one, or a repeated scope) and assigns the rest from last to
 * first, so that export, which lists the newest scope first, gives the same
 * order back.  The recipe reader (recipe.c) remains the validator: import
 * checks only what it needs to build the state.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "crucible/methods.h"
#include "crucible/state.h"

/* ---------------------------------------------------------------- export */

struct outbuf {
	char *p;
	size_t len, cap;
};

static int write_handler(void *data, unsigned char *buf, size_t size)
{
	struct outbuf *o = data;
	if (o->len + size + 1 > o->cap) {
		o->cap = 2 * (o->len + size + 1);
		o->p = cr_xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->len, buf, size);
	o->len += size;
	o->p[o->len] = '\0';
	return 1;
}

struct emit {
	yaml_emitter_t em;
	int failed;
};

static void emit_event(struct emit *e, yaml_event_t *ev)
{
	if (!e->failed && !yaml_emitter_emit(&e->em, ev))
		e->failed = 1;
}

static void scalar(struct emit *e, const char *text, yaml_scalar_style_t style)
{
	yaml_event_t ev;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1, style);
	emit_event(e, &ev);
}

static void plain(struct emit *e, const char *text)
{
	scalar(e, text, YAML_PLAIN_SCALAR_STYLE);
}

static void quoted(struct emit *e, const char *text)
{
	scalar(e, text, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void mapping_start(struct emit *e)
{
	yaml_event_t ev;
	yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
	emit_event(e, &ev);
}

static void mapping_end(struct emit *e)
{
	yaml_event_t ev;
	yaml_mapping_end_event_initialize(&ev);
	emit_event(e, &ev);
}

static void seq_start(struct emit *e, yaml_sequence_style_t style)
{
	yaml_event_t ev;
	yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, style);
	emit_event(e, &ev);
}

static void seq_end(struct emit *e)
{
	yaml_event_t ev;
	yaml_sequence_end_event_initialize(&ev);
	emit_event(e, &ev);
}

/* A canonical value: "[a, b]" becomes a flow sequence, anything else a plain scalar. */
static void value_node(struct emit *e, const char *v)
{
	if (v[0] != '[') {
		plain(e, v);
		return;
	}
	seq_start(e, YAML_FLOW_SEQUENCE_STYLE);
	const char *p = v + 1;
	while (*p && *p != ']') {
		size_t l = strcspn(p, ",]");
		char item[64];
		snprintf(item, sizeof item, "%.*s", (int)(l < sizeof item ? l : sizeof item - 1), p);
		plain(e, item);
		p += l;
		if (*p == ',')
			p++;
		while (*p == ' ')
			p++;
	}
	seq_end(e);
}

static int is_param(const char *key)
{
	return cr_param_parse(key) != CR_P_NONE;
}

/* The value of one (model, key): a plain value, or conditional entries. */
static void param_value(struct emit *e, const struct cr_state *s, int model, const char *key)
{
	const char *fallback = cr_state_get(s, "*", model, key);
	size_t nscoped = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->a[i].model == model && strcmp(s->a[i].key, key) == 0 && strcmp(s->a[i].scope, "*") != 0)
			nscoped++;
	if (nscoped == 0) {
		value_node(e, fallback);
		return;
	}
	seq_start(e, YAML_BLOCK_SEQUENCE_STYLE);
	for (size_t k = s->n; k-- > 0;) { /* newest scope first */
		const struct cr_assign *a = &s->a[k];
		if (a->model != model || strcmp(a->key, key) != 0 || strcmp(a->scope, "*") == 0)
			continue;
		if (strncmp(a->scope, "layers:", 7) == 0) {
			int lo = 0, hi = -1;
			sscanf(a->scope + 7, "%d-%d", &lo, &hi);
			for (int l = lo; l <= hi; l++) {
				char f[32];
				snprintf(f, sizeof f, "layers.%d.", l);
				mapping_start(e);
				plain(e, "filter");
				quoted(e, f);
				plain(e, "value");
				value_node(e, a->value);
				mapping_end(e);
			}
			continue;
		}
		int is_class = strncmp(a->scope, "class:", 6) == 0;
		mapping_start(e);
		plain(e, is_class ? "class" : "filter");
		quoted(e, strchr(a->scope, ':') + 1);
		plain(e, "value");
		value_node(e, a->value);
		mapping_end(e);
	}
	if (fallback) {
		mapping_start(e);
		plain(e, "value");
		value_node(e, fallback);
		mapping_end(e);
	}
	seq_end(e);
}

/* The parameters mapping of one model (or the top level, model -1), keys in first-set order. */
static void parameters(struct emit *e, const struct cr_state *s, int model)
{
	int any = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct cr_assign *a = &s->a[i];
		if (a->model != model || !is_param(a->key))
			continue;
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = s->a[j].model == model && strcmp(s->a[j].key, a->key) == 0;
		if (seen)
			continue;
		if (!any) {
			plain(e, "parameters");
			mapping_start(e);
			any = 1;
		}
		plain(e, a->key);
		param_value(e, s, model, a->key);
	}
	if (any)
		mapping_end(e);
}

char *cr_state_to_yaml(const struct cr_state *s, const char *base, const char *const *models, size_t nmodels,
		       cr_error *err)
{
	struct emit e = { 0 };
	struct outbuf o = { 0 };
	yaml_event_t ev;

	for (size_t i = 0; i < s->n; i++)
		if (s->a[i].model >= (int)nmodels)
			return cr_fail(err, CR_E_USAGE, "state sets '%s' of model %d, but the session has %zu models",
				       s->a[i].key, s->a[i].model, nmodels),
			       NULL;
	if (!yaml_emitter_initialize(&e.em))
		return cr_fail(err, CR_E_NOMEM, "recipe export: cannot start the YAML emitter"), NULL;
	yaml_emitter_set_output(&e.em, write_handler, &o);
	yaml_emitter_set_unicode(&e.em, 1);
	yaml_emitter_set_width(&e.em, -1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	emit_event(&e, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	emit_event(&e, &ev);
	mapping_start(&e);
	const char *method = cr_state_get(s, "*", -1, "merge_method");
	if (method) {
		plain(&e, "merge_method");
		plain(&e, method);
	}
	if (base) {
		plain(&e, "base_model");
		quoted(&e, base);
	}
	if (nmodels) {
		plain(&e, "models");
		seq_start(&e, YAML_BLOCK_SEQUENCE_STYLE);
		for (size_t m = 0; m < nmodels; m++) {
			mapping_start(&e);
			plain(&e, "model");
			quoted(&e, models[m]);
			parameters(&e, s, (int)m);
			mapping_end(&e);
		}
		seq_end(&e);
	}
	parameters(&e, s, -1);
	static const char *const tail[] = { "dtype", "out_dtype", "random_seed", "tokenizer_source" };
	for (size_t i = 0; i < 4; i++) {
		const char *v = cr_state_get(s, "*", -1, tail[i]);
		if (v) {
			plain(&e, tail[i]);
			plain(&e, v);
		}
	}
	mapping_end(&e);
	yaml_document_end_event_initialize(&ev, 1);
	emit_event(&e, &ev);
	yaml_stream_end_event_initialize(&ev);
	emit_event(&e, &ev);
	int failed = e.failed || !yaml_emitter_flush(&e.em);
	char problem[256];
	snprintf(problem, sizeof problem, "%s", e.em.problem ? e.em.problem : "unknown problem");
	yaml_emitter_delete(&e.em);
	if (failed) {
		free(o.p);
		return cr_fail(err, CR_E_RECIPE, "recipe export: YAML emitter: %s", problem), NULL;
	}
	return o.p;
}

/* ---------------------------------------------------------------- import */

struct loader {
	yaml_document_t doc;
	const char *file, *dir;
	cr_error *err;
	struct cr_recipe_import *out;
};

static int at(struct loader *L, const yaml_node_t *n, const char *fmt, const char *what)
{
	return cr_fail(L->err, CR_E_RECIPE, "%s:%lu: %s: %s", L->file, (unsigned long)n->start_mark.line + 1, what,
		       fmt);
}

static const char *text(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static char *resolve(const char *dir, const char *path)
{
	char *joined;
	if (path[0] == '/' || !dir || !*dir) {
		joined = cr_xstrdup(path);
	} else {
		joined = cr_xmalloc(strlen(dir) + strlen(path) + 2);
		sprintf(joined, "%s/%s", dir, path);
	}
	char *real = realpath(joined, NULL);
	if (real) {
		free(joined);
		return real;
	}
	return joined;
}

/* A parameter value node (scalar or list of scalars) as text for canonicalization. */
static char *value_text(struct loader *L, const yaml_node_t *n, const char *key)
{
	if (n->type == YAML_SCALAR_NODE)
		return cr_xstrdup(text(n));
	if (n->type != YAML_SEQUENCE_NODE)
		return at(L, n, "expected a value or a list of numbers", key), NULL;
	size_t cap = 64, len = 0;
	char *s = cr_xmalloc(cap);
	s[len++] = '[';
	int first = 1;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		const char *t = text(yaml_document_get_node(&L->doc, *it));
		if (!t) {
			free(s);
			return at(L, n, "a gradient holds numbers only", key), NULL;
		}
		size_t need = len + strlen(t) + 4;
		if (need > cap)
			s = cr_xrealloc(s, cap = 2 * need);
		len += (size_t)sprintf(s + len, "%s%s", first ? "" : ", ", t);
		first = 0;
	}
	s[len++] = ']';
	s[len] = '\0';
	return s;
}

static int assign(struct loader *L, const yaml_node_t *n, const char *scope, int model, const char *key,
		  const char *value)
{
	char *canon;
	if (cr_state_canonical(scope, model, -1, key, value, &canon, L->err) < 0) {
		char msg[sizeof L->err->msg];
		snprintf(msg, sizeof msg, "%s", L->err ? L->err->msg : "bad value");
		return cr_fail(L->err, CR_E_RECIPE, "%s:%lu: %s", L->file, (unsigned long)n->start_mark.line + 1, msg);
	}
	cr_state_apply(&L->out->state, scope, model, key, canon);
	free(canon);
	return 0;
}

struct entry {
	char *scope, *value;
	const yaml_node_t *node;
};

static int param(struct loader *L, const char *key, const yaml_node_t *v, int model)
{
	int single = v->type == YAML_MAPPING_NODE; /* one conditional entry, not in a list */
	int is_conditional = single || (v->type == YAML_SEQUENCE_NODE &&
					v->data.sequence.items.top > v->data.sequence.items.start &&
					yaml_document_get_node(&L->doc, *v->data.sequence.items.start)->type ==
						YAML_MAPPING_NODE);
	if (!is_conditional) {
		char *t = value_text(L, v, key);
		if (!t)
			return -1;
		int rc = assign(L, v, "*", model, key, t);
		free(t);
		return rc;
	}
	yaml_node_item_t self[1];
	yaml_node_item_t *first = v->data.sequence.items.start, *last = v->data.sequence.items.top;
	if (single) {
		/* the mapping itself is the one entry: find its index in the document */
		self[0] = (yaml_node_item_t)(v - L->doc.nodes.start) + 1;
		first = self;
		last = self + 1;
	}
	size_t cap = (size_t)(last - first), n = 0;
	struct entry *e = cr_xcalloc(cap, sizeof *e);
	int rc = 0, closed = 0;
	for (yaml_node_item_t *it = first; it < last && !closed; it++) {
		yaml_node_t *m = yaml_document_get_node(&L->doc, *it);
		if (m->type != YAML_MAPPING_NODE) {
			rc = at(L, m, "expected {filter|class, value}", key);
			break;
		}
		char *scope = NULL, *value = NULL;
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top && rc == 0; p++) {
			const char *k = text(yaml_document_get_node(&L->doc, p->key));
			yaml_node_t *val = yaml_document_get_node(&L->doc, p->value);
			if (k && (strcmp(k, "filter") == 0 || strcmp(k, "class") == 0) && text(val) && !scope) {
				scope = cr_xmalloc(strlen(text(val)) + 8);
				sprintf(scope, "%s:%s", k, text(val));
			} else if (k && strcmp(k, "value") == 0 && !value) {
				value = value_text(L, val, key);
				if (!value)
					rc = -1;
			} else {
				rc = at(L, val, "unexpected key in a conditional entry", k ? k : key);
			}
		}
		if (rc == 0 && !value)
			rc = at(L, m, "a conditional entry needs a value", key);
		if (rc < 0) {
			free(scope);
			free(value);
			break;
		}
		if (!scope) {
			scope = cr_xstrdup("*");
			closed = 1; /* later entries can never match */
		}
		int dead = 0;
		for (size_t j = 0; j < n && !dead; j++)
			dead = strcmp(e[j].scope, scope) == 0;
		if (dead) {
			free(scope);
			free(value);
			continue;
		}
		e[n++] = (struct entry){ scope, value, m };
	}
	/* Last to first: the first entry becomes the newest assignment, listed first on export. */
	for (size_t j = n; rc == 0 && j-- > 0;)
		rc = assign(L, e[j].node, e[j].scope, model, key, e[j].value);
	for (size_t j = 0; j < n; j++) {
		free(e[j].scope);
		free(e[j].value);
	}
	free(e);
	return rc;
}

static int parameters_map(struct loader *L, const yaml_node_t *n, int model)
{
	if (n->type != YAML_MAPPING_NODE)
		return at(L, n, "expected a mapping of parameters", "parameters");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
		const char *key = text(k);
		if (!key)
			return at(L, k, "expected a parameter name", "parameters");
		if (param(L, key, yaml_document_get_node(&L->doc, p->value), model) < 0)
			return -1;
	}
	return 0;
}

static int models_list(struct loader *L, const yaml_node_t *n)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return at(L, n, "expected a list of models", "models");
	size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	L->out->models = cr_xcalloc(cnt ? cnt : 1, sizeof(char *));
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *m = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
		if (m->type != YAML_MAPPING_NODE)
			return at(L, m, "expected {model, parameters}", "models");
		const yaml_node_t *params = NULL;
		const char *path = NULL;
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
			const char *k = text(yaml_document_get_node(&L->doc, p->key));
			yaml_node_t *v = yaml_document_get_node(&L->doc, p->value);
			if (k && strcmp(k, "model") == 0 && text(v))
				path = text(v);
			else if (k && strcmp(k, "parameters") == 0)
				params = v;
			else
				return at(L, v, "unknown key in a model entry", k ? k : "models");
		}
		if (!path)
			return at(L, m, "a model entry needs `model: PATH`", "models");
		L->out->models[L->out->nmodels++] = resolve(L->dir, path);
		if (params && parameters_map(L, params, (int)i) < 0)
			return -1;
	}
	return 0;
}

int cr_state_from_yaml(const char *src, size_t len, const char *file, const char *dir, struct cr_recipe_import *out,
		       cr_error *err)
{
	yaml_parser_t parser;
	struct loader L = { .file = file ? file : "<recipe>", .dir = dir, .err = err, .out = out };
	int rc = 0;

	memset(out, 0, sizeof *out);
	cr_state_init(&out->state);
	if (!yaml_parser_initialize(&parser))
		return cr_fail(err, CR_E_NOMEM, "%s: cannot start the YAML parser", L.file);
	yaml_parser_set_input_string(&parser, (const unsigned char *)src, len);
	if (!yaml_parser_load(&parser, &L.doc)) {
		rc = cr_fail(err, CR_E_RECIPE, "%s:%lu: YAML: %s", L.file, (unsigned long)parser.problem_mark.line + 1,
			     parser.problem ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		return rc;
	}
	yaml_parser_delete(&parser);
	yaml_node_t *root = yaml_document_get_root_node(&L.doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		yaml_document_delete(&L.doc);
		return cr_fail(err, CR_E_RECIPE, "%s: a recipe is a YAML mapping", L.file);
	}
	/* models first: per-model parameters need their index, top-level keys don't. */
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && rc == 0; p++) {
		const char *k = text(yaml_document_get_node(&L.doc, p->key));
		if (k && strcmp(k, "models") == 0)
			rc = models_list(&L, yaml_document_get_node(&L.doc, p->value));
	}
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && rc == 0; p++) {
		const yaml_node_t *kn = yaml_document_get_node(&L.doc, p->key);
		const yaml_node_t *v = yaml_document_get_node(&L.doc, p->value);
		const char *k = text(kn);
		if (!k)
			rc = at(&L, kn, "expected a key", "recipe");
		else if (strcmp(k, "models") == 0)
			continue;
		else if (strcmp(k, "parameters") == 0)
			rc = parameters_map(&L, v, -1);
		else if (strcmp(k, "base_model") == 0 && text(v))
			out->base = resolve(dir, text(v));
		else if ((strcmp(k, "merge_method") == 0 || strcmp(k, "dtype") == 0 || strcmp(k, "out_dtype") == 0 ||
			  strcmp(k, "random_seed") == 0 || strcmp(k, "tokenizer_source") == 0) &&
			 text(v))
			rc = assign(&L, v, "*", -1, k, text(v));
		else if (strcmp(k, "slices") == 0)
			rc = at(&L, kn, "layer slices cannot be held in a session's parameter state", k);
		else
			rc = at(&L, kn, "unknown or malformed key", k);
	}
	yaml_document_delete(&L.doc);
	if (rc < 0)
		cr_recipe_import_free(out);
	return rc;
}

void cr_recipe_import_free(struct cr_recipe_import *r)
{
	free(r->base);
	for (size_t i = 0; i < r->nmodels; i++)
		free(r->models[i]);
	free(r->models);
	cr_state_free(&r->state);
	memset(r, 0, sizeof *r);
	cr_state_init(&r->state);
}
