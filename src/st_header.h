/*
 * The safetensors header parser (private to safetensors.c, and the tests).
 *
 * A strict JSON parser for the one shape a header has:
 *   {"NAME": {"dtype": "F32", "shape": [u64, ...], "data_offsets": [u64, u64]}, ...,
 *    "__metadata__": null | {"key": "string", ...}}
 * It accepts exactly what jansson (with JSON_REJECT_DUPLICATES) accepts and
 * the old jansson-based reader then accepted: see st_header.c.
 */
#ifndef CRUCIBLE_ST_HEADER_H
#define CRUCIBLE_ST_HEADER_H

#include <stddef.h>

#include "crucible/safetensors.h"

/* Parse the n bytes of header JSON at hdr; path names the file in messages.
 * Fills f->tensors/ntensors (header order, shape x dtype checked against the
 * offsets, names unique), f->meta/nmeta, and the storage they point into
 * (f->strings, f->dims).  Does not check the layout (holes, overlaps, end of
 * file).  On failure returns -1 with one line in err; what was filled is
 * freed by cr_st_close. */
int cr_st_header_parse(const char *path, const char *hdr, size_t n, struct cr_st_file *f, cr_error *err);

#endif
