/*
 * Errors in the core.  The core never prints and never exits: a failing
 * function returns -1 (or NULL) and fills a cr_error that the caller owns.
 * The message is one line naming the file, the tensor and the rule broken,
 * ready for the front end to show as it is.
 */
#ifndef CRUCIBLE_ERROR_H
#define CRUCIBLE_ERROR_H

#include <stddef.h>

/* X(code, short description) */
#define CR_ERROR_CODES(X)                                   \
	X(OK, "no error")                                   \
	X(IO, "input/output error")                         \
	X(FORMAT, "malformed file")                         \
	X(UNSUPPORTED, "unsupported")                       \
	X(NOMEM, "out of memory")                           \
	X(USAGE, "invalid argument")                        \
	X(MISMATCH, "checkpoints do not match")             \
	X(NUMERIC, "bad value in tensor data")              \
	X(RECIPE, "bad recipe")                             \
	X(DB, "session database error")                     \
	X(CANCELLED, "cancelled")                           \
	X(EXISTS, "already exists")                         \
	X(NOTFOUND, "not found")

enum cr_errcode {
#define X(c, d) CR_E_##c,
	CR_ERROR_CODES(X)
#undef X
	CR_E__COUNT
};

typedef struct cr_error {
	enum cr_errcode code;
	char msg[1024];
} cr_error;

/* Fill err (which may be NULL) and return -1, so callers can write
 * `return cr_fail(err, CR_E_IO, "%s: %s", path, strerror(errno));`. */
int cr_fail(cr_error *err, enum cr_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cr_error_clear(cr_error *err);
const char *cr_errcode_name(enum cr_errcode code);

/* Allocation that cannot fail: memory exhaustion is the one fatal case. */
void *cr_xmalloc(size_t n);
void *cr_xcalloc(size_t n, size_t size);
void *cr_xrealloc(void *p, size_t n);
char *cr_xstrdup(const char *s);
/* Set by a front end to restore the terminal before the abort. */
extern void (*cr_oom_hook)(void);

#endif
