/*
 * The parameter state of a session (see crucible/state.h): an ordered set of
 * assignments, the canonical text of values, and differences between states.
 *
 * Invariant: every assignment's value is canonical text (cr_state_canonical),
 * so two states that mean the same recipe compare equal byte for byte, and a
 * value replayed from the event log is exactly the value that was set.
 * Callers: the store (replay, undo/redo), state_yaml.c, the TUI and the CLI.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/classify.h"
#include "crucible/dtype.h"
#include "crucible/methods.h"
#include "crucible/state.h"

void cr_state_init(struct cr_state *s)
{
	memset(s, 0, sizeof *s);
}

void cr_state_free(struct cr_state *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->a[i].scope);
		free(s->a[i].key);
		free(s->a[i].value);
	}
	free(s->a);
	cr_state_init(s);
}

void cr_state_copy(struct cr_state *dst, const struct cr_state *src)
{
	cr_state_init(dst);
	for (size_t i = 0; i < src->n; i++)
		cr_state_apply(dst, src->a[i].scope, src->a[i].model, src->a[i].key, src->a[i].value);
}

static long find(const struct cr_state *s, const char *scope, int model, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->a[i].model == model && strcmp(s->a[i].key, key) == 0 && strcmp(s->a[i].scope, scope) == 0)
			return (long)i;
	return -1;
}

const char *cr_state_get(const struct cr_state *s, const char *scope, int model, const char *key)
{
	long i = find(s, scope, model, key);
	return i < 0 ? NULL : s->a[i].value;
}

void cr_state_apply(struct cr_state *s, const char *scope, int model, const char *key, const char *value)
{
	long i = find(s, scope, model, key);
	if (i >= 0) {
		free(s->a[i].value);
		if (value) {
			s->a[i].value = cr_xstrdup(value);
			return;
		}
		free(s->a[i].scope);
		free(s->a[i].key);
		memmove(&s->a[i], &s->a[i + 1], (s->n - (size_t)i - 1) * sizeof s->a[0]);
		s->n--;
		return;
	}
	if (!value)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->a = cr_xrealloc(s->a, s->cap * sizeof s->a[0]);
	}
	s->a[s->n++] = (struct cr_assign){ cr_xstrdup(scope), model, cr_xstrdup(key), cr_xstrdup(value) };
}

int cr_state_equal(const struct cr_state *a, const struct cr_state *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->a[i].model != b->a[i].model || strcmp(a->a[i].scope, b->a[i].scope) != 0 ||
		    strcmp(a->a[i].key, b->a[i].key) != 0 || strcmp(a->a[i].value, b->a[i].value) != 0)
			return 0;
	return 1;
}

size_t cr_state_diff(const struct cr_state *a, const struct cr_state *b, cr_state_diff_fn fn, void *ctx)
{
	size_t n = 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct cr_assign *x = &a->a[i];
		const char *vb = cr_state_get(b, x->scope, x->model, x->key);
		if (!vb || strcmp(vb, x->value) != 0) {
			n++;
			if (fn)
				fn(ctx, x->scope, x->model, x->key, x->value, vb);
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct cr_assign *y = &b->a[i];
		if (!cr_state_get(a, y->scope, y->model, y->key)) {
			n++;
			if (fn)
				fn(ctx, y->scope, y->model, y->key, NULL, y->value);
		}
	}
	return n;
}

void cr_fmt_double(double v, char *buf, size_t n)
{
	if (v == 0) { /* also -0: a recipe has no use for the sign of zero */
		snprintf(buf, n, "0");
		return;
	}
	if (v == floor(v) && fabs(v) < 1e15) { /* integers as integers, never 1e+01 */
		snprintf(buf, n, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* Settings: keys that are not method parameters. */
static const char *const settings[] = { "merge_method", "dtype", "out_dtype", "random_seed", "tokenizer_source" };

static int is_setting(const char *key)
{
	for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
		if (strcmp(settings[i], key) == 0)
			return 1;
	return 0;
}

static int parse_number(const char *s, double *v)
{
	char *end;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return -1;
	errno = 0;
	*v = strtod(s, &end);
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end || errno == ERANGE || !isfinite(*v))
		return -1;
	return 0;
}

/* "[a, b, c]" (or "a, b" inside brackets with any spacing) -> canonical list. */
static char *canonical_gradient(const char *value)
{
	const char *p = value + 1;
	const char *close = strrchr(value, ']');
	if (!close)
		return NULL;
	for (const char *q = close + 1; *q; q++)
		if (*q != ' ')
			return NULL;
	size_t cap = 64, len = 0;
	char *out = cr_xmalloc(cap);
	out[len++] = '[';
	int count = 0;
	while (p < close) {
		const char *comma = memchr(p, ',', (size_t)(close - p));
		const char *end = comma ? comma : close;
		char item[128];
		size_t il = (size_t)(end - p);
		double v;
		if (il >= sizeof item)
			goto bad;
		memcpy(item, p, il);
		item[il] = '\0';
		if (parse_number(item, &v) < 0)
			goto bad;
		char num[40];
		cr_fmt_double(v, num, sizeof num);
		if (len + strlen(num) + 4 > cap)
			out = cr_xrealloc(out, cap = 2 * cap + strlen(num));
		len += (size_t)sprintf(out + len, "%s%s", count ? ", " : "", num);
		count++;
		p = comma ? comma + 1 : close;
	}
	if (count < 1)
		goto bad;
	out[len++] = ']';
	out[len] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static int check_scope(const char *scope, cr_error *err)
{
	if (strcmp(scope, "*") == 0)
		return 0;
	if (strncmp(scope, "class:", 6) == 0) {
		if (cr_class_parse(scope + 6) == CR_CLASS_NONE)
			return cr_fail(err, CR_E_USAGE, "scope '%s': unknown tensor class '%s'", scope, scope + 6);
		return 0;
	}
	if (strncmp(scope, "filter:", 7) == 0) {
		if (!scope[7])
			return cr_fail(err, CR_E_USAGE, "scope '%s': empty filter", scope);
		return 0;
	}
	if (strncmp(scope, "layers:", 7) == 0) {
		int a, b, used = 0;
		if (sscanf(scope + 7, "%d-%d%n", &a, &b, &used) != 2 || scope[7 + used] || a < 0 || b < a)
			return cr_fail(err, CR_E_USAGE, "scope '%s': expected layers:A-B with 0 <= A <= B", scope);
		return 0;
	}
	return cr_fail(err, CR_E_USAGE, "scope '%s': expected *, class:NAME, filter:TEXT or layers:A-B", scope);
}

int cr_state_canonical(const char *scope, int model, int nmodels, const char *key, const char *value, char **canon,
		       cr_error *err)
{
	*canon = NULL;
	if (check_scope(scope, err) < 0)
		return -1;
	if (model < -1 || (nmodels >= 0 && model >= nmodels))
		return cr_fail(err, CR_E_USAGE, "key '%s': model %d is not one of the session's %d models", key, model,
			       nmodels);
	if (is_setting(key)) {
		if (strcmp(scope, "*") != 0 || model != -1)
			return cr_fail(err, CR_E_USAGE, "setting '%s' applies to the whole recipe (scope *, no model)",
				       key);
		if (!value)
			return 0;
		if (strcmp(key, "merge_method") == 0) {
			if (cr_method_parse(value) == CR_M_NONE)
				return cr_fail(err, CR_E_USAGE, "merge_method: unknown method '%s'", value);
			*canon = cr_xstrdup(value);
		} else if (strcmp(key, "tokenizer_source") == 0) {
			if (strcmp(value, "base") != 0)
				return cr_fail(err, CR_E_USAGE, "tokenizer_source: only 'base' is supported, not '%s'", value);
			*canon = cr_xstrdup(value);
		} else if (strcmp(key, "random_seed") == 0) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(value, &end, 10);
			if (end == value || *end || errno || value[0] == '-')
				return cr_fail(err, CR_E_USAGE, "random_seed: '%s' is not an integer from 0 to 2^64-1", value);
			char buf[32];
			snprintf(buf, sizeof buf, "%llu", v);
			*canon = cr_xstrdup(buf);
		} else {
			enum cr_dtype dt = cr_dtype_parse_torch(value);
			if (dt == CR_DT_NONE)
				return cr_fail(err, CR_E_USAGE, "%s: unknown dtype '%s' (try bfloat16, float32)", key,
					       value);
			*canon = cr_xstrdup(cr_dtype_torch_name(dt));
		}
		return 0;
	}
	enum cr_param_id p = cr_param_parse(key);
	if (p == CR_P_NONE)
		return cr_fail(err, CR_E_USAGE, "unknown parameter '%s'", key);
	const struct cr_param_info *pi = cr_param_info(p);
	if (!pi->per_model && model != -1)
		return cr_fail(err, CR_E_USAGE, "parameter '%s' is global: set it at the top level, not per model", key);
	if (!value)
		return 0;
	if (pi->is_bool) {
		static const char *const yes[] = { "true", "yes", "on", "1", "True", "TRUE" };
		static const char *const no[] = { "false", "no", "off", "0", "False", "FALSE" };
		for (size_t i = 0; i < 6; i++) {
			if (strcmp(value, yes[i]) == 0)
				return (*canon = cr_xstrdup("true")), 0;
			if (strcmp(value, no[i]) == 0)
				return (*canon = cr_xstrdup("false")), 0;
		}
		return cr_fail(err, CR_E_USAGE, "parameter '%s': '%s' is not true or false", key, value);
	}
	const char *v = value;
	while (*v == ' ')
		v++;
	if (*v == '[') {
		*canon = canonical_gradient(v);
		if (!*canon)
			return cr_fail(err, CR_E_USAGE, "parameter '%s': '%s' is not a list of numbers", key, value);
		return 0;
	}
	double d;
	if (parse_number(v, &d) < 0)
		return cr_fail(err, CR_E_USAGE, "parameter '%s': '%s' is not a number or [list]", key, value);
	char buf[40];
	cr_fmt_double(d, buf, sizeof buf);
	*canon = cr_xstrdup(buf);
	return 0;
}
