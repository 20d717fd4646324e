/*
 * Small text files: config.json, indexes, the config file, themes.  One
 * reader with a size limit (a FIFO or a device is refused, never blocks),
 * and one line walker for the `key value # comment` formats.
 */
#ifndef CRUCIBLE_TEXTFILE_H
#define CRUCIBLE_TEXTFILE_H

#include <stddef.h>

#include "crucible/error.h"

/* The whole file, NUL-terminated, or NULL with err set (CR_E_NOTFOUND when
 * it does not exist, so callers can treat a missing optional file as empty). */
char *cr_read_text_file(const char *path, size_t limit, cr_error *err);

/* Call fn for every line of text (numbered from 1), with a '#' comment cut
 * off; the line is writable and NUL-terminated. */
typedef void (*cr_line_fn)(void *ctx, char *line, const char *file, int lineno);
void cr_each_line(const char *text, const char *file, cr_line_fn fn, void *ctx);

/* Append "FILE:LINE: message" to a growing list of warnings (*list, *n). */
void cr_add_line_warning(char ***list, size_t *n, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
