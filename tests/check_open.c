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

int main(void)
{
	Suite *s = suite_create("open");
	TCase *tc = tcase_create("open");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, natural_order_of_tricky_names);
	tcase_add_test(tc, full_deepseek_layout_opens_as_before);
	tcase_add_test(tc, index_names_matched_with_the_folder);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
