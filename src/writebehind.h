/*
 * Write-behind: one thread writes the merge engine's finished chunks, in the
 * order they were queued, while the compute threads go on.
 *
 *   uint8_t *b = cr_wb_get(wb);            a free buffer of cr_wb_bufsize()
 *   ... fill b ...
 *   cr_wb_put(wb, w, i, off, b, len);      queued; b returns to the pool once written
 *   cr_wb_flush(wb, &err);                 wait for every queued write (before
 *                                          finishing or aborting a shard)
 *
 * Writes to the same bytes land in queue order.  The first failed write is
 * kept; later writes are skipped, cr_wb_put returns -1 from then on, and
 * cr_wb_flush reports it (and clears it).  Thread-safe; the buffers are
 * bounded (nbuf of bufsize bytes), so cr_wb_get waits while all are queued.
 */
#ifndef CRUCIBLE_WRITEBEHIND_H
#define CRUCIBLE_WRITEBEHIND_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/error.h"

struct cr_st_writer;
struct cr_wb;

struct cr_wb *cr_wb_new(size_t nbuf, size_t bufsize);
void cr_wb_free(struct cr_wb *wb); /* after cr_wb_flush */
size_t cr_wb_bufsize(const struct cr_wb *wb);
uint8_t *cr_wb_get(struct cr_wb *wb);
void cr_wb_release(struct cr_wb *wb, uint8_t *buf); /* give back a buffer that was not queued */
int cr_wb_put(struct cr_wb *wb, struct cr_st_writer *w, size_t i, uint64_t off, uint8_t *buf, size_t len);
/* small writes: the bytes are copied, src may be reused at once */
int cr_wb_put_copy(struct cr_wb *wb, struct cr_st_writer *w, size_t i, uint64_t off, const void *src, size_t len);
int cr_wb_flush(struct cr_wb *wb, cr_error *err);
int cr_wb_failed(struct cr_wb *wb, cr_error *err);

#endif
