/* Small formatting helpers shared by the front ends (no I/O). */
#ifndef CRUCIBLE_FORMAT_H
#define CRUCIBLE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* "1.5 GiB"-style size into buf; returns buf. */
char *cr_fmt_bytes(uint64_t n, char *buf, size_t len);
/* "671.0B"-style count (K, M, B, T); returns buf. */
char *cr_fmt_count(uint64_t n, char *buf, size_t len);
/* "[320, 448]"; returns buf. */
char *cr_fmt_shape(const uint64_t *shape, int ndim, char *buf, size_t len);

#endif
