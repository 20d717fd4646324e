/*
 * The statistics cache in the session store.  A row holds the sums a scan
 * accumulated for one tensor of a parent against the base, keyed by the
 * identities of the files holding the bytes (weights, and FP8 scale files)
 * and the stats version, so a lookup of unchanged files needs no tensor data
 * and a changed file can never match.  Storing under a path whose identity
 * changed deletes the old identity's file row, and with it (ON DELETE
 * CASCADE, and explicitly for sign agreement) its rows, so stale rows do not
 * pile up.
 *
 * Lookups are per tensor and a DeepSeek-V3 pair has ~92k tensors, so file
 * ids are remembered per handle (an identity always maps to the same id: ids
 * are never reused), and a lookup is one primary-key probe.
 * Callers: the statistics scan through its cache interface (stats.h), on the
 * thread that runs the scan, with that thread's own store handle.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/safetensors.h"
#include "store_internal.h"

/* ------------------------------------------------------------ file ids */

static uint64_t identity_hash(const struct cr_file_identity *f)
{
	uint64_t h = cr_fnv1a(f->path, strlen(f->path), CR_FNV_INIT);
	h = cr_fnv1a(&f->size, sizeof f->size, h);
	h = cr_fnv1a(&f->mtime_ns, sizeof f->mtime_ns, h);
	return cr_fnv1a(&f->header_hash, sizeof f->header_hash, h);
}

static struct file_id_slot *fid_slot(struct cr_store *st, const struct cr_file_identity *f)
{
	if (!st->fid_cap)
		return NULL;
	size_t mask = st->fid_cap - 1;
	for (size_t i = identity_hash(f) & mask;; i = (i + 1) & mask) {
		struct file_id_slot *s = &st->fid[i];
		if (!s->path || (s->size == f->size && s->mtime == f->mtime_ns && s->hash == f->header_hash &&
				 strcmp(s->path, f->path) == 0))
			return s;
	}
}

static void fid_remember(struct cr_store *st, const struct cr_file_identity *f, int64_t id);

static void fid_grow(struct cr_store *st)
{
	struct file_id_slot *old = st->fid;
	size_t oldcap = st->fid_cap;
	st->fid_cap = oldcap ? 2 * oldcap : 1024;
	st->fid = cr_xcalloc(st->fid_cap, sizeof *st->fid);
	st->fid_n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].path) {
			struct cr_file_identity f = { old[i].path, old[i].size, old[i].mtime, old[i].hash };
			fid_remember(st, &f, old[i].id);
			free(old[i].path);
		}
	free(old);
}

static void fid_remember(struct cr_store *st, const struct cr_file_identity *f, int64_t id)
{
	if (2 * (st->fid_n + 1) > st->fid_cap)
		fid_grow(st);
	struct file_id_slot *s = fid_slot(st, f);
	if (!s->path) {
		*s = (struct file_id_slot){ cr_xstrdup(f->path), f->size, f->header_hash, f->mtime_ns, id };
		st->fid_n++;
	}
}

/* Forget everything: a path's identities changed under us. */
static void fid_forget_all(struct cr_store *st)
{
	for (size_t i = 0; i < st->fid_cap; i++)
		free(st->fid[i].path);
	free(st->fid);
	st->fid = NULL;
	st->fid_cap = st->fid_n = 0;
}

/* The file id of an identity.  create: add it, replacing (and dropping the
 * rows of) older identities of the same path.  *id = 0 when absent. */
static int file_id(struct cr_store *st, const struct cr_file_identity *f, int create, int64_t *id, cr_error *err)
{
	static const char sel[] =
		"SELECT id FROM file WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND header_hash = ?4";
	static const char old_ids[] = "SELECT id FROM file WHERE path = ?1";
	static const char del_agree[] = "DELETE FROM sign_agree WHERE instr(files, ',' || ?1 || ',') > 0";
	static const char del[] = "DELETE FROM file WHERE path = ?1";
	static const char ins[] = "INSERT INTO file (path, size, mtime_ns, header_hash) VALUES (?1, ?2, ?3, ?4)";
	*id = 0;
	if (!f)
		return 0;
	struct file_id_slot *slot = fid_slot(st, f);
	if (slot && slot->path) { /* may be stale if another process replaced it: puts retry */
		*id = slot->id;
		return 0;
	}
	sqlite3_stmt *s = store_stmt(st, sel, err);
	if (!s)
		return -1;
	store_bind_text(s, 1, f->path);
	sqlite3_bind_int64(s, 2, (int64_t)f->size);
	sqlite3_bind_int64(s, 3, f->mtime_ns);
	sqlite3_bind_int64(s, 4, (int64_t)f->header_hash);
	int rc = sqlite3_step(s);
	*id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(st, err, "look up a file identity");
	if (*id) {
		fid_remember(st, f, *id);
		return 0;
	}
	if (!create)
		return 0;
	/* A new identity for this path: the old ones' statistics are stale. */
	int64_t stale[16];
	size_t nstale = 0;
	if (!(s = store_stmt(st, old_ids, err)))
		return -1;
	store_bind_text(s, 1, f->path);
	while (sqlite3_step(s) == SQLITE_ROW && nstale < 16)
		stale[nstale++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	for (size_t i = 0; i < nstale; i++) {
		char key[32];
		snprintf(key, sizeof key, "%lld", (long long)stale[i]);
		if (!(s = store_stmt(st, del_agree, err)))
			return -1;
		store_bind_text(s, 1, key);
		if (store_step_done(st, s, err, "drop a changed file's sign agreement") < 0)
			return -1;
	}
	if (nstale)
		fid_forget_all(st);
	if (!(s = store_stmt(st, del, err)))
		return -1;
	store_bind_text(s, 1, f->path);
	if (store_step_done(st, s, err, "drop a changed file's statistics") < 0)
		return -1;
	if (!(s = store_stmt(st, ins, err)))
		return -1;
	store_bind_text(s, 1, f->path);
	sqlite3_bind_int64(s, 2, (int64_t)f->size);
	sqlite3_bind_int64(s, 3, f->mtime_ns);
	sqlite3_bind_int64(s, 4, (int64_t)f->header_hash);
	if (store_step_done(st, s, err, "record a file identity") < 0)
		return -1;
	*id = sqlite3_last_insert_rowid(st->db);
	fid_remember(st, f, *id);
	return 0;
}

/* Weights and scale ids of a source; 0 when a file is unknown (and not created). */
static int src_ids(struct cr_store *st, const struct cr_store_src *src, int create, int64_t ids[2], cr_error *err)
{
	if (file_id(st, src->weights, create, &ids[0], err) < 0 || file_id(st, src->scales, create, &ids[1], err) < 0)
		return -1;
	return 0;
}

static int src_known(const struct cr_store_src *src, const int64_t ids[2])
{
	return ids[0] && (!src->scales || ids[1]);
}

static void bind_id_or_null(sqlite3_stmt *s, int i, int64_t id)
{
	if (id)
		sqlite3_bind_int64(s, i, id);
	else
		sqlite3_bind_null(s, i);
}

/* ------------------------------------------------------------ per-pair sums */

static int stats_put_once(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
			  const struct cr_store_src *parent, const struct cr_store_sums *v, cr_error *err)
{
	static const char ins[] =
		"INSERT OR REPLACE INTO tensor_stats (tensor, base_file, parent_file, base_scale_file, parent_scale_file, "
		"version, identical, nelem, n, nan, inf, base_nan, base_inf, base_sq, sum_bb, sum_pp, sum_pb, sum_dd, "
		"sum_absd, max_absd, hist_width, hist) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
		"?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";
	int64_t b[2], p[2];
	if (v->nbins > CR_STORE_HIST_MAX)
		return cr_fail(err, CR_E_USAGE, "%s: statistics of '%s': %zu histogram bins, at most %d", st->path, tensor,
			       v->nbins, CR_STORE_HIST_MAX);
	if (store_tx_begin(st, err) < 0)
		return -1;
	if (src_ids(st, base, 1, b, err) < 0 || src_ids(st, parent, 1, p, err) < 0)
		goto fail;
	sqlite3_stmt *s = store_stmt(st, ins, err);
	if (!s)
		goto fail;
	store_bind_text(s, 1, tensor);
	sqlite3_bind_int64(s, 2, b[0]);
	sqlite3_bind_int64(s, 3, p[0]);
	bind_id_or_null(s, 4, b[1]);
	bind_id_or_null(s, 5, p[1]);
	sqlite3_bind_int(s, 6, version);
	sqlite3_bind_int(s, 7, v->identical);
	const uint64_t counts[] = { v->nelem, v->n, v->nan, v->inf, v->base_nan, v->base_inf };
	for (int i = 0; i < 6; i++)
		sqlite3_bind_int64(s, 8 + i, (int64_t)counts[i]);
	const double sums[] = { v->base_sq, v->sum_bb, v->sum_pp,   v->sum_pb,
				v->sum_dd,  v->sum_absd, v->max_absd, v->hist_width };
	for (int i = 0; i < 8; i++)
		sqlite3_bind_double(s, 14 + i, sums[i]);
	/* host byte order: the cache lives on the machine that computed it */
	sqlite3_bind_blob(s, 22, v->hist, (int)(v->nbins * sizeof v->hist[0]), SQLITE_TRANSIENT);
	if (store_step_done(st, s, err, "store statistics") < 0)
		goto fail;
	return store_tx_commit(st, err);
fail:
	store_tx_rollback(st);
	return -1;
}

/* A remembered file id is stale when another process replaced that file's
 * identity: the insert then breaks a foreign key.  Forget and try again. */
static int stale_ids(struct cr_store *st)
{
	if (st->last_step_rc != SQLITE_CONSTRAINT_FOREIGNKEY)
		return 0;
	fid_forget_all(st);
	return 1;
}

int cr_store_stats_put(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parent, const struct cr_store_sums *v, cr_error *err)
{
	int outer = st->txdepth > 0;
	st->last_step_rc = 0;
	int rc = stats_put_once(st, tensor, version, base, parent, v, err);
	/* Inside a caller's transaction the failure rolled it all back: only forget, the caller goes on. */
	if (rc < 0 && stale_ids(st) && !outer)
		rc = stats_put_once(st, tensor, version, base, parent, v, err);
	return rc;
}

static int same_id(sqlite3_stmt *s, int col, int64_t id)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return id == 0;
	return sqlite3_column_int64(s, col) == id;
}

int cr_store_stats_get(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parent, struct cr_store_sums *v, cr_error *err)
{
	static const char q[] =
		"SELECT base_scale_file, parent_scale_file, version, identical, nelem, n, nan, inf, base_nan, base_inf, "
		"base_sq, sum_bb, sum_pp, sum_pb, sum_dd, sum_absd, max_absd, hist_width, hist "
		"FROM tensor_stats WHERE tensor = ?1 AND base_file = ?2 AND parent_file = ?3";
	int64_t b[2], p[2];
	if (src_ids(st, base, 0, b, err) < 0 || src_ids(st, parent, 0, p, err) < 0)
		return -1;
	if (!src_known(base, b) || !src_known(parent, p))
		return 0;
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	store_bind_text(s, 1, tensor);
	sqlite3_bind_int64(s, 2, b[0]);
	sqlite3_bind_int64(s, 3, p[0]);
	int rc = sqlite3_step(s), found = 0;
	if (rc == SQLITE_ROW && same_id(s, 0, b[1]) && same_id(s, 1, p[1]) && sqlite3_column_int(s, 2) == version) {
		size_t len = (size_t)sqlite3_column_bytes(s, 18);
		const void *blob = sqlite3_column_blob(s, 18);
		if (len % sizeof v->hist[0] == 0 && len / sizeof v->hist[0] <= CR_STORE_HIST_MAX) {
			memset(v, 0, sizeof *v);
			v->identical = sqlite3_column_int(s, 3);
			uint64_t *counts[] = { &v->nelem, &v->n, &v->nan, &v->inf, &v->base_nan, &v->base_inf };
			for (int i = 0; i < 6; i++)
				*counts[i] = (uint64_t)sqlite3_column_int64(s, 4 + i);
			double *sums[] = { &v->base_sq, &v->sum_bb,   &v->sum_pp,	 &v->sum_pb,
					   &v->sum_dd,	&v->sum_absd, &v->max_absd, &v->hist_width };
			for (int i = 0; i < 8; i++)
				*sums[i] = sqlite3_column_double(s, 10 + i);
			v->nbins = len / sizeof v->hist[0];
			if (len)
				memcpy(v->hist, blob, len);
			found = 1;
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(st, err, "read statistics");
	return found;
}

/* ------------------------------------------------------------ sign agreement */

/* ",b,bs,p1,p1s,...," (0 for no scale file); NULL when a file is unknown and not created. */
static char *agree_key(struct cr_store *st, const struct cr_store_src *base, const struct cr_store_src *parents,
		       size_t nparents, int create, int *known, cr_error *err)
{
	size_t cap = 2 + 42 * (nparents + 1), len = 0;
	char *key = cr_xmalloc(cap);
	int64_t ids[2];
	*known = 1;
	key[len++] = ',';
	for (size_t i = 0; i <= nparents; i++) {
		const struct cr_store_src *src = i == 0 ? base : &parents[i - 1];
		if (src_ids(st, src, create, ids, err) < 0) {
			free(key);
			return NULL;
		}
		if (!src_known(src, ids))
			*known = 0;
		len += (size_t)snprintf(key + len, cap - len, "%lld,%lld,", (long long)ids[0], (long long)ids[1]);
	}
	return key;
}

int cr_store_agree_put(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parents, size_t nparents, uint64_t agree, uint64_t counted,
		       cr_error *err)
{
	static const char ins[] = "INSERT OR REPLACE INTO sign_agree (files, tensor, version, agree, counted) "
				  "VALUES (?1, ?2, ?3, ?4, ?5)";
	int known;
	if (store_tx_begin(st, err) < 0)
		return -1;
	char *key = agree_key(st, base, parents, nparents, 1, &known, err);
	if (!key)
		goto fail;
	sqlite3_stmt *s = store_stmt(st, ins, err);
	if (!s) {
		free(key);
		goto fail;
	}
	store_bind_text(s, 1, key);
	free(key);
	store_bind_text(s, 2, tensor);
	sqlite3_bind_int(s, 3, version);
	sqlite3_bind_int64(s, 4, (int64_t)agree);
	sqlite3_bind_int64(s, 5, (int64_t)counted);
	if (store_step_done(st, s, err, "store sign agreement") < 0)
		goto fail;
	return store_tx_commit(st, err);
fail:
	store_tx_rollback(st);
	return -1;
}

int cr_store_agree_get(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parents, size_t nparents, uint64_t *agree, uint64_t *counted,
		       cr_error *err)
{
	static const char q[] = "SELECT agree, counted FROM sign_agree WHERE files = ?1 AND tensor = ?2 AND version = ?3";
	int known;
	char *key = agree_key(st, base, parents, nparents, 0, &known, err);
	if (!key)
		return -1;
	if (!known) {
		free(key);
		return 0;
	}
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s) {
		free(key);
		return -1;
	}
	store_bind_text(s, 1, key);
	free(key);
	store_bind_text(s, 2, tensor);
	sqlite3_bind_int(s, 3, version);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*agree = (uint64_t)sqlite3_column_int64(s, 0);
		*counted = (uint64_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "read sign agreement");
}
