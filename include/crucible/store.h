/*
 * The session store: one SQLite database that remembers checkpoints,
 * sessions, every parameter change, the statistics cache and every run.
 *
 * Where: `--db PATH`, else $CRUCIBLE_DB, else $XDG_DATA_HOME/crucible/sessions.db,
 * else ~/.local/share/crucible/sessions.db (cr_store_default_path).
 *
 * A `struct cr_store` is one SQLite connection with its prepared statements.
 * It belongs to ONE thread: a worker thread opens its own handle on the same
 * file (SQLite's WAL mode lets readers and a writer proceed together, and the
 * busy timeout makes concurrent writers wait instead of failing).  Several
 * processes may use one database at once.
 *
 * Opening migrates the schema to the current version (PRAGMA user_version)
 * and marks runs left `running` by a process that no longer exists as
 * `interrupted` (cr_store_recovered tells how many).
 *
 * Files: store.c (connection, schema, migrations, recovery), store_session.c
 * (checkpoints, sessions, events, replay), store_run.c (runs),
 * store_stats.c and store_stats_cache.c (statistics cache), store_record.c
 * (recording a merge: run_record.h).  The parameter state: state.h.
 */
#ifndef CRUCIBLE_STORE_H
#define CRUCIBLE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/error.h"

struct cr_store;
struct cr_state;
struct cr_ckpt;

#define CR_STORE_SCHEMA_VERSION 2

/* Default database path (malloc'd), following the rules above; NULL with err when no HOME. */
char *cr_store_default_path(cr_error *err);
/* path NULL: the default path.  Creates parent folders and the file as needed. */
int cr_store_open(const char *path, struct cr_store **out, cr_error *err);
void cr_store_close(struct cr_store *st);
const char *cr_store_path(const struct cr_store *st);
int cr_store_schema_version(struct cr_store *st);
/* Runs marked `interrupted` when this handle was opened. */
int cr_store_recovered(const struct cr_store *st);
/* PRAGMA integrity_check: 0 when "ok", -1 with the first problem in err. */
int cr_store_integrity_check(struct cr_store *st, cr_error *err);
/* Milliseconds since the epoch (the unit of every time column). */
int64_t cr_store_now_ms(void);

/* ---- checkpoints ---- */
/* The id of the checkpoint at path (made absolute), adding a row if needed. */
int cr_store_checkpoint_id(struct cr_store *st, const char *path, int64_t *id, cr_error *err);
/* Record an opened checkpoint's identity (size, newest mtime, header hashes) and counts. */
int cr_store_checkpoint_put(struct cr_store *st, const struct cr_ckpt *c, int64_t *id, cr_error *err);

/* ---- sessions ---- */
struct cr_session_info {
	int64_t id;
	char *name;
	int64_t created_ms;
	char *notes;	     /* may be NULL */
	int64_t forked_from; /* 0 when none */
	char *base;	     /* absolute path */
	size_t nparents;
	char **parents; /* the recipe's models, in order (may include the base) */
	int64_t nevents;
	int nruns;
	char *last_status; /* status of the newest run, NULL without runs */
	int64_t last_run_ms;
};
void cr_session_info_free(struct cr_session_info *s);
void cr_session_list_free(struct cr_session_info *v, size_t n);

int cr_store_session_create(struct cr_store *st, const char *name, const char *base, const char *const *parents,
			    size_t nparents, const char *notes, int64_t *id, cr_error *err);
/* Session id from "ID" or a unique name; CR_E_NOTFOUND otherwise. */
int cr_store_session_find(struct cr_store *st, const char *id_or_name, int64_t *id, cr_error *err);
int cr_store_session_get(struct cr_store *st, int64_t id, struct cr_session_info *out, cr_error *err);
/* Newest first. */
int cr_store_session_list(struct cr_store *st, struct cr_session_info **out, size_t *n, cr_error *err);
int cr_store_session_rename(struct cr_store *st, int64_t id, const char *name, cr_error *err);
int cr_store_session_set_notes(struct cr_store *st, int64_t id, const char *notes, cr_error *err);
/* Removes the session, its parents list, events and runs (and their tensors). */
int cr_store_session_delete(struct cr_store *st, int64_t id, cr_error *err);
/* A new session with the same base and parents whose first event batch sets the
 * source's current state (its history stays with the source). */
int cr_store_session_fork(struct cr_store *st, int64_t id, const char *name, int64_t *new_id, cr_error *err);

/* A new session holding a recipe's base, models and parameters (one event
 * batch).  file names the recipe in messages, its folder resolves relative
 * paths, and its name without .yaml names the session when name is NULL. */
int cr_store_session_import(struct cr_store *st, const char *text, size_t len, const char *file, const char *name,
			    int64_t *id, cr_error *err);

/* ---- events ----
 * The log is append-only.  A `set` event changes one assignment (scope,
 * model, key) from `old` to `new` (NULL = unset).  Undo appends `undo` events
 * that set the values back (new = the undone event's old) and name the event
 * they undo in `target`; redo appends `redo` events likewise.  So replaying is
 * always "apply each event's new value in seq order", and the undo and redo
 * stacks are rebuilt from the same log after a restart.  Events that belong
 * to one user action share a `batch` (the seq of its first event) and are
 * undone together. */
enum cr_event_kind { CR_EV_SET, CR_EV_UNDO, CR_EV_REDO };

struct cr_event {
	int64_t seq, time_ms, batch, target; /* target: 0 for set */
	enum cr_event_kind kind;
	char *scope;
	int model; /* -1: top level */
	char *key;
	char *old_value, *new_value; /* NULL: unset */
};
const char *cr_event_kind_name(enum cr_event_kind k);
void cr_events_free(struct cr_event *v, size_t n);

/* Append one change (one batch).  The value is checked and stored in its
 * canonical text (see state.h).  `old` is read from the log in the same
 * transaction, so concurrent writers stay consistent.  When state is not
 * NULL it gets the change applied.  seq may be NULL. */
int cr_store_set(struct cr_store *st, int64_t session, const char *scope, int model, const char *key,
		 const char *value, struct cr_state *state, int64_t *seq, cr_error *err);
/* Several changes as one batch (undone together).  values[i] may be NULL (unset). */
struct cr_change {
	const char *scope;
	int model;
	const char *key, *value;
};
int cr_store_set_batch(struct cr_store *st, int64_t session, const struct cr_change *ch, size_t n,
		       struct cr_state *state, cr_error *err);
/* Undo/redo the newest batch; *changed = 0 when there was nothing to undo/redo. */
int cr_store_undo(struct cr_store *st, int64_t session, struct cr_state *state, int *changed, cr_error *err);
int cr_store_redo(struct cr_store *st, int64_t session, struct cr_state *state, int *changed, cr_error *err);
/* How many batches can be undone / redone now. */
int cr_store_undo_depth(struct cr_store *st, int64_t session, int *undo, int *redo, cr_error *err);
int cr_store_events(struct cr_store *st, int64_t session, struct cr_event **out, size_t *n, cr_error *err);
/* Rebuild the state by replaying events with seq <= upto (upto < 0: all). */
int cr_store_session_state(struct cr_store *st, int64_t session, int64_t upto, struct cr_state *out, cr_error *err);
/* Recipe YAML of the session's current state (malloc'd). */
char *cr_store_session_recipe(struct cr_store *st, int64_t session, cr_error *err);

/* ---- runs ---- */
enum cr_run_status { CR_RUN_RUNNING, CR_RUN_DONE, CR_RUN_FAILED, CR_RUN_CANCELLED, CR_RUN_INTERRUPTED };
const char *cr_run_status_name(enum cr_run_status s);

struct cr_run_info {
	int64_t id, session, event_seq; /* event_seq: the session's last event when it started */
	char *recipe, *recipe_dir, *output;
	enum cr_run_status status;
	int64_t bytes, tensors;
	double seconds;
	char *error;
	int64_t pid, started_ms, finished_ms;
};
void cr_run_info_free(struct cr_run_info *r);
void cr_run_list_free(struct cr_run_info *v, size_t n);

/* Begin a run (status running) of recipe text whose relative paths resolve
 * against recipe_dir.  session 0: a run that belongs to no session. */
int cr_store_run_begin(struct cr_store *st, int64_t session, const char *recipe, const char *recipe_dir,
		       const char *output, int64_t *run, cr_error *err);
/* One output tensor.  Thread-safe: rows are buffered under a lock and written
 * in one transaction by cr_store_run_flush / _progress / _finish, which must
 * be called by the thread that owns the store. */
int cr_store_run_tensor(struct cr_store *st, int64_t run, const char *name, const char *decision,
			const char *source, const char *checksum, cr_error *err);
int cr_store_run_flush(struct cr_store *st, cr_error *err);
int cr_store_run_progress(struct cr_store *st, int64_t run, int64_t bytes, int64_t tensors, double seconds,
			  cr_error *err);
/* status: done, failed or cancelled; error may be NULL. */
int cr_store_run_finish(struct cr_store *st, int64_t run, enum cr_run_status status, int64_t bytes,
			int64_t tensors, double seconds, const char *error, cr_error *err);
int cr_store_run_get(struct cr_store *st, int64_t run, struct cr_run_info *out, cr_error *err);
/* A session's runs, oldest first. */
int cr_store_runs(struct cr_store *st, int64_t session, struct cr_run_info **out, size_t *n, cr_error *err);

struct cr_run_tensor {
	char *name, *decision, *source, *checksum;
};
void cr_run_tensors_free(struct cr_run_tensor *v, size_t n);
/* In name order. */
int cr_store_run_tensors(struct cr_store *st, int64_t run, struct cr_run_tensor **out, size_t *n, cr_error *err);

/* ---- statistics cache ----
 * What a statistics scan accumulates per (tensor, parent), keyed by the
 * identity (path, size, mtime, header hash) of the files holding the bytes:
 * base and parent weights and, for block FP8, their scale files.  A lookup
 * matches only when every identity and the stats version are equal; storing
 * under a path whose identity changed deletes the old identity's rows.
 * Paths should be absolute.  The fields mirror struct cr_stats_sums (stats.h). */
struct cr_file_identity {
	const char *path;
	uint64_t size;
	int64_t mtime_ns;
	uint64_t header_hash;
};

struct cr_store_src {
	const struct cr_file_identity *weights;
	const struct cr_file_identity *scales; /* NULL without block scales */
};

#define CR_STORE_HIST_MAX 64
struct cr_store_sums {
	int identical;
	uint64_t nelem, n, nan, inf, base_nan, base_inf;
	double base_sq, sum_bb, sum_pp, sum_pb, sum_dd, sum_absd, max_absd, hist_width;
	size_t nbins; /* <= CR_STORE_HIST_MAX */
	uint64_t hist[CR_STORE_HIST_MAX];
};

/* 0 ok, -1 error. */
int cr_store_stats_put(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parent, const struct cr_store_sums *v, cr_error *err);
/* 1 found, 0 missing (or another version, or a changed file), -1 error. */
int cr_store_stats_get(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parent, struct cr_store_sums *out, cr_error *err);
/* Sign agreement of a tensor over the base and all parents. */
int cr_store_agree_put(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parents, size_t nparents, uint64_t agree, uint64_t counted,
		       cr_error *err);
int cr_store_agree_get(struct cr_store *st, const char *tensor, int version, const struct cr_store_src *base,
		       const struct cr_store_src *parents, size_t nparents, uint64_t *agree, uint64_t *counted,
		       cr_error *err);
/* The store as a statistics scan's cache (struct cr_stats_cache, stats.h).
 * The first borrows st (which must outlive the cache); the second opens its
 * own handle on db (NULL: the default), for a worker thread.  Either way the
 * cache is used from one thread: the scan's. */
struct cr_stats_cache;
int cr_store_stats_cache(struct cr_store *st, struct cr_stats_cache *out);
int cr_store_stats_cache_open(const char *db, struct cr_stats_cache *out, cr_error *err);

/* Group many puts in one transaction (much faster). */
int cr_store_begin(struct cr_store *st, cr_error *err);
int cr_store_commit(struct cr_store *st, cr_error *err);
int cr_store_rollback(struct cr_store *st);

#endif
