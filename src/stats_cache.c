/*
 * File-backed statistics cache (the interim implementation of struct
 * cr_stats_cache; the session store provides an SQLite one).
 *
 * Records are grouped by the folders of the files in their key (the base's
 * and the parents'), one file per group, named by a hash of the canonical
 * folder paths, so a scan loads only the records of its checkpoints.  A
 * record is looked up by its kind, tensor name and canonical file paths; it
 * hits only when every file's size, mtime_ns and header_hash still match,
 * and storing replaces it, so an edited file's records are overwritten as
 * they are recomputed.
 *
 * File format (host byte order; the header rejects a foreign one):
 *   "CRSTATS\0", u32 CR_STATS_VERSION, u32 0x01020304,
 *   then records: u32 length of the rest, u8 kind, u32 key length, key,
 *   u32 identity count, u64 identities, payload (pair: SUMS_WORDS u64;
 *   agreement: 2 u64).
 * A file that fails to parse is ignored from the bad record on; files are
 * replaced whole (temp file + rename), so readers never see a partial one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/safetensors.h"
#include "crucible/stats.h"

#define MAGIC "CRSTATS"
#define ENDIAN_MARK 0x01020304u
#define KIND_PAIR 1
#define KIND_AGREE 2
#define SUMS_WORDS (16 + CR_STATS_HIST_BINS)

struct rec {
	uint8_t kind;
	char *key;
	size_t keylen;
	size_t nid;
	uint64_t *id;
	uint64_t val[SUMS_WORDS];
};

struct cfile {
	uint64_t hash;
	char *path;
	int dirty;
	struct rec *recs;
	size_t nrec, cap;
	size_t *slot; /* open addressing: record index + 1, 0 empty */
	size_t nslot;
};

struct canon {
	char *given, *real;
};

struct fcache {
	char *dir;
	struct cfile *files;
	size_t nfiles;
	struct canon *canon;
	size_t ncanon, last;
};

static void sums_pack(const struct cr_stats_sums *s, uint64_t *w)
{
	size_t k = 0;
	double d[] = { s->base_sq, s->sum_bb, s->sum_pp, s->sum_pb, s->sum_dd, s->sum_absd, s->max_absd, s->hist_width };
	w[k++] = s->identical;
	w[k++] = s->has_hist;
	w[k++] = s->nelem;
	w[k++] = s->n;
	w[k++] = s->nan;
	w[k++] = s->inf;
	w[k++] = s->base_nan;
	w[k++] = s->base_inf;
	for (size_t i = 0; i < 8; i++, k++)
		memcpy(&w[k], &d[i], 8);
	for (size_t i = 0; i < CR_STATS_HIST_BINS; i++)
		w[k++] = s->hist[i];
}

static void sums_unpack(const uint64_t *w, struct cr_stats_sums *s)
{
	size_t k = 0;
	double d[8];
	memset(s, 0, sizeof *s);
	s->identical = w[k++] != 0;
	s->has_hist = w[k++] != 0;
	s->nelem = w[k++];
	s->n = w[k++];
	s->nan = w[k++];
	s->inf = w[k++];
	s->base_nan = w[k++];
	s->base_inf = w[k++];
	for (size_t i = 0; i < 8; i++, k++)
		memcpy(&d[i], &w[k], 8);
	s->base_sq = d[0];
	s->sum_bb = d[1];
	s->sum_pp = d[2];
	s->sum_pb = d[3];
	s->sum_dd = d[4];
	s->sum_absd = d[5];
	s->max_absd = d[6];
	s->hist_width = d[7];
	for (size_t i = 0; i < CR_STATS_HIST_BINS; i++)
		s->hist[i] = w[k++];
}

/* realpath, remembered per given path (keys are built for every tensor). */
static const char *canonical(struct fcache *fc, const char *path)
{
	if (fc->ncanon && strcmp(fc->canon[fc->last].given, path) == 0)
		return fc->canon[fc->last].real;
	for (size_t i = 0; i < fc->ncanon; i++)
		if (strcmp(fc->canon[i].given, path) == 0) {
			fc->last = i;
			return fc->canon[i].real;
		}
	char *r = realpath(path, NULL);
	fc->canon = cr_xrealloc(fc->canon, (fc->ncanon + 1) * sizeof *fc->canon);
	fc->canon[fc->ncanon].given = cr_xstrdup(path);
	fc->canon[fc->ncanon].real = r ? r : cr_xstrdup(path);
	fc->last = fc->ncanon;
	return fc->canon[fc->ncanon++].real;
}

/* Growable byte string. */
struct buf {
	char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = cr_xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s) + 1); /* keep the NUL as separator */
}

static void add_file_id(struct fcache *fc, const struct cr_st_file *f, struct buf *key, uint64_t *id, size_t *nid)
{
	if (!f) {
		buf_str(key, "");
		return;
	}
	buf_str(key, canonical(fc, f->path));
	id[(*nid)++] = f->file_size;
	id[(*nid)++] = (uint64_t)f->mtime_ns;
	id[(*nid)++] = f->header_hash;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? strndup(path, (size_t)(slash - path)) : cr_xstrdup(".");
}

/* Build the record key and identities; returns the group's file hash. */
static uint64_t make_key(struct fcache *fc, const struct cr_stats_key *k, uint8_t kind, struct buf *key,
			 uint64_t **id, size_t *nid)
{
	uint64_t h = CR_FNV_INIT;
	size_t nsrc = 1 + k->nparents;

	*id = cr_xcalloc(nsrc * 6, sizeof **id);
	*nid = 0;
	buf_add(key, &kind, 1);
	buf_str(key, k->tensor);
	for (size_t i = 0; i < nsrc; i++) {
		const struct cr_stats_src *s = i == 0 ? &k->base : &k->parents[i - 1];
		add_file_id(fc, s->weights, key, *id, nid);
		add_file_id(fc, s->scales, key, *id, nid);
		char *d = dir_of(canonical(fc, s->weights->path));
		h = cr_fnv1a(d, strlen(d) + 1, h);
		free(d);
	}
	return h;
}

static size_t rec_hash(const char *key, size_t n)
{
	return (size_t)cr_fnv1a(key, n, CR_FNV_INIT);
}

static void index_rebuild(struct cfile *f)
{
	free(f->slot);
	f->nslot = 16;
	while (f->nslot < f->nrec * 2 + 2)
		f->nslot *= 2;
	f->slot = cr_xcalloc(f->nslot, sizeof *f->slot);
	for (size_t i = 0; i < f->nrec; i++) {
		size_t h = rec_hash(f->recs[i].key, f->recs[i].keylen) & (f->nslot - 1);
		while (f->slot[h])
			h = (h + 1) & (f->nslot - 1);
		f->slot[h] = i + 1;
	}
}

static struct rec *rec_find(struct cfile *f, const char *key, size_t n)
{
	if (!f->nslot)
		return NULL;
	size_t h = rec_hash(key, n) & (f->nslot - 1);
	while (f->slot[h]) {
		struct rec *r = &f->recs[f->slot[h] - 1];
		if (r->keylen == n && memcmp(r->key, key, n) == 0)
			return r;
		h = (h + 1) & (f->nslot - 1);
	}
	return NULL;
}

static struct rec *rec_append(struct cfile *f)
{
	if (f->nrec == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 64;
		f->recs = cr_xrealloc(f->recs, f->cap * sizeof *f->recs);
	}
	struct rec *r = &f->recs[f->nrec++];
	memset(r, 0, sizeof *r);
	return r;
}

/* Read helpers over a loaded file image. */
struct rd {
	const uint8_t *p, *end;
};

static int rd_get(struct rd *r, void *out, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return -1;
	memcpy(out, r->p, n);
	r->p += n;
	return 0;
}

static void file_load(struct cfile *f)
{
	FILE *fp = fopen(f->path, "rb");
	if (!fp)
		return;
	struct buf img = { 0 };
	char tmp[65536];
	size_t got;
	while ((got = fread(tmp, 1, sizeof tmp, fp)) > 0)
		buf_add(&img, tmp, got);
	fclose(fp);
	struct rd r = { (const uint8_t *)img.p, (const uint8_t *)img.p + img.n };
	char magic[8];
	uint32_t ver, mark;
	if (!img.p || rd_get(&r, magic, 8) < 0 || memcmp(magic, MAGIC, 8) != 0 || rd_get(&r, &ver, 4) < 0 ||
	    ver != CR_STATS_VERSION || rd_get(&r, &mark, 4) < 0 || mark != ENDIAN_MARK) {
		free(img.p);
		return;
	}
	while (r.p < r.end) {
		uint32_t len, klen, nid;
		uint8_t kind;
		if (rd_get(&r, &len, 4) < 0 || (size_t)(r.end - r.p) < len)
			break;
		struct rd q = { r.p, r.p + len };
		r.p += len;
		if (rd_get(&q, &kind, 1) < 0 || (kind != KIND_PAIR && kind != KIND_AGREE) || rd_get(&q, &klen, 4) < 0 ||
		    (size_t)(q.end - q.p) < klen)
			break;
		const uint8_t *key = q.p;
		q.p += klen;
		if (rd_get(&q, &nid, 4) < 0 || nid > 6 * 4096 || (size_t)(q.end - q.p) < (size_t)nid * 8)
			break;
		size_t nval = kind == KIND_PAIR ? SUMS_WORDS : 2;
		if ((size_t)(q.end - q.p) != (size_t)nid * 8 + nval * 8)
			break;
		struct rec *rc = rec_append(f);
		rc->kind = kind;
		rc->keylen = klen;
		rc->key = cr_xmalloc(klen + 1);
		memcpy(rc->key, key, klen);
		rc->key[klen] = 0;
		rc->nid = nid;
		rc->id = cr_xcalloc(nid ? nid : 1, 8);
		rd_get(&q, rc->id, (size_t)nid * 8);
		rd_get(&q, rc->val, nval * 8);
	}
	free(img.p);
	index_rebuild(f);
}

static struct cfile *file_for(struct fcache *fc, uint64_t hash)
{
	for (size_t i = 0; i < fc->nfiles; i++)
		if (fc->files[i].hash == hash)
			return &fc->files[i];
	fc->files = cr_xrealloc(fc->files, (fc->nfiles + 1) * sizeof *fc->files);
	struct cfile *f = &fc->files[fc->nfiles++];
	memset(f, 0, sizeof *f);
	f->hash = hash;
	char name[64];
	snprintf(name, sizeof name, "/%016llx.bin", (unsigned long long)hash);
	f->path = cr_xmalloc(strlen(fc->dir) + sizeof name);
	strcpy(f->path, fc->dir);
	strcat(f->path, name);
	file_load(f);
	return f;
}

static int lookup(struct fcache *fc, const struct cr_stats_key *k, uint8_t kind, uint64_t *val, size_t nval)
{
	struct buf key = { 0 };
	uint64_t *id;
	size_t nid;
	struct cfile *f = file_for(fc, make_key(fc, k, kind, &key, &id, &nid));
	struct rec *r = rec_find(f, key.p, key.n);
	int hit = r && r->kind == kind && r->nid == nid && memcmp(r->id, id, nid * 8) == 0;
	if (hit)
		memcpy(val, r->val, nval * 8);
	free(key.p);
	free(id);
	return hit;
}

static void store(struct fcache *fc, const struct cr_stats_key *k, uint8_t kind, const uint64_t *val, size_t nval)
{
	struct buf key = { 0 };
	uint64_t *id;
	size_t nid;
	struct cfile *f = file_for(fc, make_key(fc, k, kind, &key, &id, &nid));
	struct rec *r = rec_find(f, key.p, key.n);
	if (!r) {
		r = rec_append(f);
		r->key = key.p;
		r->keylen = key.n;
		key.p = NULL;
		if (f->nrec * 2 + 2 > f->nslot)
			index_rebuild(f);
		else {
			size_t h = rec_hash(r->key, r->keylen) & (f->nslot - 1);
			while (f->slot[h])
				h = (h + 1) & (f->nslot - 1);
			f->slot[h] = f->nrec;
		}
	}
	free(r->id);
	r->kind = kind;
	r->id = id;
	r->nid = nid;
	memset(r->val, 0, sizeof r->val);
	memcpy(r->val, val, nval * 8);
	f->dirty = 1;
	free(key.p);
}

static int fc_get_pair(void *self, const struct cr_stats_key *k, struct cr_stats_sums *out, cr_error *err)
{
	uint64_t w[SUMS_WORDS];
	if (!lookup(self, k, KIND_PAIR, w, SUMS_WORDS))
		return 0;
	sums_unpack(w, out);
	return 1;
}

static int fc_put_pair(void *self, const struct cr_stats_key *k, const struct cr_stats_sums *v, cr_error *err)
{
	uint64_t w[SUMS_WORDS];
	sums_pack(v, w);
	store(self, k, KIND_PAIR, w, SUMS_WORDS);
	return 0;
}

static int fc_get_agree(void *self, const struct cr_stats_key *k, uint64_t *agree, uint64_t *counted, cr_error *err)
{
	uint64_t w[2];
	if (!lookup(self, k, KIND_AGREE, w, 2))
		return 0;
	*agree = w[0];
	*counted = w[1];
	return 1;
}

static int fc_put_agree(void *self, const struct cr_stats_key *k, uint64_t agree, uint64_t counted, cr_error *err)
{
	uint64_t w[2] = { agree, counted };
	store(self, k, KIND_AGREE, w, 2);
	return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int file_save(struct cfile *f, cr_error *err)
{
	struct buf b = { 0 };
	uint32_t ver = CR_STATS_VERSION, mark = ENDIAN_MARK;
	buf_add(&b, MAGIC, 8);
	buf_add(&b, &ver, 4);
	buf_add(&b, &mark, 4);
	for (size_t i = 0; i < f->nrec; i++) {
		const struct rec *r = &f->recs[i];
		size_t nval = r->kind == KIND_PAIR ? SUMS_WORDS : 2;
		uint32_t klen = (uint32_t)r->keylen, nid = (uint32_t)r->nid;
		uint32_t len = (uint32_t)(1 + 4 + r->keylen + 4 + r->nid * 8 + nval * 8);
		buf_add(&b, &len, 4);
		buf_add(&b, &r->kind, 1);
		buf_add(&b, &klen, 4);
		buf_add(&b, r->key, r->keylen);
		buf_add(&b, &nid, 4);
		buf_add(&b, r->id, r->nid * 8);
		buf_add(&b, r->val, nval * 8);
	}
	char *tmp = cr_xmalloc(strlen(f->path) + 32);
	sprintf(tmp, "%s.%ld.tmp", f->path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = 0;
	if (fd < 0 || write_all(fd, b.p, b.n) < 0 || close(fd) < 0 || rename(tmp, f->path) < 0) {
		rc = cr_fail(err, CR_E_IO, "%s: cannot write the statistics cache: %s", f->path, strerror(errno));
		unlink(tmp);
	} else {
		f->dirty = 0;
	}
	free(tmp);
	free(b.p);
	return rc;
}

static int fc_flush(void *self, cr_error *err)
{
	struct fcache *fc = self;
	int rc = 0;
	for (size_t i = 0; i < fc->nfiles; i++)
		if (fc->files[i].dirty && file_save(&fc->files[i], err) < 0)
			rc = -1;
	return rc;
}

static void fc_destroy(void *self)
{
	struct fcache *fc = self;
	if (!fc)
		return;
	for (size_t i = 0; i < fc->nfiles; i++) {
		struct cfile *f = &fc->files[i];
		for (size_t r = 0; r < f->nrec; r++) {
			free(f->recs[r].key);
			free(f->recs[r].id);
		}
		free(f->recs);
		free(f->slot);
		free(f->path);
	}
	free(fc->files);
	for (size_t i = 0; i < fc->ncanon; i++) {
		free(fc->canon[i].given);
		free(fc->canon[i].real);
	}
	free(fc->canon);
	free(fc->dir);
	free(fc);
}

static const struct cr_stats_cache_ops file_ops = {
	fc_get_pair, fc_put_pair, fc_get_agree, fc_put_agree, fc_flush, fc_destroy,
};

/* mkdir -p */
static int make_dirs(const char *path, cr_error *err)
{
	char *p = cr_xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == 0) {
			char c = *s;
			*s = 0;
			if (mkdir(p, 0755) < 0 && errno != EEXIST) {
				int e = errno;
				free(p);
				return cr_fail(err, CR_E_IO, "%s: cannot create the cache folder: %s", path, strerror(e));
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return 0;
}

int cr_stats_cache_file_open(const char *dir, struct cr_stats_cache *out, cr_error *err)
{
	char *d;
	if (dir) {
		d = cr_xstrdup(dir);
	} else {
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		const char *suffix = "/crucible/stats";
		if (xdg && *xdg == '/') {
			d = cr_xmalloc(strlen(xdg) + strlen(suffix) + 1);
			sprintf(d, "%s%s", xdg, suffix);
		} else if (home && *home) {
			d = cr_xmalloc(strlen(home) + strlen(suffix) + 16);
			sprintf(d, "%s/.cache%s", home, suffix);
		} else {
			return cr_fail(err, CR_E_USAGE, "no cache folder: neither XDG_CACHE_HOME nor HOME is set");
		}
	}
	if (make_dirs(d, err) < 0) {
		free(d);
		return -1;
	}
	struct fcache *fc = cr_xcalloc(1, sizeof *fc);
	fc->dir = d;
	out->ops = &file_ops;
	out->self = fc;
	return 0;
}

void cr_stats_cache_close(struct cr_stats_cache *c)
{
	if (c && c->ops && c->ops->destroy)
		c->ops->destroy(c->self);
	if (c)
		c->self = NULL;
}
