/*
 * safetensors reader and writer (see crucible/safetensors.h for the rules).
 *
 * The reader never trusts a number from the file before checking it against
 * the file's size, so a hostile header costs at most its own length in
 * memory.  The header is parsed by st_header.c (a strict JSON parser for its
 * one shape, with a nesting limit).
 * The writer builds its header with jansson.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crucible/safetensors.h"
#include "st_header.h"

uint64_t cr_fnv1a(const void *data, size_t n, uint64_t h)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t cr_st_tensor_nbytes(const struct cr_st_tensor *t)
{
	return t->end - t->begin;
}

void cr_st_close(struct cr_st_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->tensors);
	free(f->meta);
	free(f->strings);
	free(f->dims);
	free(f->path);
	free(f);
}

/* Read exactly len bytes at off; a short read means the file shrank. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len > 0) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -2;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
	const struct cr_st_tensor *x = *(struct cr_st_tensor *const *)a;
	const struct cr_st_tensor *y = *(struct cr_st_tensor *const *)b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/* Check that the tensors tile the data buffer exactly. */
static int check_layout(struct cr_st_file *f, uint64_t buffer_len, cr_error *err)
{
	struct cr_st_tensor **ord = cr_xmalloc((f->ntensors + 1) * sizeof *ord);
	uint64_t pos = 0;
	int rc = 0;

	for (size_t i = 0; i < f->ntensors; i++)
		ord[i] = &f->tensors[i];
	qsort(ord, f->ntensors, sizeof *ord, cmp_by_offset);
	for (size_t i = 0; i < f->ntensors && rc == 0; i++) {
		struct cr_st_tensor *t = ord[i];
		if (t->begin > pos)
			rc = cr_fail(err, CR_E_FORMAT, "%s: tensor '%.200s': hole of %llu bytes before its data", f->path,
				     t->name, (unsigned long long)(t->begin - pos));
		else if (t->begin < pos)
			rc = cr_fail(err, CR_E_FORMAT, "%s: tensor '%.200s': data overlaps the previous tensor", f->path,
				     t->name);
		else if (t->end > buffer_len)
			rc = cr_fail(err, CR_E_FORMAT,
				     "%s: tensor '%.200s': data runs past the end of the file (%llu > %llu bytes)",
				     f->path, t->name, (unsigned long long)t->end, (unsigned long long)buffer_len);
		pos = t->end;
	}
	if (rc == 0 && pos != buffer_len)
		rc = cr_fail(err, CR_E_FORMAT, "%s: %llu bytes after the last tensor are not covered by the header",
			     f->path, (unsigned long long)(buffer_len - pos));
	free(ord);
	return rc;
}

int cr_st_open(const char *path, struct cr_st_file **out, cr_error *err)
{
	struct cr_st_file *f = cr_xcalloc(1, sizeof *f);
	unsigned char lenbuf[8];
	struct stat st;
	char *hdr = NULL;
	int rc = -1;

	*out = NULL;
	f->path = cr_xstrdup(path);
	/* O_NONBLOCK: a FIFO or device must not block the open (refused just below) */
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (f->fd < 0) {
		cr_fail(err, CR_E_IO, "%s: cannot open: %s", path, strerror(errno));
		goto done;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cr_fail(err, CR_E_IO, "%s: not a regular file", path);
		goto done;
	}
	f->file_size = (uint64_t)st.st_size;
	f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (f->file_size < 8) {
		cr_fail(err, CR_E_FORMAT, "%s: file is %llu bytes, shorter than the 8-byte header length", path,
			(unsigned long long)f->file_size);
		goto done;
	}
	if (pread_full(f->fd, lenbuf, 8, 0) < 0) {
		cr_fail(err, CR_E_IO, "%s: cannot read: %s", path, strerror(errno));
		goto done;
	}
	for (int i = 7; i >= 0; i--)
		f->header_len = (f->header_len << 8) | lenbuf[i];
	if (f->header_len > CR_ST_MAX_HEADER) {
		cr_fail(err, CR_E_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes", path,
			(unsigned long long)f->header_len, CR_ST_MAX_HEADER);
		goto done;
	}
	if (f->header_len > f->file_size - 8) {
		cr_fail(err, CR_E_FORMAT, "%s: header length %llu runs past the end of the %llu-byte file", path,
			(unsigned long long)f->header_len, (unsigned long long)f->file_size);
		goto done;
	}
	f->data_start = 8 + f->header_len;
	hdr = cr_xmalloc(f->header_len + 1);
	if (pread_full(f->fd, hdr, f->header_len, 8) < 0) {
		cr_fail(err, CR_E_IO, "%s: cannot read the header: %s", path, strerror(errno));
		goto done;
	}
	hdr[f->header_len] = '\0';
	f->header_hash = cr_fnv1a(hdr, f->header_len, CR_FNV_INIT);
	if (cr_st_header_parse(path, hdr, f->header_len, f, err) < 0)
		goto done;
	if (check_layout(f, f->file_size - f->data_start, err) < 0)
		goto done;
	rc = 0;
done:
	free(hdr);
	if (rc == 0)
		*out = f;
	else
		cr_st_close(f);
	return rc;
}

const struct cr_st_tensor *cr_st_find(const struct cr_st_file *f, const char *name)
{
	for (size_t i = 0; i < f->ntensors; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

const char *cr_st_meta_get(const struct cr_st_file *f, const char *key)
{
	for (size_t i = 0; i < f->nmeta; i++)
		if (strcmp(f->meta[i].key, key) == 0)
			return f->meta[i].value;
	return NULL;
}

int cr_st_pread(const struct cr_st_file *f, const struct cr_st_tensor *t, uint64_t off, void *buf, size_t len,
		cr_error *err)
{
	if (off > t->end - t->begin || len > t->end - t->begin - off)
		return cr_fail(err, CR_E_USAGE, "%s: tensor '%s': read of %zu bytes at %llu is outside the tensor",
			       f->path, t->name, len, (unsigned long long)off);
	int r = pread_full(f->fd, buf, len, f->data_start + t->begin + off);
	if (r == -2)
		return cr_fail(err, CR_E_IO, "%s: tensor '%s': file is shorter than its header says (changed on disk?)",
			       f->path, t->name);
	if (r < 0)
		return cr_fail(err, CR_E_IO, "%s: tensor '%s': read failed: %s", f->path, t->name, strerror(errno));
	return 0;
}

/* ---- writer ---- */

struct cr_st_writer {
	char *path;
	int fd;
	size_t n;
	struct cr_st_entry *plan;
	size_t *order;	    /* file order -> plan index */
	uint64_t *offset;   /* absolute file offset per plan entry */
	uint64_t *nbytes;   /* per plan entry */
	uint64_t total;	    /* data bytes */
	uint64_t written;   /* bytes written so far (all threads) */
};

static int cmp_official(const void *a, const void *b, void *plan)
{
	const struct cr_st_entry *x = &((const struct cr_st_entry *)plan)[*(const size_t *)a];
	const struct cr_st_entry *y = &((const struct cr_st_entry *)plan)[*(const size_t *)b];
	if (x->dtype != y->dtype)
		return x->dtype > y->dtype ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void writer_free(struct cr_st_writer *w)
{
	free(w->path);
	free(w->plan);
	free(w->order);
	free(w->offset);
	free(w->nbytes);
	free(w);
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t r = pwrite(fd, p, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int cr_st_writer_open(const char *path, const struct cr_st_entry *plan, size_t n, const struct cr_st_meta *meta,
		      size_t nmeta, struct cr_st_writer **out, cr_error *err)
{
	struct cr_st_writer *w = cr_xcalloc(1, sizeof *w);
	json_t *root = json_object(), *jm = json_object();
	char *text = NULL;
	int rc = -1;

	*out = NULL;
	w->path = cr_xstrdup(path);
	w->fd = -1;
	w->n = n;
	w->plan = cr_xcalloc(n + 1, sizeof *w->plan);
	memcpy(w->plan, plan, n * sizeof *plan);
	w->order = cr_xcalloc(n + 1, sizeof *w->order);
	w->offset = cr_xcalloc(n + 1, sizeof *w->offset);
	w->nbytes = cr_xcalloc(n + 1, sizeof *w->nbytes);
	for (size_t i = 0; i < n; i++)
		w->order[i] = i;
	qsort_r(w->order, n, sizeof *w->order, cmp_official, w->plan);

	json_object_set_new(jm, "format", json_string("pt"));
	for (size_t i = 0; i < nmeta; i++)
		if (strcmp(meta[i].key, "format") != 0)
			json_object_set_new(jm, meta[i].key, json_string(meta[i].value));
	json_object_set_new(root, "__metadata__", jm);
	uint64_t pos = 0;
	for (size_t k = 0; k < n; k++) {
		size_t i = w->order[k];
		const struct cr_st_entry *e = &w->plan[i];
		uint64_t nelem = 1;
		int ok = 1;
		json_t *shape = json_array(), *t = json_object(), *offs = json_array();
		for (int d = 0; d < e->ndim; d++) {
			nelem *= e->shape[d];
			json_array_append_new(shape, json_integer((json_int_t)e->shape[d]));
		}
		w->nbytes[i] = cr_dtype_nbytes(e->dtype, nelem, &ok);
		json_array_append_new(offs, json_integer((json_int_t)pos));
		json_array_append_new(offs, json_integer((json_int_t)(pos + w->nbytes[i])));
		json_object_set_new(t, "dtype", json_string(cr_dtype_name(e->dtype)));
		json_object_set_new(t, "shape", shape);
		json_object_set_new(t, "data_offsets", offs);
		if (json_object_get(root, e->name)) {
			json_decref(t);
			cr_fail(err, CR_E_USAGE, "%s: tensor '%s' planned twice", path, e->name);
			goto done;
		}
		json_object_set_new(root, e->name, t);
		w->offset[i] = pos;
		pos += w->nbytes[i];
	}
	w->total = pos;
	text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
	char *hdr = cr_xmalloc(8 + padded);
	for (int b = 0; b < 8; b++)
		hdr[b] = (char)(((uint64_t)padded >> (8 * b)) & 0xff);
	memcpy(hdr + 8, text, len);
	memset(hdr + 8 + len, ' ', padded - len);
	for (size_t i = 0; i < n; i++)
		w->offset[i] += 8 + padded;
	/* A fresh file, never through what is there: a symbolic link or a hard
	 * link at path must not let the writer touch a file elsewhere. */
	if (unlink(path) < 0 && errno != ENOENT) {
		free(hdr);
		cr_fail(err, CR_E_IO, "%s: cannot replace: %s", path, strerror(errno));
		goto done;
	}
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		free(hdr);
		cr_fail(err, CR_E_IO, "%s: cannot create: %s", path, strerror(errno));
		goto done;
	}
	if (write_full(w->fd, hdr, 8 + padded, 0) < 0) {
		free(hdr);
		cr_fail(err, CR_E_IO, "%s: cannot write the header: %s", path, strerror(errno));
		goto done;
	}
	free(hdr);
	rc = 0;
done:
	free(text);
	json_decref(root);
	if (rc == 0) {
		*out = w;
	} else {
		if (w->fd >= 0) {
			close(w->fd);
			unlink(path);
		}
		writer_free(w);
	}
	return rc;
}

uint64_t cr_st_writer_offset(const struct cr_st_writer *w, size_t i)
{
	return w->offset[i];
}

uint64_t cr_st_writer_nbytes(const struct cr_st_writer *w, size_t i)
{
	return w->nbytes[i];
}

size_t cr_st_writer_order(const struct cr_st_writer *w, size_t k)
{
	return w->order[k];
}

uint64_t cr_st_writer_total(const struct cr_st_writer *w)
{
	return w->total;
}

int cr_st_writer_write(struct cr_st_writer *w, size_t i, uint64_t off, const void *buf, size_t len, cr_error *err)
{
	if (i >= w->n || off > w->nbytes[i] || len > w->nbytes[i] - off)
		return cr_fail(err, CR_E_USAGE, "%s: write outside tensor '%s'", w->path,
			       i < w->n ? w->plan[i].name : "?");
	if (write_full(w->fd, buf, len, w->offset[i] + off) < 0)
		return cr_fail(err, CR_E_IO, "%s: tensor '%s': write failed: %s", w->path, w->plan[i].name,
			       strerror(errno));
	__atomic_add_fetch(&w->written, len, __ATOMIC_RELAXED);
	return 0;
}

int cr_st_writer_finish(struct cr_st_writer *w, cr_error *err)
{
	int rc = 0;
	if (w->written != w->total)
		rc = cr_fail(err, CR_E_USAGE, "%s: %llu of %llu data bytes were written", w->path,
			     (unsigned long long)w->written, (unsigned long long)w->total);
	else if (fsync(w->fd) < 0)
		rc = cr_fail(err, CR_E_IO, "%s: fsync failed: %s", w->path, strerror(errno));
	if (close(w->fd) < 0 && rc == 0)
		rc = cr_fail(err, CR_E_IO, "%s: close failed: %s", w->path, strerror(errno));
	w->fd = -1;
	if (rc < 0)
		unlink(w->path);
	writer_free(w);
	return rc;
}

void cr_st_writer_rewrite(struct cr_st_writer *w, size_t i, uint64_t written_before)
{
	if (i < w->n && written_before <= w->nbytes[i])
		__atomic_sub_fetch(&w->written, written_before, __ATOMIC_RELAXED);
}

void cr_st_writer_abort(struct cr_st_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	unlink(w->path);
	writer_free(w);
}
