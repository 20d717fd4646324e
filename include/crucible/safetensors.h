/*
 * safetensors files: validation, access and streaming output.
 *
 * Format: an 8-byte little-endian header length N (at most 100,000,000),
 * N bytes of UTF-8 JSON mapping tensor names to {dtype, shape, data_offsets}
 * plus an optional "__metadata__" object of strings, then the data buffer.
 * cr_st_open validates as the official reader does: known dtypes, integer
 * non-negative shapes, offsets contiguous from 0 with no holes or overlaps
 * covering the buffer exactly, shape x dtype size equal to the offsets, no
 * overflow, no duplicate names.  It reads only the header; tensor bytes are
 * read with pread, so a file truncated underneath gives an error, not SIGBUS.
 */
#ifndef CRUCIBLE_SAFETENSORS_H
#define CRUCIBLE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crucible/dtype.h"
#include "crucible/error.h"

#define CR_ST_MAX_HEADER 100000000ull
/* Deeper JSON than this is refused before parsing (a header needs 3). */
#define CR_ST_MAX_DEPTH 64

struct cr_st_tensor {
	char *name;
	enum cr_dtype dtype;
	int ndim;
	uint64_t *shape;
	uint64_t nelem;
	uint64_t begin, end; /* offsets into the data buffer */
};

struct cr_st_meta {
	char *key, *value;
};

struct cr_st_file {
	char *path;
	int fd;
	uint64_t file_size;
	uint64_t header_len;
	uint64_t data_start; /* 8 + header_len */
	uint64_t header_hash; /* FNV-1a of the header bytes */
	int64_t mtime_ns;
	size_t ntensors;
	struct cr_st_tensor *tensors; /* in header order */
	size_t nmeta;
	struct cr_st_meta *meta;
	char *strings;	/* storage of the names, keys and values above */
	uint64_t *dims; /* storage of the shapes above */
};

int cr_st_open(const char *path, struct cr_st_file **out, cr_error *err);
void cr_st_close(struct cr_st_file *f);
/* Linear search; checkpoints build their own hash index. */
const struct cr_st_tensor *cr_st_find(const struct cr_st_file *f, const char *name);
const char *cr_st_meta_get(const struct cr_st_file *f, const char *key);
/* Read len bytes at offset off within tensor t. */
int cr_st_pread(const struct cr_st_file *f, const struct cr_st_tensor *t,
		uint64_t off, void *buf, size_t len, cr_error *err);
uint64_t cr_st_tensor_nbytes(const struct cr_st_tensor *t);

uint64_t cr_fnv1a(const void *data, size_t n, uint64_t h);
#define CR_FNV_INIT 0xcbf29ce484222325ull

/*
 * Writer.  The caller gives the whole plan up front; the writer sorts it in
 * the official order (dtype descending, then name), writes the header with
 * every offset, and then takes the data: cr_st_writer_write puts bytes of
 * plan entry i at an offset within it (any order, any thread), and
 * cr_st_writer_finish checks every byte was written, fsyncs and closes.
 */
struct cr_st_entry {
	const char *name;
	enum cr_dtype dtype;
	int ndim;
	const uint64_t *shape;
};

struct cr_st_writer;

int cr_st_writer_open(const char *path, const struct cr_st_entry *plan, size_t n,
		      const struct cr_st_meta *meta, size_t nmeta,
		      struct cr_st_writer **out, cr_error *err);
/* Position of plan entry i in the file, and its byte size. */
uint64_t cr_st_writer_offset(const struct cr_st_writer *w, size_t i);
uint64_t cr_st_writer_nbytes(const struct cr_st_writer *w, size_t i);
/* The k-th entry in file order (for sequential writing). */
size_t cr_st_writer_order(const struct cr_st_writer *w, size_t k);
int cr_st_writer_write(struct cr_st_writer *w, size_t i, uint64_t off,
		       const void *buf, size_t len, cr_error *err);
int cr_st_writer_finish(struct cr_st_writer *w, cr_error *err);
/* Close and delete the file (on error or cancel). */
void cr_st_writer_abort(struct cr_st_writer *w);
/* The caller will write entry i again from the start (a speculative result
 * turned out wrong): its bytes no longer count as written. */
void cr_st_writer_rewrite(struct cr_st_writer *w, size_t i, uint64_t written_before);
uint64_t cr_st_writer_total(const struct cr_st_writer *w);

#endif
