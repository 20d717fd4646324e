/*
 * safetensors header parser (see st_header.h).
 *
 * Why hand-written: a DeepSeek-V3 checkpoint has 163 headers with 92,000
 * tensors; building and freeing a jansson tree for each took most of the time
 * to open it.  This parser fills struct cr_st_tensor directly, with every
 * string in one block (f->strings) and every dimension in another (f->dims).
 *
 * It stays a strict JSON parser, accepting what jansson accepted:
 * - UTF-8 validated everywhere (no overlongs, no encoded surrogates, nothing
 *   above U+10FFFF); strings without raw control characters; escapes
 *   \" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs joined, a lone surrogate
 *   or \u0000 refused; whitespace is space, tab, CR, LF; nothing after the
 *   top-level value.
 * - numbers in JSON's grammar; an integer beyond jansson's 64-bit signed
 *   range or a real that overflows a double is an error, wherever it is.
 * - duplicate keys refused in every object (each object's keys are sorted
 *   and compared when it closes; the tensor names once, at the end).
 * - values of unknown keys in a tensor entry are checked and ignored.
 * Errors come in the old order: a JSON error anywhere, then a duplicate, then
 * the first broken rule of the header's content (in header order, and within
 * a tensor in the order the old reader checked: dtype, shape, offsets, sizes).
 * Nesting deeper than CR_ST_MAX_DEPTH is refused as it is met (the old reader
 * scanned for it first), so recursion cannot overflow the stack.
 */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_header.h"


struct hp {
	const unsigned char *s, *p, *end;
	const char *path;
	char *arena; /* decoded strings; never more than the header's length + 1 */
	size_t used;
	uint64_t *dims;
	size_t ndims, capdims;
	struct cr_st_tensor *t;
	size_t *shape_at; /* per tensor, its first dimension in dims (dims moves while it grows) */
	size_t nt, capt;
	struct cr_st_meta *meta;
	size_t nmeta, capmeta;
	int depth, too_deep;
	const char *in_tensor; /* the entry being read, named in JSON errors */
	char rule[200]; /* the JSON error, if any */
	size_t rule_at;
	int have_sem;
	cr_error sem; /* the first broken content rule */
};

/* ---- errors ---- */

static int syntax(struct hp *h, const unsigned char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int syntax(struct hp *h, const unsigned char *at, const char *fmt, ...)
{
	if (!h->rule[0]) {
		va_list ap;
		size_t k = 0;
		if (h->in_tensor)
			k = (size_t)snprintf(h->rule, sizeof h->rule, "tensor '%.60s': ", h->in_tensor);
		va_start(ap, fmt);
		vsnprintf(h->rule + k, sizeof h->rule - k, fmt, ap);
		va_end(ap);
		h->rule_at = (size_t)(at - h->s);
	}
	return -1;
}

static void semantic(struct hp *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void semantic(struct hp *h, const char *fmt, ...)
{
	if (h->have_sem)
		return;
	char msg[sizeof h->sem.msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cr_fail(&h->sem, CR_E_FORMAT, "%s", msg);
	h->have_sem = 1;
}

/* ---- lexing ---- */

static inline void ws(struct hp *h)
{
	const unsigned char *p = h->p, *end = h->end;
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	h->p = p;
}

/* Length of the valid UTF-8 sequence at p (2 to 4), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	uint32_t cp, min;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2, cp = c & 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3, cp = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static int hex4(const unsigned char *p, const unsigned char *end, uint32_t *out)
{
	uint32_t v = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

static char *put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3F));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* The string at h->p (which is '"'), decoded into the arena and
 * NUL-terminated.  A decoded string is never longer than its JSON form, so
 * all of a header's strings fit in an arena of its length + 1. */
static int string(struct hp *h, const char **out, size_t *len)
{
	const unsigned char *p = h->p + 1, *end = h->end;
	char *o0 = h->arena + h->used, *o = o0;
	for (;;) {
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			*o++ = (char)*p++;
		if (p >= end)
			return syntax(h, p, "string not terminated");
		unsigned c = *p;
		if (c == '"')
			break;
		if (c < 0x20)
			return syntax(h, p, "control character 0x%02x in a string", c);
		if (c >= 0x80) {
			size_t k = utf8_seq(p, end);
			if (!k)
				return syntax(h, p, "invalid UTF-8 byte 0x%02x", c);
			memcpy(o, p, k);
			o += k;
			p += k;
			continue;
		}
		/* an escape */
		if (p + 1 >= end)
			return syntax(h, p, "string not terminated");
		c = p[1];
		const char *simple = strchr("\"\\/bfnrt", (int)c);
		if (c && simple) {
			static const char to[] = "\"\\/\b\f\n\r\t";
			*o++ = to[simple - "\"\\/bfnrt"];
			p += 2;
			continue;
		}
		if (c != 'u')
			return syntax(h, p, "invalid escape");
		uint32_t cp, lo;
		if (hex4(p + 2, end, &cp) < 0)
			return syntax(h, p, "invalid \\u escape");
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return syntax(h, p, "lone low surrogate \\u%04X", (unsigned)cp);
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (end - (p + 6) < 2 || p[6] != '\\' || p[7] != 'u')
				return syntax(h, p, "lone high surrogate \\u%04X", (unsigned)cp);
			if (hex4(p + 8, end, &lo) < 0)
				return syntax(h, p + 6, "invalid \\u escape");
			if (lo < 0xDC00 || lo > 0xDFFF)
				return syntax(h, p, "high surrogate \\u%04X not followed by a low one", (unsigned)cp);
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			p += 6;
		}
		if (cp == 0)
			return syntax(h, p, "\\u0000 in a string");
		o = put_utf8(o, cp);
		p += 6;
	}
	*o = '\0';
	h->p = p + 1;
	h->used += (size_t)(o - o0) + 1;
	*out = o0;
	*len = (size_t)(o - o0);
	return 0;
}

/* The C locale, for strtod_l: a front end may have set LC_NUMERIC. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void)
{
	c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* A real number overflows a double (jansson refuses it). */
static int real_overflows(const unsigned char *a, const unsigned char *b)
{
	size_t n = (size_t)(b - a);
	char small[64], *buf = n < sizeof small ? small : cr_xmalloc(n + 1);
	memcpy(buf, a, n);
	buf[n] = '\0';
	pthread_once(&c_locale_once, c_locale_init);
	errno = 0;
	double v = c_locale ? strtod_l(buf, NULL, c_locale) : strtod(buf, NULL);
	int over = isinf(v) && errno == ERANGE;
	if (buf != small)
		free(buf);
	return over;
}

/* A JSON number at h->p.  *is_int: an integer (no fraction, no exponent)
 * within jansson's range, with *neg and its magnitude in *mag. */
static int number(struct hp *h, int *is_int, int *neg, uint64_t *mag)
{
	const unsigned char *a = h->p, *p = a, *end = h->end;
	uint64_t m = 0;
	int big = 0;
	*neg = 0;
	if (p < end && *p == '-') {
		*neg = 1;
		p++;
	}
	if (p >= end || *p < '0' || *p > '9')
		return syntax(h, a, "invalid number");
	if (*p == '0') {
		p++;
		if (p < end && *p >= '0' && *p <= '9')
			return syntax(h, a, "number with a leading zero");
	} else {
		while (p < end && *p >= '0' && *p <= '9') {
			unsigned d = *p++ - '0';
			if (m > (UINT64_MAX - d) / 10)
				big = 1;
			else
				m = m * 10 + d;
		}
	}
	*is_int = 1;
	if (p < end && *p == '.') {
		*is_int = 0;
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return syntax(h, a, "invalid number");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*is_int = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return syntax(h, a, "invalid number");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (*is_int) {
		if (big || m > (*neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
			return syntax(h, a, "integer %.*s%s is out of range (-2^63 to 2^63-1)", (int)(p - a < 30 ? p - a : 30),
				      (const char *)a, p - a > 30 ? "..." : "");
		*mag = m;
	} else if (real_overflows(a, p)) {
		return syntax(h, a, "number %.*s%s overflows a double", (int)(p - a < 30 ? p - a : 30), (const char *)a,
			      p - a > 30 ? "..." : "");
	}
	h->p = p;
	return 0;
}

static int literal(struct hp *h)
{
	static const char *const words[] = { "true", "false", "null" };
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(h->end - h->p) >= n && memcmp(h->p, words[i], n) == 0) {
			h->p += n;
			return 0;
		}
	}
	return syntax(h, h->p, "invalid token");
}

/* ---- generic values (checked, then dropped) ---- */

static int skip_value(struct hp *h);

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys of one object, to refuse duplicates when it closes. */
struct keyset {
	const char **v;
	size_t n, cap;
};

static void keyset_add(struct keyset *k, const char *s)
{
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 8;
		k->v = cr_xrealloc(k->v, k->cap * sizeof *k->v);
	}
	k->v[k->n++] = s;
}

static int keyset_check(struct hp *h, struct keyset *k, const unsigned char *at)
{
	int rc = 0;
	if (k->n > 1) {
		qsort(k->v, k->n, sizeof *k->v, cmp_str);
		for (size_t i = 1; i < k->n && rc == 0; i++)
			if (strcmp(k->v[i], k->v[i - 1]) == 0)
				rc = syntax(h, at, "duplicate key \"%.100s\"", k->v[i]);
	}
	free(k->v);
	k->v = NULL;
	k->n = k->cap = 0;
	return rc;
}

/* After a member: ',' (then another member) or the closing bracket. 1 = more. */
static int next_member(struct hp *h, char close)
{
	ws(h);
	if (h->p < h->end && *h->p == ',') {
		h->p++;
		ws(h);
		return 1;
	}
	if (h->p < h->end && *h->p == close) {
		h->p++;
		return 0;
	}
	return syntax(h, h->p, "',' or '%c' expected", close);
}

static int key_colon(struct hp *h, const char **key, size_t *len)
{
	if (h->p >= h->end || *h->p != '"')
		return syntax(h, h->p, "string key expected");
	if (string(h, key, len) < 0)
		return -1;
	ws(h);
	if (h->p >= h->end || *h->p != ':')
		return syntax(h, h->p, "':' expected");
	h->p++;
	ws(h);
	return 0;
}

static int enter(struct hp *h)
{
	if (++h->depth > CR_ST_MAX_DEPTH) {
		h->too_deep = !h->rule[0];
		return syntax(h, h->p, "nesting deeper than %d levels", CR_ST_MAX_DEPTH);
	}
	h->p++;
	ws(h);
	return 0;
}

static int skip_object(struct hp *h)
{
	const unsigned char *start = h->p;
	size_t mark = h->used;
	struct keyset ks = { 0 };
	if (enter(h) < 0)
		return -1;
	int more = h->p < h->end && *h->p == '}' ? (h->p++, 0) : 1;
	while (more > 0) {
		const char *key;
		size_t len;
		if (key_colon(h, &key, &len) < 0 || skip_value(h) < 0) {
			free(ks.v);
			return -1;
		}
		keyset_add(&ks, key);
		more = next_member(h, '}');
	}
	if (more < 0 || keyset_check(h, &ks, start) < 0) {
		free(ks.v);
		return -1;
	}
	h->used = mark;
	h->depth--;
	return 0;
}

static int skip_array(struct hp *h)
{
	if (enter(h) < 0)
		return -1;
	int more = h->p < h->end && *h->p == ']' ? (h->p++, 0) : 1;
	while (more > 0) {
		if (skip_value(h) < 0)
			return -1;
		more = next_member(h, ']');
	}
	if (more < 0)
		return -1;
	h->depth--;
	return 0;
}

static int skip_value(struct hp *h)
{
	if (h->p >= h->end)
		return syntax(h, h->p, "value expected");
	switch (*h->p) {
	case '{':
		return skip_object(h);
	case '[':
		return skip_array(h);
	case '"': {
		size_t mark = h->used, len;
		const char *s;
		if (string(h, &s, &len) < 0)
			return -1;
		h->used = mark;
		return 0;
	}
	case '-':
	case '0' ... '9': {
		int is_int, neg;
		uint64_t mag;
		return number(h, &is_int, &neg, &mag);
	}
	default:
		return literal(h);
	}
}

/* ---- the header's shape ---- */

/* One element of "shape" or "data_offsets": 1 = a non-negative integer in *v. */
static int u64_elem(struct hp *h, uint64_t *v)
{
	if (h->p < h->end && (*h->p == '-' || (*h->p >= '0' && *h->p <= '9'))) {
		int is_int, neg;
		uint64_t mag;
		if (number(h, &is_int, &neg, &mag) < 0)
			return -1;
		if (!is_int || (neg && mag != 0)) /* "-0" is the integer 0, as jansson reads it */
			return 0;
		*v = mag;
		return 1;
	}
	return skip_value(h) < 0 ? -1 : 0;
}

enum field { F_MISSING, F_WRONG, F_OK };

/* What a tensor entry held, checked when the entry closes. */
struct entry {
	enum field dtype, shape, offs;
	const char *dtype_s;
	long bad_dim;	  /* first shape element that is not a non-negative integer, or -1 */
	size_t noffs;	  /* elements in data_offsets */
	int offs_ok;	  /* its first two are non-negative integers */
	uint64_t off[2];
};

static void dims_push(struct hp *h, uint64_t v)
{
	if (h->ndims == h->capdims) {
		h->capdims *= 2;
		h->dims = cr_xrealloc(h->dims, h->capdims * sizeof *h->dims);
	}
	h->dims[h->ndims++] = v;
}

static int shape_array(struct hp *h, struct entry *e, struct cr_st_tensor *t)
{
	long i = 0;
	if (enter(h) < 0)
		return -1;
	int more = h->p < h->end && *h->p == ']' ? (h->p++, 0) : 1;
	while (more > 0) {
		uint64_t v = 0;
		int r = u64_elem(h, &v);
		if (r < 0)
			return -1;
		if (r == 0 && e->bad_dim < 0)
			e->bad_dim = i;
		dims_push(h, v);
		i++;
		more = next_member(h, ']');
	}
	if (more < 0)
		return -1;
	if (i > INT32_MAX)
		return syntax(h, h->p, "shape has too many dimensions");
	t->ndim = (int)i;
	h->depth--;
	return 0;
}

static int offsets_array(struct hp *h, struct entry *e)
{
	if (enter(h) < 0)
		return -1;
	int more = h->p < h->end && *h->p == ']' ? (h->p++, 0) : 1;
	e->offs_ok = 1;
	while (more > 0) {
		uint64_t v = 0;
		int r = u64_elem(h, &v);
		if (r < 0)
			return -1;
		if (e->noffs < 2) {
			e->off[e->noffs] = v;
			if (r == 0)
				e->offs_ok = 0;
		}
		e->noffs++;
		more = next_member(h, ']');
	}
	if (more < 0)
		return -1;
	h->depth--;
	return 0;
}

/* The old reader's checks of one tensor, in its order and words. */
static void check_tensor(struct hp *h, const char *name, const struct entry *e, struct cr_st_tensor *t)
{
	const char *path = h->path;
	if (e->dtype != F_OK)
		return semantic(h, "%s: tensor '%.200s': missing or non-string \"dtype\"", path, name);
	t->dtype = cr_dtype_parse(e->dtype_s);
	if (t->dtype == CR_DT_NONE)
		return semantic(h, "%s: tensor '%.200s': unknown dtype \"%.40s\"", path, name, e->dtype_s);
	if (e->shape != F_OK)
		return semantic(h, "%s: tensor '%.200s': missing or non-array \"shape\"", path, name);
	if (e->offs != F_OK || e->noffs != 2)
		return semantic(h, "%s: tensor '%.200s': \"data_offsets\" must be an array of two integers", path, name);
	const uint64_t *shape = h->dims + h->shape_at[h->nt - 1];
	int overflow = 0;
	t->nelem = 1;
	for (int i = 0; i < t->ndim; i++) {
		uint64_t d = shape[i];
		if (i == e->bad_dim)
			return semantic(h, "%s: tensor '%.200s': shape dimension %d is not a non-negative integer", path,
					name, i);
		if (d != 0 && t->nelem > UINT64_MAX / d)
			overflow = 1;
		else
			t->nelem *= d;
	}
	if (overflow && t->nelem != 0)
		return semantic(h, "%s: tensor '%.200s': element count overflows 64 bits", path, name);
	if (!e->offs_ok)
		return semantic(h, "%s: tensor '%.200s': data_offsets are not non-negative integers", path, name);
	t->begin = e->off[0];
	t->end = e->off[1];
	if (t->end < t->begin)
		return semantic(h, "%s: tensor '%.200s': data_offsets end %llu is before start %llu", path, name,
				(unsigned long long)t->end, (unsigned long long)t->begin);
	uint64_t bits = cr_dtype_bits(t->dtype);
	if (t->nelem > UINT64_MAX / bits)
		return semantic(h, "%s: tensor '%.200s': byte size overflows 64 bits", path, name);
	if ((t->nelem * bits) % 8 != 0)
		return semantic(h, "%s: tensor '%.200s': %llu elements of %s do not fill whole bytes", path, name,
				(unsigned long long)t->nelem, cr_dtype_name(t->dtype));
	int ok;
	uint64_t want = cr_dtype_nbytes(t->dtype, t->nelem, &ok);
	if (t->end - t->begin != want)
		return semantic(h, "%s: tensor '%.200s': shape x dtype size is %llu bytes but data_offsets span %llu",
				path, name, (unsigned long long)want, (unsigned long long)(t->end - t->begin));
}

static int tensor_entry(struct hp *h, const char *name)
{
	if (h->nt == h->capt) {
		h->capt = h->capt ? h->capt * 2 : 64;
		h->t = cr_xrealloc(h->t, h->capt * sizeof *h->t);
		h->shape_at = cr_xrealloc(h->shape_at, h->capt * sizeof *h->shape_at);
	}
	struct cr_st_tensor *t = &h->t[h->nt];
	memset(t, 0, sizeof *t);
	t->name = (char *)name;
	h->shape_at[h->nt++] = h->ndims;
	h->in_tensor = name;
	if (h->p >= h->end || *h->p != '{') {
		if (skip_value(h) < 0)
			return -1;
		semantic(h, "%s: tensor '%.200s': entry is not a JSON object", h->path, name);
		h->in_tensor = NULL;
		return 0;
	}
	const unsigned char *start = h->p;
	size_t mark = h->used;
	struct entry e = { .bad_dim = -1 };
	struct keyset others = { 0 };
	if (enter(h) < 0)
		return -1;
	int more = h->p < h->end && *h->p == '}' ? (h->p++, 0) : 1;
	while (more > 0) {
		const char *key;
		size_t len;
		const unsigned char *kat = h->p;
		if (key_colon(h, &key, &len) < 0)
			goto fail;
		enum field *f = strcmp(key, "dtype") == 0	 ? &e.dtype
				: strcmp(key, "shape") == 0	 ? &e.shape
				: strcmp(key, "data_offsets") == 0 ? &e.offs
								   : NULL;
		char want = f == &e.dtype ? '"' : '[';
		int r;
		if (!f) {
			keyset_add(&others, key);
			r = skip_value(h);
		} else if (*f != F_MISSING) {
			r = syntax(h, kat, "duplicate key \"%s\"", key);
		} else if (h->p < h->end && *h->p == want) {
			*f = F_OK;
			r = f == &e.dtype ? string(h, &e.dtype_s, &len)
			    : f == &e.shape ? shape_array(h, &e, t)
					    : offsets_array(h, &e);
		} else {
			*f = F_WRONG;
			r = skip_value(h);
		}
		if (r < 0)
			goto fail;
		more = next_member(h, '}');
	}
	if (more < 0 || keyset_check(h, &others, start) < 0)
		goto fail;
	h->depth--;
	h->in_tensor = NULL;
	check_tensor(h, name, &e, t);
	h->used = mark; /* the entry's keys and dtype are no longer needed */
	return 0;
fail:
	free(others.v);
	return -1;
}

static int metadata(struct hp *h)
{
	if (h->p < h->end && *h->p == 'n')
		return literal(h); /* null (the only literal starting with n) */
	if (h->p >= h->end || *h->p != '{') {
		if (skip_value(h) < 0)
			return -1;
		semantic(h, "%s: __metadata__ is not an object of strings", h->path);
		return 0;
	}
	const unsigned char *start = h->p;
	struct keyset keys = { 0 };
	if (enter(h) < 0)
		return -1;
	int more = h->p < h->end && *h->p == '}' ? (h->p++, 0) : 1;
	while (more > 0) {
		const char *key, *val;
		size_t len;
		if (key_colon(h, &key, &len) < 0)
			goto fail;
		keyset_add(&keys, key);
		if (h->p < h->end && *h->p == '"') {
			if (string(h, &val, &len) < 0)
				goto fail;
			if (h->nmeta == h->capmeta) {
				h->capmeta = h->capmeta ? h->capmeta * 2 : 8;
				h->meta = cr_xrealloc(h->meta, h->capmeta * sizeof *h->meta);
			}
			h->meta[h->nmeta].key = (char *)key;
			h->meta[h->nmeta].value = (char *)val;
			h->nmeta++;
		} else {
			if (skip_value(h) < 0)
				goto fail;
			semantic(h, "%s: __metadata__ value for \"%.100s\" is not a string", h->path, key);
		}
		more = next_member(h, '}');
	}
	if (more < 0 || keyset_check(h, &keys, start) < 0)
		goto fail;
	h->depth--;
	return 0;
fail:
	free(keys.v);
	return -1;
}

static int root_object(struct hp *h)
{
	int seen_meta = 0;
	if (enter(h) < 0)
		return -1;
	int more = h->p < h->end && *h->p == '}' ? (h->p++, 0) : 1;
	while (more > 0) {
		const char *key;
		size_t len;
		const unsigned char *kat = h->p;
		if (key_colon(h, &key, &len) < 0)
			return -1;
		if (strcmp(key, "__metadata__") == 0) {
			if (seen_meta++)
				return syntax(h, kat, "duplicate key \"__metadata__\"");
			if (metadata(h) < 0)
				return -1;
		} else if (tensor_entry(h, key) < 0) {
			return -1;
		}
		more = next_member(h, '}');
	}
	if (more < 0)
		return -1;
	h->depth--;
	return 0;
}

/* Tensor names are unique: sort them once and compare neighbours. */
static void check_unique(struct hp *h)
{
	if (h->nt < 2)
		return;
	const char **v = cr_xmalloc(h->nt * sizeof *v);
	for (size_t i = 0; i < h->nt; i++)
		v[i] = h->t[i].name;
	qsort(v, h->nt, sizeof *v, cmp_str);
	for (size_t i = 1; i < h->nt; i++)
		if (strcmp(v[i], v[i - 1]) == 0) {
			h->have_sem = 0; /* a duplicate comes before content rules, as it did */
			semantic(h, "%s: tensor '%.200s': duplicate tensor name (a JSON object key appears twice)",
				 h->path, v[i]);
			break;
		}
	free(v);
}

int cr_st_header_parse(const char *path, const char *hdr, size_t n, struct cr_st_file *f, cr_error *err)
{
	struct hp h = { 0 };
	int rc = -1;
	h.s = h.p = (const unsigned char *)hdr;
	h.end = h.s + n;
	h.path = path;
	h.arena = cr_xmalloc(n + 1);
	h.capdims = 64;
	h.dims = cr_xmalloc(h.capdims * sizeof *h.dims);

	ws(&h);
	if (h.p < h.end && *h.p == '{') {
		rc = root_object(&h);
	} else if (h.p < h.end && *h.p == '[') {
		rc = skip_array(&h);
		if (rc == 0)
			semantic(&h, "%s: header is not a JSON object", path);
	} else {
		rc = syntax(&h, h.p, "'{' expected");
	}
	if (rc == 0) {
		ws(&h);
		if (h.p != h.end)
			rc = syntax(&h, h.p, "bytes after the end of the JSON object");
	}
	if (rc < 0 && h.too_deep) {
		cr_fail(err, CR_E_FORMAT, "%s: header JSON nests deeper than %d levels", path, CR_ST_MAX_DEPTH);
	} else if (rc < 0) {
		cr_fail(err, CR_E_FORMAT, "%s: header is not valid UTF-8 JSON: %s (at byte %zu)", path, h.rule,
			h.rule_at);
	} else {
		check_unique(&h);
		if (h.have_sem) {
			if (err)
				*err = h.sem;
			rc = -1;
		}
	}
	/* hand over what was filled; cr_st_close frees it either way */
	for (size_t i = 0; i < h.nt; i++)
		h.t[i].shape = h.dims + h.shape_at[i];
	f->tensors = h.t;
	f->ntensors = h.nt;
	f->meta = h.meta;
	f->nmeta = h.nmeta;
	f->strings = h.arena;
	f->dims = h.dims;
	free(h.shape_at);
	return rc;
}
