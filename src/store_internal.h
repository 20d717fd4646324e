/*
 * What the store's files (store.c, store_session.c, store_run.c,
 * store_stats.c) share: the handle and its helpers.  Not a public header.
 */
#ifndef CRUCIBLE_STORE_INTERNAL_H
#define CRUCIBLE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "crucible/store.h"

#define STORE_MAX_STMTS 96

struct pending_tensor {
	int64_t run;
	char *name, *decision, *source, *checksum;
};

struct cr_store {
	sqlite3 *db;
	char *path;
	int recovered;
	int txdepth;
	int last_step_rc; /* extended result code of the last failed step */
	size_t nstmts;
	struct {
		const char *sql; /* a static string: the cache compares pointers */
		sqlite3_stmt *stmt;
	} stmts[STORE_MAX_STMTS];
	/* run tensors waiting to be written (cr_store_run_tensor may be called from any thread) */
	pthread_mutex_t lock;
	size_t npending, cappending;
	struct pending_tensor *pending;
	/* file identity -> file id, so cache lookups skip the file table */
	struct file_id_slot {
		char *path;
		uint64_t size, hash;
		int64_t mtime, id;
	} *fid;
	size_t fid_cap, fid_n;
};

/* The prepared statement for sql (prepared once per handle, reset and unbound on return).  NULL with err set. */
sqlite3_stmt *store_stmt(struct cr_store *st, const char *sql, cr_error *err);
/* cr_fail with the database path, what failed and SQLite's message. */
int store_fail(struct cr_store *st, cr_error *err, const char *what);
/* Nestable write transactions: BEGIN IMMEDIATE at depth 0 so that writers queue on the busy timeout. */
int store_tx_begin(struct cr_store *st, cr_error *err);
int store_tx_commit(struct cr_store *st, cr_error *err);
void store_tx_rollback(struct cr_store *st);
/* Absolute form of path (malloc'd): realpath when it exists, else joined with the cwd. */
char *store_absolute(const char *path);
/* Bind a string or NULL. */
int store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Copy of column i (NULL stays NULL). */
char *store_col_strdup(sqlite3_stmt *s, int i);
/* This process: host name, boot id and start time (ticks since boot), for runs' liveness. */
void store_process_identity(char *host, size_t hn, char *boot, size_t bn, long long *start);
void store_pending_free(struct cr_store *st);
/* Run a statement that returns no rows (bound already); resets it. */
int store_step_done(struct cr_store *st, sqlite3_stmt *s, cr_error *err, const char *what);

#endif
