/*
 * A reference for the safetensors header parser, shared by
 * tests/check_st_header.c and fuzz/fuzz_safetensors.c: the header parsed
 * with jansson the way the reader worked before st_header.c (nesting scan,
 * json_loadb with JSON_REJECT_DUPLICATES, then the checks of each tensor
 * entry and of __metadata__), and the parser under test, each giving its
 * result as text ("REJECT", or the tensors and metadata in header order) so
 * that two parses compare with strcmp.
 */
#ifndef CRUCIBLE_ST_HEADER_REF_H
#define CRUCIBLE_ST_HEADER_REF_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crucible/safetensors.h"
#include "../src/st_header.h"

/* ---- the results of a parse, as text, so two parses compare with strcmp ---- */

struct dump {
	char *s;
	size_t n, cap;
};

static void put(struct dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static void put(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (d->n + (size_t)k + 1 > d->cap) {
		d->cap = (d->n + (size_t)k + 1) * 2;
		d->s = realloc(d->s, d->cap);
	}
	va_start(ap, fmt);
	vsnprintf(d->s + d->n, (size_t)k + 1, fmt, ap);
	va_end(ap);
	d->n += (size_t)k;
}

/* Names may hold any byte but NUL: length-prefixed, escaped as hex. */
static void put_str(struct dump *d, const char *s)
{
	put(d, "%zu:", strlen(s));
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		put(d, "%02x", *p);
	put(d, " ");
}

static void put_tensor(struct dump *d, const char *name, int dtype, int ndim, const uint64_t *shape, uint64_t nelem,
		       uint64_t begin, uint64_t end)
{
	put(d, "T ");
	put_str(d, name);
	put(d, "%d [", dtype);
	for (int i = 0; i < ndim; i++)
		put(d, "%llu,", (unsigned long long)shape[i]);
	put(d, "] %llu %llu-%llu\n", (unsigned long long)nelem, (unsigned long long)begin, (unsigned long long)end);
}

/* ---- the reference: jansson, and the old reader's checks ---- */

static int ref_depth_ok(const char *s, size_t n, int limit)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > limit)
				return 0;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 1;
}

static int ref_u64(json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int ref_tensor(const char *name, json_t *info, struct dump *d)
{
	if (!json_is_object(info))
		return -1;
	json_t *jd = json_object_get(info, "dtype"), *js = json_object_get(info, "shape"),
	       *jo = json_object_get(info, "data_offsets");
	if (!json_is_string(jd))
		return -1;
	enum cr_dtype dt = cr_dtype_parse(json_string_value(jd));
	if (dt == CR_DT_NONE || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2)
		return -1;
	size_t ndim = json_array_size(js);
	uint64_t *shape = calloc(ndim + 1, sizeof *shape), nelem = 1, begin, end;
	int overflow = 0, rc = -1;
	for (size_t i = 0; i < ndim; i++) {
		if (ref_u64(json_array_get(js, i), &shape[i]) < 0)
			goto out;
		/* in 128-bit arithmetic, not the parser's way */
		unsigned __int128 p = (unsigned __int128)nelem * shape[i];
		if (shape[i] != 0 && p > UINT64_MAX)
			overflow = 1;
		else
			nelem = (uint64_t)p;
	}
	if (overflow && nelem != 0)
		goto out;
	if (ref_u64(json_array_get(jo, 0), &begin) < 0 || ref_u64(json_array_get(jo, 1), &end) < 0 || end < begin)
		goto out;
	unsigned __int128 bits = (unsigned __int128)nelem * cr_dtype_bits(dt);
	if (bits > UINT64_MAX || bits % 8 != 0 || end - begin != (uint64_t)(bits / 8))
		goto out;
	put_tensor(d, name, dt, (int)ndim, shape, nelem, begin, end);
	rc = 0;
out:
	free(shape);
	return rc;
}

/* "REJECT", or the tensors and metadata in header order. */
__attribute__((unused)) static char *ref_parse(const char *hdr, size_t n)
{
	struct dump d = { 0 }, meta = { 0 };
	json_error_t je;
	/* jansson skips a raw NUL byte that follows a number or a literal ("[2\0]"
	 * reads as [2]: its lexer takes the NUL for the end of its look-ahead
	 * buffer).  JSON has no raw NUL anywhere, and the new parser refuses it,
	 * as the official reader does: so does the reference. */
	int has_nul = memchr(hdr, 0, n) != NULL;
	json_t *root = !has_nul && ref_depth_ok(hdr, n, CR_ST_MAX_DEPTH)
			       ? json_loadb(hdr, n, JSON_REJECT_DUPLICATES, &je)
			       : NULL;
	int ok = json_is_object(root);
	const char *key;
	json_t *val;
	put(&meta, "%s", "");
	if (ok)
		json_object_foreach(root, key, val)
		{
			if (strcmp(key, "__metadata__") == 0) {
				const char *k;
				json_t *v;
				if (json_is_null(val))
					continue;
				if (!json_is_object(val)) {
					ok = 0;
					break;
				}
				json_object_foreach(val, k, v)
				{
					if (!json_is_string(v)) {
						ok = 0;
						break;
					}
					put(&meta, "M ");
					put_str(&meta, k);
					put_str(&meta, json_string_value(v));
					put(&meta, "\n");
				}
			} else if (ref_tensor(key, val, &d) < 0) {
				ok = 0;
			}
			if (!ok)
				break;
		}
	json_decref(root);
	if (!ok) {
		free(d.s);
		free(meta.s);
		return strdup("REJECT");
	}
	put(&d, "%s", meta.s);
	free(meta.s);
	return d.s;
}

/* ---- the parser under test ---- */

__attribute__((unused)) static char *new_parse(const char *hdr, size_t n, cr_error *err)
{
	struct cr_st_file f = { 0 };
	struct dump d = { 0 };
	int rc = cr_st_header_parse("HDR", hdr, n, &f, err);
	if (rc == 0) {
		put(&d, "%s", "");
		for (size_t i = 0; i < f.ntensors; i++) {
			const struct cr_st_tensor *t = &f.tensors[i];
			put_tensor(&d, t->name, t->dtype, t->ndim, t->shape, t->nelem, t->begin, t->end);
		}
		for (size_t i = 0; i < f.nmeta; i++) {
			put(&d, "M ");
			put_str(&d, f.meta[i].key);
			put_str(&d, f.meta[i].value);
			put(&d, "\n");
		}
	}
	free(f.tensors);
	free(f.meta);
	free(f.strings);
	free(f.dims);
	return rc == 0 ? d.s : strdup("REJECT");
}

#endif
