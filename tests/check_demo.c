/*
 * The demo family: generated into a temporary folder, then checked from the
 * outside: shapes against its own config.json, classes, FP8 block scales
 * decoded with the test's reference E4M3 decoder, byte-identical embeddings,
 * and the relative distances the parents are meant to have, computed here by
 * a naive loop.
 */
#include "config.h"

#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/checkpoint.h"
#include "crucible/demo.h"

static char root[256];	 /* temporary folder for the whole run */
static char famdir[300]; /* the family inside it */
static struct cr_ckpt *ck[CR_DEMO__COUNT];
static json_t *config;
static double e4m3[256];

static int rm_entry(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)type;
	(void)f;
	return remove(p);
}

static void setup(void)
{
	snprintf(root, sizeof root, "%s/crucible-demo-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(famdir, sizeof famdir, "%s/cache/crucible/demo", root);
	struct cr_demo_family f;
	cr_error err;
	ck_assert_msg(cr_demo_prepare(famdir, 0, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.reused, 0);
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		ck_assert_msg(cr_ckpt_open(f.member[m], &ck[m], &err) == 0, "%s", err.msg);
	}
	cr_demo_family_free(&f);
	char path[400];
	snprintf(path, sizeof path, "%s/base/config.json", famdir);
	json_error_t je;
	config = json_load_file(path, 0, &je);
	ck_assert_msg(config != NULL, "%s: %s", path, je.text);
	for (int b = 0; b < 256; b++)
		e4m3[b] = ref_e4m3((unsigned)b);
}

static void teardown(void)
{
	for (int m = 0; m < CR_DEMO__COUNT; m++)
		cr_ckpt_close(ck[m]);
	json_decref(config);
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t cfg(const char *key)
{
	json_t *v = json_object_get(config, key);
	ck_assert_msg(json_is_integer(v), "config.json: %s missing", key);
	return (uint64_t)json_integer_value(v);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The shape DeepSeek-V3's modelling code expects for a tensor name, from config.json. */
static int expected_shape(const char *name, uint64_t *r, uint64_t *c)
{
	uint64_t H = cfg("hidden_size"), I = cfg("intermediate_size"), MI = cfg("moe_intermediate_size");
	uint64_t heads = cfg("num_attention_heads"), nope = cfg("qk_nope_head_dim"), rope = cfg("qk_rope_head_dim");
	uint64_t vd = cfg("v_head_dim"), ql = cfg("q_lora_rank"), kvl = cfg("kv_lora_rank"), V = cfg("vocab_size");
	uint64_t E = cfg("n_routed_experts"), S = cfg("n_shared_experts");
	*c = 0;
	if (strstr(name, "q_a_proj"))
		*r = ql, *c = H;
	else if (strstr(name, "q_b_proj"))
		*r = heads * (nope + rope), *c = ql;
	else if (strstr(name, "kv_a_proj_with_mqa"))
		*r = kvl + rope, *c = H;
	else if (strstr(name, "kv_b_proj"))
		*r = heads * (nope + vd), *c = kvl;
	else if (strstr(name, "o_proj"))
		*r = H, *c = heads * vd;
	else if (strstr(name, "q_a_layernorm"))
		*r = ql;
	else if (strstr(name, "kv_a_layernorm"))
		*r = kvl;
	else if (strstr(name, "mlp.experts.") || strstr(name, "shared_experts")) {
		uint64_t m = strstr(name, "shared") ? S * MI : MI;
		if (strstr(name, "down_proj"))
			*r = H, *c = m;
		else
			*r = m, *c = H;
	} else if (strstr(name, "mlp.gate.weight"))
		*r = E, *c = H;
	else if (strstr(name, "e_score_correction_bias"))
		*r = E;
	else if (strstr(name, "mlp.down_proj"))
		*r = H, *c = I;
	else if (strstr(name, "mlp.gate_proj") || strstr(name, "mlp.up_proj"))
		*r = I, *c = H;
	else if (strstr(name, "embed_tokens") || strstr(name, "lm_head") || strstr(name, "shared_head.head"))
		*r = V, *c = H;
	else if (strstr(name, "eh_proj"))
		*r = H, *c = 2 * H;
	else if (ends_with(name, "norm.weight"))
		*r = H;
	else
		return 0;
	return 1;
}

START_TEST(demo_shapes_and_classes)
{
	uint64_t L = cfg("num_hidden_layers"), E = cfg("n_routed_experts"), K = cfg("first_k_dense_replace");
	ck_assert_int_eq(L + 1, 5); /* five layer rows with the MTP layer */
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		const struct cr_ckpt *c = ck[m];
		ck_assert_str_eq(c->model_type, "deepseek_v3");
		ck_assert_uint_ge(c->nshards, 3);
		size_t per_class[CR_CLASS__COUNT] = { 0 }, fp8 = 0;
		unsigned expert_seen[8] = { 0 };
		for (size_t i = 0; i < c->ntensors; i++) {
			const struct cr_tensor *t = &c->tensors[i];
			uint64_t r, cols;
			ck_assert_msg(expected_shape(t->name, &r, &cols), "unexpected tensor %s", t->name);
			ck_assert_int_eq(t->ndim, cols ? 2 : 1);
			ck_assert_msg(t->shape[0] == r && (!cols || t->shape[1] == cols), "%s: wrong shape", t->name);
			per_class[t->cls]++;
			/* projections are block FP8; norms, embeddings, head, router are not */
			int proj = strstr(t->name, "_proj") && !strstr(t->name, "eh_proj");
			ck_assert_msg(proj == (t->dtype == CR_DT_F8_E4M3), "%s: dtype %s", t->name, cr_dtype_name(t->dtype));
			if (proj) {
				fp8++;
				ck_assert_ptr_nonnull(t->scale);
			} else if (strstr(t->name, "e_score_correction_bias")) {
				ck_assert_int_eq(t->dtype, CR_DT_F32);
			} else {
				ck_assert_int_eq(t->dtype, CR_DT_BF16);
			}
			if (t->cls == CR_CLASS_ROUTED_EXPERT) {
				ck_assert_msg(t->layer >= (int)K && t->layer <= (int)L, "%s: layer %d", t->name, t->layer);
				ck_assert(t->expert >= 0 && t->expert < (int)E);
				expert_seen[t->expert]++;
			}
			if (strncmp(t->name, "model.layers.", 13) == 0)
				ck_assert_int_eq(t->layer, atoi(t->name + 13));
		}
		ck_assert_uint_eq(fp8, c->nscales);
		uint64_t moe_layers = L + 1 - K; /* the MTP layer is an MoE layer */
		ck_assert_uint_eq(per_class[CR_CLASS_ROUTED_EXPERT], moe_layers * E * 3);
		for (unsigned e = 0; e < E; e++)
			ck_assert_uint_eq(expert_seen[e], moe_layers * 3);
		ck_assert_uint_eq(per_class[CR_CLASS_SHARED_EXPERT], moe_layers * 3);
		ck_assert_uint_eq(per_class[CR_CLASS_ROUTER], moe_layers * 2);
		ck_assert_uint_eq(per_class[CR_CLASS_ATTN], (L + 1) * 5);
		ck_assert_uint_eq(per_class[CR_CLASS_DENSE_MLP], K * 3);
		ck_assert_uint_eq(per_class[CR_CLASS_EMBED], 1);
		ck_assert_uint_eq(per_class[CR_CLASS_HEAD], 1);
		ck_assert_uint_eq(per_class[CR_CLASS_MTP], 6); /* embed, enorm, hnorm, eh_proj, shared_head x2 */
	}
}
END_TEST

/* Every FP8 block's scale is amax/448: the block's largest code decodes to
 * ±448, no code is NaN, and scales are positive and finite. */
START_TEST(demo_fp8_scales)
{
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		const struct cr_ckpt *c = ck[m];
		for (size_t i = 0; i < c->ntensors; i++) {
			const struct cr_tensor *t = &c->tensors[i];
			if (t->dtype != CR_DT_F8_E4M3)
				continue;
			uint64_t rows = t->shape[0], cols = t->shape[1];
			uint64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
			ck_assert_int_eq(t->scale->ndim, 2);
			ck_assert_msg(t->scale->shape[0] == sr && t->scale->shape[1] == sc, "%s: scale grid", t->name);
			ck_assert_int_eq(t->scale->dtype, CR_DT_F32);
			uint8_t *q = malloc(t->nbytes);
			float *grid = malloc(sr * sc * sizeof *grid);
			cr_error err;
			ck_assert_msg(cr_tensor_read_raw(c, t, 0, q, t->nbytes, &err) == 0, "%s", err.msg);
			ck_assert_msg(cr_tensor_read_scales(c, t, grid, &err) == 0, "%s", err.msg);
			double *bmax = calloc(sr * sc, sizeof *bmax);
			size_t nans = 0; /* (no ck_assert in the loop: each one writes to Check's log) */
			for (uint64_t r = 0; r < rows; r++)
				for (uint64_t k = 0; k < cols; k++) {
					double v = e4m3[q[r * cols + k]];
					nans += isnan(v);
					double *b = &bmax[(r / 128) * sc + k / 128];
					*b = fabs(v) > *b ? fabs(v) : *b;
				}
			ck_assert_msg(nans == 0, "%s: %zu NaN codes", t->name, nans);
			for (uint64_t b = 0; b < sr * sc; b++) {
				ck_assert_msg(isfinite(grid[b]) && grid[b] > 0, "%s: scale %g", t->name, grid[b]);
				ck_assert_msg(bmax[b] == 448.0, "%s: block %llu max code %g", t->name,
					      (unsigned long long)b, bmax[b]);
			}
			free(bmax);
			free(grid);
			free(q);
		}
	}
}
END_TEST

static void *raw_bytes(int m, const char *name, uint64_t *n)
{
	const struct cr_tensor *t = cr_ckpt_find(ck[m], name);
	ck_assert_msg(t != NULL, "%s missing", name);
	void *b = malloc(t->nbytes);
	cr_error err;
	ck_assert_msg(cr_tensor_read_raw(ck[m], t, 0, b, t->nbytes, &err) == 0, "%s", err.msg);
	*n = t->nbytes;
	return b;
}

START_TEST(demo_embeddings_untouched)
{
	static const char *const same[] = { "model.embed_tokens.weight", "lm_head.weight",
					    "model.layers.4.embed_tokens.weight",
					    "model.layers.4.shared_head.head.weight" };
	for (size_t k = 0; k < 4; k++) {
		uint64_t nb, np;
		void *b = raw_bytes(CR_DEMO_BASE, same[k], &nb);
		for (int m = CR_DEMO_PARENT_A; m < CR_DEMO__COUNT; m++) {
			void *p = raw_bytes(m, same[k], &np);
			ck_assert_uint_eq(nb, np);
			ck_assert_msg(memcmp(b, p, nb) == 0, "%s differs in %s", same[k], cr_demo_member_dir(m));
			free(p);
		}
		free(b);
	}
	/* while attention did change */
	uint64_t nb, np;
	void *b = raw_bytes(CR_DEMO_BASE, "model.layers.2.self_attn.o_proj.weight", &nb);
	void *p = raw_bytes(CR_DEMO_PARENT_A, "model.layers.2.self_attn.o_proj.weight", &np);
	ck_assert(memcmp(b, p, nb) != 0);
	free(b);
	free(p);
}
END_TEST

/* W = e4m3(q) * scale, decoded here (not by the library). */
static double *dequant(int m, const struct cr_tensor *t)
{
	uint64_t n;
	uint8_t *q = raw_bytes(m, t->name, &n);
	const struct cr_tensor *tt = cr_ckpt_find(ck[m], t->name);
	uint64_t cols = tt->shape[1], sc = (cols + 127) / 128;
	float *grid = malloc(((tt->shape[0] + 127) / 128) * sc * sizeof *grid);
	cr_error err;
	ck_assert_msg(cr_tensor_read_scales(ck[m], tt, grid, &err) == 0, "%s", err.msg);
	double *w = malloc(n * sizeof *w);
	for (uint64_t i = 0; i < n; i++)
		w[i] = e4m3[q[i]] * grid[(i / cols / 128) * sc + (i % cols) / 128];
	free(grid);
	free(q);
	return w;
}

static double rel_distance(int m, const struct cr_tensor *t)
{
	double *b = dequant(CR_DEMO_BASE, t), *p = dequant(m, t), nb = 0, nd = 0;
	for (uint64_t i = 0; i < t->nelem; i++) {
		nb += b[i] * b[i];
		nd += (p[i] - b[i]) * (p[i] - b[i]);
	}
	free(b);
	free(p);
	return sqrt(nd / nb);
}

START_TEST(demo_parent_a_structure)
{
	const struct cr_ckpt *c = ck[CR_DEMO_BASE];
	double lo = 1, hi = 0;
	size_t routed = 0, small = 0;
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		if (t->dtype != CR_DT_F8_E4M3)
			continue;
		double d = rel_distance(CR_DEMO_PARENT_A, t);
		if (strstr(t->name, "mlp.experts.")) {
			ck_assert_msg(d >= 0.14 && d <= 0.26, "%s: rel %.4f outside 0.15-0.25", t->name, d);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			routed++;
		} else {
			/* attention, shared experts, dense MLP: a little */
			ck_assert_msg(d >= 0.005 && d <= 0.035, "%s: rel %.4f outside 0.01-0.03", t->name, d);
			small++;
		}
	}
	ck_assert_uint_eq(routed, 96);
	ck_assert_uint_gt(small, 0);
	/* experts differ from each other, so the heat map has something to show */
	ck_assert_msg(hi - lo > 0.05, "routed experts all moved alike (%.3f-%.3f)", lo, hi);
}
END_TEST

/* parentB moves later layers more: the mean routed-expert distance grows with the layer. */
START_TEST(demo_parent_b_later_layers)
{
	const struct cr_ckpt *c = ck[CR_DEMO_BASE];
	double sum[8] = { 0 };
	int n[8] = { 0 };
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		if (!strstr(t->name, "mlp.experts.") || !strstr(t->name, "experts.0.") || t->layer < 0 || t->layer > 7)
			continue;
		sum[t->layer] += rel_distance(CR_DEMO_PARENT_B, t);
		n[t->layer]++;
	}
	ck_assert_int_eq(n[0], 0);
	for (int l = 2; l <= 4; l++) {
		ck_assert_int_eq(n[l], 3);
		ck_assert_msg(sum[l] / n[l] > sum[l - 1] / n[l - 1] + 0.02, "layer %d moved %.3f, layer %d %.3f", l,
			      sum[l] / n[l], l - 1, sum[l - 1] / n[l - 1]);
	}
}
END_TEST

START_TEST(demo_index_total)
{
	char path[400];
	snprintf(path, sizeof path, "%s/parentB/model.safetensors.index.json", famdir);
	json_error_t je;
	json_t *idx = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(idx != NULL, "%s", je.text);
	json_int_t total = json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size"));
	uint64_t sum = 0;
	const struct cr_ckpt *c = ck[CR_DEMO_PARENT_B];
	for (size_t i = 0; i < c->ntensors; i++)
		sum += c->tensors[i].nbytes + (c->tensors[i].scale ? cr_st_tensor_nbytes(c->tensors[i].scale) : 0);
	ck_assert_uint_eq((uint64_t)total, sum);
	ck_assert_uint_eq(json_object_size(json_object_get(idx, "weight_map")), c->ntensors + c->nscales);
	json_decref(idx);
	for (const char *const *f = (const char *const[]){ "generation_config.json", "tokenizer_config.json", NULL }; *f;
	     f++) {
		snprintf(path, sizeof path, "%s/base/%s", famdir, *f);
		json_t *j = json_load_file(path, 0, &je);
		ck_assert_msg(json_is_object(j), "%s: %s", path, je.text);
		json_decref(j);
	}
}
END_TEST

static uint64_t file_hash(const char *path)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	uint64_t h = 1469598103934665603ull;
	int ch;
	while ((ch = getc(f)) != EOF)
		h = (h ^ (uint64_t)ch) * 1099511628211ull;
	fclose(f);
	return h;
}

/* Reuse, forced regeneration (same bytes: deterministic), and refusing to
 * replace a folder that is not a demo family. */
START_TEST(demo_lifecycle)
{
	struct cr_demo_family f;
	cr_error err;
	char shard[400];
	snprintf(shard, sizeof shard, "%s/parentA/model-00002-of-000004.safetensors", famdir);
	uint64_t before = file_hash(shard);

	ck_assert_msg(cr_demo_prepare(famdir, 0, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.reused, 1);
	ck_assert_int_eq(f.layers, 5);
	ck_assert_int_eq(f.experts, 8);
	cr_demo_family_free(&f);

	ck_assert_msg(cr_demo_prepare(famdir, CR_DEMO_FORCE, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.reused, 0);
	cr_demo_family_free(&f);
	ck_assert_msg(file_hash(shard) == before, "regenerated bytes differ");

	/* a damaged family (a shard gone) is not reused but made again */
	ck_assert_int_eq(unlink(shard), 0);
	ck_assert_int_ne(cr_demo_check(famdir, NULL), 0);
	ck_assert_msg(cr_demo_prepare(famdir, 0, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.reused, 0);
	cr_demo_family_free(&f);
	ck_assert_int_eq(cr_demo_check(famdir, &err), 0);

	/* a folder with someone's files in it is left alone */
	char other[400], keep[450];
	snprintf(other, sizeof other, "%s/not-a-demo", root);
	ck_assert_int_eq(mkdir(other, 0755), 0);
	snprintf(keep, sizeof keep, "%s/precious.txt", other);
	FILE *fp = fopen(keep, "w");
	ck_assert_ptr_nonnull(fp);
	fputs("keep me\n", fp);
	fclose(fp);
	ck_assert_int_eq(cr_demo_prepare(other, CR_DEMO_FORCE, &f, &err), -1);
	ck_assert_int_eq(err.code, CR_E_EXISTS);
	ck_assert_msg(strstr(err.msg, other) != NULL, "%s", err.msg);
	ck_assert_int_eq(access(keep, F_OK), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("demo");
	TCase *tc = tcase_create("family");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, demo_shapes_and_classes);
	tcase_add_test(tc, demo_fp8_scales);
	tcase_add_test(tc, demo_embeddings_untouched);
	tcase_add_test(tc, demo_parent_a_structure);
	tcase_add_test(tc, demo_parent_b_later_layers);
	tcase_add_test(tc, demo_index_total);
	tcase_add_test(tc, demo_lifecycle);
	suite_add_tcase(s, tc);
	/* No fork: the generator's OpenMP thread pool, started in the fixture,
	 * does not survive fork() (libgomp deadlocks in the child). */
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
