/*
 * The statistics cache in the session store.  A row holds one tensor's
 * statistics of a parent against the base, keyed by both files' identities
 * (path, size, mtime, header hash: see crucible/safetensors.h) and the
 * tensor's name, so a lookup of unchanged files needs no tensor data and a
 * changed file can never match.  Storing a row for a path whose identity
 * changed deletes the old identity's file row, and its statistics with it
 * (ON DELETE CASCADE), so stale rows do not pile up.
 * Callers: the statistics scan through its cache interface (stats.h), on
 * whichever thread runs the scan, with that thread's own store handle.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* The file row of an identity; created (replacing older identities of the path) when create is set.
 * *id = 0 when absent and not created. */
static int file_id(struct cr_store *st, const struct cr_file_identity *f, int create, int64_t *id, cr_error *err)
{
	static const char sel[] =
		"SELECT id FROM file WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND header_hash = ?4";
	static const char del[] = "DELETE FROM file WHERE path = ?1";
	static const char ins[] = "INSERT INTO file (path, size, mtime_ns, header_hash) VALUES (?1, ?2, ?3, ?4)";
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
	if (*id || !create)
		return 0;
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
	return 0;
}

int cr_store_stats_put(struct cr_store *st, const struct cr_file_identity *base, const struct cr_file_identity *parent,
		       const char *tensor, const struct cr_stats_row *r, cr_error *err)
{
	static const char ins[] =
		"INSERT OR REPLACE INTO tensor_stats (base_file, parent_file, tensor, norm_base, norm_delta, rel, cosine, "
		"max_abs, mean_abs, sign_agree, nan_count, inf_count, identical, hist) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
	int64_t bid, pid;
	if (store_tx_begin(st, err) < 0)
		return -1;
	if (file_id(st, base, 1, &bid, err) < 0 || file_id(st, parent, 1, &pid, err) < 0)
		goto fail;
	sqlite3_stmt *s = store_stmt(st, ins, err);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, bid);
	sqlite3_bind_int64(s, 2, pid);
	store_bind_text(s, 3, tensor);
	sqlite3_bind_double(s, 4, r->norm_base);
	sqlite3_bind_double(s, 5, r->norm_delta);
	sqlite3_bind_double(s, 6, r->rel);
	sqlite3_bind_double(s, 7, r->cosine);
	sqlite3_bind_double(s, 8, r->max_abs);
	sqlite3_bind_double(s, 9, r->mean_abs);
	sqlite3_bind_double(s, 10, r->sign_agree);
	sqlite3_bind_int64(s, 11, r->nan_count);
	sqlite3_bind_int64(s, 12, r->inf_count);
	sqlite3_bind_int(s, 13, r->identical);
	if (r->hist && r->hist_len)
		sqlite3_bind_blob(s, 14, r->hist, (int)r->hist_len, SQLITE_TRANSIENT);
	if (store_step_done(st, s, err, "store statistics") < 0)
		goto fail;
	return store_tx_commit(st, err);
fail:
	store_tx_rollback(st);
	return -1;
}

int cr_store_stats_get(struct cr_store *st, const struct cr_file_identity *base, const struct cr_file_identity *parent,
		       const char *tensor, struct cr_stats_row *r, cr_error *err)
{
	static const char q[] =
		"SELECT t.norm_base, t.norm_delta, t.rel, t.cosine, t.max_abs, t.mean_abs, t.sign_agree, t.nan_count, "
		"t.inf_count, t.identical, t.hist FROM tensor_stats t "
		"JOIN file b ON b.id = t.base_file JOIN file p ON p.id = t.parent_file "
		"WHERE b.path = ?1 AND b.size = ?2 AND b.mtime_ns = ?3 AND b.header_hash = ?4 "
		"AND p.path = ?5 AND p.size = ?6 AND p.mtime_ns = ?7 AND p.header_hash = ?8 AND t.tensor = ?9";
	memset(r, 0, sizeof *r);
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	store_bind_text(s, 1, base->path);
	sqlite3_bind_int64(s, 2, (int64_t)base->size);
	sqlite3_bind_int64(s, 3, base->mtime_ns);
	sqlite3_bind_int64(s, 4, (int64_t)base->header_hash);
	store_bind_text(s, 5, parent->path);
	sqlite3_bind_int64(s, 6, (int64_t)parent->size);
	sqlite3_bind_int64(s, 7, parent->mtime_ns);
	sqlite3_bind_int64(s, 8, (int64_t)parent->header_hash);
	store_bind_text(s, 9, tensor);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r->norm_base = sqlite3_column_double(s, 0);
		r->norm_delta = sqlite3_column_double(s, 1);
		r->rel = sqlite3_column_double(s, 2);
		r->cosine = sqlite3_column_double(s, 3);
		r->max_abs = sqlite3_column_double(s, 4);
		r->mean_abs = sqlite3_column_double(s, 5);
		r->sign_agree = sqlite3_column_double(s, 6);
		r->nan_count = sqlite3_column_int64(s, 7);
		r->inf_count = sqlite3_column_int64(s, 8);
		r->identical = sqlite3_column_int(s, 9);
		const void *blob = sqlite3_column_blob(s, 10);
		size_t len = (size_t)sqlite3_column_bytes(s, 10);
		if (blob && len) {
			if (len > st->hist_cap)
				st->hist = cr_xrealloc(st->hist, st->hist_cap = len);
			memcpy(st->hist, blob, len);
			r->hist = st->hist;
			r->hist_len = len;
		}
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(st, err, "read statistics");
}
