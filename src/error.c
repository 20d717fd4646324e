/*
 * Error values and the allocation wrappers.  See crucible/error.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/error.h"

void (*cr_oom_hook)(void);

static const char *const errcode_names[] = {
#define X(c, d) d,
	CR_ERROR_CODES(X)
#undef X
};

int cr_fail(cr_error *err, enum cr_errcode code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	/* Messages quote names and bytes from files; a control character there
	 * would break the one-line rule or send escape sequences to a terminal. */
	for (char *p = err->msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -1;
}

void cr_error_clear(cr_error *err)
{
	if (err) {
		err->code = CR_E_OK;
		err->msg[0] = '\0';
	}
}

const char *cr_errcode_name(enum cr_errcode code)
{
	if ((unsigned)code >= CR_E__COUNT)
		return "unknown error";
	return errcode_names[code];
}

static void out_of_memory(size_t n)
{
	if (cr_oom_hook)
		cr_oom_hook();
	fprintf(stderr, "crucible: out of memory (allocating %zu bytes)\n", n);
	abort();
}

void *cr_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		out_of_memory(n);
	return p;
}

void *cr_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		out_of_memory(n * size);
	return p;
}

void *cr_xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);
	if (!p)
		out_of_memory(n);
	return p;
}

char *cr_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = cr_xmalloc(n);
	memcpy(p, s, n);
	return p;
}
