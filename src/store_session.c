/*
 * Checkpoints, sessions and their event log (see crucible/store.h for the
 * model of events, undo and redo).
 *
 * Invariants: an event's seq is one more than the session's largest, taken
 * inside a BEGIN IMMEDIATE transaction; every event's new_value is the value
 * of its (scope, model, key) after it, so the latest one is the current value
 * and replay applies new_value in seq order.  Values are canonical
 * (cr_state_canonical) before they are stored.
 * Callers: the TUI (through its own handle per thread), `crucible sessions`,
 * `crucible merge` (which records the recipe it ran as a session).
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crucible/checkpoint.h"
#include "crucible/state.h"
#include "store_internal.h"

/* ------------------------------------------------------------ checkpoints */

char *store_absolute(const char *path)
{
	char *r = realpath(path, NULL);
	if (r)
		return r;
	if (path[0] == '/')
		return cr_xstrdup(path);
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return cr_xstrdup(path);
	char *p = cr_xmalloc(strlen(cwd) + strlen(path) + 2);
	sprintf(p, "%s/%s", cwd, path);
	return p;
}

int cr_store_checkpoint_id(struct cr_store *st, const char *path, int64_t *id, cr_error *err)
{
	static const char ins[] = "INSERT INTO checkpoint (path, seen_ms) VALUES (?1, ?2) ON CONFLICT (path) DO NOTHING";
	static const char sel[] = "SELECT id FROM checkpoint WHERE path = ?1";
	char *abs = store_absolute(path);
	int rc = -1;
	sqlite3_stmt *s;
	if (store_tx_begin(st, err) < 0)
		goto out;
	if (!(s = store_stmt(st, ins, err)))
		goto fail;
	store_bind_text(s, 1, abs);
	sqlite3_bind_int64(s, 2, cr_store_now_ms());
	if (store_step_done(st, s, err, "add a checkpoint") < 0)
		goto fail;
	if (!(s = store_stmt(st, sel, err)))
		goto fail;
	store_bind_text(s, 1, abs);
	if (sqlite3_step(s) != SQLITE_ROW) {
		store_fail(st, err, "find a checkpoint");
		sqlite3_reset(s);
		goto fail;
	}
	*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	rc = store_tx_commit(st, err);
	goto out;
fail:
	store_tx_rollback(st);
out:
	free(abs);
	return rc;
}

int cr_store_checkpoint_put(struct cr_store *st, const struct cr_ckpt *c, int64_t *id, cr_error *err)
{
	static const char upd[] =
		"UPDATE checkpoint SET size = ?2, mtime_ns = ?3, header_hash = ?4, arch = ?5, model_type = ?6, "
		"tensors = ?7, shards = ?8, layers = ?9, experts = ?10, seen_ms = ?11 WHERE id = ?1";
	uint64_t size = 0, hash = CR_FNV_INIT;
	int64_t mtime = 0;
	for (size_t i = 0; i < c->nshards; i++) {
		size += c->shards[i]->file_size;
		if (c->shards[i]->mtime_ns > mtime)
			mtime = c->shards[i]->mtime_ns;
		hash = cr_fnv1a(&c->shards[i]->header_hash, sizeof c->shards[i]->header_hash, hash);
	}
	int64_t cid;
	if (store_tx_begin(st, err) < 0)
		return -1;
	if (cr_store_checkpoint_id(st, c->path, &cid, err) < 0)
		goto fail;
	sqlite3_stmt *s = store_stmt(st, upd, err);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, cid);
	sqlite3_bind_int64(s, 2, (int64_t)size);
	sqlite3_bind_int64(s, 3, mtime);
	sqlite3_bind_int64(s, 4, (int64_t)hash);
	store_bind_text(s, 5, c->arch);
	store_bind_text(s, 6, c->model_type);
	sqlite3_bind_int64(s, 7, (int64_t)c->ntensors);
	sqlite3_bind_int64(s, 8, (int64_t)c->nshards);
	sqlite3_bind_int(s, 9, c->num_layers);
	sqlite3_bind_int(s, 10, c->num_experts);
	sqlite3_bind_int64(s, 11, cr_store_now_ms());
	if (store_step_done(st, s, err, "record a checkpoint") < 0)
		goto fail;
	if (id)
		*id = cid;
	return store_tx_commit(st, err);
fail:
	store_tx_rollback(st);
	return -1;
}

/* ------------------------------------------------------------ sessions */

void cr_session_info_free(struct cr_session_info *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->notes);
	free(s->base);
	for (size_t i = 0; i < s->nparents; i++)
		free(s->parents[i]);
	free(s->parents);
	free(s->last_status);
	memset(s, 0, sizeof *s);
}

void cr_session_list_free(struct cr_session_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_session_info_free(&v[i]);
	free(v);
}

int cr_store_session_create(struct cr_store *st, const char *name, const char *base, const char *const *parents,
			    size_t nparents, const char *notes, int64_t *id, cr_error *err)
{
	static const char ins[] = "INSERT INTO session (name, created_ms, base, notes) VALUES (?1, ?2, ?3, ?4)";
	static const char par[] = "INSERT INTO session_parent (session, idx, checkpoint) VALUES (?1, ?2, ?3)";
	int64_t base_id = 0, sid;
	char defname[64];
	if (!name || !*name) {
		time_t now = (time_t)(cr_store_now_ms() / 1000);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(defname, sizeof defname, "session %Y-%m-%d %H:%M:%S", &tm);
		name = defname;
	}
	if (store_tx_begin(st, err) < 0)
		return -1;
	if (base && cr_store_checkpoint_id(st, base, &base_id, err) < 0)
		goto fail;
	sqlite3_stmt *s = store_stmt(st, ins, err);
	if (!s)
		goto fail;
	store_bind_text(s, 1, name);
	sqlite3_bind_int64(s, 2, cr_store_now_ms());
	if (base)
		sqlite3_bind_int64(s, 3, base_id);
	store_bind_text(s, 4, notes);
	if (store_step_done(st, s, err, "create a session") < 0)
		goto fail;
	sid = sqlite3_last_insert_rowid(st->db);
	for (size_t i = 0; i < nparents; i++) {
		int64_t pid;
		if (cr_store_checkpoint_id(st, parents[i], &pid, err) < 0)
			goto fail;
		if (!(s = store_stmt(st, par, err)))
			goto fail;
		sqlite3_bind_int64(s, 1, sid);
		sqlite3_bind_int64(s, 2, (int64_t)i);
		sqlite3_bind_int64(s, 3, pid);
		if (store_step_done(st, s, err, "add a session parent") < 0)
			goto fail;
	}
	if (store_tx_commit(st, err) < 0)
		return -1;
	*id = sid;
	return 0;
fail:
	store_tx_rollback(st);
	return -1;
}

int cr_store_session_find(struct cr_store *st, const char *id_or_name, int64_t *id, cr_error *err)
{
	static const char by_id[] = "SELECT id FROM session WHERE id = ?1";
	static const char by_name[] = "SELECT id FROM session WHERE name = ?1 ORDER BY id";
	char *end;
	long long n = strtoll(id_or_name, &end, 10);
	sqlite3_stmt *s;
	if (*id_or_name && !*end) {
		if (!(s = store_stmt(st, by_id, err)))
			return -1;
		sqlite3_bind_int64(s, 1, n);
		int rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc == SQLITE_ROW) {
			*id = n;
			return 0;
		}
		if (rc != SQLITE_DONE)
			return store_fail(st, err, "find a session");
	}
	if (!(s = store_stmt(st, by_name, err)))
		return -1;
	store_bind_text(s, 1, id_or_name);
	int found = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (found++ == 0)
			*id = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_fail(st, err, "find a session");
	if (found == 1)
		return 0;
	if (found > 1)
		return cr_fail(err, CR_E_USAGE, "%s: %d sessions are named '%s': give the id", st->path, found, id_or_name);
	return cr_fail(err, CR_E_NOTFOUND, "%s: no session '%s'", st->path, id_or_name);
}

int cr_store_session_get(struct cr_store *st, int64_t id, struct cr_session_info *out, cr_error *err)
{
	static const char q[] = "SELECT s.name, s.created_ms, s.notes, s.forked_from, c.path FROM session s "
				"LEFT JOIN checkpoint c ON c.id = s.base WHERE s.id = ?1";
	static const char qp[] = "SELECT c.path FROM session_parent p JOIN checkpoint c ON c.id = p.checkpoint "
				 "WHERE p.session = ?1 ORDER BY p.idx";
	static const char qc[] = "SELECT (SELECT count(*) FROM event WHERE session = ?1), "
				 "(SELECT count(*) FROM run WHERE session = ?1), "
				 "(SELECT status FROM run WHERE session = ?1 ORDER BY id DESC LIMIT 1), "
				 "(SELECT started_ms FROM run WHERE session = ?1 ORDER BY id DESC LIMIT 1)";
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			return cr_fail(err, CR_E_NOTFOUND, "%s: no session %lld", st->path, (long long)id);
		return store_fail(st, err, "read a session");
	}
	out->id = id;
	out->name = store_col_strdup(s, 0);
	out->created_ms = sqlite3_column_int64(s, 1);
	out->notes = store_col_strdup(s, 2);
	out->forked_from = sqlite3_column_int64(s, 3);
	out->base = store_col_strdup(s, 4);
	sqlite3_reset(s);
	if (!(s = store_stmt(st, qp, err)))
		goto fail;
	sqlite3_bind_int64(s, 1, id);
	size_t cap = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (out->nparents == cap)
			out->parents = cr_xrealloc(out->parents, (cap = cap ? 2 * cap : 4) * sizeof(char *));
		out->parents[out->nparents++] = store_col_strdup(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_fail(st, err, "read a session's parents");
		goto fail;
	}
	if (!(s = store_stmt(st, qc, err)))
		goto fail;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		store_fail(st, err, "count a session's events");
		goto fail;
	}
	out->nevents = sqlite3_column_int64(s, 0);
	out->nruns = sqlite3_column_int(s, 1);
	out->last_status = store_col_strdup(s, 2);
	out->last_run_ms = sqlite3_column_int64(s, 3);
	sqlite3_reset(s);
	return 0;
fail:
	cr_session_info_free(out);
	return -1;
}

int cr_store_session_list(struct cr_store *st, struct cr_session_info **out, size_t *n, cr_error *err)
{
	static const char q[] = "SELECT id FROM session ORDER BY created_ms DESC, id DESC";
	int64_t *ids = NULL;
	size_t nids = 0, cap = 0;
	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (nids == cap)
			ids = cr_xrealloc(ids, (cap = cap ? 2 * cap : 16) * sizeof *ids);
		ids[nids++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		free(ids);
		return store_fail(st, err, "list sessions");
	}
	struct cr_session_info *v = cr_xcalloc(nids ? nids : 1, sizeof *v);
	for (size_t i = 0; i < nids; i++)
		if (cr_store_session_get(st, ids[i], &v[i], err) < 0) {
			cr_session_list_free(v, i);
			free(ids);
			return -1;
		}
	free(ids);
	*out = v;
	*n = nids;
	return 0;
}

static int update_one(struct cr_store *st, const char *sql, int64_t id, const char *text, cr_error *err,
		      const char *what)
{
	sqlite3_stmt *s = store_stmt(st, sql, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	store_bind_text(s, 2, text);
	if (store_step_done(st, s, err, what) < 0)
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return cr_fail(err, CR_E_NOTFOUND, "%s: no session %lld", st->path, (long long)id);
	return 0;
}

int cr_store_session_rename(struct cr_store *st, int64_t id, const char *name, cr_error *err)
{
	static const char sql[] = "UPDATE session SET name = ?2 WHERE id = ?1";
	if (!name || !*name)
		return cr_fail(err, CR_E_USAGE, "a session name cannot be empty");
	return update_one(st, sql, id, name, err, "rename a session");
}

int cr_store_session_set_notes(struct cr_store *st, int64_t id, const char *notes, cr_error *err)
{
	static const char sql[] = "UPDATE session SET notes = ?2 WHERE id = ?1";
	return update_one(st, sql, id, notes, err, "set a session's notes");
}

int cr_store_session_delete(struct cr_store *st, int64_t id, cr_error *err)
{
	static const char sql[] = "DELETE FROM session WHERE id = ?1";
	return update_one(st, sql, id, NULL, err, "delete a session");
}

/* ------------------------------------------------------------ events */

const char *cr_event_kind_name(enum cr_event_kind k)
{
	static const char *const names[] = { "set", "undo", "redo" };
	return (unsigned)k < 3 ? names[k] : "?";
}

static enum cr_event_kind kind_parse(const char *s)
{
	if (s && strcmp(s, "undo") == 0)
		return CR_EV_UNDO;
	if (s && strcmp(s, "redo") == 0)
		return CR_EV_REDO;
	return CR_EV_SET;
}

void cr_events_free(struct cr_event *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].scope);
		free(v[i].key);
		free(v[i].old_value);
		free(v[i].new_value);
	}
	free(v);
}

static int session_models(struct cr_store *st, int64_t session, int *nmodels, cr_error *err)
{
	static const char q[] = "SELECT (SELECT count(*) FROM session WHERE id = ?1), "
				"(SELECT count(*) FROM session_parent WHERE session = ?1)";
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, session);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return store_fail(st, err, "read a session");
	}
	int exists = sqlite3_column_int(s, 0);
	*nmodels = sqlite3_column_int(s, 1);
	sqlite3_reset(s);
	if (!exists)
		return cr_fail(err, CR_E_NOTFOUND, "%s: no session %lld", st->path, (long long)session);
	return 0;
}

static int next_seq(struct cr_store *st, int64_t session, int64_t *seq, cr_error *err)
{
	static const char q[] = "SELECT coalesce(max(seq), 0) + 1 FROM event WHERE session = ?1";
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, session);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return store_fail(st, err, "number an event");
	}
	*seq = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

/* Current value of an assignment (malloc'd, NULL when unset): the newest event's new_value. */
static int current_value(struct cr_store *st, int64_t session, const char *scope, int model, const char *key,
			 char **value, cr_error *err)
{
	static const char q[] = "SELECT new_value FROM event WHERE session = ?1 AND scope = ?2 AND model = ?3 "
				"AND key = ?4 ORDER BY seq DESC LIMIT 1";
	*value = NULL;
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, session);
	store_bind_text(s, 2, scope);
	sqlite3_bind_int(s, 3, model);
	store_bind_text(s, 4, key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*value = store_col_strdup(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(st, err, "read a parameter's value");
	return 0;
}

static int insert_event(struct cr_store *st, int64_t session, int64_t seq, enum cr_event_kind kind, int64_t batch,
			int64_t target, const char *scope, int model, const char *key, const char *old,
			const char *new_value, cr_error *err)
{
	static const char ins[] = "INSERT INTO event (session, seq, time_ms, kind, batch, target, scope, model, key, "
				  "old_value, new_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
	sqlite3_stmt *s = store_stmt(st, ins, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, session);
	sqlite3_bind_int64(s, 2, seq);
	sqlite3_bind_int64(s, 3, cr_store_now_ms());
	store_bind_text(s, 4, cr_event_kind_name(kind));
	sqlite3_bind_int64(s, 5, batch);
	if (target)
		sqlite3_bind_int64(s, 6, target);
	store_bind_text(s, 7, scope);
	sqlite3_bind_int(s, 8, model);
	store_bind_text(s, 9, key);
	store_bind_text(s, 10, old);
	store_bind_text(s, 11, new_value);
	return store_step_done(st, s, err, "record an event");
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The batch's first seq goes to *first (0 when nothing changed). */
static int set_batch(struct cr_store *st, int64_t session, const struct cr_change *ch, size_t n,
		     struct cr_state *state, int64_t *first, cr_error *err)
{
	int nmodels;
	int64_t seq, batch;
	char **canon = cr_xcalloc(n ? n : 1, sizeof *canon);
	int rc = -1;
	if (store_tx_begin(st, err) < 0)
		goto out;
	if (session_models(st, session, &nmodels, err) < 0 || next_seq(st, session, &seq, err) < 0)
		goto fail;
	batch = seq;
	*first = 0;
	for (size_t i = 0; i < n; i++) {
		char *old;
		if (cr_state_canonical(ch[i].scope, ch[i].model, nmodels, ch[i].key, ch[i].value, &canon[i], err) < 0 ||
		    current_value(st, session, ch[i].scope, ch[i].model, ch[i].key, &old, err) < 0)
			goto fail;
		if (same(old, canon[i])) { /* not a change: nothing to record or undo */
			free(old);
			continue;
		}
		*first = batch;
		rc = insert_event(st, session, seq++, CR_EV_SET, batch, 0, ch[i].scope, ch[i].model, ch[i].key, old,
				  canon[i], err);
		free(old);
		if (rc < 0)
			goto fail;
	}
	if ((rc = store_tx_commit(st, err)) < 0)
		goto out;
	if (state)
		for (size_t i = 0; i < n; i++)
			cr_state_apply(state, ch[i].scope, ch[i].model, ch[i].key, canon[i]);
	goto out;
fail:
	rc = -1;
	store_tx_rollback(st);
out:
	for (size_t i = 0; i < n; i++)
		free(canon[i]);
	free(canon);
	return rc;
}

int cr_store_set_batch(struct cr_store *st, int64_t session, const struct cr_change *ch, size_t n,
		       struct cr_state *state, cr_error *err)
{
	int64_t first;
	return set_batch(st, session, ch, n, state, &first, err);
}

int cr_store_set(struct cr_store *st, int64_t session, const char *scope, int model, const char *key,
		 const char *value, struct cr_state *state, int64_t *seq, cr_error *err)
{
	struct cr_change c = { scope, model, key, value };
	int64_t first;
	if (set_batch(st, session, &c, 1, state, &first, err) < 0)
		return -1;
	if (seq)
		*seq = first;
	return 0;
}

/* The undo and redo stacks (batch ids of `set` batches), rebuilt from the log. */
struct stacks {
	int64_t *undo, *redo;
	size_t nundo, nredo, cap;
};

static void stacks_free(struct stacks *k)
{
	free(k->undo);
	free(k->redo);
}

static void push(int64_t **v, size_t *n, size_t *cap, int64_t x)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 16;
		*v = cr_xrealloc(*v, c * sizeof **v);
		*cap = c;
	}
	(*v)[(*n)++] = x;
}

static int load_stacks(struct cr_store *st, int64_t session, struct stacks *k, cr_error *err)
{
	static const char q[] = "SELECT kind, batch, target FROM event WHERE session = ?1 ORDER BY seq";
	size_t ucap = 0, rcap = 0;
	int64_t last_batch = 0;
	memset(k, 0, sizeof *k);
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, session);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t batch = sqlite3_column_int64(s, 1), target = sqlite3_column_int64(s, 2);
		if (batch == last_batch)
			continue; /* one entry per batch */
		last_batch = batch;
		switch (kind_parse((const char *)sqlite3_column_text(s, 0))) {
		case CR_EV_SET:
			push(&k->undo, &k->nundo, &ucap, batch);
			k->nredo = 0; /* a new change forgets what was undone */
			break;
		case CR_EV_UNDO:
			if (k->nundo && k->undo[k->nundo - 1] == target) {
				k->nundo--;
				push(&k->redo, &k->nredo, &rcap, target);
			}
			break;
		case CR_EV_REDO:
			if (k->nredo && k->redo[k->nredo - 1] == target) {
				k->nredo--;
				push(&k->undo, &k->nundo, &ucap, target);
			}
			break;
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		stacks_free(k);
		return store_fail(st, err, "read the event log");
	}
	return 0;
}

/* Append undo (or redo) events for batch `target`: back to each event's old value
 * in reverse order, or forward to its new value in order. */
static int undo_redo(struct cr_store *st, int64_t session, int redo, struct cr_state *state, int *changed,
		     cr_error *err)
{
	static const char q[] = "SELECT scope, model, key, old_value, new_value FROM event "
				"WHERE session = ?1 AND batch = ?2 AND kind = 'set' ORDER BY seq";
	struct stacks k;
	struct cr_event *ev = NULL;
	size_t nev = 0, cap = 0;
	int64_t seq, target;
	*changed = 0;
	if (store_tx_begin(st, err) < 0)
		return -1;
	if (load_stacks(st, session, &k, err) < 0)
		goto fail;
	if (redo ? k.nredo == 0 : k.nundo == 0) {
		stacks_free(&k);
		return store_tx_commit(st, err);
	}
	target = redo ? k.redo[k.nredo - 1] : k.undo[k.nundo - 1];
	stacks_free(&k);
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, session);
	sqlite3_bind_int64(s, 2, target);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (nev == cap)
			ev = cr_xrealloc(ev, (cap = cap ? 2 * cap : 8) * sizeof *ev);
		ev[nev++] = (struct cr_event){ .scope = store_col_strdup(s, 0),
					       .model = sqlite3_column_int(s, 1),
					       .key = store_col_strdup(s, 2),
					       .old_value = store_col_strdup(s, 3),
					       .new_value = store_col_strdup(s, 4) };
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		store_fail(st, err, "read a batch of events");
		goto fail;
	}
	if (next_seq(st, session, &seq, err) < 0)
		goto fail;
	int64_t batch = seq;
	for (size_t j = 0; j < nev; j++) {
		struct cr_event *e = &ev[redo ? j : nev - 1 - j];
		const char *to = redo ? e->new_value : e->old_value;
		char *cur;
		if (current_value(st, session, e->scope, e->model, e->key, &cur, err) < 0)
			goto fail;
		rc = insert_event(st, session, seq++, redo ? CR_EV_REDO : CR_EV_UNDO, batch, target, e->scope,
				  e->model, e->key, cur, to, err);
		free(cur);
		if (rc < 0)
			goto fail;
	}
	if (store_tx_commit(st, err) < 0)
		goto out;
	*changed = 1;
	if (state)
		for (size_t j = 0; j < nev; j++) {
			struct cr_event *e = &ev[redo ? j : nev - 1 - j];
			cr_state_apply(state, e->scope, e->model, e->key, redo ? e->new_value : e->old_value);
		}
	cr_events_free(ev, nev);
	return 0;
fail:
	store_tx_rollback(st);
out:
	cr_events_free(ev, nev);
	return -1;
}

int cr_store_undo(struct cr_store *st, int64_t session, struct cr_state *state, int *changed, cr_error *err)
{
	return undo_redo(st, session, 0, state, changed, err);
}

int cr_store_redo(struct cr_store *st, int64_t session, struct cr_state *state, int *changed, cr_error *err)
{
	return undo_redo(st, session, 1, state, changed, err);
}

int cr_store_undo_depth(struct cr_store *st, int64_t session, int *undo, int *redo, cr_error *err)
{
	struct stacks k;
	if (load_stacks(st, session, &k, err) < 0)
		return -1;
	*undo = (int)k.nundo;
	*redo = (int)k.nredo;
	stacks_free(&k);
	return 0;
}

int cr_store_events(struct cr_store *st, int64_t session, struct cr_event **out, size_t *n, cr_error *err)
{
	static const char q[] = "SELECT seq, time_ms, kind, batch, target, scope, model, key, old_value, new_value "
				"FROM event WHERE session = ?1 ORDER BY seq";
	struct cr_event *v = NULL;
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
			v = cr_xrealloc(v, (cap = cap ? 2 * cap : 32) * sizeof *v);
		v[nv++] = (struct cr_event){ .seq = sqlite3_column_int64(s, 0),
					     .time_ms = sqlite3_column_int64(s, 1),
					     .kind = kind_parse((const char *)sqlite3_column_text(s, 2)),
					     .batch = sqlite3_column_int64(s, 3),
					     .target = sqlite3_column_int64(s, 4),
					     .scope = store_col_strdup(s, 5),
					     .model = sqlite3_column_int(s, 6),
					     .key = store_col_strdup(s, 7),
					     .old_value = store_col_strdup(s, 8),
					     .new_value = store_col_strdup(s, 9) };
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		cr_events_free(v, nv);
		return store_fail(st, err, "read the event log");
	}
	*out = v;
	*n = nv;
	return 0;
}

int cr_store_session_state(struct cr_store *st, int64_t session, int64_t upto, struct cr_state *out, cr_error *err)
{
	static const char q[] = "SELECT scope, model, key, new_value FROM event "
				"WHERE session = ?1 AND (?2 < 0 OR seq <= ?2) ORDER BY seq";
	int nmodels;
	cr_state_init(out);
	if (session_models(st, session, &nmodels, err) < 0)
		return -1;
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, session);
	sqlite3_bind_int64(s, 2, upto);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		cr_state_apply(out, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1),
			       (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		cr_state_free(out);
		return store_fail(st, err, "replay the event log");
	}
	return 0;
}

char *cr_store_session_recipe(struct cr_store *st, int64_t session, cr_error *err)
{
	struct cr_session_info info;
	struct cr_state state;
	if (cr_store_session_get(st, session, &info, err) < 0)
		return NULL;
	if (cr_store_session_state(st, session, -1, &state, err) < 0) {
		cr_session_info_free(&info);
		return NULL;
	}
	char *y = cr_state_to_yaml(&state, info.base, (const char *const *)info.parents, info.nparents, err);
	cr_state_free(&state);
	cr_session_info_free(&info);
	return y;
}

int cr_store_session_fork(struct cr_store *st, int64_t id, const char *name, int64_t *new_id, cr_error *err)
{
	static const char upd[] = "UPDATE session SET forked_from = ?2 WHERE id = ?1";
	struct cr_session_info info;
	struct cr_state state;
	char defname[300];
	if (cr_store_session_get(st, id, &info, err) < 0)
		return -1;
	if (cr_store_session_state(st, id, -1, &state, err) < 0) {
		cr_session_info_free(&info);
		return -1;
	}
	if (!name || !*name) {
		snprintf(defname, sizeof defname, "%s (fork)", info.name);
		name = defname;
	}
	struct cr_change *ch = cr_xcalloc(state.n ? state.n : 1, sizeof *ch);
	for (size_t i = 0; i < state.n; i++)
		ch[i] = (struct cr_change){ state.a[i].scope, state.a[i].model, state.a[i].key, state.a[i].value };
	int64_t nid;
	int rc = -1;
	sqlite3_stmt *s;
	if (store_tx_begin(st, err) < 0)
		goto out;
	if (cr_store_session_create(st, name, info.base, (const char *const *)info.parents, info.nparents, info.notes,
				    &nid, err) < 0 ||
	    cr_store_set_batch(st, nid, ch, state.n, NULL, err) < 0 || !(s = store_stmt(st, upd, err))) {
		store_tx_rollback(st);
		goto out;
	}
	sqlite3_bind_int64(s, 1, nid);
	sqlite3_bind_int64(s, 2, id);
	if (store_step_done(st, s, err, "mark a fork") < 0) {
		store_tx_rollback(st);
		goto out;
	}
	if (store_tx_commit(st, err) == 0) {
		*new_id = nid;
		rc = 0;
	}
out:
	free(ch);
	cr_state_free(&state);
	cr_session_info_free(&info);
	return rc;
}

int cr_store_session_import(struct cr_store *st, const char *text, size_t len, const char *file, const char *name,
			    int64_t *id, cr_error *err)
{
	char *dir = cr_xstrdup(file ? file : "."), *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	struct cr_recipe_import imp;
	int rc = cr_state_from_yaml(text, len, file, dir, &imp, err);
	free(dir);
	if (rc < 0)
		return -1;
	char *stem = NULL;
	if (!name || !*name) {
		const char *b = file ? strrchr(file, '/') : NULL;
		stem = cr_xstrdup(b ? b + 1 : file ? file : "recipe");
		char *dot = strrchr(stem, '.');
		if (dot && dot != stem && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0))
			*dot = '\0';
		name = stem;
	}
	struct cr_change *ch = cr_xcalloc(imp.state.n ? imp.state.n : 1, sizeof *ch);
	for (size_t i = 0; i < imp.state.n; i++)
		ch[i] = (struct cr_change){ imp.state.a[i].scope, imp.state.a[i].model, imp.state.a[i].key,
					    imp.state.a[i].value };
	if (store_tx_begin(st, err) < 0 ||
	    cr_store_session_create(st, name, imp.base, (const char *const *)imp.models, imp.nmodels, NULL, id, err) < 0 ||
	    cr_store_set_batch(st, *id, ch, imp.state.n, NULL, err) < 0 || store_tx_commit(st, err) < 0) {
		store_tx_rollback(st);
		rc = -1;
	}
	free(ch);
	free(stem);
	cr_recipe_import_free(&imp);
	return rc;
}
