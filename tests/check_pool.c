/* The merge engine's worker pool and write-behind queue. */
#include "testutil.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crucible/output.h"
#include "crucible/safetensors.h"
#include "pool.h"
#include "writebehind.h"

struct visit {
	int *hits;
	int nthreads;
	int bad_tid;
};

static void count_visit(void *ctx, size_t i, int tid)
{
	struct visit *v = ctx;
	__atomic_add_fetch(&v->hits[i], 1, __ATOMIC_RELAXED);
	if (tid < 0 || tid >= v->nthreads || cr_pool_tid() != tid)
		__atomic_store_n(&v->bad_tid, 1, __ATOMIC_RELAXED);
}

START_TEST(pool_visits_every_index_once)
{
	const size_t counts[] = { 0, 1, 2, 3, 7, 64, 1000 };
	for (int nt = 1; nt <= 4; nt++) {
		struct cr_pool *p = cr_pool_new(nt);
		ck_assert_int_eq(cr_pool_threads(p), nt);
		for (int round = 0; round < 3; round++) /* the same pool, job after job */
			for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
				size_t n = counts[k];
				struct visit v = { calloc(n + 1, sizeof(int)), nt, 0 };
				cr_pool_for(p, n, count_visit, &v);
				for (size_t i = 0; i < n; i++)
					ck_assert_msg(v.hits[i] == 1, "%d threads, %zu items: item %zu ran %d times", nt, n,
						      i, v.hits[i]);
				ck_assert_int_eq(v.bad_tid, 0);
				free(v.hits);
			}
		ck_assert_int_eq(cr_pool_tid(), -1); /* outside a job */
		cr_pool_free(p);
	}
}
END_TEST

static char tmpdir[256];

static void setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/crucible-pool-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	cr_out_rmrf(tmpdir, NULL);
}

/* Writes land in queue order (a later write of the same bytes wins), from a
 * pool of two buffers shared by four threads. */
struct wjob {
	struct cr_wb *wb;
	struct cr_st_writer *w;
};

static void write_piece(void *ctx, size_t i, int tid)
{
	struct wjob *j = ctx;
	(void)tid;
	uint8_t *b = cr_wb_get(j->wb);
	memset(b, (int)(i & 0xff), 4096);
	cr_wb_put(j->wb, j->w, 0, (uint64_t)i * 4096, b, 4096);
}

START_TEST(writebehind_writes_in_order_and_reports_failure)
{
	char path[512];
	snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
	uint64_t shape[1] = { 64 * 4096 };
	struct cr_st_entry ent = { "t", CR_DT_U8, 1, shape };
	struct cr_st_writer *w = NULL;
	cr_error err;
	ck_assert_int_eq(cr_st_writer_open(path, &ent, 1, NULL, 0, &w, &err), 0);
	struct cr_wb *wb = cr_wb_new(2, 4096);
	ck_assert_uint_eq(cr_wb_bufsize(wb), 4096);
	/* first every piece as 0xEE, then the real bytes over it: queue order must win */
	uint8_t junk[4096];
	memset(junk, 0xEE, sizeof junk);
	for (size_t i = 0; i < 64; i++)
		ck_assert_int_eq(cr_wb_put_copy(wb, w, 0, i * 4096, junk, sizeof junk), 0);
	struct cr_pool *p = cr_pool_new(4);
	struct wjob j = { wb, w };
	cr_pool_for(p, 64, write_piece, &j);
	cr_pool_free(p);
	ck_assert_int_eq(cr_wb_flush(wb, &err), 0);
	/* a write outside the tensor fails in the writer thread: later puts say so, flush reports it once */
	uint8_t *b = cr_wb_get(wb);
	ck_assert_int_eq(cr_wb_put(wb, w, 0, 64 * 4096, b, 16), 0);
	ck_assert_int_eq(cr_wb_flush(wb, &err), -1);
	ck_assert_msg(strstr(err.msg, "write outside tensor 't'") != NULL, "%s", err.msg);
	ck_assert_int_eq(cr_wb_flush(wb, &err), 0);
	cr_wb_free(wb);
	cr_st_writer_rewrite(w, 0, 64 * 4096); /* the bytes were written twice, as the engine's redo does */
	ck_assert_int_eq(cr_st_writer_finish(w, &err), 0);

	struct cr_st_file *f = NULL;
	ck_assert_int_eq(cr_st_open(path, &f, &err), 0);
	const struct cr_st_tensor *t = cr_st_find(f, "t");
	ck_assert_ptr_nonnull(t);
	uint8_t got[4096];
	for (uint64_t i = 0; i < 64; i++) {
		ck_assert_int_eq(cr_st_pread(f, t, i * 4096, got, sizeof got, &err), 0);
		for (size_t k = 0; k < sizeof got; k++)
			ck_assert_msg(got[k] == (uint8_t)i, "piece %llu byte %zu: %u", (unsigned long long)i, k, got[k]);
	}
	cr_st_close(f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, pool_visits_every_index_once);
	tcase_add_test(tc, writebehind_writes_in_order_and_reports_failure);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
