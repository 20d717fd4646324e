/*
 * The session store and the parameter state: schema and migration from v1,
 * replay, undo/redo, recipe export/import, runs, the statistics cache, and
 * multi-process behaviour (a killed run, concurrent writers) with real
 * processes made by fork().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yaml.h>

#include "crucible/checkpoint.h"
#include "crucible/recipe.h"
#include "crucible/state.h"
#include "crucible/stats.h"
#include "crucible/store.h"
#include "testutil.h"

static char tmpdir[256];

static const char *tmp_db(const char *name)
{
	static char buf[4][512];
	static int k;
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/tmp/check_store.XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	}
	char *b = buf[k++ & 3];
	snprintf(b, 512, "%s/%s", tmpdir, name);
	unlink(b);
	char aux[600];
	snprintf(aux, sizeof aux, "%s-wal", b);
	unlink(aux);
	snprintf(aux, sizeof aux, "%s-shm", b);
	unlink(aux);
	return b;
}

static struct cr_store *open_ok(const char *path)
{
	struct cr_store *st;
	cr_error err = { 0 };
	int rc = cr_store_open(path, &st, &err);
	ck_assert_msg(rc == 0, "open %s: %s", path, err.msg);
	return st;
}

/* One value straight from SQLite, independent of the library. */
static long long sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	long long v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static char *sql_text(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	char *v = NULL;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static int64_t new_session(struct cr_store *st, const char *name, int nparents)
{
	const char *parents[] = { "/models/base", "/models/p1", "/models/p2" };
	int64_t id;
	cr_error err = { 0 };
	ck_assert_msg(cr_store_session_create(st, name, "/models/base", parents, (size_t)nparents, NULL, &id, &err) ==
			      0,
		      "%s", err.msg);
	return id;
}

/* ---------------------------------------------------------------- paths and schema */

START_TEST(test_default_path)
{
	cr_error err = { 0 };
	setenv("CRUCIBLE_DB", "/x/y.db", 1);
	char *p = cr_store_default_path(&err);
	ck_assert_str_eq(p, "/x/y.db");
	free(p);
	unsetenv("CRUCIBLE_DB");
	setenv("XDG_DATA_HOME", "/data", 1);
	p = cr_store_default_path(&err);
	ck_assert_str_eq(p, "/data/crucible/sessions.db");
	free(p);
	setenv("XDG_DATA_HOME", "relative", 1); /* ignored by the spec */
	setenv("HOME", "/home/u", 1);
	p = cr_store_default_path(&err);
	ck_assert_str_eq(p, "/home/u/.local/share/crucible/sessions.db");
	free(p);
	unsetenv("XDG_DATA_HOME");
}
END_TEST

START_TEST(test_fresh_schema)
{
	const char *path = tmp_db("sub/dir/fresh.db"); /* folders are created */
	struct cr_store *st = open_ok(path);
	ck_assert_int_eq(cr_store_schema_version(st), CR_STORE_SCHEMA_VERSION);
	cr_store_close(st);
	ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 2);
	char *mode = sql_text(path, "PRAGMA journal_mode");
	ck_assert_str_eq(mode, "wal");
	free(mode);
	/* v2 columns exist */
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM pragma_table_info('run') WHERE name IN "
				       "('host','boot_id','pid_start','recipe_dir')"),
			 4);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM pragma_table_info('session') WHERE name = 'forked_from'"), 1);
}
END_TEST

/* The v1 schema as shipped, written out here independently of the library. */
static const char v1_ddl[] =
	"CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER,"
	" header_hash INTEGER, arch TEXT, model_type TEXT, tensors INTEGER, shards INTEGER, layers INTEGER,"
	" experts INTEGER, seen_ms INTEGER);"
	"CREATE TABLE session (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_ms INTEGER NOT NULL,"
	" base INTEGER REFERENCES checkpoint(id), notes TEXT);"
	"CREATE TABLE session_parent (session INTEGER NOT NULL REFERENCES session(id) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL, checkpoint INTEGER NOT NULL REFERENCES checkpoint(id), PRIMARY KEY (session, idx))"
	" WITHOUT ROWID;"
	"CREATE TABLE event (session INTEGER NOT NULL REFERENCES session(id) ON DELETE CASCADE, seq INTEGER NOT NULL,"
	" time_ms INTEGER NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('set', 'undo', 'redo')), batch INTEGER NOT NULL,"
	" target INTEGER, scope TEXT NOT NULL, model INTEGER NOT NULL, key TEXT NOT NULL, old_value TEXT,"
	" new_value TEXT, PRIMARY KEY (session, seq)) WITHOUT ROWID;"
	"CREATE INDEX event_key ON event (session, scope, model, key, seq);"
	"CREATE TABLE file (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, size INTEGER NOT NULL,"
	" mtime_ns INTEGER NOT NULL, header_hash INTEGER NOT NULL, UNIQUE (path, size, mtime_ns, header_hash));"
	"CREATE TABLE tensor_stats (tensor TEXT NOT NULL,"
	" base_file INTEGER NOT NULL REFERENCES file(id) ON DELETE CASCADE,"
	" parent_file INTEGER NOT NULL REFERENCES file(id) ON DELETE CASCADE,"
	" base_scale_file INTEGER REFERENCES file(id) ON DELETE CASCADE,"
	" parent_scale_file INTEGER REFERENCES file(id) ON DELETE CASCADE, version INTEGER NOT NULL,"
	" identical INTEGER NOT NULL, nelem INTEGER, n INTEGER, nan INTEGER, inf INTEGER, base_nan INTEGER,"
	" base_inf INTEGER, base_sq REAL, sum_bb REAL, sum_pp REAL, sum_pb REAL, sum_dd REAL, sum_absd REAL,"
	" max_absd REAL, hist_width REAL, hist BLOB, UNIQUE (tensor, base_file, parent_file));"
	"CREATE INDEX tensor_stats_base ON tensor_stats (base_file);"
	"CREATE INDEX tensor_stats_parent ON tensor_stats (parent_file);"
	"CREATE TABLE sign_agree (files TEXT NOT NULL, tensor TEXT NOT NULL, version INTEGER NOT NULL,"
	" agree INTEGER NOT NULL, counted INTEGER NOT NULL, PRIMARY KEY (files, tensor)) WITHOUT ROWID;"
	"CREATE TABLE run (id INTEGER PRIMARY KEY, session INTEGER REFERENCES session(id) ON DELETE CASCADE,"
	" event_seq INTEGER, recipe TEXT NOT NULL, output TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN"
	" ('running', 'done', 'failed', 'cancelled', 'interrupted')), bytes INTEGER NOT NULL DEFAULT 0,"
	" tensors INTEGER NOT NULL DEFAULT 0, seconds REAL NOT NULL DEFAULT 0, error TEXT, pid INTEGER,"
	" started_ms INTEGER NOT NULL, finished_ms INTEGER);"
	"CREATE INDEX run_session ON run (session);"
	"CREATE INDEX run_status ON run (status);"
	"CREATE TABLE run_tensor (run INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE, name TEXT NOT NULL,"
	" decision TEXT NOT NULL, source TEXT, checksum TEXT, PRIMARY KEY (run, name)) WITHOUT ROWID;"
	"PRAGMA user_version = 1;";

/* A pid that is certainly not running: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return p;
}

START_TEST(test_migrate_v1)
{
	const char *path = tmp_db("v1.db");
	sqlite3 *db;
	char sql[4096];
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, v1_ddl, NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof sql,
		 "INSERT INTO checkpoint (id, path) VALUES (1, '/m/base'), (2, '/m/r1');"
		 "INSERT INTO session VALUES (7, 'old one', 1000, 1, 'from v1');"
		 "INSERT INTO session_parent VALUES (7, 0, 1), (7, 1, 2);"
		 "INSERT INTO event VALUES (7, 1, 1001, 'set', 1, NULL, '*', -1, 'merge_method', NULL, 'aoe'),"
		 " (7, 2, 1002, 'set', 2, NULL, 'class:routed_expert', 1, 'weight', NULL, '1'),"
		 " (7, 3, 1003, 'set', 2, NULL, '*', 1, 'weight', NULL, '0'),"
		 " (7, 4, 1004, 'set', 4, NULL, '*', -1, 'delta', NULL, '0.05'),"
		 " (7, 5, 1005, 'undo', 5, 4, '*', -1, 'delta', '0.05', NULL);"
		 "INSERT INTO run (id, session, event_seq, recipe, output, status, bytes, pid, started_ms)"
		 " VALUES (3, 7, 3, 'merge_method: aoe', '/out/a', 'done', 123, 1, 1100),"
		 " (4, 7, 5, 'merge_method: aoe', '/out/b', 'running', 0, %d, 1200);"
		 "INSERT INTO run_tensor VALUES (3, 'w', 'compute', NULL, 'abc');"
		 "INSERT INTO file VALUES (1, '/m/base/model.safetensors', 10, 20, 30), (2, '/m/r1/model.safetensors', 11, 21, 31);"
		 "INSERT INTO tensor_stats (tensor, base_file, parent_file, version, identical, nelem, sum_dd, hist)"
		 " VALUES ('w', 1, 2, 1, 0, 64, 0.18, x'0300000000000000');",
		 (int)dead_pid());
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	struct cr_store *st = open_ok(path);
	cr_error err = { 0 };
	ck_assert_int_eq(cr_store_schema_version(st), 2);
	/* the v1 run of a dead pid (no host recorded) is interrupted; the finished one is untouched */
	ck_assert_int_eq(cr_store_recovered(st), 1);
	struct cr_run_info r;
	ck_assert_int_eq(cr_store_run_get(st, 4, &r, &err), 0);
	ck_assert_int_eq(r.status, CR_RUN_INTERRUPTED);
	ck_assert_ptr_null(r.recipe_dir);
	cr_run_info_free(&r);
	ck_assert_int_eq(cr_store_run_get(st, 3, &r, &err), 0);
	ck_assert_int_eq(r.status, CR_RUN_DONE);
	ck_assert_int_eq(r.bytes, 123);
	cr_run_info_free(&r);

	struct cr_session_info si;
	ck_assert_int_eq(cr_store_session_get(st, 7, &si, &err), 0);
	ck_assert_str_eq(si.name, "old one");
	ck_assert_str_eq(si.base, "/m/base");
	ck_assert_int_eq(si.nparents, 2);
	ck_assert_str_eq(si.parents[1], "/m/r1");
	ck_assert_int_eq(si.nevents, 5);
	ck_assert_int_eq(si.forked_from, 0);
	cr_session_info_free(&si);

	struct cr_state s;
	ck_assert_int_eq(cr_store_session_state(st, 7, -1, &s, &err), 0);
	ck_assert_int_eq(s.n, 3); /* delta was undone */
	ck_assert_str_eq(cr_state_get(&s, "class:routed_expert", 1, "weight"), "1");
	ck_assert_ptr_null(cr_state_get(&s, "*", -1, "delta"));
	cr_state_free(&s);
	/* the undo stack survives: redo brings delta back */
	int changed;
	ck_assert_int_eq(cr_store_redo(st, 7, NULL, &changed, &err), 0);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(cr_store_session_state(st, 7, -1, &s, &err), 0);
	ck_assert_str_eq(cr_state_get(&s, "*", -1, "delta"), "0.05");
	cr_state_free(&s);

	struct cr_file_identity b = { "/m/base/model.safetensors", 10, 20, 30 }, p = { "/m/r1/model.safetensors", 11, 21, 31 };
	struct cr_store_src bs = { &b, NULL }, ps = { &p, NULL };
	struct cr_store_sums sums;
	ck_assert_int_eq(cr_store_stats_get(st, "w", 1, &bs, &ps, &sums, &err), 1);
	ck_assert_double_eq(sums.sum_dd, 0.18);
	ck_assert_int_eq(sums.nelem, 64);
	ck_assert_int_eq(sums.nbins, 1);
	ck_assert_int_eq(sums.hist[0], 3);
	/* a new session works next to the old one, with the v2 column */
	int64_t fork;
	ck_assert_int_eq(cr_store_session_fork(st, 7, NULL, &fork, &err), 0);
	ck_assert_int_eq(cr_store_session_get(st, fork, &si, &err), 0);
	ck_assert_int_eq(si.forked_from, 7);
	ck_assert_str_eq(si.name, "old one (fork)");
	cr_session_info_free(&si);
	ck_assert_int_eq(cr_store_integrity_check(st, &err), 0);
	cr_store_close(st);
	ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 2);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
	const char *path = tmp_db("future.db");
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct cr_store *st;
	cr_error err = { 0 };
	ck_assert_int_eq(cr_store_open(path, &st, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "newer"));
	ck_assert_ptr_nonnull(strstr(err.msg, path));
}
END_TEST

/* ---------------------------------------------------------------- values */

START_TEST(test_canonical)
{
	cr_error err = { 0 };
	char *c;
	struct {
		const char *scope, *key, *in, *out;
		int model;
	} ok[] = {
		{ "*", "weight", "0.50", "0.5", 0 },
		{ "*", "weight", "1e-1", "0.1", 1 },
		{ "*", "weight", "  2 ", "2", -1 },
		{ "class:routed_expert", "weight", "[0.2,1.0]", "[0.2, 1]", 0 },
		{ "filter:mlp.experts.", "density", "[ 0.25 , .5, 1 ]", "[0.25, 0.5, 1]", 1 },
		{ "layers:2-3", "weight", "0.3333333333333333", "0.3333333333333333", 0 },
		{ "*", "normalize", "yes", "true", -1 },
		{ "*", "rescale", "0", "false", -1 },
		{ "*", "delta", "0.045", "0.045", -1 },
		{ "*", "merge_method", "aoe", "aoe", -1 },
		{ "*", "out_dtype", "float8_e4m3fn", "float8_e4m3fn", -1 },
		{ "*", "random_seed", "42", "42", -1 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ck_assert_msg(cr_state_canonical(ok[i].scope, ok[i].model, 2, ok[i].key, ok[i].in, &c, &err) == 0, "%s",
			      err.msg);
		ck_assert_str_eq(c, ok[i].out);
		ck_assert_double_eq(strtod(c[0] == '[' ? c + 1 : c, NULL),
				    strtod(ok[i].in[0] == '[' ? ok[i].in + 1 : ok[i].in, NULL));
		free(c);
	}
	struct {
		const char *scope, *key, *in, *needle;
		int model;
	} bad[] = {
		{ "*", "wieght", "1", "unknown parameter 'wieght'", 0 },
		{ "everything", "weight", "1", "scope 'everything'", 0 },
		{ "class:nope", "weight", "1", "unknown tensor class", 0 },
		{ "layers:3-1", "weight", "1", "layers:A-B", 0 },
		{ "*", "weight", "1", "model 2", 2 },
		{ "*", "delta", "0.1", "global", 0 },
		{ "*", "weight", "abc", "not a number", 0 },
		{ "*", "weight", "[1, x]", "list of numbers", 0 },
		{ "*", "weight", "nan", "not a number", 0 },
		{ "*", "normalize", "maybe", "true or false", -1 },
		{ "*", "out_dtype", "float7", "unknown dtype", -1 },
		{ "*", "merge_method", "magic", "unknown method", -1 },
		{ "class:attn", "merge_method", "aoe", "whole recipe", -1 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err.msg[0] = '\0';
		ck_assert_int_eq(cr_state_canonical(bad[i].scope, bad[i].model, 2, bad[i].key, bad[i].in, &c, &err), -1);
		ck_assert_msg(strstr(err.msg, bad[i].needle), "case %zu: '%s' lacks '%s'", i, err.msg, bad[i].needle);
	}
	char buf[40];
	double vals[] = { 0.1, 1.0 / 3, 1e-300, 123456789.125, -2.5 };
	for (size_t i = 0; i < 5; i++) {
		cr_fmt_double(vals[i], buf, sizeof buf);
		ck_assert_double_eq(strtod(buf, NULL), vals[i]);
	}
	cr_fmt_double(0.1, buf, sizeof buf);
	ck_assert_str_eq(buf, "0.1");
	cr_fmt_double(10, buf, sizeof buf);
	ck_assert_str_eq(buf, "10");
	cr_fmt_double(-300, buf, sizeof buf);
	ck_assert_str_eq(buf, "-300");
}
END_TEST

/* ---------------------------------------------------------------- events, replay, undo */

/* The test's own model of a state: the last value per key, independent of cr_state. */
struct model_kv {
	char scope[32], key[16], value[32];
	int model, set;
};

START_TEST(test_replay_random)
{
	const char *path = tmp_db("replay.db");
	struct cr_store *st = open_ok(path);
	cr_error err = { 0 };
	int64_t sid = new_session(st, "replay", 3);
	static const char *const scopes[] = { "*", "class:routed_expert", "filter:self_attn", "layers:1-2" };
	static const char *const keys[] = { "weight", "density" };
	struct model_kv kv[4 * 2 * 3];
	memset(kv, 0, sizeof kv);
	struct cr_state live;
	cr_state_init(&live);
	unsigned seed = 12345;
	int nset = 0;
	for (int i = 0; i < 300; i++) {
		seed = seed * 1103515245u + 12345u;
		int sc = (seed >> 8) % 4, k = (seed >> 12) % 2, m = (seed >> 16) % 3, unset = (seed >> 20) % 7 == 0;
		char val[32];
		snprintf(val, sizeof val, "%u.%03u", (seed >> 4) % 3, (seed >> 10) % 1000);
		struct model_kv *e = &kv[(sc * 2 + k) * 3 + m];
		ck_assert_msg(cr_store_set(st, sid, scopes[sc], m, keys[k], unset ? NULL : val, &live, NULL, &err) == 0,
			      "%s", err.msg);
		snprintf(e->scope, sizeof e->scope, "%s", scopes[sc]);
		snprintf(e->key, sizeof e->key, "%s", keys[k]);
		e->model = m;
		e->set = !unset;
		if (!unset) {
			snprintf(e->value, sizeof e->value, "%.17g", strtod(val, NULL));
			nset++;
		}
	}
	ck_assert_int_gt(nset, 200);
	/* a few undos and redos in between */
	int changed;
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(cr_store_undo(st, sid, &live, &changed, &err), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(cr_store_redo(st, sid, &live, &changed, &err), 0);
	cr_store_close(st);

	/* reopen and replay: the same state as the one kept live, and the model's values */
	st = open_ok(path);
	struct cr_state replayed;
	ck_assert_int_eq(cr_store_session_state(st, sid, -1, &replayed, &err), 0);
	ck_assert(cr_state_equal(&replayed, &live));
	size_t expect_n = 0;
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
		if (!kv[i].set)
			continue;
		expect_n++;
		const char *v = cr_state_get(&replayed, kv[i].scope, kv[i].model, kv[i].key);
		ck_assert_ptr_nonnull(v);
		ck_assert_double_eq(strtod(v, NULL), strtod(kv[i].value, NULL));
	}
	ck_assert_int_eq(replayed.n, expect_n);
	/* and hence the same recipe */
	char *y1 = cr_store_session_recipe(st, sid, &err);
	struct cr_session_info si;
	ck_assert_int_eq(cr_store_session_get(st, sid, &si, &err), 0);
	char *y2 = cr_state_to_yaml(&live, si.base, (const char *const *)si.parents, si.nparents, &err);
	ck_assert_ptr_nonnull(y1);
	ck_assert_str_eq(y1, y2);
	free(y1);
	free(y2);
	cr_session_info_free(&si);
	/* replay up to an earlier seq differs from the end */
	struct cr_state early;
	ck_assert_int_eq(cr_store_session_state(st, sid, 3, &early, &err), 0);
	ck_assert_int_le(early.n, 3);
	cr_state_free(&early);
	cr_state_free(&replayed);
	cr_state_free(&live);
	cr_store_close(st);
}
END_TEST

START_TEST(test_undo_redo)
{
	struct cr_store *st = open_ok(tmp_db("undo.db"));
	cr_error err = { 0 };
	int64_t sid = new_session(st, "undo", 2);
	struct cr_state s;
	cr_state_init(&s);
	int changed, u, r;
	ck_assert_int_eq(cr_store_set(st, sid, "*", 0, "weight", "1", &s, NULL, &err), 0);
	struct cr_change batch[] = { { "*", 1, "weight", "0.5" }, { "*", 0, "weight", "0.25" } };
	ck_assert_int_eq(cr_store_set_batch(st, sid, batch, 2, &s, &err), 0);
	int64_t seq;
	ck_assert_int_eq(cr_store_set(st, sid, "*", 0, "weight", "0.75", &s, &seq, &err), 0);
	ck_assert_int_eq(seq, 4);
	/* a no-op change is not an event */
	ck_assert_int_eq(cr_store_set(st, sid, "*", 0, "weight", "0.750", &s, &seq, &err), 0);
	ck_assert_int_eq(seq, 0);
	ck_assert_int_eq(cr_store_undo_depth(st, sid, &u, &r, &err), 0);
	ck_assert_int_eq(u, 3);
	ck_assert_int_eq(r, 0);

	ck_assert_int_eq(cr_store_undo(st, sid, &s, &changed, &err), 0);
	ck_assert_str_eq(cr_state_get(&s, "*", 0, "weight"), "0.25");
	ck_assert_int_eq(cr_store_undo(st, sid, &s, &changed, &err), 0); /* the batch, both at once */
	ck_assert_str_eq(cr_state_get(&s, "*", 0, "weight"), "1");
	ck_assert_ptr_null(cr_state_get(&s, "*", 1, "weight"));
	ck_assert_int_eq(cr_store_undo(st, sid, &s, &changed, &err), 0);
	ck_assert_int_eq(s.n, 0);
	ck_assert_int_eq(cr_store_undo(st, sid, &s, &changed, &err), 0);
	ck_assert_int_eq(changed, 0); /* nothing left */
	ck_assert_int_eq(cr_store_undo_depth(st, sid, &u, &r, &err), 0);
	ck_assert_int_eq(u, 0);
	ck_assert_int_eq(r, 3);

	ck_assert_int_eq(cr_store_redo(st, sid, &s, &changed, &err), 0);
	ck_assert_int_eq(cr_store_redo(st, sid, &s, &changed, &err), 0);
	ck_assert_str_eq(cr_state_get(&s, "*", 0, "weight"), "0.25");
	ck_assert_str_eq(cr_state_get(&s, "*", 1, "weight"), "0.5");
	/* a new change drops the redo stack */
	ck_assert_int_eq(cr_store_set(st, sid, "*", -1, "delta", "0.1", &s, NULL, &err), 0);
	ck_assert_int_eq(cr_store_redo(st, sid, &s, &changed, &err), 0);
	ck_assert_int_eq(changed, 0);
	ck_assert_int_eq(cr_store_undo_depth(st, sid, &u, &r, &err), 0);
	ck_assert_int_eq(u, 3);
	ck_assert_int_eq(r, 0);

	/* the live state always equals a replay, and the log records undo/redo as events */
	struct cr_state rep;
	ck_assert_int_eq(cr_store_session_state(st, sid, -1, &rep, &err), 0);
	ck_assert(cr_state_equal(&rep, &s));
	cr_state_free(&rep);
	struct cr_event *ev;
	size_t nev;
	ck_assert_int_eq(cr_store_events(st, sid, &ev, &nev, &err), 0);
	int nundo = 0, nredo = 0;
	for (size_t i = 0; i < nev; i++) {
		ck_assert_int_eq(ev[i].seq, (int64_t)i + 1);
		nundo += ev[i].kind == CR_EV_UNDO;
		nredo += ev[i].kind == CR_EV_REDO;
	}
	ck_assert_int_eq(nundo, 4); /* 1 + 2 (batch) + 1 */
	ck_assert_int_eq(nredo, 3); /* 1 + 2 (batch) */
	ck_assert_int_eq(nev, 4 + 4 + 3 + 1);
	cr_events_free(ev, nev);
	/* errors name the problem and change nothing */
	ck_assert_int_eq(cr_store_set(st, sid, "*", 5, "weight", "1", &s, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "model 5"));
	ck_assert_int_eq(cr_store_set(st, 999, "*", 0, "weight", "1", NULL, NULL, &err), -1);
	ck_assert_int_eq(err.code, CR_E_NOTFOUND);
	cr_state_free(&s);
	cr_store_close(st);
}
END_TEST

START_TEST(test_sessions_crud)
{
	const char *path = tmp_db("crud.db");
	struct cr_store *st = open_ok(path);
	cr_error err = { 0 };
	int64_t a = new_session(st, "alpha", 2), b = new_session(st, "beta", 3), c = new_session(st, "beta", 1);
	int64_t id;
	ck_assert_int_eq(cr_store_session_find(st, "alpha", &id, &err), 0);
	ck_assert_int_eq(id, a);
	char num[32];
	snprintf(num, sizeof num, "%lld", (long long)c);
	ck_assert_int_eq(cr_store_session_find(st, num, &id, &err), 0);
	ck_assert_int_eq(id, c);
	ck_assert_int_eq(cr_store_session_find(st, "beta", &id, &err), -1); /* two of them */
	ck_assert_ptr_nonnull(strstr(err.msg, "2 sessions"));
	ck_assert_int_eq(cr_store_session_find(st, "gamma", &id, &err), -1);
	ck_assert_int_eq(err.code, CR_E_NOTFOUND);
	ck_assert_int_eq(cr_store_session_rename(st, c, "gamma", &err), 0);
	ck_assert_int_eq(cr_store_session_find(st, "beta", &id, &err), 0);
	ck_assert_int_eq(id, b);

	struct cr_session_info *v;
	size_t n;
	ck_assert_int_eq(cr_store_session_list(st, &v, &n, &err), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(v[0].id, c); /* newest first */
	ck_assert_int_eq(v[1].nparents, 3);
	ck_assert_str_eq(v[1].parents[2], "/models/p2");
	cr_session_list_free(v, n);

	/* deleting cascades to events, runs and run tensors */
	int64_t run;
	ck_assert_int_eq(cr_store_set(st, b, "*", 0, "weight", "1", NULL, NULL, &err), 0);
	ck_assert_int_eq(cr_store_run_begin(st, b, "x", NULL, "/tmp/out", &run, &err), 0);
	ck_assert_int_eq(cr_store_run_tensor(st, run, "t", "base", "0", "ff", &err), 0);
	ck_assert_int_eq(cr_store_run_finish(st, run, CR_RUN_DONE, 1, 1, 0.5, NULL, &err), 0);
	ck_assert_int_eq(cr_store_session_delete(st, b, &err), 0);
	ck_assert_int_eq(cr_store_session_delete(st, b, &err), -1);
	ck_assert_int_eq(err.code, CR_E_NOTFOUND);
	cr_store_close(st);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM event"), 0);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM run"), 0);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM run_tensor"), 0);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM session_parent"), 2 + 1);
}
END_TEST

START_TEST(test_checkpoint_identity)
{
	const char *dir = fixture("models/dsv3/r1");
	struct stat sb;
	if (stat(dir, &sb) != 0)
		return;
	const char *path = tmp_db("ckpt.db");
	struct cr_store *st = open_ok(path);
	cr_error err = { 0 };
	struct cr_ckpt *c;
	ck_assert_msg(cr_ckpt_open(dir, &c, &err) == 0, "%s", err.msg);
	int64_t id, id2;
	ck_assert_msg(cr_store_checkpoint_put(st, c, &id, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(cr_store_checkpoint_id(st, dir, &id2, &err), 0);
	ck_assert_int_eq(id, id2); /* one row per path */
	cr_ckpt_close(c);
	cr_store_close(st);
	/* the recorded size is the sum of the shard files, counted here with stat */
	long long total = 0;
	int nshards = 0;
	for (int i = 1; i <= 5; i++) {
		char shard[4096];
		snprintf(shard, sizeof shard, "%s/model-%06d-of-000005.safetensors", dir, i);
		if (stat(shard, &sb) == 0) {
			total += sb.st_size;
			nshards++;
		}
	}
	ck_assert_int_eq(nshards, 5);
	ck_assert_int_eq(sql_int(path, "SELECT size FROM checkpoint"), total);
	ck_assert_int_eq(sql_int(path, "SELECT shards FROM checkpoint"), 5);
	ck_assert_int_eq(sql_int(path, "SELECT layers FROM checkpoint"), 4);
	ck_assert_int_ne(sql_int(path, "SELECT header_hash FROM checkpoint"), 0);
	char *arch = sql_text(path, "SELECT arch FROM checkpoint");
	ck_assert_str_eq(arch, "DeepseekV3ForCausalLM");
	free(arch);
	char *p = sql_text(path, "SELECT path FROM checkpoint");
	char *real = realpath(dir, NULL);
	ck_assert_str_eq(p, real);
	free(p);
	free(real);
}
END_TEST

/* ---------------------------------------------------------------- runs */

struct tensor_writer {
	struct cr_store *st;
	int64_t run;
	int first, count;
};

static void *write_tensors(void *arg)
{
	struct tensor_writer *w = arg;
	for (int i = w->first; i < w->first + w->count; i++) {
		char name[64], sum[32];
		snprintf(name, sizeof name, "model.layers.%d.weight", i);
		snprintf(sum, sizeof sum, "%016x", (unsigned)i * 2654435761u);
		cr_store_run_tensor(w->st, w->run, name, i % 3 ? "compute" : "base", i % 3 ? NULL : "0", sum, NULL);
	}
	return NULL;
}

START_TEST(test_runs)
{
	struct cr_store *st = open_ok(tmp_db("runs.db"));
	cr_error err = { 0 };
	int64_t sid = new_session(st, "runs", 2), run;
	ck_assert_int_eq(cr_store_set(st, sid, "*", -1, "merge_method", "linear", NULL, NULL, &err), 0);
	ck_assert_int_eq(cr_store_run_begin(st, sid, "merge_method: linear\n", "/recipes", "/tmp/out-a", &run, &err), 0);
	/* tensors from two threads at once */
	pthread_t t[2];
	struct tensor_writer w[2] = { { st, run, 0, 500 }, { st, run, 500, 500 } };
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, write_tensors, &w[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(cr_store_run_progress(st, run, 100, 500, 0.5, &err), 0);
	struct cr_run_info r;
	ck_assert_int_eq(cr_store_run_get(st, run, &r, &err), 0);
	ck_assert_int_eq(r.status, CR_RUN_RUNNING);
	ck_assert_int_eq(r.pid, getpid());
	ck_assert_int_eq(r.event_seq, 1);
	ck_assert_str_eq(r.recipe_dir, "/recipes");
	cr_run_info_free(&r);
	ck_assert_int_eq(cr_store_run_finish(st, run, CR_RUN_DONE, 4096, 1000, 2.5, NULL, &err), 0);
	ck_assert_int_eq(cr_store_run_get(st, run, &r, &err), 0);
	ck_assert_int_eq(r.status, CR_RUN_DONE);
	ck_assert_int_eq(r.bytes, 4096);
	ck_assert_double_eq(r.seconds, 2.5);
	ck_assert_int_gt(r.finished_ms, 0);
	ck_assert_str_eq(r.recipe, "merge_method: linear\n");
	cr_run_info_free(&r);

	struct cr_run_tensor *tv;
	size_t n;
	ck_assert_int_eq(cr_store_run_tensors(st, run, &tv, &n, &err), 0);
	ck_assert_int_eq(n, 1000);
	int seen[1000] = { 0 };
	for (size_t i = 0; i < n; i++) {
		int k = atoi(tv[i].name + strlen("model.layers."));
		char sum[32];
		snprintf(sum, sizeof sum, "%016x", (unsigned)k * 2654435761u);
		ck_assert_str_eq(tv[i].checksum, sum);
		ck_assert_str_eq(tv[i].decision, k % 3 ? "compute" : "base");
		seen[k]++;
		if (i)
			ck_assert_int_lt(strcmp(tv[i - 1].name, tv[i].name), 0);
	}
	for (int k = 0; k < 1000; k++)
		ck_assert_int_eq(seen[k], 1);
	cr_run_tensors_free(tv, n);

	int64_t run2;
	ck_assert_int_eq(cr_store_run_begin(st, sid, "y", NULL, "/tmp/out-b", &run2, &err), 0);
	ck_assert_int_eq(cr_store_run_finish(st, run2, CR_RUN_FAILED, 0, 0, 0.1, "p.safetensors: tensor 'w': NaN", &err), 0);
	struct cr_run_info *rv;
	ck_assert_int_eq(cr_store_runs(st, sid, &rv, &n, &err), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(rv[1].status, CR_RUN_FAILED);
	ck_assert_str_eq(rv[1].error, "p.safetensors: tensor 'w': NaN");
	cr_run_list_free(rv, n);
	struct cr_session_info si;
	ck_assert_int_eq(cr_store_session_get(st, sid, &si, &err), 0);
	ck_assert_int_eq(si.nruns, 2);
	ck_assert_str_eq(si.last_status, "failed");
	cr_session_info_free(&si);
	ck_assert_int_eq(cr_store_run_finish(st, 9999, CR_RUN_DONE, 0, 0, 0, NULL, &err), -1);
	cr_store_close(st);
}
END_TEST

/* A child begins a run and is killed with SIGKILL mid-run; the next open marks it interrupted,
 * while a run of a live process (this one) stays running. */
START_TEST(test_killed_run_interrupted)
{
	const char *path = tmp_db("killed.db");
	cr_error err = { 0 };
	struct cr_store *st = open_ok(path);
	int64_t sid = new_session(st, "kill", 1), mine;
	ck_assert_int_eq(cr_store_run_begin(st, sid, "mine", NULL, "/tmp/mine", &mine, &err), 0);
	cr_store_close(st);

	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct cr_store *cs;
		int64_t run;
		if (cr_store_open(path, &cs, NULL) < 0 || cr_store_run_begin(cs, sid, "child", NULL, "/tmp/c", &run, NULL) < 0)
			_exit(1);
		if (write(fds[1], &run, sizeof run) != sizeof run)
			_exit(1);
		for (;;)
			pause();
	}
	int64_t run = 0;
	ck_assert_int_eq(read(fds[0], &run, sizeof run), (ssize_t)sizeof run);
	close(fds[0]);
	close(fds[1]);
	/* while the child lives, opening changes nothing */
	st = open_ok(path);
	ck_assert_int_eq(cr_store_recovered(st), 0);
	cr_store_close(st);
	ck_assert_int_eq(kill(child, SIGKILL), 0);
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	st = open_ok(path);
	ck_assert_int_eq(cr_store_recovered(st), 1);
	struct cr_run_info r;
	ck_assert_int_eq(cr_store_run_get(st, run, &r, &err), 0);
	ck_assert_int_eq(r.status, CR_RUN_INTERRUPTED);
	ck_assert_ptr_nonnull(r.error);
	ck_assert_int_gt(r.finished_ms, 0);
	cr_run_info_free(&r);
	ck_assert_int_eq(cr_store_run_get(st, mine, &r, &err), 0);
	ck_assert_int_eq(r.status, CR_RUN_RUNNING);
	cr_run_info_free(&r);
	cr_store_close(st);
	/* a recorded pid whose process start time differs (a recycled pid) counts as dead */
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "UPDATE run SET pid_start = pid_start + 1 WHERE status = 'running'", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	st = open_ok(path);
	ck_assert_int_eq(cr_store_recovered(st), 1);
	cr_store_close(st);
}
END_TEST

/* Two processes append N events each to one session at the same time. */
START_TEST(test_concurrent_writers)
{
	const char *path = tmp_db("concurrent.db");
	enum { N = 300 };
	struct cr_store *st = open_ok(path);
	int64_t sid = new_session(st, "busy", 2);
	cr_store_close(st);
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			char c;
			struct cr_store *cs;
			close(go[1]);
			if (cr_store_open(path, &cs, NULL) < 0)
				_exit(1);
			if (read(go[0], &c, 1) != 0) /* wait until the parent closes the pipe: both start together */
				_exit(1);
			for (int i = 0; i < N; i++) {
				char scope[32], val[32];
				snprintf(scope, sizeof scope, "filter:proc%d.", k);
				snprintf(val, sizeof val, "%d", i + 1);
				if (cr_store_set(cs, sid, scope, k, "weight", val, NULL, NULL, NULL) < 0)
					_exit(2);
				usleep(200); /* like a person pressing keys: lets the other writer in */
			}
			cr_store_close(cs);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int k = 0; k < 2; k++) {
		int status;
		ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed (%d)", k, status);
	}
	st = open_ok(path);
	cr_error err = { 0 };
	struct cr_event *ev;
	size_t n;
	ck_assert_int_eq(cr_store_events(st, sid, &ev, &n, &err), 0);
	ck_assert_int_eq(n, 2 * N);
	int last[2] = { 0, 0 }, interleaved = 0;
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(ev[i].seq, (int64_t)i + 1); /* no gaps, no duplicates */
		int k = ev[i].model, v = atoi(ev[i].new_value);
		ck_assert_int_eq(v, last[k] + 1); /* each writer's events in its order */
		ck_assert(last[k] == 0 ? ev[i].old_value == NULL : atoi(ev[i].old_value) == last[k]);
		last[k] = v;
		if (i && ev[i].model != ev[i - 1].model)
			interleaved++;
	}
	ck_assert_int_eq(last[0], N);
	ck_assert_int_eq(last[1], N);
	cr_events_free(ev, n);
	ck_assert_int_eq(cr_store_integrity_check(st, &err), 0);
	cr_store_close(st);
	fprintf(stderr, "concurrent writers: %d switches between writers in %d events\n", interleaved, 2 * N);
	ck_assert_int_ge(interleaved, 2); /* they really wrote at the same time */
}
END_TEST

/* Several processes open a database that does not exist yet, at once: one
 * creates the schema, the others wait for it; all of them can write. */
START_TEST(test_concurrent_create)
{
	const char *path = tmp_db("race/created.db");
	enum { K = 4 };
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t kids[K];
	for (int k = 0; k < K; k++) {
		kids[k] = fork();
		ck_assert_int_ge(kids[k], 0);
		if (kids[k] == 0) {
			char c, name[16];
			struct cr_store *cs;
			int64_t id;
			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(1);
			if (cr_store_open(path, &cs, NULL) < 0)
				_exit(2);
			snprintf(name, sizeof name, "p%d", k);
			if (cr_store_session_create(cs, name, NULL, NULL, 0, NULL, &id, NULL) < 0)
				_exit(3);
			cr_store_close(cs);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int k = 0; k < K; k++) {
		int status;
		ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "opener %d failed (%d)", k, status);
	}
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM session"), K);
	ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), CR_STORE_SCHEMA_VERSION);
}
END_TEST

/* ---------------------------------------------------------------- stats cache */

static void fill_sums(struct cr_store_sums *v, int seed)
{
	memset(v, 0, sizeof *v);
	v->identical = seed % 2;
	v->nelem = 1000u + (unsigned)seed;
	v->n = 990;
	v->nan = 3;
	v->inf = 7;
	v->base_nan = 1;
	v->base_inf = 2;
	v->base_sq = 2.5 * seed;
	v->sum_bb = 0.1;
	v->sum_pp = 1.0 / 3;
	v->sum_pb = -4e-300;
	v->sum_dd = 0.45;
	v->sum_absd = 12.75;
	v->max_absd = 0.01;
	v->hist_width = 1.0 / 1024;
	v->nbins = 41;
	for (size_t i = 0; i < v->nbins; i++)
		v->hist[i] = (uint64_t)i * 1000003u + (unsigned)seed + (i == 40 ? (1ull << 62) : 0);
}

START_TEST(test_stats_cache)
{
	const char *path = tmp_db("stats.db");
	struct cr_store *st = open_ok(path);
	cr_error err = { 0 };
	struct cr_file_identity bw = { "/m/base/model-1.safetensors", 1000, 111, 0xfeedfacecafebeefull };
	struct cr_file_identity bsc = { "/m/base/model-2.safetensors", 1500, 112, 0x77 };
	struct cr_file_identity pw = { "/m/r1/model-1.safetensors", 2000, 222, 0x1234 };
	struct cr_file_identity psc = { "/m/r1/model-2.safetensors", 2500, 223, 0x99 };
	struct cr_store_src base = { &bw, &bsc }, par = { &pw, &psc }, base_noscale = { &bw, NULL };
	struct cr_store_sums v, got;
	const char *t1 = "model.layers.1.mlp.experts.0.w1.weight", *t2 = "model.embed_tokens.weight";
	ck_assert_int_eq(cr_store_begin(st, &err), 0);
	fill_sums(&v, 1);
	ck_assert_int_eq(cr_store_stats_put(st, t1, 1, &base, &par, &v, &err), 0);
	fill_sums(&v, 2);
	ck_assert_int_eq(cr_store_stats_put(st, t2, 1, &base_noscale, &(struct cr_store_src){ &pw, NULL }, &v, &err), 0);
	ck_assert_int_eq(cr_store_agree_put(st, t1, 1, &base, &par, 1, 900, 990, &err), 0);
	ck_assert_int_eq(cr_store_commit(st, &err), 0);
	cr_store_close(st);

	/* a fresh handle (no remembered ids) reads back every field exactly */
	st = open_ok(path);
	fill_sums(&v, 1);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base, &par, &got, &err), 1);
	ck_assert_mem_eq(&got, &v, sizeof v);
	fill_sums(&v, 2);
	ck_assert_int_eq(cr_store_stats_get(st, t2, 1, &base_noscale, &(struct cr_store_src){ &pw, NULL }, &got, &err), 1);
	ck_assert_mem_eq(&got, &v, sizeof v);
	uint64_t agree = 0, counted = 0;
	ck_assert_int_eq(cr_store_agree_get(st, t1, 1, &base, &par, 1, &agree, &counted, &err), 1);
	ck_assert_int_eq(agree, 900);
	ck_assert_int_eq(counted, 990);
	/* misses: another tensor, another version, a scale file missing or extra, base and parent swapped */
	ck_assert_int_eq(cr_store_stats_get(st, "missing", 1, &base, &par, &got, &err), 0);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 2, &base, &par, &got, &err), 0);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base_noscale, &par, &got, &err), 0);
	ck_assert_int_eq(cr_store_stats_get(st, t2, 1, &base, &(struct cr_store_src){ &pw, NULL }, &got, &err), 0);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &par, &base, &got, &err), 0);
	ck_assert_int_eq(cr_store_agree_get(st, t1, 2, &base, &par, 1, &agree, &counted, &err), 0);
	/* the parent's scale file changed on disk (mtime, then header): nothing matches ... */
	struct cr_file_identity psc2 = psc;
	psc2.mtime_ns++;
	struct cr_store_src par2 = { &pw, &psc2 };
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base, &par2, &got, &err), 0);
	ck_assert_int_eq(cr_store_agree_get(st, t1, 1, &base, &par2, 1, &agree, &counted, &err), 0);
	psc2.mtime_ns--;
	psc2.header_hash ^= 1;
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base, &par2, &got, &err), 0);
	/* ... and storing under the new identity drops the old identity's rows */
	fill_sums(&v, 3);
	ck_assert_int_eq(cr_store_stats_put(st, t1, 1, &base, &par2, &v, &err), 0);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base, &par2, &got, &err), 1);
	ck_assert_mem_eq(&got, &v, sizeof v);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base, &par, &got, &err), 0);
	ck_assert_int_eq(cr_store_agree_get(st, t1, 1, &base, &par, 1, &agree, &counted, &err), 0);
	/* another connection replaces the base's identity while this one remembers the old file ids */
	struct cr_store *other = open_ok(path);
	struct cr_file_identity bw2 = bw;
	bw2.size++;
	struct cr_store_src base2 = { &bw2, &bsc };
	ck_assert_int_eq(cr_store_stats_put(other, t1, 1, &base2, &par2, &v, &err), 0);
	cr_store_close(other);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base, &par2, &got, &err), 0); /* stale id: a miss */
	ck_assert_msg(cr_store_stats_put(st, t1, 1, &base, &par2, &v, &err) == 0, "%s", err.msg); /* retried */
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base, &par2, &got, &err), 1);
	ck_assert_int_eq(cr_store_stats_get(st, t1, 1, &base2, &par2, &got, &err), 0);
	ck_assert_int_eq(cr_store_stats_put(st, t2, 1, &base_noscale, &(struct cr_store_src){ &pw, NULL }, &v, &err), 0);
	cr_store_close(st);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM tensor_stats"), 2);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sign_agree"), 0);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM file WHERE path = '/m/r1/model-2.safetensors'"), 1);
}
END_TEST

/* ---------------------------------------------------------------- the store as the scan's cache */

/* Copy a checkpoint folder (so a test may touch its files). */
static void copy_dir(const char *from, const char *to)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
	ck_assert_int_eq(system(cmd), 0);
}

static struct cr_stats *scan(const struct cr_ckpt *base, struct cr_ckpt *const *parents, size_t n,
			     struct cr_stats_cache *cache)
{
	struct cr_stats_options o = { .threads = 2, .cache = cache };
	struct cr_stats *s;
	cr_error err = { 0 };
	ck_assert_msg(cr_stats_scan(base, (const struct cr_ckpt *const *)parents, n, &o, &s, &err) == 0, "%s", err.msg);
	return s;
}

static void same_results(const struct cr_stats *a, const struct cr_stats *b)
{
	ck_assert_int_eq(a->ntensors, b->ntensors);
	for (size_t i = 0; i < a->ntensors; i++) {
		const struct cr_stats_tensor *x = &a->tensors[i], *y = &b->tensors[i];
		ck_assert(isnan(x->sign_agree) ? isnan(y->sign_agree) : x->sign_agree == y->sign_agree);
		for (size_t p = 0; p < a->nparents; p++) {
			ck_assert_int_eq(x->pairs[p].status, y->pairs[p].status);
			ck_assert_msg(memcmp(&x->pairs[p].s, &y->pairs[p].s, sizeof x->pairs[p].s) == 0, "%s: sums differ",
				      x->t->name);
		}
	}
}

START_TEST(test_store_as_stats_cache)
{
	struct stat sb;
	if (stat(fixture("models/dsv3/v3-base"), &sb) != 0)
		return;
	char r1[600], r0528[600];
	snprintf(r1, sizeof r1, "%s/r1", tmpdir);
	snprintf(r0528, sizeof r0528, "%s/r1-0528", tmpdir);
	copy_dir(fixture("models/dsv3/r1"), r1);
	copy_dir(fixture("models/dsv3/r1-0528"), r0528);
	const char *path = tmp_db("scan.db");
	cr_error err = { 0 };
	struct cr_ckpt *base, *par[2];
	ck_assert_int_eq(cr_ckpt_open(fixture("models/dsv3/v3-base"), &base, &err), 0);
	ck_assert_int_eq(cr_ckpt_open(r1, &par[0], &err), 0);
	ck_assert_int_eq(cr_ckpt_open(r0528, &par[1], &err), 0);

	/* no cache: the reference */
	struct cr_stats *ref = scan(base, par, 2, NULL);
	ck_assert_int_gt(ref->bytes_read, 0);
	/* first scan through the store fills it, the second reads no tensor data */
	struct cr_stats_cache cache;
	ck_assert_msg(cr_store_stats_cache_open(path, &cache, &err) == 0, "%s", err.msg);
	struct cr_stats *s1 = scan(base, par, 2, &cache);
	cr_stats_cache_close(&cache);
	same_results(ref, s1);
	ck_assert_int_eq(cr_store_stats_cache_open(path, &cache, &err), 0);
	struct cr_stats *s2 = scan(base, par, 2, &cache);
	cr_stats_cache_close(&cache);
	ck_assert_int_eq(s2->bytes_read, 0);
	ck_assert_int_eq(s2->tensors_cached, s2->tensors_selected);
	same_results(ref, s2);
	ck_assert_int_gt(sql_int(path, "SELECT count(*) FROM tensor_stats"), 0);

	/* a parent's shard changes on disk (new mtime): its tensors are read again, the rest are not */
	cr_ckpt_close(par[0]);
	char shard[700];
	snprintf(shard, sizeof shard, "%s/model-000002-of-000005.safetensors", r1);
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1234567890, 0 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, shard, ts, 0), 0);
	ck_assert_int_eq(cr_ckpt_open(r1, &par[0], &err), 0);
	ck_assert_int_eq(cr_store_stats_cache_open(path, &cache, &err), 0);
	struct cr_stats *s3 = scan(base, par, 2, &cache);
	cr_stats_cache_close(&cache);
	ck_assert_int_gt(s3->bytes_read, 0);
	ck_assert_int_gt(s3->tensors_cached, 0);
	ck_assert_int_lt(s3->tensors_cached, s3->tensors_selected);
	same_results(ref, s3);
	/* the old identity of that file is gone from the store, with its rows */
	char q[1000];
	snprintf(q, sizeof q, "SELECT count(*) FROM file WHERE path LIKE '%%/r1/model-000002-of-000005.safetensors'");
	ck_assert_int_eq(sql_int(path, q), 1);
	snprintf(q, sizeof q, "SELECT mtime_ns FROM file WHERE path LIKE '%%/r1/model-000002-of-000005.safetensors'");
	ck_assert_int_eq(sql_int(path, q), 1234567890ll * 1000000000ll);
	cr_stats_free(ref);
	cr_stats_free(s1);
	cr_stats_free(s2);
	cr_stats_free(s3);
	cr_ckpt_close(par[0]);
	cr_ckpt_close(par[1]);
	cr_ckpt_close(base);
}
END_TEST

/* ---------------------------------------------------------------- recipes */

/* A generic YAML tree comparison: mappings by key set, sequences in order,
 * scalars equal as numbers when both are numbers, as resolved paths under
 * model/base_model, else as text. */
struct ydoc {
	yaml_document_t d;
	const char *dir;
};

static int load_yaml(struct ydoc *y, const char *text, const char *dir)
{
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	int ok = yaml_parser_load(&p, &y->d);
	yaml_parser_delete(&p);
	y->dir = dir;
	return ok;
}

static int is_number(const char *s, double *v)
{
	char *end;
	*v = strtod(s, &end);
	return *s && !*end;
}

static int same_node(struct ydoc *a, yaml_node_t *x, struct ydoc *b, yaml_node_t *y, const char *key)
{
	if (x->type != y->type)
		return 0;
	if (x->type == YAML_SCALAR_NODE) {
		const char *s = (const char *)x->data.scalar.value, *t = (const char *)y->data.scalar.value;
		double u, v;
		if (is_number(s, &u) && is_number(t, &v))
			return u == v;
		if (key && (strcmp(key, "model") == 0 || strcmp(key, "base_model") == 0)) {
			char ps[4096], pt[4096];
			snprintf(ps, sizeof ps, "%s/%s", a->dir, s);
			snprintf(pt, sizeof pt, "%s/%s", b->dir, t);
			char *rs = realpath(s[0] == '/' ? s : ps, NULL), *rt = realpath(t[0] == '/' ? t : pt, NULL);
			int eq = rs && rt && strcmp(rs, rt) == 0;
			free(rs);
			free(rt);
			return eq;
		}
		return strcmp(s, t) == 0;
	}
	if (x->type == YAML_SEQUENCE_NODE) {
		long n = x->data.sequence.items.top - x->data.sequence.items.start;
		if (n != y->data.sequence.items.top - y->data.sequence.items.start)
			return 0;
		for (long i = 0; i < n; i++)
			if (!same_node(a, yaml_document_get_node(&a->d, x->data.sequence.items.start[i]), b,
				       yaml_document_get_node(&b->d, y->data.sequence.items.start[i]), key))
				return 0;
		return 1;
	}
	long n = x->data.mapping.pairs.top - x->data.mapping.pairs.start;
	if (n != y->data.mapping.pairs.top - y->data.mapping.pairs.start)
		return 0;
	for (yaml_node_pair_t *p = x->data.mapping.pairs.start; p < x->data.mapping.pairs.top; p++) {
		const char *k = (const char *)yaml_document_get_node(&a->d, p->key)->data.scalar.value;
		int found = 0;
		for (yaml_node_pair_t *q = y->data.mapping.pairs.start; q < y->data.mapping.pairs.top && !found; q++) {
			const char *k2 = (const char *)yaml_document_get_node(&b->d, q->key)->data.scalar.value;
			if (strcmp(k, k2) == 0) {
				if (!same_node(a, yaml_document_get_node(&a->d, p->value), b,
					       yaml_document_get_node(&b->d, q->value), k))
					return 0;
				found = 1;
			}
		}
		if (!found)
			return 0;
	}
	return 1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	b[n] = '\0';
	fclose(f);
	return b;
}

static const char *const fixture_recipes[] = {
	"aoe-r1t-dsv3",	      "aoe-trimind-dsv3",  "breadcrumbs-ties-mixtral", "linear-llama", "model-stock-mixtral",
	"nuslerp-llama",      "slerp-mixtral",	   "task-arithmetic-llama",    "ties-llama",
};

START_TEST(test_recipe_roundtrip_fixtures)
{
	char path[1024];
	snprintf(path, sizeof path, "%s.yaml", fixture("expected/x"));
	const char *dir = fixture("expected");
	struct stat sb;
	if (stat(dir, &sb) != 0) {
		fprintf(stderr, "no fixtures at %s: skipped\n", dir);
		return;
	}
	const char *name = fixture_recipes[_i];
	snprintf(path, sizeof path, "%s/%s.yaml", dir, name);
	char *text = slurp(path);
	cr_error err = { 0 };
	struct cr_recipe_import imp, imp2;
	ck_assert_msg(cr_state_from_yaml(text, strlen(text), path, dir, &imp, &err) == 0, "%s", err.msg);
	ck_assert_int_ge(imp.nmodels, 2);
	ck_assert_ptr_nonnull(cr_state_get(&imp.state, "*", -1, "merge_method"));
	char *out = cr_state_to_yaml(&imp.state, imp.base, (const char *const *)imp.models, imp.nmodels, &err);
	ck_assert_msg(out != NULL, "%s", err.msg);
	/* the export means the same recipe as the original, node for node */
	struct ydoc a, b;
	ck_assert(load_yaml(&a, text, dir));
	ck_assert(load_yaml(&b, out, "/"));
	ck_assert_msg(same_node(&a, yaml_document_get_root_node(&a.d), &b, yaml_document_get_root_node(&b.d), NULL),
		      "%s: export differs:\n%s", name, out);
	yaml_document_delete(&a.d);
	yaml_document_delete(&b.d);
	/* and imports to the same state */
	ck_assert_int_eq(cr_state_from_yaml(out, strlen(out), "export", "/", &imp2, &err), 0);
	ck_assert(cr_state_equal(&imp.state, &imp2.state));
	ck_assert(imp.base ? imp2.base && strcmp(imp.base, imp2.base) == 0 : !imp2.base);
	ck_assert_int_eq(imp.nmodels, imp2.nmodels);
	for (size_t i = 0; i < imp.nmodels; i++)
		ck_assert_str_eq(imp.models[i], imp2.models[i]);
	cr_recipe_import_free(&imp);
	cr_recipe_import_free(&imp2);
	free(out);
	free(text);
}
END_TEST

/* mergekit's first-match rule for a conditional list, evaluated on a YAML sequence of {filter, value}. */
static const char *first_match(yaml_document_t *d, yaml_node_t *seq, const char *tensor)
{
	for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *m = yaml_document_get_node(d, *it);
		const char *filter = NULL, *value = NULL;
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
			const char *k = (const char *)yaml_document_get_node(d, p->key)->data.scalar.value;
			const char *v = (const char *)yaml_document_get_node(d, p->value)->data.scalar.value;
			if (strcmp(k, "filter") == 0)
				filter = v;
			else if (strcmp(k, "value") == 0)
				value = v;
		}
		if (!filter || strstr(tensor, filter))
			return value;
	}
	return NULL;
}

static yaml_node_t *path_node(yaml_document_t *d, yaml_node_t *n, const char *key)
{
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
		if (strcmp((const char *)yaml_document_get_node(d, p->key)->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, p->value);
	return NULL;
}

START_TEST(test_recipe_first_match_kept)
{
	/* duplicate and unreachable entries: the export must pick the same value for every tensor */
	const char *src = "merge_method: linear\n"
			  "models:\n"
			  "  - model: /a\n"
			  "    parameters:\n"
			  "      weight:\n"
			  "        - filter: experts\n          value: 1\n"
			  "        - filter: mlp\n          value: 2\n"
			  "        - filter: experts\n          value: 3\n"
			  "        - value: 4\n"
			  "        - filter: attn\n          value: 5\n";
	static const char *const tensors[] = { "mlp.experts.0.w1", "mlp.gate", "self_attn.q", "norm" };
	cr_error err = { 0 };
	struct cr_recipe_import imp;
	ck_assert_msg(cr_state_from_yaml(src, strlen(src), "t.yaml", "/", &imp, &err) == 0, "%s", err.msg);
	char *out = cr_state_to_yaml(&imp.state, imp.base, (const char *const *)imp.models, imp.nmodels, &err);
	ck_assert_ptr_nonnull(out);
	struct ydoc a, b;
	ck_assert(load_yaml(&a, src, "/"));
	ck_assert(load_yaml(&b, out, "/"));
	yaml_node_t *wa = path_node(&a.d, path_node(&a.d, yaml_document_get_node(&a.d, path_node(&a.d, yaml_document_get_root_node(&a.d), "models")->data.sequence.items.start[0]), "parameters"), "weight");
	yaml_node_t *wb = path_node(&b.d, path_node(&b.d, yaml_document_get_node(&b.d, path_node(&b.d, yaml_document_get_root_node(&b.d), "models")->data.sequence.items.start[0]), "parameters"), "weight");
	ck_assert_ptr_nonnull(wa);
	ck_assert_ptr_nonnull(wb);
	for (size_t i = 0; i < 4; i++) {
		const char *va = first_match(&a.d, wa, tensors[i]), *vb = first_match(&b.d, wb, tensors[i]);
		ck_assert_msg(va && vb && strtod(va, NULL) == strtod(vb, NULL), "%s: %s vs %s\n%s", tensors[i], va, vb, out);
	}
	/* unreachable entries are gone: experts, mlp, fallback */
	ck_assert_int_eq(wb->data.sequence.items.top - wb->data.sequence.items.start, 3);
	yaml_document_delete(&a.d);
	yaml_document_delete(&b.d);
	free(out);
	cr_recipe_import_free(&imp);

	/* errors name the file and line */
	const char *bad = "merge_method: linear\nmodels:\n  - model: /a\n    parameters:\n      wieght: 1\n";
	ck_assert_int_eq(cr_state_from_yaml(bad, strlen(bad), "bad.yaml", "/", &imp, &err), -1);
	ck_assert_msg(strstr(err.msg, "bad.yaml:5") && strstr(err.msg, "wieght"), "%s", err.msg);
	const char *slices = "merge_method: passthrough\nslices:\n  - sources: []\n";
	ck_assert_int_eq(cr_state_from_yaml(slices, strlen(slices), "s.yaml", "/", &imp, &err), -1);
	ck_assert_msg(strstr(err.msg, "s.yaml:2") && strstr(err.msg, "slices"), "%s", err.msg);
}
END_TEST

START_TEST(test_export_scopes)
{
	/* newest scope first, * last, layer ranges as one filter per layer */
	struct cr_state s;
	cr_state_init(&s);
	cr_state_apply(&s, "*", -1, "merge_method", "aoe");
	cr_state_apply(&s, "*", 0, "weight", "0.5");
	cr_state_apply(&s, "class:routed_expert", 0, "weight", "1");
	cr_state_apply(&s, "layers:2-3", 0, "weight", "[0, 1]");
	cr_state_apply(&s, "*", -1, "delta", "0.05");
	cr_state_apply(&s, "*", -1, "out_dtype", "bfloat16");
	const char *models[] = { "/m/r1", "/m/weird: name" };
	cr_error err = { 0 };
	char *y = cr_state_to_yaml(&s, "/m/base", models, 2, &err);
	ck_assert_ptr_nonnull(y);
	const char *order[] = { "merge_method: aoe", "base_model: \"/m/base\"", "filter: \"layers.2.\"", "value: [0, 1]",
				"filter: \"layers.3.\"", "class: \"routed_expert\"", "value: 1", "value: 0.5",
				"model: \"/m/weird: name\"", "parameters:", "delta: 0.05", "out_dtype: bfloat16" };
	const char *at = y;
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		const char *p = strstr(at, order[i]);
		ck_assert_msg(p != NULL, "'%s' missing or out of order in:\n%s", order[i], y);
		at = p + strlen(order[i]);
	}
	/* a model index beyond the models is refused */
	ck_assert_ptr_null(cr_state_to_yaml(&s, "/m/base", models, 0, &err));
	free(y);
	cr_state_free(&s);
}
END_TEST

/* The recipe reader sees the same recipe in the export as in the original:
 * same method, dtypes, seed, models, and the same value of every parameter
 * for every tensor of the family (by name, class and layer position). */
static int same_path(const char *a, const char *b)
{
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	int eq = ra && rb && strcmp(ra, rb) == 0;
	free(ra);
	free(rb);
	return eq;
}

START_TEST(test_recipe_reader_same_parameters)
{
	const char *dir = fixture("expected");
	struct stat sb;
	if (stat(dir, &sb) != 0)
		return;
	char path[1024];
	snprintf(path, sizeof path, "%s/%s.yaml", dir, fixture_recipes[_i]);
	cr_error err = { 0 };
	struct cr_recipe *r1, *r2;
	ck_assert_msg(cr_recipe_load(path, &r1, NULL, NULL, &err) == 0, "%s", err.msg);
	char *text = slurp(path);
	struct cr_recipe_import imp;
	ck_assert_msg(cr_state_from_yaml(text, strlen(text), path, dir, &imp, &err) == 0, "%s", err.msg);
	char *out = cr_state_to_yaml(&imp.state, imp.base, (const char *const *)imp.models, imp.nmodels, &err);
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(cr_recipe_parse(out, strlen(out), "/nowhere/export.yaml", &r2, NULL, NULL, &err) == 0,
		      "the recipe reader refuses the export: %s\n%s", err.msg, out);
	ck_assert_int_eq(r1->method, r2->method);
	ck_assert_int_eq(r1->dtype, r2->dtype);
	ck_assert_int_eq(r1->out_dtype, r2->out_dtype);
	ck_assert_int_eq(r1->has_seed, r2->has_seed);
	ck_assert(r1->seed == r2->seed);
	ck_assert_int_eq(r1->nmodels, r2->nmodels);
	ck_assert(r1->base ? r2->base && same_path(r1->base_resolved, r2->base_resolved) : !r2->base);
	for (size_t m = 0; m < r1->nmodels; m++)
		ck_assert(same_path(r1->models[m].resolved, r2->models[m].resolved));
	struct cr_ckpt *c;
	ck_assert_msg(cr_ckpt_open(r1->models[0].resolved, &c, &err) == 0, "%s", err.msg);
	size_t compared = 0;
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		double pos = cr_layer_t(t->layer, c->num_layers);
		for (int m = -1; m < (int)r1->nmodels; m++)
			for (int p = 0; p < CR_P__COUNT; p++) {
				double v1 = -1, v2 = -2;
				int f1 = cr_recipe_param(r1, m, -1, -1, p, t->name, t->cls, pos, &v1);
				int f2 = cr_recipe_param(r2, m, -1, -1, p, t->name, t->cls, pos, &v2);
				ck_assert_msg(f1 == f2 && (!f1 || v1 == v2), "%s: %s model %d %s: %d/%.17g vs %d/%.17g",
					      fixture_recipes[_i], t->name, m, cr_param_info(p)->name, f1, v1, f2, v2);
				compared += f1;
			}
	}
	size_t entries = r1->params.n;
	for (size_t m = 0; m < r1->nmodels; m++)
		entries += r1->models[m].params.n;
	ck_assert(entries == 0 || compared > 0);
	cr_ckpt_close(c);
	cr_recipe_free(r1);
	cr_recipe_free(r2);
	cr_recipe_import_free(&imp);
	free(out);
	free(text);
}
END_TEST

START_TEST(test_recipe_import_forms)
{
	/* a single conditional mapping (not in a list), booleans, tokenizer_source, a seed */
	const char *src = "merge_method: dare_ties\nbase_model: /b\nmodels:\n  - model: /a\n    parameters:\n"
			  "      density: {class: routed_expert, value: 0.5}\n      weight: 1\n"
			  "parameters:\n  normalize: no\n  rescale: yes\nrandom_seed: 18446744073709551615\n"
			  "tokenizer_source: base\n";
	cr_error err = { 0 };
	struct cr_recipe_import imp;
	ck_assert_msg(cr_state_from_yaml(src, strlen(src), "f.yaml", "/", &imp, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(cr_state_get(&imp.state, "class:routed_expert", 0, "density"), "0.5");
	ck_assert_str_eq(cr_state_get(&imp.state, "*", -1, "normalize"), "false");
	ck_assert_str_eq(cr_state_get(&imp.state, "*", -1, "rescale"), "true");
	ck_assert_str_eq(cr_state_get(&imp.state, "*", -1, "random_seed"), "18446744073709551615");
	ck_assert_str_eq(cr_state_get(&imp.state, "*", -1, "tokenizer_source"), "base");
	char *out = cr_state_to_yaml(&imp.state, imp.base, (const char *const *)imp.models, imp.nmodels, &err);
	struct cr_recipe *r;
	ck_assert_msg(cr_recipe_parse(out, strlen(out), "x.yaml", &r, NULL, NULL, &err) == 0, "%s\n%s", err.msg, out);
	ck_assert(r->has_seed && r->seed == UINT64_MAX);
	ck_assert_str_eq(r->tokenizer_source, "base");
	double v;
	ck_assert_int_eq(cr_recipe_param(r, 0, -1, -1, CR_P_DENSITY, "model.layers.1.mlp.experts.0.up_proj.weight",
					 CR_CLASS_ROUTED_EXPERT, 0.5, &v),
			 1);
	ck_assert_double_eq(v, 0.5);
	ck_assert_int_eq(cr_recipe_param(r, -1, -1, -1, CR_P_NORMALIZE, "x", CR_CLASS_OTHER, 0, &v), 1);
	ck_assert_double_eq(v, 0);
	cr_recipe_free(r);
	free(out);
	cr_recipe_import_free(&imp);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_default_path);
	tcase_add_test(tc, test_fresh_schema);
	tcase_add_test(tc, test_migrate_v1);
	tcase_add_test(tc, test_newer_schema_refused);
	tcase_add_test(tc, test_canonical);
	tcase_add_test(tc, test_replay_random);
	tcase_add_test(tc, test_undo_redo);
	tcase_add_test(tc, test_sessions_crud);
	tcase_add_test(tc, test_checkpoint_identity);
	tcase_add_test(tc, test_runs);
	tcase_add_test(tc, test_killed_run_interrupted);
	tcase_add_test(tc, test_concurrent_writers);
	tcase_add_test(tc, test_concurrent_create);
	tcase_add_test(tc, test_stats_cache);
	tcase_add_test(tc, test_store_as_stats_cache);
	tcase_add_loop_test(tc, test_recipe_roundtrip_fixtures, 0, (int)(sizeof fixture_recipes / sizeof fixture_recipes[0]));
	tcase_add_loop_test(tc, test_recipe_reader_same_parameters, 0,
			    (int)(sizeof fixture_recipes / sizeof fixture_recipes[0]));
	tcase_add_test(tc, test_recipe_import_forms);
	tcase_add_test(tc, test_recipe_first_match_kept);
	tcase_add_test(tc, test_export_scopes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/check_store.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	int rc = run_suite(store_suite());
	if (tmpdir[0]) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			rc = 1;
	}
	return rc;
}
