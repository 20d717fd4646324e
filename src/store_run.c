/*
 * Runs in the session store: a run begins `running` with the recipe text it
 * executes and the identity of its process (pid, start time, host, boot), is
 * updated with progress, and ends done/failed/cancelled; one whose process
 * died is marked `interrupted` by the next cr_store_open (store.c).
 *
 * Output tensors arrive from the engine's callback, possibly on another
 * thread, so cr_store_run_tensor only appends to a locked buffer; the owning
 * thread writes the buffer in one transaction (flush, progress, finish; the
 * run recorder calls progress about once a second).
 * Callers: `crucible merge` (cmd_merge.c), the TUI's run screen, replay.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

static const char *const status_names[] = { "running", "done", "failed", "cancelled", "interrupted" };

const char *cr_run_status_name(enum cr_run_status s)
{
	return (unsigned)s < 5 ? status_names[s] : "?";
}

static enum cr_run_status status_parse(const char *s)
{
	for (int i = 0; i < 5; i++)
		if (s && strcmp(s, status_names[i]) == 0)
			return (enum cr_run_status)i;
	return CR_RUN_FAILED;
}

void cr_run_info_free(struct cr_run_info *r)
{
	if (!r)
		return;
	free(r->recipe);
	free(r->recipe_dir);
	free(r->output);
	free(r->error);
	memset(r, 0, sizeof *r);
}

void cr_run_list_free(struct cr_run_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_run_info_free(&v[i]);
	free(v);
}

void cr_run_tensors_free(struct cr_run_tensor *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].decision);
		free(v[i].source);
		free(v[i].checksum);
	}
	free(v);
}

void store_pending_free(struct cr_store *st)
{
	for (size_t i = 0; i < st->npending; i++) {
		free(st->pending[i].name);
		free(st->pending[i].decision);
		free(st->pending[i].source);
		free(st->pending[i].checksum);
	}
	free(st->pending);
	st->pending = NULL;
	st->npending = st->cappending = 0;
}

int cr_store_run_begin(struct cr_store *st, int64_t session, const char *recipe, const char *recipe_dir,
		       const char *output, int64_t *run, cr_error *err)
{
	static const char seq[] = "SELECT coalesce(max(seq), 0) FROM event WHERE session = ?1";
	static const char ins[] =
		"INSERT INTO run (session, event_seq, recipe, recipe_dir, output, status, pid, pid_start, host, boot_id, "
		"started_ms) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9, ?10)";
	char host[256], boot[64];
	long long start;
	char *out_abs = store_absolute(output);
	int64_t event_seq = 0;
	sqlite3_stmt *s;
	store_process_identity(host, sizeof host, boot, sizeof boot, &start);
	if (store_tx_begin(st, err) < 0)
		goto out;
	if (session) {
		if (!(s = store_stmt(st, seq, err)))
			goto fail;
		sqlite3_bind_int64(s, 1, session);
		if (sqlite3_step(s) == SQLITE_ROW)
			event_seq = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	if (!(s = store_stmt(st, ins, err)))
		goto fail;
	if (session)
		sqlite3_bind_int64(s, 1, session);
	sqlite3_bind_int64(s, 2, event_seq);
	store_bind_text(s, 3, recipe ? recipe : "");
	store_bind_text(s, 4, recipe_dir);
	store_bind_text(s, 5, out_abs);
	sqlite3_bind_int64(s, 6, (int64_t)getpid());
	if (start > 0)
		sqlite3_bind_int64(s, 7, start);
	store_bind_text(s, 8, host);
	store_bind_text(s, 9, boot[0] ? boot : NULL);
	sqlite3_bind_int64(s, 10, cr_store_now_ms());
	if (store_step_done(st, s, err, "record a run") < 0)
		goto fail;
	*run = sqlite3_last_insert_rowid(st->db);
	free(out_abs);
	return store_tx_commit(st, err);
fail:
	store_tx_rollback(st);
out:
	free(out_abs);
	return -1;
}

int cr_store_run_tensor(struct cr_store *st, int64_t run, const char *name, const char *decision,
			const char *source, const char *checksum, cr_error *err)
{
	pthread_mutex_lock(&st->lock);
	if (st->npending == st->cappending) {
		st->cappending = st->cappending ? 2 * st->cappending : 256;
		st->pending = cr_xrealloc(st->pending, st->cappending * sizeof st->pending[0]);
	}
	st->pending[st->npending++] = (struct pending_tensor){ run, cr_xstrdup(name), cr_xstrdup(decision ? decision : ""),
							       source ? cr_xstrdup(source) : NULL,
							       checksum ? cr_xstrdup(checksum) : NULL };
	pthread_mutex_unlock(&st->lock);
	return 0;
}

int cr_store_run_flush(struct cr_store *st, cr_error *err)
{
	static const char ins[] = "INSERT OR REPLACE INTO run_tensor (run, name, decision, source, checksum) "
				  "VALUES (?1, ?2, ?3, ?4, ?5)";
	struct cr_store batch = { 0 };
	pthread_mutex_lock(&st->lock);
	batch.pending = st->pending;
	batch.npending = st->npending;
	st->pending = NULL;
	st->npending = st->cappending = 0;
	pthread_mutex_unlock(&st->lock);
	if (batch.npending == 0)
		return 0;
	int rc = -1;
	if (store_tx_begin(st, err) < 0)
		goto out;
	for (size_t i = 0; i < batch.npending; i++) {
		struct pending_tensor *p = &batch.pending[i];
		sqlite3_stmt *s = store_stmt(st, ins, err);
		if (!s)
			goto fail;
		sqlite3_bind_int64(s, 1, p->run);
		store_bind_text(s, 2, p->name);
		store_bind_text(s, 3, p->decision);
		store_bind_text(s, 4, p->source);
		store_bind_text(s, 5, p->checksum);
		if (store_step_done(st, s, err, "record a run's tensor") < 0)
			goto fail;
	}
	rc = store_tx_commit(st, err);
	goto out;
fail:
	store_tx_rollback(st);
out:
	store_pending_free(&batch);
	return rc;
}

int cr_store_run_progress(struct cr_store *st, int64_t run, int64_t bytes, int64_t tensors, double seconds,
			  cr_error *err)
{
	static const char upd[] = "UPDATE run SET bytes = ?2, tensors = ?3, seconds = ?4 WHERE id = ?1";
	if (cr_store_run_flush(st, err) < 0)
		return -1;
	sqlite3_stmt *s = store_stmt(st, upd, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	sqlite3_bind_int64(s, 2, bytes);
	sqlite3_bind_int64(s, 3, tensors);
	sqlite3_bind_double(s, 4, seconds);
	return store_step_done(st, s, err, "record a run's progress");
}

int cr_store_run_finish(struct cr_store *st, int64_t run, enum cr_run_status status, int64_t bytes,
			int64_t tensors, double seconds, const char *error, cr_error *err)
{
	static const char upd[] = "UPDATE run SET status = ?2, bytes = ?3, tensors = ?4, seconds = ?5, error = ?6, "
				  "finished_ms = ?7 WHERE id = ?1";
	if (status == CR_RUN_RUNNING)
		return cr_fail(err, CR_E_USAGE, "a run cannot finish as 'running'");
	if (cr_store_run_flush(st, err) < 0)
		return -1;
	sqlite3_stmt *s = store_stmt(st, upd, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	store_bind_text(s, 2, cr_run_status_name(status));
	sqlite3_bind_int64(s, 3, bytes);
	sqlite3_bind_int64(s, 4, tensors);
	sqlite3_bind_double(s, 5, seconds);
	store_bind_text(s, 6, error);
	sqlite3_bind_int64(s, 7, cr_store_now_ms());
	if (store_step_done(st, s, err, "record the end of a run") < 0)
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return cr_fail(err, CR_E_NOTFOUND, "%s: no run %lld", st->path, (long long)run);
	return 0;
}

#define RUN_COLUMNS                                                                                              \
	"id, coalesce(session, 0), coalesce(event_seq, 0), recipe, recipe_dir, output, status, bytes, tensors, " \
	"seconds, error, coalesce(pid, 0), started_ms, coalesce(finished_ms, 0)"

static void run_row(sqlite3_stmt *s, struct cr_run_info *r)
{
	r->id = sqlite3_column_int64(s, 0);
	r->session = sqlite3_column_int64(s, 1);
	r->event_seq = sqlite3_column_int64(s, 2);
	r->recipe = store_col_strdup(s, 3);
	r->recipe_dir = store_col_strdup(s, 4);
	r->output = store_col_strdup(s, 5);
	r->status = status_parse((const char *)sqlite3_column_text(s, 6));
	r->bytes = sqlite3_column_int64(s, 7);
	r->tensors = sqlite3_column_int64(s, 8);
	r->seconds = sqlite3_column_double(s, 9);
	r->error = store_col_strdup(s, 10);
	r->pid = sqlite3_column_int64(s, 11);
	r->started_ms = sqlite3_column_int64(s, 12);
	r->finished_ms = sqlite3_column_int64(s, 13);
}

int cr_store_run_get(struct cr_store *st, int64_t run, struct cr_run_info *out, cr_error *err)
{
	static const char q[] = "SELECT " RUN_COLUMNS " FROM run WHERE id = ?1";
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		run_row(s, out);
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return cr_fail(err, CR_E_NOTFOUND, "%s: no run %lld", st->path, (long long)run);
	if (rc != SQLITE_ROW)
		return store_fail(st, err, "read a run");
	return 0;
}

int cr_store_runs(struct cr_store *st, int64_t session, struct cr_run_info **out, size_t *n, cr_error *err)
{
	static const char q[] = "SELECT " RUN_COLUMNS " FROM run WHERE session = ?1 ORDER BY id";
	struct cr_run_info *v = NULL;
	size_t nv = 0, cap = 0;
	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, session);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (nv == cap)
			v = cr_xrealloc(v, (cap = cap ? 2 * cap : 8) * sizeof *v);
		memset(&v[nv], 0, sizeof v[nv]);
		run_row(s, &v[nv++]);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		cr_run_list_free(v, nv);
		return store_fail(st, err, "list runs");
	}
	*out = v;
	*n = nv;
	return 0;
}

int cr_store_run_tensors(struct cr_store *st, int64_t run, struct cr_run_tensor **out, size_t *n, cr_error *err)
{
	static const char q[] = "SELECT name, decision, source, checksum FROM run_tensor WHERE run = ?1 ORDER BY name";
	struct cr_run_tensor *v = NULL;
	size_t nv = 0, cap = 0;
	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, run);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (nv == cap)
			v = cr_xrealloc(v, (cap = cap ? 2 * cap : 64) * sizeof *v);
		v[nv++] = (struct cr_run_tensor){ store_col_strdup(s, 0), store_col_strdup(s, 1), store_col_strdup(s, 2),
						  store_col_strdup(s, 3) };
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		cr_run_tensors_free(v, nv);
		return store_fail(st, err, "read a run's tensors");
	}
	*out = v;
	*n = nv;
	return 0;
}
