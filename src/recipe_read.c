/*
 * Reading recipes (see crucible/recipe.h for the format).
 *
 * Two steps.  libyaml's event parser feeds a small tree of scalars,
 * sequences and mappings that keeps each node's line; building it enforces
 * the limits that keep bad input harmless (size, nesting depth, node count,
 * no aliases, no NUL bytes, one document).  Then the tree is checked against
 * the recipe schema and the method and parameter tables, producing a struct
 * cr_recipe or one error line "FILE:LINE: message" that names the key.
 *
 * Every map the schema accepts has a small fixed set of keys, so an unknown
 * or repeated key is caught after a handful of comparisons whatever the
 * input's size.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "crucible/recipe.h"

#define MAX_NODES 100000
#define MAX_LAYER 1000000

enum ykind { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	enum ykind kind;
	int line;
	char *s;   /* scalar text (no NUL inside) */
	int plain; /* scalar may be a number, bool or null (plain style, no string tag) */
	size_t n;  /* seq: items; map: pairs (kids holds 2n: key, value, ...) */
	size_t nk, cap; /* kids stored (a map may end up holding a key without its value) */
	struct ynode **kids;
};

struct reader {
	const char *file; /* for messages */
	const char *text;
	size_t len;
	cr_error *err;
	cr_warn_fn warn;
	void *ctx;
	size_t nodes;
	struct cr_recipe *r;
};

static int fail_at(struct reader *rd, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(struct reader *rd, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return cr_fail(rd->err, CR_E_RECIPE, "%s:%d: %s", rd->file, line, msg);
}

static void warn_at(struct reader *rd, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warn_at(struct reader *rd, int line, const char *fmt, ...)
{
	if (!rd->warn)
		return;
	char msg[768], full[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "%s:%d: %s", rd->file, line, msg);
	rd->warn(rd->ctx, full);
}

/* Where a value sits, e.g. "models[1].parameters.weight[0]" (cut short if very long). */
static void keypath(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void keypath(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* ---- the YAML tree ---- */

static void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nk; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->s);
	free(n);
}

static void ynode_push(struct ynode *n, struct ynode *kid)
{
	if (n->nk == n->cap) {
		n->cap = n->cap ? 2 * n->cap : 8;
		n->kids = cr_xrealloc(n->kids, n->cap * sizeof *n->kids);
	}
	n->kids[n->nk++] = kid;
	n->n = n->kind == Y_MAP ? n->nk / 2 : n->nk;
}

static int line_of_offset(const struct reader *rd, size_t off)
{
	int line = 1;
	for (size_t i = 0; i < off && i < rd->len; i++)
		line += rd->text[i] == '\n';
	return line;
}

static int syntax_error(struct reader *rd, const yaml_parser_t *p)
{
	if (p->error == YAML_MEMORY_ERROR)
		return cr_fail(rd->err, CR_E_NOMEM, "%s: out of memory reading YAML", rd->file);
	if (p->error == YAML_READER_ERROR)
		return fail_at(rd, line_of_offset(rd, p->problem_offset), "not valid UTF-8 text: %s",
			       p->problem ? p->problem : "bad byte");
	int line = (int)p->problem_mark.line + 1;
	if (p->context)
		return fail_at(rd, line, "YAML syntax error: %s %s started at line %d", p->problem ? p->problem : "?",
			       p->context, (int)p->context_mark.line + 1);
	return fail_at(rd, line, "YAML syntax error: %s", p->problem ? p->problem : "?");
}

static int next_event(struct reader *rd, yaml_parser_t *p, yaml_event_t *ev)
{
	if (!yaml_parser_parse(p, ev))
		return syntax_error(rd, p);
	return 0;
}

static const char *const str_tag = "tag:yaml.org,2002:str";

/* Build a node from `ev` (consumed) and, for collections, the events up to its end. */
static int build(struct reader *rd, yaml_parser_t *p, yaml_event_t *ev, int depth, struct ynode **out)
{
	*out = NULL;
	int line = (int)ev->start_mark.line + 1;
	if (ev->type == YAML_ALIAS_EVENT) {
		int rc = fail_at(rd, line, "YAML aliases (*%s) are not supported in recipes", ev->data.alias.anchor);
		yaml_event_delete(ev);
		return rc;
	}
	if (++rd->nodes > MAX_NODES) {
		yaml_event_delete(ev);
		return fail_at(rd, line, "too many YAML values (more than %d)", MAX_NODES);
	}
	if (depth > CR_RECIPE_MAX_DEPTH) {
		yaml_event_delete(ev);
		return fail_at(rd, line, "YAML nested deeper than %d levels", CR_RECIPE_MAX_DEPTH);
	}
	struct ynode *n = cr_xcalloc(1, sizeof *n);
	n->line = line;
	if (ev->type == YAML_SCALAR_EVENT) {
		n->kind = Y_SCALAR;
		const char *tag = (const char *)ev->data.scalar.tag;
		size_t len = ev->data.scalar.length;
		if (strlen((const char *)ev->data.scalar.value) != len) {
			yaml_event_delete(ev);
			free(n);
			return fail_at(rd, line, "a string contains a NUL character");
		}
		n->s = cr_xstrdup((const char *)ev->data.scalar.value);
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !(tag && strcmp(tag, str_tag) == 0);
		if (tag && strncmp(tag, "tag:yaml.org,2002:", 18) != 0) {
			int rc = fail_at(rd, line, "unsupported YAML tag '%s'", tag);
			yaml_event_delete(ev);
			ynode_free(n);
			return rc;
		}
		yaml_event_delete(ev);
		*out = n;
		return 0;
	}
	if (ev->type != YAML_SEQUENCE_START_EVENT && ev->type != YAML_MAPPING_START_EVENT) {
		yaml_event_delete(ev);
		free(n);
		return fail_at(rd, line, "unexpected YAML event");
	}
	n->kind = ev->type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP;
	yaml_event_type_t end = n->kind == Y_SEQ ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
	yaml_event_delete(ev);
	for (;;) {
		yaml_event_t e;
		if (next_event(rd, p, &e) < 0)
			goto fail;
		if (e.type == end) {
			yaml_event_delete(&e);
			break;
		}
		struct ynode *kid;
		if (build(rd, p, &e, depth + 1, &kid) < 0)
			goto fail;
		if (n->kind == Y_MAP && n->nk % 2 == 0 && kid->kind != Y_SCALAR) {
			int kl = kid->line;
			ynode_free(kid);
			fail_at(rd, kl, "a mapping key must be a string, not a list or a mapping");
			goto fail;
		}
		ynode_push(n, kid);
	}
	*out = n;
	return 0;
fail:
	ynode_free(n);
	return -1;
}

/* Parse the whole text into one document's root node. */
static int build_document(struct reader *rd, struct ynode **root)
{
	*root = NULL;
	const char *nul = memchr(rd->text, 0, rd->len);
	if (nul)
		return fail_at(rd, line_of_offset(rd, (size_t)(nul - rd->text)), "NUL byte in the recipe (not a text file?)");
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		return cr_fail(rd->err, CR_E_NOMEM, "%s: out of memory", rd->file);
	yaml_parser_set_input_string(&p, (const unsigned char *)rd->text, rd->len);
	yaml_event_t ev;
	int rc = -1;
	struct ynode *n = NULL;
	if (next_event(rd, &p, &ev) < 0)
		goto out;
	yaml_event_delete(&ev); /* stream start */
	if (next_event(rd, &p, &ev) < 0)
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		rc = fail_at(rd, 1, "empty recipe (no YAML document)");
		goto out;
	}
	yaml_event_delete(&ev); /* document start */
	if (next_event(rd, &p, &ev) < 0 || build(rd, &p, &ev, 1, &n) < 0)
		goto out;
	if (next_event(rd, &p, &ev) < 0) /* document end */
		goto out;
	yaml_event_delete(&ev);
	if (next_event(rd, &p, &ev) < 0)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT) {
		rc = fail_at(rd, (int)ev.start_mark.line + 1, "more than one YAML document (a recipe is one document)");
		yaml_event_delete(&ev);
		goto out;
	}
	yaml_event_delete(&ev);
	*root = n;
	n = NULL;
	rc = 0;
out:
	ynode_free(n);
	yaml_parser_delete(&p);
	return rc;
}

/* ---- scalars ---- */

static int is_null(const struct ynode *n)
{
	return n->kind == Y_SCALAR && n->plain &&
	       (!n->s[0] || !strcmp(n->s, "~") || !strcmp(n->s, "null") || !strcmp(n->s, "Null") ||
		!strcmp(n->s, "NULL"));
}

/* YAML 1.1 booleans, as PyYAML (and so mergekit) reads them: 1 true, 0 false, -1 neither. */
static int as_bool(const struct ynode *n)
{
	static const char *const t[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const f[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	if (n->kind != Y_SCALAR || !n->plain)
		return -1;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (!strcmp(n->s, t[i]))
			return 1;
		if (!strcmp(n->s, f[i]))
			return 0;
	}
	return -1;
}

/* A finite decimal number: [+-] digits [. digits] [e [+-] digits].  0 ok, -1 not one. */
static int as_number(const struct ynode *n, double *out)
{
	if (n->kind != Y_SCALAR || !n->plain)
		return -1;
	const char *s = n->s;
	size_t i = 0, digits = 0;
	if (s[i] == '+' || s[i] == '-')
		i++;
	while (s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (s[i] == '.')
		for (i++; s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
	if (!digits)
		return -1;
	if (s[i] == 'e' || s[i] == 'E') {
		i++;
		if (s[i] == '+' || s[i] == '-')
			i++;
		if (!(s[i] >= '0' && s[i] <= '9'))
			return -1;
		while (s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (s[i])
		return -1;
	errno = 0;
	double v = strtod(s, NULL);
	if (!isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* A decimal integer: its magnitude and sign.  0 ok, -1 not one (or beyond 2^64-1). */
static int as_integer(const struct ynode *n, unsigned long long *out, int *neg)
{
	if (n->kind != Y_SCALAR || !n->plain)
		return -1;
	const char *s = n->s;
	*neg = s[0] == '-';
	if (s[0] == '-' || s[0] == '+')
		s++;
	if (!*s)
		return -1;
	for (const char *q = s; *q; q++)
		if (*q < '0' || *q > '9')
			return -1;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno == ERANGE)
		return -1;
	*out = v;
	return 0;
}

static const char *kind_name(const struct ynode *n)
{
	return n->kind == Y_MAP ? "a mapping" : n->kind == Y_SEQ ? "a list" : "a value";
}

/* A non-empty string; `what` names the key for the message. */
static int want_string(struct reader *rd, const struct ynode *n, const char *what, char **out)
{
	if (n->kind != Y_SCALAR || is_null(n))
		return fail_at(rd, n->line, "%s must be a string, not %s", what, is_null(n) ? "empty" : kind_name(n));
	if (!n->s[0])
		return fail_at(rd, n->line, "%s must not be empty", what);
	*out = cr_xstrdup(n->s);
	return 0;
}

/* ---- suggestions for misspelt names ---- */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 40 || lb > 40)
		return 99;
	size_t d[41][41];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			/* a swap of two neighbours counts as one edit */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

/* " (did you mean 'x'?)" for the closest candidate within 2 edits, else "". */
static const char *suggest(char *buf, size_t size, const char *got, const char *const *cands, size_t ncands)
{
	const char *best = NULL;
	size_t bd = 3;
	for (size_t i = 0; i < ncands; i++) {
		size_t d = edit_distance(got, cands[i]);
		if (d < bd)
			bd = d, best = cands[i];
	}
	if (!best)
		return "";
	snprintf(buf, size, " (did you mean '%s'?)", best);
	return buf;
}

/* ---- mappings with a fixed set of keys ---- */

/* Check every key of map n is one of keys[] and none repeats; vals[i] gets the
 * value node for keys[i] (NULL when absent, or when its value is null) and
 * klines[i], when klines is given, the line of the key. */
static int map_fields(struct reader *rd, const struct ynode *n, const char *where, const char *const *keys,
		      size_t nkeys, const struct ynode **vals, int *klines)
{
	if (n->kind != Y_MAP)
		return fail_at(rd, n->line, "%s must be a mapping (key: value), not %s", where, kind_name(n));
	int seen[16] = { 0 };
	for (size_t k = 0; k < nkeys; k++)
		vals[k] = NULL;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
		size_t k;
		for (k = 0; k < nkeys; k++)
			if (!strcmp(key->s, keys[k]))
				break;
		if (k == nkeys) {
			char sug[96];
			return fail_at(rd, key->line, "unknown key '%s' in %s%s", key->s, where,
				       suggest(sug, sizeof sug, key->s, keys, nkeys));
		}
		if (seen[k]++)
			return fail_at(rd, key->line, "duplicate key '%s' in %s", key->s, where);
		vals[k] = is_null(val) ? NULL : val;
		if (klines)
			klines[k] = key->line;
	}
	return 0;
}

/* ---- parameters ---- */

static int read_pval(struct reader *rd, const struct ynode *n, const char *where, struct cr_pval *out)
{
	double v;
	int b;
	if (n->kind == Y_SCALAR) {
		if (as_number(n, &v) == 0)
			;
		else if ((b = as_bool(n)) >= 0)
			v = b;
		else
			return fail_at(rd, n->line, "%s must be a number, true/false or a list, not '%s'", where, n->s);
		out->n = 1;
		out->v = cr_xmalloc(sizeof(double));
		out->v[0] = v;
		return 0;
	}
	if (n->kind == Y_SEQ) {
		if (n->n == 0)
			return fail_at(rd, n->line, "%s is an empty list", where);
		double *vals = cr_xmalloc(n->n * sizeof *vals);
		for (size_t i = 0; i < n->n; i++)
			if (as_number(n->kids[i], &vals[i]) < 0) {
				free(vals);
				return fail_at(rd, n->kids[i]->line, "%s[%zu]: a gradient is a list of numbers", where, i);
			}
		out->n = n->n;
		out->v = vals;
		return 0;
	}
	return fail_at(rd, n->line, "%s must be a number or a list of numbers, not a mapping", where);
}

static void cond_free(struct cr_pcond *c)
{
	free(c->filter);
	free(c->val.v);
	c->filter = NULL;
	c->val.v = NULL;
}

static int read_cond_fields(struct reader *rd, const struct ynode *n, const char *where, struct cr_pcond *c)
{
	static const char *const keys[] = { "filter", "class", "value" };
	const struct ynode *v[3];
	c->filter = NULL;
	c->cls = CR_CLASS_NONE;
	c->val.n = 0;
	c->val.v = NULL;
	if (map_fields(rd, n, where, keys, 3, v, NULL) < 0)
		return -1;
	if (v[0] && v[1])
		return fail_at(rd, v[1]->line, "%s has both 'filter' and 'class'; use one per entry", where);
	if (v[0]) {
		if (v[0]->kind != Y_SCALAR)
			return fail_at(rd, v[0]->line, "%s.filter must be a string, not %s", where, kind_name(v[0]));
		c->filter = cr_xstrdup(v[0]->s);
	}
	if (v[1]) {
		if (v[1]->kind != Y_SCALAR)
			return fail_at(rd, v[1]->line, "%s.class must be a class name, not %s", where, kind_name(v[1]));
		c->cls = cr_class_parse(v[1]->s);
		if (c->cls == CR_CLASS_NONE) {
			char names[256] = "";
			for (int i = 0; i < CR_CLASS__COUNT; i++)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
					 cr_class_name((enum cr_class)i));
			return fail_at(rd, v[1]->line, "unknown tensor class '%s' in %s (classes: %s)", v[1]->s, where,
				       names);
		}
	}
	if (!v[2])
		return fail_at(rd, n->line, "%s has no 'value'", where);
	char w[256];
	keypath(w, sizeof w, "%s.value", where);
	return read_pval(rd, v[2], w, &c->val);
}

static int read_cond(struct reader *rd, const struct ynode *n, const char *where, struct cr_pcond *c)
{
	if (read_cond_fields(rd, n, where, c) == 0)
		return 0;
	cond_free(c);
	return -1;
}

static int read_pentry(struct reader *rd, const struct ynode *n, const char *where, struct cr_param_entry *e)
{
	int conditional = n->kind == Y_MAP || (n->kind == Y_SEQ && n->n && n->kids[0]->kind == Y_MAP);
	if (!conditional) {
		e->nconds = 1;
		e->conds = cr_xcalloc(1, sizeof *e->conds);
		e->conds[0].cls = CR_CLASS_NONE;
		return read_pval(rd, n, where, &e->conds[0].val);
	}
	size_t count = n->kind == Y_MAP ? 1 : n->n;
	e->conds = cr_xcalloc(count, sizeof *e->conds);
	for (size_t i = 0; i < count; i++) {
		const struct ynode *item = n->kind == Y_MAP ? n : n->kids[i];
		char w[256];
		keypath(w, sizeof w, "%s[%zu]", where, i);
		if (item->kind != Y_MAP)
			return fail_at(rd, item->line,
				       "%s: a list of conditions holds only {filter/class, value} mappings", w);
		if (read_cond(rd, item, w, &e->conds[i]) < 0)
			return -1;
		e->nconds++;
	}
	return 0;
}


/* per_model_level: 1 for models[i] and sources, where global parameters are ignored. */
static int read_params(struct reader *rd, const struct ynode *n, const char *where, int per_model_level,
		       struct cr_param_set *set)
{
	if (!n)
		return 0;
	if (n->kind != Y_MAP)
		return fail_at(rd, n->line, "%s must be a mapping of parameter names to values, not %s", where,
			       kind_name(n));
	set->items = cr_xcalloc(n->n ? n->n : 1, sizeof *set->items);
	const char *mname = cr_method_info(rd->r->method)->name;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
		enum cr_param_id id = cr_param_parse(key->s);
		if (id == CR_P_NONE) {
			const char *names[CR_P__COUNT];
			char sug[96];
			for (int k = 0; k < CR_P__COUNT; k++)
				names[k] = cr_param_info((enum cr_param_id)k)->name;
			return fail_at(rd, key->line, "unknown parameter '%s' in %s%s", key->s, where,
				       suggest(sug, sizeof sug, key->s, names, CR_P__COUNT));
		}
		if (cr_param_set_find(set, id))
			return fail_at(rd, key->line, "duplicate parameter '%s' in %s", key->s, where);
		char w[256];
		keypath(w, sizeof w, "%s.%s", where, key->s);
		struct cr_param_entry *e = &set->items[set->n++];
		e->id = id;
		e->line = key->line;
		if (read_pentry(rd, val, w, e) < 0)
			return -1;
		if (!cr_method_uses(rd->r->method, id))
			warn_at(rd, key->line, "parameter '%s' is not used by method '%s'", key->s, mname);
		else if (per_model_level && !cr_param_info(id)->per_model)
			warn_at(rd, key->line,
				"parameter '%s' applies to the whole merge and is ignored in %s; set it in the "
				"top-level parameters",
				key->s, where);
	}
	return 0;
}

/* ---- models, slices, top level ---- */

static int read_model(struct reader *rd, const struct ynode *n, size_t idx, struct cr_recipe_model *m)
{
	static const char *const keys[] = { "model", "parameters" };
	const struct ynode *v[2];
	char where[64];
	keypath(where, sizeof where, "models[%zu]", idx);
	m->line = n->line;
	if (map_fields(rd, n, where, keys, 2, v, NULL) < 0)
		return -1;
	if (!v[0])
		return fail_at(rd, n->line, "%s has no 'model' (the model's path)", where);
	if (want_string(rd, v[0], "model", &m->path) < 0)
		return -1;
	m->resolved = cr_recipe_resolve(rd->r->file, m->path);
	char w[96];
	keypath(w, sizeof w, "%s.parameters", where);
	return read_params(rd, v[1], w, 1, &m->params);
}

static int read_source(struct reader *rd, const struct ynode *n, const char *where, struct cr_recipe_source *s)
{
	static const char *const keys[] = { "model", "layer_range", "parameters" };
	const struct ynode *v[3];
	s->line = n->line;
	if (map_fields(rd, n, where, keys, 3, v, NULL) < 0)
		return -1;
	if (!v[0])
		return fail_at(rd, n->line, "%s has no 'model' (the model's path)", where);
	if (want_string(rd, v[0], "model", &s->path) < 0)
		return -1;
	s->resolved = cr_recipe_resolve(rd->r->file, s->path);
	if (!v[1])
		return fail_at(rd, n->line, "%s has no 'layer_range: [start, end]'", where);
	const struct ynode *lr = v[1];
	unsigned long long a, b;
	int na, nb;
	if (lr->kind != Y_SEQ || lr->n != 2 || as_integer(lr->kids[0], &a, &na) < 0 ||
	    as_integer(lr->kids[1], &b, &nb) < 0)
		return fail_at(rd, lr->line, "%s.layer_range must be two integers [start, end]", where);
	if (na || nb || a >= b || b > MAX_LAYER)
		return fail_at(rd, lr->line, "%s.layer_range [%s%llu, %s%llu] must have 0 <= start < end <= %d", where,
			       na ? "-" : "", a, nb ? "-" : "", b, MAX_LAYER);
	s->has_range = 1;
	s->layer_start = (int)a;
	s->layer_end = (int)b;
	char w[128];
	keypath(w, sizeof w, "%s.parameters", where);
	return read_params(rd, v[2], w, 1, &s->params);
}

static int read_slice(struct reader *rd, const struct ynode *n, size_t idx, struct cr_recipe_slice *sl)
{
	static const char *const keys[] = { "sources", "parameters" };
	const struct ynode *v[2];
	char where[64];
	keypath(where, sizeof where, "slices[%zu]", idx);
	sl->line = n->line;
	if (map_fields(rd, n, where, keys, 2, v, NULL) < 0)
		return -1;
	if (!v[0] || v[0]->kind != Y_SEQ || v[0]->n == 0)
		return fail_at(rd, v[0] ? v[0]->line : n->line, "%s needs 'sources', a non-empty list", where);
	sl->sources = cr_xcalloc(v[0]->n, sizeof *sl->sources);
	for (size_t i = 0; i < v[0]->n; i++) {
		char w[96];
		keypath(w, sizeof w, "%s.sources[%zu]", where, i);
		struct cr_recipe_source *s = &sl->sources[sl->nsources++];
		if (read_source(rd, v[0]->kids[i], w, s) < 0)
			return -1;
		int len0 = sl->sources[0].layer_end - sl->sources[0].layer_start;
		if (s->layer_end - s->layer_start != len0)
			return fail_at(rd, s->line, "%s covers %d layers but %s.sources[0] covers %d; the sources of a "
				       "slice must have the same number of layers",
				       w, s->layer_end - s->layer_start, where, len0);
	}
	char w[96];
	keypath(w, sizeof w, "%s.parameters", where);
	return read_params(rd, v[1], w, 0, &sl->params);
}

static int read_dtype(struct reader *rd, const struct ynode *n, const char *key, enum cr_dtype *out)
{
	if (n->kind != Y_SCALAR)
		return fail_at(rd, n->line, "%s must be a dtype name, not %s", key, kind_name(n));
	enum cr_dtype dt = cr_dtype_parse_torch(n->s);
	if (dt == CR_DT_NONE)
		return fail_at(rd, n->line, "unknown %s '%s' (use bfloat16, float16, float32 or float8_e4m3fn)", key,
			       n->s);
	if (!cr_dtype_has_math(dt))
		return fail_at(rd, n->line, "%s '%s' cannot hold merge results (use a float type)", key, n->s);
	*out = dt;
	return 0;
}

enum top_key { K_METHOD, K_BASE, K_MODELS, K_SLICES, K_PARAMS, K_DTYPE, K_OUT_DTYPE, K_SEED, K_TOKENIZER, K__N };
static const char *const top_keys[K__N] = { "merge_method", "base_model", "models",  "slices",          "parameters",
					     "dtype",        "out_dtype",  "random_seed", "tokenizer_source" };

static int read_recipe(struct reader *rd, const struct ynode *root)
{
	struct cr_recipe *r = rd->r;
	const struct ynode *v[K__N];
	int kline[K__N];
	if (root->kind != Y_MAP)
		return fail_at(rd, root->line, "the top level of a recipe must be a mapping (merge_method: ...), not %s",
			       is_null(root) ? "empty" : kind_name(root));
	if (map_fields(rd, root, "the recipe", top_keys, K__N, v, kline) < 0)
		return -1;

	if (!v[K_METHOD])
		return fail_at(rd, root->line, "missing 'merge_method'");
	r->line = v[K_METHOD]->line;
	if (v[K_METHOD]->kind != Y_SCALAR)
		return fail_at(rd, v[K_METHOD]->line, "merge_method must be a method name, not %s",
			       kind_name(v[K_METHOD]));
	r->method = cr_method_parse(v[K_METHOD]->s);
	if (r->method == CR_M_NONE) {
		const char *names[CR_M__COUNT];
		char list[512] = "", sug[96];
		for (int i = 0; i < CR_M__COUNT; i++) {
			names[i] = cr_method_info((enum cr_method_id)i)->name;
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
		}
		const char *s = suggest(sug, sizeof sug, v[K_METHOD]->s, names, CR_M__COUNT);
		return fail_at(rd, v[K_METHOD]->line, "unknown merge_method '%s'%s%s%s", v[K_METHOD]->s, s,
			       *s ? "" : "; methods: ", *s ? "" : list);
	}
	const struct cr_method_info *mi = cr_method_info(r->method);

	if (v[K_BASE]) {
		if (want_string(rd, v[K_BASE], "base_model", &r->base) < 0)
			return -1;
		r->base_resolved = cr_recipe_resolve(r->file, r->base);
	}
	if (v[K_MODELS] && v[K_SLICES])
		return fail_at(rd, kline[K_SLICES], "give either 'models' or 'slices', not both");
	if (v[K_MODELS]) {
		const struct ynode *ms = v[K_MODELS];
		if (ms->kind != Y_SEQ || ms->n == 0)
			return fail_at(rd, ms->line, "models must be a non-empty list of {model: PATH, parameters: ...}");
		r->models = cr_xcalloc(ms->n, sizeof *r->models);
		for (size_t i = 0; i < ms->n; i++)
			if (read_model(rd, ms->kids[i], i, &r->models[r->nmodels++]) < 0)
				return -1;
	} else if (v[K_SLICES]) {
		const struct ynode *ss = v[K_SLICES];
		if (ss->kind != Y_SEQ || ss->n == 0)
			return fail_at(rd, ss->line, "slices must be a non-empty list of {sources: [...]}");
		r->slices = cr_xcalloc(ss->n, sizeof *r->slices);
		for (size_t i = 0; i < ss->n; i++)
			if (read_slice(rd, ss->kids[i], i, &r->slices[r->nslices++]) < 0)
				return -1;
	} else {
		return fail_at(rd, root->line, "the recipe has neither 'models' nor 'slices'");
	}
	if (mi->needs_base && !r->base)
		return fail_at(rd, v[K_METHOD]->line, "merge_method '%s' needs a base_model", mi->name);
	if (read_params(rd, v[K_PARAMS], "parameters", 0, &r->params) < 0)
		return -1;
	if (v[K_DTYPE] && read_dtype(rd, v[K_DTYPE], "dtype", &r->dtype) < 0)
		return -1;
	if (v[K_OUT_DTYPE] && read_dtype(rd, v[K_OUT_DTYPE], "out_dtype", &r->out_dtype) < 0)
		return -1;
	if (v[K_SEED]) {
		unsigned long long seed;
		int neg;
		if (as_integer(v[K_SEED], &seed, &neg) < 0 || (neg && seed))
			return fail_at(rd, v[K_SEED]->line, "random_seed must be an integer from 0 to %" PRIu64 ", not '%s'",
				       UINT64_MAX, v[K_SEED]->kind == Y_SCALAR ? v[K_SEED]->s : kind_name(v[K_SEED]));
		r->has_seed = 1;
		r->seed = seed;
	}
	if (v[K_TOKENIZER]) {
		const struct ynode *t = v[K_TOKENIZER];
		if (t->kind != Y_SCALAR || strcmp(t->s, "base") != 0)
			return fail_at(rd, t->line,
				       "tokenizer_source '%s' is not supported: crucible copies the base model's "
				       "tokenizer (tokenizer_source: base)",
				       t->kind == Y_SCALAR ? t->s : kind_name(t));
		r->tokenizer_source = cr_xstrdup("base");
	}
	return 0;
}

int cr_recipe_parse(const char *text, size_t len, const char *file, struct cr_recipe **out, cr_warn_fn warn,
		    void *ctx, cr_error *err)
{
	*out = NULL;
	struct reader rd = { .file = file ? file : "<recipe>", .text = text, .len = len, .err = err,
			     .warn = warn, .ctx = ctx };
	if (!text && len)
		return cr_fail(err, CR_E_USAGE, "%s: no text", rd.file);
	if (len > CR_RECIPE_MAX_BYTES)
		return cr_fail(err, CR_E_RECIPE, "%s: recipe is %zu bytes; the limit is %u (1 MiB)", rd.file, len,
			       CR_RECIPE_MAX_BYTES);
	if (!text)
		text = rd.text = "";
	struct ynode *root;
	if (build_document(&rd, &root) < 0)
		return -1;
	struct cr_recipe *r = cr_xcalloc(1, sizeof *r);
	r->file = cr_xstrdup(rd.file);
	r->method = CR_M_NONE;
	r->dtype = r->out_dtype = CR_DT_NONE;
	rd.r = r;
	int rc = read_recipe(&rd, root);
	ynode_free(root);
	if (rc < 0) {
		cr_recipe_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

int cr_recipe_load(const char *path, struct cr_recipe **out, cr_warn_fn warn, void *ctx, cr_error *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cr_fail(err, CR_E_IO, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return cr_fail(err, CR_E_IO, "%s: is a folder, not a recipe file", path);
	}
	/* Read at most one byte past the limit: works for pipes and devices too. */
	size_t cap = CR_RECIPE_MAX_BYTES + 1, len = 0;
	char *buf = cr_xmalloc(cap);
	for (;;) {
		ssize_t k = read(fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return cr_fail(err, CR_E_IO, "%s: %s", path, strerror(e));
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len == cap)
			break;
	}
	close(fd);
	if (len > CR_RECIPE_MAX_BYTES) {
		free(buf);
		return cr_fail(err, CR_E_RECIPE, "%s: recipe is larger than 1 MiB; a recipe is a short YAML file", path);
	}
	int rc = cr_recipe_parse(buf, len, path, out, warn, ctx, err);
	free(buf);
	return rc;
}
