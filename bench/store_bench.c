/*
 * Session store timings that the workbench depends on:
 * - one λ change recorded (cr_store_set) while a session already holds many events;
 * - undo (rebuilds the undo stack from the log);
 * - replaying a long session;
 * - the statistics cache for a DeepSeek-V3-sized pair (92k tensors x 2 parents):
 *   storing it in batched transactions, then reading it all back from a fresh
 *   handle (what reopening a session costs instead of a rescan).
 * usage: store_bench [DB] (default: a temporary file)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crucible/state.h"
#include "crucible/store.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const cr_error *e)
{
	fprintf(stderr, "store_bench: %s\n", e->msg);
	exit(1);
}

int main(int argc, char **argv)
{
	char path[256];
	snprintf(path, sizeof path, "/tmp/store_bench.%d.db", (int)getpid());
	const char *db = argc > 1 ? argv[1] : path;
	cr_error err = { 0 };
	struct cr_store *st;
	if (cr_store_open(db, &st, &err) < 0)
		die(&err);
	const char *parents[] = { "/m/base", "/m/r1", "/m/r1-0528" };
	int64_t sid;
	if (cr_store_session_create(st, "bench", "/m/base", parents, 3, NULL, &sid, &err) < 0)
		die(&err);

	/* a session with 10,000 changes, like hours of nudging λ */
	enum { NEV = 10000 };
	struct cr_state s;
	cr_state_init(&s);
	static const char *const scopes[] = { "*", "class:routed_expert", "class:attn", "layers:3-10", "filter:mlp." };
	double t0 = now(), worst = 0;
	for (int i = 0; i < NEV; i++) {
		char v[32];
		snprintf(v, sizeof v, "%.2f", (i % 100) / 100.0);
		double a = now();
		if (cr_store_set(st, sid, scopes[i % 5], i % 3, "weight", v, &s, NULL, &err) < 0)
			die(&err);
		double d = now() - a;
		if (d > worst)
			worst = d;
	}
	double t_set = (now() - t0) / NEV;
	t0 = now();
	int changed;
	for (int i = 0; i < 10; i++)
		if (cr_store_undo(st, sid, &s, &changed, &err) < 0)
			die(&err);
	double t_undo = (now() - t0) / 10;
	t0 = now();
	struct cr_state r;
	if (cr_store_session_state(st, sid, -1, &r, &err) < 0)
		die(&err);
	double t_replay = now() - t0;
	if (!cr_state_equal(&r, &s)) {
		fprintf(stderr, "store_bench: replay differs from the live state\n");
		return 1;
	}
	cr_state_free(&r);
	cr_state_free(&s);
	printf("lambda change recorded: %.3f ms mean, %.3f ms worst (session of %d events)\n", t_set * 1e3, worst * 1e3,
	       NEV);
	printf("undo with %d events in the log: %.3f ms\n", NEV, t_undo * 1e3);
	printf("replay of %d events: %.1f ms\n", NEV + 10, t_replay * 1e3);

	/* statistics cache: 91,991 tensors x 2 parents over 163 shards each */
	enum { NT = 91991, NSHARD = 163 };
	struct cr_file_identity files[3][NSHARD];
	char names[3][NSHARD][64];
	for (int c = 0; c < 3; c++)
		for (int k = 0; k < NSHARD; k++) {
			snprintf(names[c][k], 64, "/m/%s/model-%05d-of-000163.safetensors", parents[c] + 3, k + 1);
			files[c][k] = (struct cr_file_identity){ names[c][k], 4000000000ull + (unsigned)k, 1700000000000000000ll + k,
								 0x9e3779b97f4a7c15ull * (unsigned)(k + 1 + 1000 * c) };
		}
	struct cr_store_sums v;
	memset(&v, 0, sizeof v);
	v.nbins = 41;
	char tname[96];
	t0 = now();
	if (cr_store_begin(st, &err) < 0)
		die(&err);
	for (int i = 0; i < NT; i++) {
		snprintf(tname, sizeof tname, "model.layers.%d.mlp.experts.%d.down_proj.weight", i / 1500, i % 1500);
		int k = i % NSHARD;
		struct cr_store_src b = { &files[0][k], &files[0][(k + 1) % NSHARD] };
		for (int p = 1; p <= 2; p++) {
			struct cr_store_src ps = { &files[p][k], &files[p][(k + 1) % NSHARD] };
			v.sum_dd = i + p;
			if (cr_store_stats_put(st, tname, 1, &b, &ps, &v, &err) < 0)
				die(&err);
		}
		if (i % 1024 == 1023 && (cr_store_commit(st, &err) < 0 || cr_store_begin(st, &err) < 0))
			die(&err);
	}
	if (cr_store_commit(st, &err) < 0)
		die(&err);
	double t_put = now() - t0;
	cr_store_close(st);
	if (cr_store_open(db, &st, &err) < 0)
		die(&err);
	t0 = now();
	size_t hits = 0;
	for (int i = 0; i < NT; i++) {
		snprintf(tname, sizeof tname, "model.layers.%d.mlp.experts.%d.down_proj.weight", i / 1500, i % 1500);
		int k = i % NSHARD;
		struct cr_store_src b = { &files[0][k], &files[0][(k + 1) % NSHARD] };
		for (int p = 1; p <= 2; p++) {
			struct cr_store_src ps = { &files[p][k], &files[p][(k + 1) % NSHARD] };
			int rc = cr_store_stats_get(st, tname, 1, &b, &ps, &v, &err);
			if (rc < 0)
				die(&err);
			hits += rc == 1 && v.sum_dd == i + p;
		}
	}
	double t_get = now() - t0;
	cr_store_close(st);
	printf("stats cache, %d tensors x 2 parents: store %.2f s, read back from a fresh handle %.2f s "
	       "(%.1f us per lookup, %zu/%d hits)\n",
	       NT, t_put, t_get, t_get / (2.0 * NT) * 1e6, hits, 2 * NT);
	if (argc <= 1) {
		unlink(path);
		char aux[300];
		snprintf(aux, sizeof aux, "%s-wal", path);
		unlink(aux);
		snprintf(aux, sizeof aux, "%s-shm", path);
		unlink(aux);
	}
	return hits == 2u * NT ? 0 : 1;
}
