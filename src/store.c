/*
 * The session store's connection: where the database lives, how it is
 * opened (WAL, busy timeout, foreign keys), the schema and its migrations,
 * recovery of runs whose process died, and the helpers the store_*.c files
 * share (a per-handle cache of prepared statements, nestable transactions).
 *
 * Schema (why it looks like this):
 * - checkpoint: one row per checkpoint path (absolute), with the identity
 *   seen last (total size, newest mtime, combined header hash) and counts.
 *   Sessions point at it, so a path is stored once.
 * - session + session_parent: a session's base and its ordered models (the
 *   index is the `model` of events), so a recipe can be rebuilt from them.
 * - event: the append-only log of parameter changes, keyed (session, seq).
 *   seq is allocated inside a BEGIN IMMEDIATE transaction, so two writers
 *   never take the same number and none is lost.  Undo/redo are events too
 *   (see store.h), so the log alone rebuilds the state and its undo stack.
 *   event_key serves "the current value of (scope, model, key)", which is the
 *   `old` of the next change.
 * - file + tensor_stats + sign_agree: the statistics cache.  A file row is
 *   one identity (path, size, mtime, header hash); a stats row holds the
 *   scan's sums for (tensor, base file, parent file) plus the FP8 scale
 *   files, and goes with its file rows (ON DELETE CASCADE) when a path is
 *   seen with a new identity, so a changed file can never match an old row.
 *   Sign agreement spans all parents, so it is keyed by the list of file ids
 *   (ids are never reused, so a stale list can never match either).
 * - run + run_tensor: every run with its recipe text (what really ran, even
 *   if the session changed since), status, counters and the process that ran
 *   it; and each output tensor's decision, source and checksum, for replay.
 *
 * Migrations: migrations[v] takes a database from user_version v to v+1 and
 * sets user_version itself; all pending ones run in one IMMEDIATE
 * transaction, so a concurrent opener either sees the old or the new schema.
 * v2 adds what run liveness and replay need (host, boot id, process start
 * time, the recipe's folder) and forks.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "store_internal.h"

static const char schema_v1[] =
	"CREATE TABLE checkpoint (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  path TEXT NOT NULL UNIQUE,\n"
	"  size INTEGER, mtime_ns INTEGER, header_hash INTEGER,\n"
	"  arch TEXT, model_type TEXT,\n"
	"  tensors INTEGER, shards INTEGER, layers INTEGER, experts INTEGER,\n"
	"  seen_ms INTEGER);\n"
	"CREATE TABLE session (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  name TEXT NOT NULL,\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  base INTEGER REFERENCES checkpoint(id),\n"
	"  notes TEXT);\n"
	"CREATE TABLE session_parent (\n"
	"  session INTEGER NOT NULL REFERENCES session(id) ON DELETE CASCADE,\n"
	"  idx INTEGER NOT NULL,\n"
	"  checkpoint INTEGER NOT NULL REFERENCES checkpoint(id),\n"
	"  PRIMARY KEY (session, idx)) WITHOUT ROWID;\n"
	"CREATE TABLE event (\n"
	"  session INTEGER NOT NULL REFERENCES session(id) ON DELETE CASCADE,\n"
	"  seq INTEGER NOT NULL,\n"
	"  time_ms INTEGER NOT NULL,\n"
	"  kind TEXT NOT NULL CHECK (kind IN ('set', 'undo', 'redo')),\n"
	"  batch INTEGER NOT NULL,\n"
	"  target INTEGER,\n"
	"  scope TEXT NOT NULL,\n"
	"  model INTEGER NOT NULL,\n"
	"  key TEXT NOT NULL,\n"
	"  old_value TEXT,\n"
	"  new_value TEXT,\n"
	"  PRIMARY KEY (session, seq)) WITHOUT ROWID;\n"
	"CREATE INDEX event_key ON event (session, scope, model, key, seq);\n"
	/* ids are never reused (AUTOINCREMENT): agreement keys hold them as text */
	"CREATE TABLE file (\n"
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  path TEXT NOT NULL,\n"
	"  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, header_hash INTEGER NOT NULL,\n"
	"  UNIQUE (path, size, mtime_ns, header_hash));\n"
	/* a rowid table: rows of ~500 bytes are too big for WITHOUT ROWID */
	"CREATE TABLE tensor_stats (\n"
	"  tensor TEXT NOT NULL,\n"
	"  base_file INTEGER NOT NULL REFERENCES file(id) ON DELETE CASCADE,\n"
	"  parent_file INTEGER NOT NULL REFERENCES file(id) ON DELETE CASCADE,\n"
	"  base_scale_file INTEGER REFERENCES file(id) ON DELETE CASCADE,\n"
	"  parent_scale_file INTEGER REFERENCES file(id) ON DELETE CASCADE,\n"
	"  version INTEGER NOT NULL,\n"
	"  identical INTEGER NOT NULL, nelem INTEGER, n INTEGER, nan INTEGER, inf INTEGER,\n"
	"  base_nan INTEGER, base_inf INTEGER,\n"
	"  base_sq REAL, sum_bb REAL, sum_pp REAL, sum_pb REAL, sum_dd REAL, sum_absd REAL,\n"
	"  max_absd REAL, hist_width REAL, hist BLOB,\n"
	"  UNIQUE (tensor, base_file, parent_file));\n"
	"CREATE INDEX tensor_stats_base ON tensor_stats (base_file);\n"
	"CREATE INDEX tensor_stats_parent ON tensor_stats (parent_file);\n"
	"CREATE TABLE sign_agree (\n"
	"  files TEXT NOT NULL,\n"
	"  tensor TEXT NOT NULL,\n"
	"  version INTEGER NOT NULL,\n"
	"  agree INTEGER NOT NULL, counted INTEGER NOT NULL,\n"
	"  PRIMARY KEY (files, tensor)) WITHOUT ROWID;\n"
	"CREATE TABLE run (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  session INTEGER REFERENCES session(id) ON DELETE CASCADE,\n"
	"  event_seq INTEGER,\n"
	"  recipe TEXT NOT NULL,\n"
	"  output TEXT NOT NULL,\n"
	"  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'cancelled', 'interrupted')),\n"
	"  bytes INTEGER NOT NULL DEFAULT 0,\n"
	"  tensors INTEGER NOT NULL DEFAULT 0,\n"
	"  seconds REAL NOT NULL DEFAULT 0,\n"
	"  error TEXT,\n"
	"  pid INTEGER,\n"
	"  started_ms INTEGER NOT NULL,\n"
	"  finished_ms INTEGER);\n"
	"CREATE INDEX run_session ON run (session);\n"
	"CREATE INDEX run_status ON run (status);\n"
	"CREATE TABLE run_tensor (\n"
	"  run INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,\n"
	"  name TEXT NOT NULL,\n"
	"  decision TEXT NOT NULL,\n"
	"  source TEXT,\n"
	"  checksum TEXT,\n"
	"  PRIMARY KEY (run, name)) WITHOUT ROWID;\n"
	"PRAGMA user_version = 1;\n";

static const char schema_v2[] =
	/* A pid alone cannot tell a dead run from one on another machine or
	 * from a recycled pid: keep host, boot and process start time. */
	"ALTER TABLE run ADD COLUMN host TEXT;\n"
	"ALTER TABLE run ADD COLUMN boot_id TEXT;\n"
	"ALTER TABLE run ADD COLUMN pid_start INTEGER;\n"
	/* Relative paths in a recorded recipe resolve against its folder. */
	"ALTER TABLE run ADD COLUMN recipe_dir TEXT;\n"
	"ALTER TABLE session ADD COLUMN forked_from INTEGER REFERENCES session(id) ON DELETE SET NULL;\n"
	"PRAGMA user_version = 2;\n";

static const char *const migrations[CR_STORE_SCHEMA_VERSION] = { schema_v1, schema_v2 };

int64_t cr_store_now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ------------------------------------------------------------ helpers */

int store_fail(struct cr_store *st, cr_error *err, const char *what)
{
	return cr_fail(err, CR_E_DB, "%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
}

sqlite3_stmt *store_stmt(struct cr_store *st, const char *sql, cr_error *err)
{
	for (size_t i = 0; i < st->nstmts; i++)
		if (st->stmts[i].sql == sql) {
			sqlite3_reset(st->stmts[i].stmt);
			sqlite3_clear_bindings(st->stmts[i].stmt);
			return st->stmts[i].stmt;
		}
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_fail(st, err, "prepare");
		return NULL;
	}
	if (st->nstmts < STORE_MAX_STMTS) {
		st->stmts[st->nstmts].sql = sql;
		st->stmts[st->nstmts++].stmt = s;
	}
	/* else: the cache is full (a bug: raise STORE_MAX_STMTS); leak-free fallback is not worth it */
	return s;
}

int store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

char *store_col_strdup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? cr_xstrdup((const char *)t) : NULL;
}

int store_step_done(struct cr_store *st, sqlite3_stmt *s, cr_error *err, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		st->last_step_rc = sqlite3_extended_errcode(st->db);
		store_fail(st, err, what);
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

static int exec(struct cr_store *st, const char *sql, cr_error *err, const char *what)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		cr_fail(err, CR_E_DB, "%s: %s: %s", st->path, what, msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int store_tx_begin(struct cr_store *st, cr_error *err)
{
	if (st->txdepth++ > 0)
		return 0;
	if (exec(st, "BEGIN IMMEDIATE", err, "begin a write transaction") < 0) {
		st->txdepth = 0;
		return -1;
	}
	return 0;
}

int store_tx_commit(struct cr_store *st, cr_error *err)
{
	if (st->txdepth <= 0)
		return 0;
	if (--st->txdepth > 0)
		return 0;
	if (exec(st, "COMMIT", err, "commit") < 0) {
		exec(st, "ROLLBACK", NULL, "rollback");
		return -1;
	}
	return 0;
}

void store_tx_rollback(struct cr_store *st)
{
	if (st->txdepth <= 0)
		return;
	st->txdepth = 0;
	for (size_t i = 0; i < st->nstmts; i++)
		sqlite3_reset(st->stmts[i].stmt);
	exec(st, "ROLLBACK", NULL, "rollback");
}

int cr_store_begin(struct cr_store *st, cr_error *err)
{
	return store_tx_begin(st, err);
}

int cr_store_commit(struct cr_store *st, cr_error *err)
{
	return store_tx_commit(st, err);
}

int cr_store_rollback(struct cr_store *st)
{
	store_tx_rollback(st);
	return 0;
}

/* ------------------------------------------------------------ paths */

char *cr_store_default_path(cr_error *err)
{
	const char *env = getenv("CRUCIBLE_DB");
	if (env && *env)
		return cr_xstrdup(env);
	const char *xdg = getenv("XDG_DATA_HOME");
	char *p;
	if (xdg && xdg[0] == '/') { /* the XDG spec ignores relative values */
		p = cr_xmalloc(strlen(xdg) + 32);
		sprintf(p, "%s/crucible/sessions.db", xdg);
		return p;
	}
	const char *home = getenv("HOME");
	if (!home || !*home)
		return cr_fail(err, CR_E_USAGE, "no session database: set HOME, XDG_DATA_HOME or CRUCIBLE_DB, or pass --db"),
		       NULL;
	p = cr_xmalloc(strlen(home) + 48);
	sprintf(p, "%s/.local/share/crucible/sessions.db", home);
	return p;
}

/* mkdir -p of the folder that will hold path. */
static int make_parent_dirs(const char *path, cr_error *err)
{
	char *d = cr_xstrdup(path);
	char *slash = strrchr(d, '/');
	int rc = 0;
	if (slash && slash != d) {
		*slash = '\0';
		for (char *p = d + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(d, 0700) < 0 && errno != EEXIST)
				rc = -1;
			*p = '/';
		}
		if (mkdir(d, 0700) < 0 && errno != EEXIST)
			rc = -1;
		struct stat sb;
		if (stat(d, &sb) == 0 && S_ISDIR(sb.st_mode))
			rc = 0;
		else
			rc = cr_fail(err, CR_E_IO, "%s: cannot create the folder for the session database: %s", d,
				     strerror(errno));
	}
	free(d);
	return rc;
}

/* ------------------------------------------------------------ schema */

static int user_version(struct cr_store *st, int *v, cr_error *err)
{
	static const char sql[] = "PRAGMA user_version";
	sqlite3_stmt *s = store_stmt(st, sql, err);
	if (!s)
		return -1;
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return store_fail(st, err, "read the schema version");
	}
	*v = sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	return 0;
}

int cr_store_schema_version(struct cr_store *st)
{
	int v = -1;
	user_version(st, &v, NULL);
	return v;
}

static int migrate(struct cr_store *st, cr_error *err)
{
	int v;
	if (user_version(st, &v, err) < 0)
		return -1;
	if (v == CR_STORE_SCHEMA_VERSION)
		return 0;
	if (store_tx_begin(st, err) < 0)
		return -1;
	/* Another process may have migrated between the read and the lock. */
	if (user_version(st, &v, err) < 0)
		goto fail;
	if (v > CR_STORE_SCHEMA_VERSION) {
		cr_fail(err, CR_E_DB, "%s: schema version %d is newer than this crucible understands (%d)", st->path, v,
			CR_STORE_SCHEMA_VERSION);
		goto fail;
	}
	if (v < 0) {
		cr_fail(err, CR_E_DB, "%s: bad schema version %d", st->path, v);
		goto fail;
	}
	for (; v < CR_STORE_SCHEMA_VERSION; v++) {
		char what[64];
		snprintf(what, sizeof what, "migrate the schema to version %d", v + 1);
		if (exec(st, migrations[v], err, what) < 0)
			goto fail;
	}
	return store_tx_commit(st, err);
fail:
	store_tx_rollback(st);
	return -1;
}

/* ------------------------------------------------------------ run liveness */

/* Identity of this boot: a reboot makes every recorded pid meaningless. */
static void boot_id(char *buf, size_t n)
{
	buf[0] = '\0';
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (!f)
		return;
	if (fgets(buf, (int)n, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat),
 * and whether it is a zombie; -1 when there is no such process. */
static long long process_start(long long pid, int *zombie)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%lld/stat", pid);
	*zombie = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!p)
		return -1;
	char state = 0;
	long long start = -1;
	p++;
	if (sscanf(p, " %c", &state) != 1)
		return -1;
	*zombie = state == 'Z' || state == 'X';
	/* after ')' come fields 3..: state is 3, starttime is 22 */
	int field = 2;
	for (char *q = p; *q; q++) {
		if (*q == ' ') {
			field++;
			if (field == 22) {
				start = strtoll(q + 1, NULL, 10);
				break;
			}
		}
	}
	return start;
}

void store_process_identity(char *host, size_t hn, char *boot, size_t bn, long long *start)
{
	int zombie;
	if (gethostname(host, hn) != 0)
		host[0] = '\0';
	host[hn - 1] = '\0';
	boot_id(boot, bn);
	*start = process_start((long long)getpid(), &zombie);
}

/* 1 when the run's process is certainly gone, 0 when it may be alive. */
static int run_process_dead(long long pid, const char *host, const char *boot, long long pid_start)
{
	char my_host[256], my_boot[64];
	long long my_start;
	store_process_identity(my_host, sizeof my_host, my_boot, sizeof my_boot, &my_start);
	if (host && strcmp(host, my_host) != 0)
		return 0; /* another machine's run: we cannot see its processes */
	if (boot && *boot && *my_boot && strcmp(boot, my_boot) != 0)
		return 1;
	if (pid <= 0)
		return 1;
	int zombie;
	long long start = process_start(pid, &zombie);
	if (start < 0) {
		/* No /proc entry: fall back on kill(pid, 0). */
		if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
			return 0;
		return 1;
	}
	if (zombie)
		return 1;
	if (pid_start > 0 && start != pid_start)
		return 1; /* the pid was recycled */
	return 0;
}

static int recover_runs(struct cr_store *st, cr_error *err)
{
	static const char q[] = "SELECT id, pid, host, boot_id, pid_start FROM run WHERE status = 'running'";
	static const char upd[] =
		"UPDATE run SET status = 'interrupted', finished_ms = ?2, "
		"error = coalesce(error, 'the process running it (pid ' || coalesce(pid, '?') || ') ended without finishing') "
		"WHERE id = ?1 AND status = 'running'";
	int64_t dead[64];
	size_t ndead = 0;
	sqlite3_stmt *s = store_stmt(st, q, err);
	if (!s)
		return -1;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && ndead < 64) {
		const char *host = (const char *)sqlite3_column_text(s, 2);
		const char *boot = (const char *)sqlite3_column_text(s, 3);
		if (run_process_dead(sqlite3_column_int64(s, 1), host, boot, sqlite3_column_int64(s, 4)))
			dead[ndead++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return store_fail(st, err, "find running runs");
	if (ndead == 0)
		return 0;
	if (store_tx_begin(st, err) < 0)
		return -1;
	for (size_t i = 0; i < ndead; i++) {
		sqlite3_stmt *u = store_stmt(st, upd, err);
		if (!u)
			goto fail;
		sqlite3_bind_int64(u, 1, dead[i]);
		sqlite3_bind_int64(u, 2, cr_store_now_ms());
		if (store_step_done(st, u, err, "mark a run interrupted") < 0)
			goto fail;
		st->recovered += sqlite3_changes(st->db);
	}
	return store_tx_commit(st, err);
fail:
	store_tx_rollback(st);
	return -1;
}

/* ------------------------------------------------------------ open/close */

/* WAL mode is a property of the file, set once.  Switching needs a lock that
 * SQLite may refuse at once (no busy handler) while another process is
 * creating the same database, so retry for a while. */
static int wal_mode(struct cr_store *st, cr_error *err)
{
	static const char sql[] = "PRAGMA journal_mode = WAL";
	for (int attempt = 0;; attempt++) {
		sqlite3_stmt *s = store_stmt(st, sql, err);
		if (!s)
			return -1;
		int rc = sqlite3_step(s);
		const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
		int ok = mode && strcmp(mode, "wal") == 0;
		sqlite3_reset(s);
		if (ok)
			return 0;
		if (rc == SQLITE_ROW) /* a mode that cannot be WAL (say, in memory): work without it */
			return 0;
		if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			return store_fail(st, err, "switch to WAL mode");
		if (attempt >= 300)
			return cr_fail(err, CR_E_DB, "%s: switch to WAL mode: the database stayed locked for 30 s",
				       st->path);
		usleep(10000 + (useconds_t)(attempt % 10) * 1000);
	}
}

int cr_store_open(const char *path, struct cr_store **out, cr_error *err)
{
	char *def = NULL;
	*out = NULL;
	if (!path) {
		def = cr_store_default_path(err);
		if (!def)
			return -1;
		path = def;
	}
	if (make_parent_dirs(path, err) < 0) {
		free(def);
		return -1;
	}
	struct cr_store *st = cr_xcalloc(1, sizeof *st);
	st->path = cr_xstrdup(path);
	free(def);
	pthread_mutex_init(&st->lock, NULL);
	if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		if (st->db)
			store_fail(st, err, "open");
		else
			cr_fail(err, CR_E_NOMEM, "%s: cannot open the session database", st->path);
		cr_store_close(st);
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	/* Writers from other processes wait up to 30 s rather than fail. */
	sqlite3_busy_timeout(st->db, 30000);
	if (exec(st, "PRAGMA foreign_keys = ON", err, "enable foreign keys") < 0 ||
	    wal_mode(st, err) < 0 ||
	    /* In WAL mode NORMAL is durable across application crashes, not power loss: fine for a history. */
	    exec(st, "PRAGMA synchronous = NORMAL", err, "set synchronous") < 0 || migrate(st, err) < 0 ||
	    recover_runs(st, err) < 0) {
		cr_store_close(st);
		return -1;
	}
	*out = st;
	return 0;
}

void cr_store_close(struct cr_store *st)
{
	if (!st)
		return;
	if (st->npending)
		cr_store_run_flush(st, NULL);
	store_pending_free(st);
	for (size_t i = 0; i < st->nstmts; i++)
		sqlite3_finalize(st->stmts[i].stmt);
	if (st->db)
		sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	for (size_t i = 0; i < st->fid_cap; i++)
		free(st->fid[i].path);
	free(st->fid);
	free(st->path);
	free(st);
}

const char *cr_store_path(const struct cr_store *st)
{
	return st->path;
}

int cr_store_recovered(const struct cr_store *st)
{
	return st->recovered;
}

int cr_store_integrity_check(struct cr_store *st, cr_error *err)
{
	static const char sql[] = "PRAGMA integrity_check";
	sqlite3_stmt *s = store_stmt(st, sql, err);
	if (!s)
		return -1;
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return store_fail(st, err, "integrity check");
	}
	const char *r = (const char *)sqlite3_column_text(s, 0);
	int ok = r && strcmp(r, "ok") == 0;
	if (!ok)
		cr_fail(err, CR_E_DB, "%s: integrity check: %s", st->path, r ? r : "no answer");
	sqlite3_reset(s);
	return ok ? 0 : -1;
}
