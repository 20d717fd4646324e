/* safetensors reader on the malformed and real fixtures; writer round trip. */
#include "testutil.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/checkpoint.h"
#include "crucible/safetensors.h"

/* Every row of malformed/EXPECTED.tsv through the checkpoint opener. */
START_TEST(malformed_fixtures_behave_as_listed)
{
	FILE *f = fopen(fixture("malformed/EXPECTED.tsv"), "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	int rows = 0;
	while (fgets(line, sizeof line, f)) {
		char *path = strtok(line, "\t"), *expect = strtok(NULL, "\t");
		if (!path || !expect || strcmp(path, "path") == 0)
			continue;
		char full[4096];
		snprintf(full, sizeof full, "%s", fixture("malformed"));
		strncat(full, "/", sizeof full - strlen(full) - 1);
		strncat(full, path, sizeof full - strlen(full) - 1);
		size_t l = strlen(full);
		if (full[l - 1] == '/')
			full[l - 1] = '\0';
		struct cr_ckpt *c = NULL;
		cr_error err;
		cr_error_clear(&err);
		int rc = cr_ckpt_open(full, &c, &err);
		if (strcmp(expect, "accept") == 0)
			ck_assert_msg(rc == 0, "%s should be accepted: %s", path, err.msg);
		if (strcmp(expect, "reject") == 0) {
			ck_assert_msg(rc < 0, "%s should be rejected", path);
			ck_assert_msg(strlen(err.msg) > 10 && strchr(err.msg, '\n') == NULL, "%s: bad message", path);
			/* the message names the file or folder */
			char stem[256];
			snprintf(stem, sizeof stem, "%s", path);
			if (stem[strlen(stem) - 1] == '/')
				stem[strlen(stem) - 1] = '\0';
			ck_assert_msg(strstr(err.msg, stem) != NULL, "%s: message does not name it: %s", path, err.msg);
		}
		cr_ckpt_close(c);
		rows++;
	}
	fclose(f);
	ck_assert_int_ge(rows, 40);
}
END_TEST

START_TEST(specific_rules)
{
	struct cr_st_file *f;
	cr_error err;
	ck_assert_int_eq(cr_st_open(fixture("malformed/gap.safetensors"), &f, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "hole"));
	ck_assert_int_eq(cr_st_open(fixture("malformed/len-over-limit.safetensors"), &f, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "limit"));
	ck_assert_int_eq(cr_st_open(fixture("malformed/duplicate-name.safetensors"), &f, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate"));
	ck_assert_int_eq(cr_st_open(fixture("malformed/trailing-bytes.safetensors"), &f, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "not covered"));
	ck_assert_int_eq(cr_st_open(fixture("malformed/unknown-dtype.safetensors"), &f, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "unknown dtype"));
	ck_assert_int_eq(cr_st_open(fixture("malformed/deep-nesting.safetensors"), &f, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "deeper"));
	ck_assert_int_eq(cr_st_open(fixture("malformed/scalar.safetensors"), &f, &err), 0);
	ck_assert_int_eq(f->tensors[0].ndim, 0);
	ck_assert_uint_eq(f->tensors[0].nelem, 1);
	cr_st_close(f);
}
END_TEST

static struct cr_st_file *open_ok(const char *rel)
{
	struct cr_st_file *f;
	cr_error err;
	ck_assert_msg(cr_st_open(fixture(rel), &f, &err) == 0, "%s", err.msg);
	return f;
}

START_TEST(real_files_read_as_documented)
{
	struct cr_st_file *f = open_ok("real/jfk-codes.safetensors");
	ck_assert_uint_eq(f->ntensors, 1);
	ck_assert_int_eq(f->tensors[0].dtype, CR_DT_I64);
	ck_assert_int_eq(f->tensors[0].ndim, 3);
	ck_assert_uint_eq(f->tensors[0].shape[2], 828);
	cr_st_close(f);

	f = open_ok("real/voices.safetensors");
	const struct cr_st_tensor *tok = cr_st_find(f, "tokens"), *mask = cr_st_find(f, "mask");
	ck_assert_ptr_nonnull(tok);
	ck_assert_ptr_nonnull(mask);
	ck_assert_int_eq(tok->dtype, CR_DT_I64);
	ck_assert_int_eq(mask->dtype, CR_DT_U8);
	ck_assert_uint_eq(mask->shape[1], 982);
	ck_assert_uint_eq(mask->shape[2], 33);
	ck_assert(tok->begin < mask->begin); /* dtype order: I64 before U8 */
	cr_st_close(f);

	f = open_ok("real/mel_filters.safetensors");
	ck_assert_int_eq(f->tensors[0].dtype, CR_DT_F32);
	ck_assert_uint_eq(f->tensors[0].shape[0], 80);
	ck_assert_uint_eq(f->tensors[0].shape[1], 201);
	float row[201];
	cr_error err;
	ck_assert_int_eq(cr_st_pread(f, &f->tensors[0], 0, row, sizeof row, &err), 0);
	for (int i = 0; i < 201; i++)
		ck_assert(isfinite(row[i]) && row[i] >= 0.0f);
	cr_st_close(f);
}
END_TEST

/* 2022-writer: each tensor holds -3..2 in its own dtype. */
START_TEST(old_writer_files)
{
	static const char *files[] = { "B", "H", "I", "b", "d", "e", "f", "h", "i" };
	struct cr_st_file *all = open_ok("real/2022-writer/overall.safetensors");
	ck_assert_uint_eq(all->ntensors, 9);
	ck_assert_str_eq(cr_st_meta_get(all, "test"), "a");
	ck_assert(all->header_len % 8 != 0);
	for (size_t i = 0; i < 9; i++) {
		char rel[128];
		snprintf(rel, sizeof rel, "real/2022-writer/%s.safetensors", files[i]);
		struct cr_st_file *f = open_ok(rel);
		const struct cr_st_tensor *t = cr_st_find(f, files[i]);
		const struct cr_st_tensor *t2 = cr_st_find(all, files[i]);
		ck_assert_ptr_nonnull(t);
		ck_assert_ptr_nonnull(t2);
		ck_assert_int_eq(t->dtype, t2->dtype);
		unsigned char buf[48];
		cr_error err;
		ck_assert_int_eq(cr_st_pread(f, t, 0, buf, cr_st_tensor_nbytes(t), &err), 0);
		for (int k = 0; k < 6; k++) {
			double want = k - 3, got;
			switch (t->dtype) {
			case CR_DT_U8: got = buf[k]; want = (unsigned char)(k - 3); break;
			case CR_DT_I8: got = (signed char)buf[k]; break;
			case CR_DT_U16: got = ((uint16_t *)buf)[k]; want = (uint16_t)(k - 3); break;
			case CR_DT_I16: got = ((int16_t *)buf)[k]; break;
			case CR_DT_U32: got = ((uint32_t *)buf)[k]; want = (uint32_t)(k - 3); break;
			case CR_DT_I32: got = ((int32_t *)buf)[k]; break;
			case CR_DT_F64: got = ((double *)buf)[k]; break;
			case CR_DT_F32: got = ((float *)buf)[k]; break;
			case CR_DT_F16: got = cr_f16_to_f32(((uint16_t *)buf)[k]); break;
			default: ck_abort_msg("unexpected dtype in %s", rel); return;
			}
			ck_assert_msg(got == want, "%s[%d] = %g, want %g", rel, k, got, want);
		}
		cr_st_close(f);
	}
	cr_st_close(all);
}
END_TEST

static void *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	void *b = malloc(*n + 1);
	ck_assert_uint_eq(fread(b, 1, *n, f), *n);
	fclose(f);
	return b;
}

/* Rewrite a file through the writer, in shuffled order; with the official
 * layout the output is byte-identical to a file the official library wrote. */
static void rewrite_and_compare(const char *src, int expect_identical)
{
	struct cr_st_file *f;
	cr_error err;
	ck_assert_msg(cr_st_open(src, &f, &err) == 0, "%s", err.msg);
	struct cr_st_entry *plan = calloc(f->ntensors + 1, sizeof *plan);
	for (size_t i = 0; i < f->ntensors; i++)
		plan[i] = (struct cr_st_entry){ f->tensors[i].name, f->tensors[i].dtype, f->tensors[i].ndim,
						f->tensors[i].shape };
	char out[] = "/tmp/crucible-test-XXXXXX";
	int fd = mkstemp(out);
	close(fd);
	struct cr_st_writer *w;
	ck_assert_msg(cr_st_writer_open(out, plan, f->ntensors, f->meta, f->nmeta, &w, &err) == 0, "%s", err.msg);
	for (size_t k = f->ntensors; k-- > 0;) { /* reverse order: offsets are fixed */
		size_t n = (size_t)cr_st_tensor_nbytes(&f->tensors[k]);
		void *b = malloc(n + 1);
		ck_assert_int_eq(cr_st_pread(f, &f->tensors[k], 0, b, n, &err), 0);
		ck_assert_int_eq(cr_st_writer_write(w, k, 0, b, n, &err), 0);
		free(b);
	}
	ck_assert_msg(cr_st_writer_finish(w, &err) == 0, "%s", err.msg);
	struct cr_st_file *g;
	ck_assert_msg(cr_st_open(out, &g, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(g->header_len % 8, 0);
	ck_assert_uint_eq(g->ntensors, f->ntensors);
	for (size_t i = 0; i < f->ntensors; i++) {
		const struct cr_st_tensor *a = &f->tensors[i], *b = cr_st_find(g, a->name);
		ck_assert_ptr_nonnull(b);
		ck_assert_int_eq(a->dtype, b->dtype);
		ck_assert_int_eq(a->ndim, b->ndim);
		size_t n = (size_t)cr_st_tensor_nbytes(a);
		void *x = malloc(n + 1), *y = malloc(n + 1);
		cr_st_pread(f, a, 0, x, n, &err);
		cr_st_pread(g, b, 0, y, n, &err);
		ck_assert_int_eq(memcmp(x, y, n), 0);
		free(x);
		free(y);
	}
	ck_assert_str_eq(cr_st_meta_get(g, "format"), "pt");
	if (expect_identical) {
		size_t na, nb;
		void *a = slurp(src, &na), *b = slurp(out, &nb);
		ck_assert_uint_eq(na, nb);
		ck_assert_msg(memcmp(a, b, na) == 0, "%s: rewrite differs from the original", src);
		free(a);
		free(b);
	}
	cr_st_close(g);
	cr_st_close(f);
	free(plan);
	unlink(out);
}

START_TEST(writer_round_trip)
{
	/* written by the official library: F32, BF16 and F8 in one shard */
	rewrite_and_compare(fixture("models/dsv3/v3-base/model-000001-of-000005.safetensors"), 1);
	rewrite_and_compare(fixture("models/mixtral/base/model.safetensors"), 1);
	rewrite_and_compare(fixture("real/2022-writer/overall.safetensors"), 0);
	rewrite_and_compare(fixture("real/voices.safetensors"), 0);
}
END_TEST

START_TEST(writer_refuses_incomplete_file)
{
	uint64_t shape[1] = { 4 };
	struct cr_st_entry e = { "x", CR_DT_F32, 1, shape };
	char out[] = "/tmp/crucible-test-XXXXXX";
	close(mkstemp(out));
	struct cr_st_writer *w;
	cr_error err;
	ck_assert_int_eq(cr_st_writer_open(out, &e, 1, NULL, 0, &w, &err), 0);
	float v[2] = { 1, 2 };
	ck_assert_int_eq(cr_st_writer_write(w, 0, 0, v, sizeof v, &err), 0);
	ck_assert_int_eq(cr_st_writer_write(w, 0, 12, v, sizeof v, &err), -1); /* outside */
	ck_assert_int_eq(cr_st_writer_finish(w, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "8 of 16"));
	struct stat st;
	ck_assert_int_eq(stat(out, &st), -1); /* an incomplete file is removed */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("safetensors");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, malformed_fixtures_behave_as_listed);
	tcase_add_test(tc, specific_rules);
	tcase_add_test(tc, real_files_read_as_documented);
	tcase_add_test(tc, old_writer_files);
	tcase_add_test(tc, writer_round_trip);
	tcase_add_test(tc, writer_refuses_incomplete_file);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
