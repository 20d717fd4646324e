/*
 * Opening a checkpoint the fast way gives what the slow way gave: the natural
 * order of the catalog (now sorted once by a precomputed key) equals a sort
 * with cr_natural_cmp, ties by strcmp (the old qsort was a stable sort of
 * names already in strcmp order); shards opened while the index is parsed
 * are matched to the index's names, and the ones it does not name are
 * ignored.  The full DeepSeek-V3 layout comes from ../shared/tools/mkskeleton.py.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/checkpoint.h"
#include "crucible/safetensors.h"
#include "index_split_ref.h"

static int cmp_old(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	int c = cr_natural_cmp(x, y);
	return c ? c : strcmp(x, y);
}

/* The catalog's order is the old comparator's, and every name is found. */
static void check_order(const struct cr_ckpt *c)
{
	const char **v = malloc((c->ntensors + 1) * sizeof *v);
	for (size_t i = 0; i < c->ntensors; i++)
		v[i] = c->tensors[i].name;
	qsort(v, c->ntensors, sizeof *v, cmp_old);
	for (size_t i = 0; i < c->ntensors; i++) {
		ck_assert_msg(v[i] == c->tensors[i].name, "position %zu: catalog has '%s', the old order '%s'", i,
			      c->tensors[i].name, v[i]);
		ck_assert_ptr_eq(cr_ckpt_find(c, v[i]), &c->tensors[i]);
	}
	free(v);
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/crucible-open-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static void rmrf(const char *d)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	ck_assert_int_eq(system(cmd), 0);
}

/* A file of F32 scalars with these names. */
static void write_file(const char *path, const char *const *names, size_t n)
{
	struct cr_st_entry *plan = calloc(n, sizeof *plan);
	for (size_t i = 0; i < n; i++)
		plan[i] = (struct cr_st_entry){ names[i], CR_DT_F32, 0, NULL };
	struct cr_st_writer *w;
	cr_error err;
	ck_assert_msg(cr_st_writer_open(path, plan, n, NULL, 0, &w, &err) == 0, "%s", err.msg);
	float one = 1.0f;
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(cr_st_writer_write(w, i, 0, &one, 4, &err), 0);
	ck_assert_msg(cr_st_writer_finish(w, &err) == 0, "%s", err.msg);
	free(plan);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* Names where a precomputed key could go wrong: leading zeros, numbers equal
 * but written differently, digits against every neighbouring byte, long runs,
 * bytes above 0x7f, prefixes. */
static const char *const tricky[] = {
	"a",	 "a0",	   "a00",     "a01",	  "a1",		"a001",	     "a10",	  "a9",	      "a/",
	"a:",	 "a.",	   "a!",      "a~",	  "a\xc3\xa9",	"a0b",	     "a00b",	  "a1b",      "a01b",
	"ab",	 "b2c03",  "b2c3",    "b02c3",	  "b2c3d",	"1",	     "01",	  "001a",     "10",
	"9",	 "x.0.y",  "x.00.y",  "x.10.y",	  "x.9.y",	"x.9",	     "x.90",	  "x..y",     "",
	"L99999999999999999999",    "L100000000000000000000",	"L0099999999999999999999",
	"L99999999999999999999x",   "m.layers.2.mlp.experts.10.w",	"m.layers.2.mlp.experts.9.w",
	"m.layers.10.mlp.experts.1.w",	"m.layers.02.mlp.experts.1.w",	"z\x7f",	"z0\x7f",
};

START_TEST(natural_order_of_tricky_names)
{
	char *d = tmpdir(), path[4200];
	size_t n = sizeof tricky / sizeof tricky[0];
	snprintf(path, sizeof path, "%s/model.safetensors", d);
	write_file(path, tricky, n);
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(d, &c, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(c->ntensors, n);
	check_order(c);
	/* and the order is not just strcmp's (the test would see a plain sort) */
	ck_assert_str_eq(c->tensors[0].name, "");
	const struct cr_tensor *a9 = cr_ckpt_find(c, "a9"), *a10 = cr_ckpt_find(c, "a10");
	ck_assert(a9 < a10);
	cr_ckpt_close(c);
	rmrf(d);
	free(d);
}
END_TEST

/* The whole DeepSeek-V3 layout: 163 shards, 91,991 stored tensors. */
START_TEST(full_deepseek_layout_opens_as_before)
{
	char *d = tmpdir(), cmd[8400];
	const char *tool = fixture("../tools/mkskeleton.py");
	ck_assert_msg(access(tool, R_OK) == 0, "%s is missing", tool);
	snprintf(cmd, sizeof cmd, "python3 '%s' '%s/skel' >/dev/null", tool, d);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s/skel", d);
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(cmd, &c, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(c->nshards, 163);
	ck_assert_uint_eq(c->ntensors + c->nscales, 91991);
	size_t fp8 = 0;
	for (size_t i = 0; i < c->ntensors; i++)
		if (c->tensors[i].dtype == CR_DT_F8_E4M3) {
			ck_assert_msg(c->tensors[i].scale != NULL, "%s without its scale", c->tensors[i].name);
			fp8++;
		}
	ck_assert_uint_eq(fp8, c->nscales);
	check_order(c);
	cr_ckpt_close(c);
	rmrf(d);
	free(d);
}
END_TEST

/* Shards the index names that are not *.safetensors at the top of the folder
 * are opened after the index; files it does not name are ignored, even broken
 * ones; and a named one that is broken still gives its own error. */
START_TEST(index_names_matched_with_the_folder)
{
	char *d = tmpdir(), p[4200];
	static const char *const s1[] = { "w.1", "w.2" }, *const s2[] = { "w.3" }, *const s3[] = { "w.4" };
	snprintf(p, sizeof p, "%s/a.safetensors", d);
	write_file(p, s1, 2);
	snprintf(p, sizeof p, "%s/sub", d);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/sub/b.safetensors", d);
	write_file(p, s2, 1);
	snprintf(p, sizeof p, "%s/c.bin", d);
	write_file(p, s3, 1);
	snprintf(p, sizeof p, "%s/junk.safetensors", d); /* not named by the index */
	write_text(p, "not a safetensors file");
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
	write_text(p, "{\"metadata\":{},\"weight_map\":{\"w.1\":\"a.safetensors\",\"w.3\":\"sub/b.safetensors\","
		      "\"w.2\":\"a.safetensors\",\"w.4\":\"c.bin\"}}");
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(d, &c, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(c->nshards, 3);
	ck_assert_uint_eq(c->ntensors, 4);
	ck_assert_str_eq(c->shards[cr_ckpt_find(c, "w.3")->shard]->path + strlen(d), "/sub/b.safetensors");
	ck_assert_str_eq(c->shards[cr_ckpt_find(c, "w.4")->shard]->path + strlen(d), "/c.bin");
	ck_assert_str_eq(c->shards[cr_ckpt_find(c, "w.2")->shard]->path + strlen(d), "/a.safetensors");
	check_order(c);
	cr_ckpt_close(c);

	/* now the index names the broken file: its error, naming it */
	write_text(p, "{\"weight_map\":{\"w.1\":\"a.safetensors\",\"x\":\"junk.safetensors\"}}");
	ck_assert_int_eq(cr_ckpt_open(d, &c, &err), -1);
	ck_assert_msg(strstr(err.msg, "junk.safetensors") != NULL && strchr(err.msg, '\n') == NULL, "%s", err.msg);
	/* a tensor the index puts in the wrong shard */
	write_text(p, "{\"weight_map\":{\"w.1\":\"a.safetensors\",\"w.3\":\"a.safetensors\"}}");
	ck_assert_int_eq(cr_ckpt_open(d, &c, &err), -1);
	ck_assert_msg(strstr(err.msg, "tensor 'w.3' is named in the index but missing from shard \"a.safetensors\""),
		      "%s", err.msg);
	rmrf(d);
	free(d);
}
END_TEST


static int nsplit;

static void agrees(const char *what, const char *text)
{
	char why[300];
	int r = split_agrees(text, why, sizeof why);
	ck_assert_msg(r >= 0, "%s: %s\n%.300s", what, why, text);
	nsplit += r;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	ck_assert_int_eq(fread(b, 1, (size_t)n, f), n);
	b[n] = '\0';
	fclose(f);
	return b;
}

#define WM(x) "{\"metadata\":{\"total_size\":8},\"weight_map\":{" x "}}"
static const char *const tricky_index[] = {
	WM("\"a\":\"s1\",\"b\":\"s1\",\"c\":\"s2\""),
	WM("\"a\":\"s1\",\"b\":\"s1\",\"a\":\"s2\""), /* a key twice, in two pieces */
	WM("\"a\":\"s1\",\"b\":\"s1\",\"c\":\"s2\","), /* trailing comma */
	WM(",\"a\":\"s1\",\"b\":\"s1\""),
	WM("\"a\":\"s1\",,\"b\":\"s1\""),
	WM("\"a,b\":\"s,1\",\"c\\\",\":\"s2\",\"d\\\\\":\"s\\\\\\\",3\""), /* commas and quotes in strings */
	WM("\"a\":{\"x\":[1,2,3]},\"b\":[\"s1\",\"s2\"],\"c\":\"s2\""), /* commas deeper down */
	WM("\"a\":\"s1\" , \"b\" : \"s1\"\n,\n\"c\":\"s2\""),
	WM("\"a\":\"s1\",\"b\":\"s1\",\"c\":\"s2\"") " x",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"s2\"},\"weight_map\":{\"c\":\"s3\",\"d\":\"s3\"}}",
	"{\"metadata\":{\"weight_map\":{\"a\":\"s1\",\"b\":\"s2\"}},\"x\":1}",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"s2\",\"c\":\"s3\"},\"metadata\":{\"weight_map\":[1,2]}}",
	"[\"weight_map\",{\"a\":\"s1\",\"b\":\"s2\"}]",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"s2\",\"c\":\"s3\"}",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"s2\",\"c\":\"s3\"}}}",
	"{\"weight_map\" {\"a\":\"s1\",\"b\":\"s2\"}}",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"\xff\",\"c\":\"s3\"}}",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"\\u0000\",\"c\":\"s3\"}}",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"s2\"},\"w\":[}",
	"{\"weight_map\":{\"a\":\"s1\",\"b\":\"s2\",\"c\":\"s3\"}} {}",
};

/* The index split into pieces says what jansson says of the whole. */
START_TEST(split_index_agrees_with_the_whole)
{
	static const char *const fixtures[] = {
		"models/dsv3/v3-base/model.safetensors.index.json",
		"models/dsv3/r1/model.safetensors.index.json",
		"models/llama/chat/model.safetensors.index.json",
		"malformed/index-ok/model.safetensors.index.json",
		"malformed/index-duplicate-tensor/model.safetensors.index.json",
		"malformed/index-not-json/model.safetensors.index.json",
		"malformed/index-traversal/model.safetensors.index.json",
	};
	for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
		char *t = slurp(fixture(fixtures[i]));
		agrees(fixtures[i], t);
		free(t);
	}
	ck_assert_int_ge(nsplit, 3);
	for (size_t i = 0; i < sizeof tricky_index / sizeof tricky_index[0]; i++)
		agrees("tricky", tricky_index[i]);
	/* mutants of a dsv3 index: byte edits anywhere, often in the weight_map */
	char *base = slurp(fixture("models/dsv3/v3-base/model.safetensors.index.json"));
	size_t n = strlen(base);
	char *buf = malloc(n + 64);
	uint64_t r = 0x243f6a8885a308d3ull;
	static const char edits[] = ",:{}[]\"\\ x0";
	for (int k = 0; k < 3000; k++) {
		memcpy(buf, base, n + 1);
		for (int e = 0; e < 2; e++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			buf[r % n] = edits[(r >> 32) % (sizeof edits - 1)];
		}
		agrees("mutant", buf);
	}
	free(buf);
	free(base);
	/* and a split that was wrong would be seen: a piece with a member dropped */
	struct cr_index_split sp;
	ck_assert_int_eq(cr_index_split(tricky_index[0], strlen(tricky_index[0]), 8, &sp), 0);
	ck_assert_uint_ge(sp.npieces, 2);
	cr_index_split_free(&sp);
}
END_TEST

/* Of several broken scales, the message names the first weight in strcmp
 * order, whichever thread saw it (the old reader walked names sorted). */
START_TEST(first_broken_scale_is_reported)
{
	char *d = tmpdir(), path[4200];
	static const uint64_t w_shape[2] = { 2, 2 }, bad_grid[2] = { 2, 2 }, good_grid[2] = { 1, 1 };
	static const char *const names[] = { "m.9.w", "m.10.w", "m.b.w", "m.a.w", "m.c.w" };
	struct cr_st_entry plan[10];
	size_t n = 0;
	for (size_t i = 0; i < 5; i++) {
		static char scale[5][64];
		snprintf(scale[i], sizeof scale[i], "%s_scale_inv", names[i]);
		plan[n++] = (struct cr_st_entry){ names[i], CR_DT_F8_E4M3, 2, w_shape };
		/* m.c.w is fine; the others have a 2x2 grid where 1x1 is right */
		plan[n++] = (struct cr_st_entry){ scale[i], CR_DT_F32, 2, i == 4 ? good_grid : bad_grid };
	}
	snprintf(path, sizeof path, "%s/model.safetensors", d);
	struct cr_st_writer *w;
	cr_error err;
	ck_assert_msg(cr_st_writer_open(path, plan, n, NULL, 0, &w, &err) == 0, "%s", err.msg);
	static unsigned char zero[64];
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(cr_st_writer_write(w, i, 0, zero, cr_st_writer_nbytes(w, i), &err), 0);
	ck_assert_msg(cr_st_writer_finish(w, &err) == 0, "%s", err.msg);
	struct cr_ckpt *c;
	ck_assert_int_eq(cr_ckpt_open(d, &c, &err), -1);
	ck_assert_msg(strstr(err.msg, "tensor 'm.10.w': scale 'm.10.w_scale_inv' must be F32 of shape") != NULL, "%s",
		      err.msg);
	rmrf(d);
	free(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("open");
	TCase *tc = tcase_create("open");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, natural_order_of_tricky_names);
	tcase_add_test(tc, full_deepseek_layout_opens_as_before);
	tcase_add_test(tc, index_names_matched_with_the_folder);
	tcase_add_test(tc, split_index_agrees_with_the_whole);
	tcase_add_test(tc, first_broken_scale_is_reported);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
