/* Recipes: reading the shared fixtures and our own, resolving parameters,
 * errors with exact lines, warnings, hostile input, and write/read round trips. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/recipe.h"

/* ---- helpers ---- */

struct warnings {
	int n;
	char msg[16][1024];
};

static void collect(void *ctx, const char *msg)
{
	struct warnings *w = ctx;
	if (w->n < 16)
		snprintf(w->msg[w->n], sizeof w->msg[0], "%s", msg);
	w->n++;
}

static const char *srcfile(const char *rel)
{
	static char buf[4][4096];
	static int k;
	const char *root = getenv("SRCDIR");
	char *b = buf[k++ & 3];
	snprintf(b, 4096, "%s/%s", root ? root : ".", rel);
	return b;
}

static struct cr_recipe *load_ok(const char *path, struct warnings *w)
{
	struct cr_recipe *r = NULL;
	cr_error err = { 0 };
	int rc = cr_recipe_load(path, &r, collect, w, &err);
	ck_assert_msg(rc == 0, "%s: %s", path, err.msg);
	ck_assert_ptr_nonnull(r);
	return r;
}

static struct cr_recipe *parse_ok(const char *text, struct warnings *w)
{
	struct cr_recipe *r = NULL;
	cr_error err = { 0 };
	int rc = cr_recipe_parse(text, strlen(text), "t.yaml", &r, collect, w, &err);
	ck_assert_msg(rc == 0, "parse failed: %s\n%s", err.msg, text);
	return r;
}

/* Parse must fail with exactly `want` as the message (want includes "t.yaml:LINE: "). */
static void expect_error_len(const char *text, size_t len, const char *want)
{
	struct cr_recipe *r = (void *)1;
	cr_error err = { 0 };
	int rc = cr_recipe_parse(text, len, "t.yaml", &r, NULL, NULL, &err);
	ck_assert_msg(rc == -1, "accepted, want error '%s':\n%s", want, text);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(err.code, CR_E_RECIPE);
	ck_assert_msg(strcmp(err.msg, want) == 0, "got  '%s'\nwant '%s'", err.msg, want);
}

static void expect_error(const char *text, const char *want)
{
	expect_error_len(text, strlen(text), want);
}

/* Parse must fail with a message starting with `prefix`. */
static void expect_error_prefix(const char *text, size_t len, const char *prefix)
{
	struct cr_recipe *r = NULL;
	cr_error err = { 0 };
	if (len == SIZE_MAX)
		len = strlen(text);
	ck_assert_int_eq(cr_recipe_parse(text, len, "t.yaml", &r, NULL, NULL, &err), -1);
	ck_assert_msg(strncmp(err.msg, prefix, strlen(prefix)) == 0, "got '%s', want prefix '%s'", err.msg, prefix);
}

static double param(const struct cr_recipe *r, int model, enum cr_param_id p, const char *tensor, enum cr_class cls,
		    double t)
{
	double v = NAN;
	int found = cr_recipe_param(r, model, -1, -1, p, tensor, cls, t, &v);
	ck_assert_msg(found, "parameter %s not found for model %d, tensor %s", cr_param_info(p)->name, model,
		      tensor ? tensor : "(none)");
	return v;
}

static int streq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Compare every field except line numbers; describe the first difference in why. */
static int pset_equal(const struct cr_param_set *a, const struct cr_param_set *b, const char *where, char *why)
{
	if (a->n != b->n)
		return sprintf(why, "%s: %zu vs %zu parameters", where, a->n, b->n), 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct cr_param_entry *x = &a->items[i], *y = &b->items[i];
		if (x->id != y->id || x->nconds != y->nconds)
			return sprintf(why, "%s: entry %zu differs (id or count)", where, i), 0;
		for (size_t j = 0; j < x->nconds; j++) {
			const struct cr_pcond *c = &x->conds[j], *d = &y->conds[j];
			if (!streq(c->filter, d->filter) || c->cls != d->cls || c->val.n != d->val.n)
				return sprintf(why, "%s: %s cond %zu differs", where, cr_param_info(x->id)->name, j), 0;
			for (size_t k = 0; k < c->val.n; k++)
				if (memcmp(&c->val.v[k], &d->val.v[k], sizeof(double)) != 0)
					return sprintf(why, "%s: %s cond %zu value %zu: %.17g vs %.17g", where,
						       cr_param_info(x->id)->name, j, k, c->val.v[k], d->val.v[k]),
					       0;
		}
	}
	return 1;
}

static int recipe_equal(const struct cr_recipe *a, const struct cr_recipe *b, char *why)
{
	char w[64];
	if (!streq(a->file, b->file))
		return sprintf(why, "file"), 0;
	if (a->method != b->method)
		return sprintf(why, "method"), 0;
	if (!streq(a->base, b->base) || !streq(a->base_resolved, b->base_resolved))
		return sprintf(why, "base"), 0;
	if (a->nmodels != b->nmodels || a->nslices != b->nslices)
		return sprintf(why, "model or slice count"), 0;
	for (size_t i = 0; i < a->nmodels; i++) {
		if (!streq(a->models[i].path, b->models[i].path) || !streq(a->models[i].resolved, b->models[i].resolved))
			return sprintf(why, "models[%zu] path", i), 0;
		snprintf(w, sizeof w, "models[%zu]", i);
		if (!pset_equal(&a->models[i].params, &b->models[i].params, w, why))
			return 0;
	}
	for (size_t i = 0; i < a->nslices; i++) {
		const struct cr_recipe_slice *x = &a->slices[i], *y = &b->slices[i];
		if (x->nsources != y->nsources)
			return sprintf(why, "slices[%zu] source count", i), 0;
		for (size_t j = 0; j < x->nsources; j++) {
			const struct cr_recipe_source *s = &x->sources[j], *t = &y->sources[j];
			if (!streq(s->path, t->path) || !streq(s->resolved, t->resolved) || s->has_range != t->has_range ||
			    s->layer_start != t->layer_start || s->layer_end != t->layer_end)
				return sprintf(why, "slices[%zu].sources[%zu]", i, j), 0;
			snprintf(w, sizeof w, "slices[%zu].sources[%zu]", i, j);
			if (!pset_equal(&s->params, &t->params, w, why))
				return 0;
		}
		snprintf(w, sizeof w, "slices[%zu]", i);
		if (!pset_equal(&x->params, &y->params, w, why))
			return 0;
	}
	if (!pset_equal(&a->params, &b->params, "parameters", why))
		return 0;
	if (a->dtype != b->dtype || a->out_dtype != b->out_dtype)
		return sprintf(why, "dtype"), 0;
	if (a->has_seed != b->has_seed || a->seed != b->seed)
		return sprintf(why, "seed"), 0;
	if (!streq(a->tokenizer_source, b->tokenizer_source))
		return sprintf(why, "tokenizer_source"), 0;
	return 1;
}

/* write, read back under the same name, compare; returns the YAML text for more checks */
static char *round_trip(const struct cr_recipe *r)
{
	char *text = cr_recipe_to_yaml(r);
	ck_assert_ptr_nonnull(text);
	struct cr_recipe *back = NULL;
	cr_error err = { 0 };
	struct warnings w = { 0 };
	int rc = cr_recipe_parse(text, strlen(text), r->file, &back, collect, &w, &err);
	ck_assert_msg(rc == 0, "%s: written recipe does not read back: %s\n%s", r->file, err.msg, text);
	char why[512] = "";
	ck_assert_msg(recipe_equal(r, back, why), "%s: round trip differs: %s\n%s", r->file, why, text);
	cr_recipe_free(back);
	return text;
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* resolved paths of every model and the base are folders */
static void assert_paths_exist(const struct cr_recipe *r)
{
	if (r->base)
		ck_assert_msg(is_dir(r->base_resolved), "%s: base %s is not a folder", r->file, r->base_resolved);
	for (size_t i = 0; i < r->nmodels; i++)
		ck_assert_msg(is_dir(r->models[i].resolved), "%s: %s is not a folder", r->file, r->models[i].resolved);
}

#define EXPECTED(name) fixture("expected/" name)

/* ---- layer position and gradients ---- */

START_TEST(layer_t_rules)
{
	ck_assert_double_eq(cr_layer_t(0, 4), 0.0);
	ck_assert_double_eq_tol(cr_layer_t(1, 4), 1.0 / 3.0, 1e-15);
	ck_assert_double_eq_tol(cr_layer_t(2, 4), 2.0 / 3.0, 1e-15);
	ck_assert_double_eq(cr_layer_t(3, 4), 1.0);
	ck_assert_double_eq(cr_layer_t(4, 4), 1.0); /* MTP layer past the last one */
	ck_assert_double_eq(cr_layer_t(99, 4), 1.0);
	ck_assert_double_eq(cr_layer_t(-1, 4), 0.0); /* outside the layers */
	ck_assert_double_eq(cr_layer_t(0, 1), 1.0);  /* one-layer slice: mergekit gives 1 */
	ck_assert_double_eq(cr_layer_t(0, 0), 1.0);
	ck_assert_double_eq(cr_layer_t(-1, 1), 0.0);
	ck_assert_double_eq(cr_layer_t(1, 2), 1.0);
	ck_assert_double_eq_tol(cr_layer_t(1, 3), 0.5, 1e-15);
}
END_TEST

START_TEST(gradient_interpolation)
{
	double v3[] = { 0.0, 1.0, 4.0 };
	struct cr_pval g = { 3, v3 };
	ck_assert_double_eq(cr_pval_at(&g, 0.0), 0.0);
	ck_assert_double_eq_tol(cr_pval_at(&g, 0.25), 0.5, 1e-15); /* halfway between 0 and 1 */
	ck_assert_double_eq(cr_pval_at(&g, 0.5), 1.0);
	ck_assert_double_eq_tol(cr_pval_at(&g, 0.75), 2.5, 1e-15); /* halfway between 1 and 4 */
	ck_assert_double_eq(cr_pval_at(&g, 1.0), 4.0);
	ck_assert_double_eq(cr_pval_at(&g, 1.5), 4.0);  /* clamped */
	ck_assert_double_eq(cr_pval_at(&g, -0.5), 0.0); /* clamped */
	ck_assert_double_eq(cr_pval_at(&g, NAN), 0.0);
	double v1[] = { 7.5 };
	struct cr_pval s = { 1, v1 };
	ck_assert_double_eq(cr_pval_at(&s, 0.3), 7.5);
}
END_TEST

/* ---- the shared fixtures ---- */

START_TEST(fixture_aoe_r1t)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("aoe-r1t-dsv3.yaml"), &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_int_eq(r->method, CR_M_AOE);
	ck_assert_str_eq(r->base, "../models/dsv3/v3-base");
	ck_assert_uint_eq(r->nmodels, 2);
	ck_assert_uint_eq(r->nslices, 0);
	ck_assert_str_eq(r->models[1].path, "../models/dsv3/r1");
	assert_paths_exist(r);
	ck_assert_int_eq(r->out_dtype, CR_DT_F8_E4M3);
	ck_assert_int_eq(r->dtype, CR_DT_NONE);
	ck_assert_int_eq(r->has_seed, 0);
	const char *expert = "model.layers.3.mlp.experts.2.up_proj.weight";
	const char *attn = "model.layers.3.self_attn.q_a_proj.weight";
	const char *shared = "model.layers.3.mlp.shared_experts.up_proj.weight";
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, expert, CR_CLASS_ROUTED_EXPERT, 1.0), 1.0);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, attn, CR_CLASS_ATTN, 1.0), 0.0);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, shared, CR_CLASS_SHARED_EXPERT, 1.0), 0.0);
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, expert, CR_CLASS_ROUTED_EXPERT, 1.0), 0.0);
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, attn, CR_CLASS_ATTN, 1.0), 1.0);
	/* the MTP layer's experts are routed experts too: "mlp.experts." matches them */
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, "model.layers.4.mlp.experts.0.down_proj.weight",
				  CR_CLASS_ROUTED_EXPERT, 1.0),
			    1.0);
	/* delta is global: found at the top level whichever model asks */
	ck_assert_double_eq(param(r, -1, CR_P_DELTA, attn, CR_CLASS_ATTN, 0.0), 0.05);
	ck_assert_double_eq(param(r, 1, CR_P_DELTA, attn, CR_CLASS_ATTN, 0.0), 0.05);
	double v = -1;
	ck_assert_int_eq(cr_recipe_param(r, 1, -1, -1, CR_P_NORMALIZE, attn, CR_CLASS_ATTN, 0, &v), 0);
	ck_assert_double_eq(v, -1); /* untouched when not found */
	ck_assert_double_eq(cr_param_default(r->method, CR_P_NORMALIZE), 1.0);
	cr_recipe_free(r);
}
END_TEST

START_TEST(fixture_aoe_trimind)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("aoe-trimind-dsv3.yaml"), &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_int_eq(r->method, CR_M_AOE);
	ck_assert_uint_eq(r->nmodels, 3);
	assert_paths_exist(r);
	const char *expert = "model.layers.2.mlp.experts.7.gate_proj.weight", *norm = "model.norm.weight";
	const double ex[] = { 0.2, 0.5, 0.3 }, other[] = { 0.6, 0.2, 0.2 };
	for (int i = 0; i < 3; i++) {
		ck_assert_double_eq(param(r, i, CR_P_WEIGHT, expert, CR_CLASS_ROUTED_EXPERT, 0.5), ex[i]);
		ck_assert_double_eq(param(r, i, CR_P_WEIGHT, norm, CR_CLASS_NORM, 0.0), other[i]);
	}
	ck_assert_double_eq(param(r, -1, CR_P_DELTA, norm, CR_CLASS_NORM, 0.0), 0.045);
	ck_assert_int_eq(r->out_dtype, CR_DT_BF16);
	cr_recipe_free(r);
}
END_TEST

START_TEST(fixture_breadcrumbs_ties)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("breadcrumbs-ties-mixtral.yaml"), &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_int_eq(r->method, CR_M_BREADCRUMBS_TIES);
	ck_assert_uint_eq(r->nmodels, 2);
	assert_paths_exist(r);
	const char *t = "model.layers.0.block_sparse_moe.experts.1.w2.weight";
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, t, CR_CLASS_ROUTED_EXPERT, 0), 1.0);
	ck_assert_double_eq(param(r, 0, CR_P_DENSITY, t, CR_CLASS_ROUTED_EXPERT, 0), 0.9);
	ck_assert_double_eq(param(r, 0, CR_P_GAMMA, t, CR_CLASS_ROUTED_EXPERT, 0), 0.01);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, t, CR_CLASS_ROUTED_EXPERT, 0), 0.5);
	ck_assert_double_eq(param(r, 1, CR_P_DENSITY, t, CR_CLASS_ROUTED_EXPERT, 0), 0.8);
	ck_assert_double_eq(param(r, 1, CR_P_GAMMA, t, CR_CLASS_ROUTED_EXPERT, 0), 0.02);
	ck_assert_int_eq(r->out_dtype, CR_DT_F32);
	cr_recipe_free(r);
}
END_TEST

START_TEST(fixture_linear)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("linear-llama.yaml"), &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_int_eq(r->method, CR_M_LINEAR);
	ck_assert_ptr_null(r->base);
	ck_assert_ptr_null(r->base_resolved);
	ck_assert_uint_eq(r->nmodels, 3);
	assert_paths_exist(r);
	const double wt[] = { 0.5, 0.3, 0.2 };
	for (int i = 0; i < 3; i++)
		ck_assert_double_eq(param(r, i, CR_P_WEIGHT, "lm_head.weight", CR_CLASS_HEAD, 0), wt[i]);
	ck_assert_int_eq(cr_recipe_param(r, 0, -1, -1, CR_P_NORMALIZE, "lm_head.weight", CR_CLASS_HEAD, 0, NULL), 0);
	/* a model index out of range only sees the top level */
	ck_assert_int_eq(cr_recipe_param(r, 3, -1, -1, CR_P_WEIGHT, "lm_head.weight", CR_CLASS_HEAD, 0, NULL), 0);
	cr_recipe_free(r);
}
END_TEST

START_TEST(fixture_model_stock_and_nuslerp)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("model-stock-mixtral.yaml"), &w);
	ck_assert_int_eq(r->method, CR_M_MODEL_STOCK);
	ck_assert_uint_eq(r->nmodels, 2);
	ck_assert_uint_eq(r->models[0].params.n, 0);
	ck_assert_uint_eq(r->params.n, 0);
	assert_paths_exist(r);
	cr_recipe_free(r);

	r = load_ok(EXPECTED("nuslerp-llama.yaml"), &w);
	ck_assert_int_eq(r->method, CR_M_NUSLERP);
	ck_assert_str_eq(r->base, "../models/llama/base");
	assert_paths_exist(r);
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, "model.embed_tokens.weight", CR_CLASS_EMBED, 0), 1.0);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, "model.embed_tokens.weight", CR_CLASS_EMBED, 0), 3.0);
	cr_recipe_free(r);
	ck_assert_int_eq(w.n, 0);
}
END_TEST

START_TEST(fixture_slerp_gradient)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("slerp-mixtral.yaml"), &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_int_eq(r->method, CR_M_SLERP);
	ck_assert_uint_eq(r->nmodels, 2);
	assert_paths_exist(r);
	/* t: self_attn [0.0, 0.6]; mlp [1.0, 0.3]; else 0.5.  Two layers. */
	ck_assert_double_eq(param(r, -1, CR_P_T, "model.layers.1.self_attn.q_proj.weight", CR_CLASS_ATTN,
				  cr_layer_t(1, 2)),
			    0.6);
	ck_assert_double_eq(param(r, -1, CR_P_T, "model.layers.0.self_attn.q_proj.weight", CR_CLASS_ATTN,
				  cr_layer_t(0, 2)),
			    0.0);
	ck_assert_double_eq_tol(param(r, -1, CR_P_T, "model.layers.0.self_attn.o_proj.weight", CR_CLASS_ATTN, 0.5),
				0.3, 1e-15);
	ck_assert_double_eq(param(r, -1, CR_P_T, "model.layers.0.mlp.up_proj.weight", CR_CLASS_DENSE_MLP, 0.0), 1.0);
	ck_assert_double_eq(param(r, -1, CR_P_T, "model.layers.1.mlp.up_proj.weight", CR_CLASS_DENSE_MLP, 1.0), 0.3);
	/* Mixtral's experts live under block_sparse_moe, which "mlp" does not match */
	ck_assert_double_eq(param(r, -1, CR_P_T, "model.layers.1.block_sparse_moe.experts.0.w1.weight",
				  CR_CLASS_ROUTED_EXPERT, 1.0),
			    0.5);
	ck_assert_double_eq(param(r, -1, CR_P_T, "lm_head.weight", CR_CLASS_HEAD, cr_layer_t(-1, 2)), 0.5);
	/* t is global: asking for model 1 still finds the top-level value */
	ck_assert_double_eq(param(r, 1, CR_P_T, "model.layers.1.self_attn.q_proj.weight", CR_CLASS_ATTN, 1.0), 0.6);
	cr_recipe_free(r);
}
END_TEST

START_TEST(fixture_task_arithmetic_and_ties)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("task-arithmetic-llama.yaml"), &w);
	ck_assert_int_eq(r->method, CR_M_TASK_ARITHMETIC);
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, "model.layers.0.mlp.up_proj.weight", CR_CLASS_DENSE_MLP, 0), 0.7);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, "model.layers.0.mlp.up_proj.weight", CR_CLASS_DENSE_MLP, 0), 0.3);
	assert_paths_exist(r);
	cr_recipe_free(r);

	r = load_ok(EXPECTED("ties-llama.yaml"), &w);
	ck_assert_int_eq(r->method, CR_M_TIES);
	ck_assert_uint_eq(r->nmodels, 2);
	assert_paths_exist(r);
	const char *t = "model.layers.1.self_attn.v_proj.weight";
	/* chat's weight is the gradient [0.2, 1.0]: layer 1 of 3 sits at t = 0.5 */
	ck_assert_double_eq_tol(param(r, 1, CR_P_WEIGHT, t, CR_CLASS_ATTN, cr_layer_t(1, 3)), 0.6, 1e-15);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, t, CR_CLASS_ATTN, cr_layer_t(0, 3)), 0.2);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, t, CR_CLASS_ATTN, cr_layer_t(2, 3)), 1.0);
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, t, CR_CLASS_ATTN, cr_layer_t(1, 3)), 1.0);
	ck_assert_double_eq(param(r, 0, CR_P_DENSITY, t, CR_CLASS_ATTN, 0), 0.5);
	ck_assert_double_eq(param(r, 1, CR_P_DENSITY, t, CR_CLASS_ATTN, 0), 0.7);
	ck_assert_double_eq(param(r, -1, CR_P_NORMALIZE, t, CR_CLASS_ATTN, 0), 1.0);
	ck_assert_int_eq(w.n, 0);
	cr_recipe_free(r);
}
END_TEST

/* Every fixture recipe reads, names existing folders and survives a round trip. */
START_TEST(fixtures_all_round_trip)
{
	DIR *d = opendir(fixture("expected"));
	ck_assert_msg(d != NULL, "no fixtures at %s", fixture("expected"));
	int count = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 5, ".yaml") != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", fixture("expected"), de->d_name);
		struct warnings w = { 0 };
		struct cr_recipe *r = load_ok(path, &w);
		ck_assert_msg(w.n == 0, "%s: unexpected warning %s", path, w.msg[0]);
		assert_paths_exist(r);
		free(round_trip(r));
		/* the same text with CRLF line ends and a UTF-8 byte order mark reads the same */
		FILE *fp = fopen(path, "rb");
		char text[8192], crlf[16384] = "\xef\xbb\xbf";
		size_t len = fread(text, 1, sizeof text, fp), k = 3;
		fclose(fp);
		for (size_t i = 0; i < len; i++) {
			if (text[i] == '\n')
				crlf[k++] = '\r';
			crlf[k++] = text[i];
		}
		struct cr_recipe *r2 = NULL;
		cr_error err;
		ck_assert_msg(cr_recipe_parse(crlf, k, path, &r2, NULL, NULL, &err) == 0, "%s", err.msg);
		char why[512] = "";
		ck_assert_msg(recipe_equal(r, r2, why), "%s with CRLF: %s", path, why);
		cr_recipe_free(r2);
		cr_recipe_free(r);
		count++;
	}
	closedir(d);
	ck_assert_int_ge(count, 9);
}
END_TEST

/* ---- our own recipes ---- */

START_TEST(precedence_and_classes)
{
	struct warnings w = { 0 };
	const char *path = srcfile("tests/data/recipes/precedence.yaml");
	struct cr_recipe *r = load_ok(path, &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_int_eq(r->method, CR_M_TIES);
	/* relative paths resolve against the recipe's folder; absolute ones stay */
	char want[4096];
	snprintf(want, sizeof want, "%s", path);
	strcpy(strrchr(want, '/') + 1, "base");
	ck_assert_str_eq(r->base_resolved, want);
	strcpy(strrchr(want, '/') + 1, "a");
	ck_assert_str_eq(r->models[0].resolved, want);
	ck_assert_str_eq(r->models[1].resolved, "/abs/b");
	ck_assert_uint_eq(r->models[1].params.n, 0);

	const char *ex = "model.layers.5.mlp.experts.3.down_proj.weight";
	const char *attn = "model.layers.5.self_attn.o_proj.weight";
	const char *mlp = "model.layers.0.mlp.up_proj.weight";
	/* weight: model 0 has its own, model 1 falls back to the top level */
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, ex, CR_CLASS_ROUTED_EXPERT, 0), 0.25);
	ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, ex, CR_CLASS_ROUTED_EXPERT, 0), 0.75);
	ck_assert_double_eq(param(r, -1, CR_P_WEIGHT, ex, CR_CLASS_ROUTED_EXPERT, 0), 0.75);
	/* density: class condition, then a filter with a gradient, else fall through to the top */
	ck_assert_double_eq(param(r, 0, CR_P_DENSITY, ex, CR_CLASS_ROUTED_EXPERT, 0.7), 0.9);
	ck_assert_double_eq_tol(param(r, 0, CR_P_DENSITY, attn, CR_CLASS_ATTN, 0.5), 0.3, 1e-15);
	ck_assert_double_eq(param(r, 0, CR_P_DENSITY, mlp, CR_CLASS_DENSE_MLP, 0.5), 0.4);
	ck_assert_double_eq(param(r, 1, CR_P_DENSITY, ex, CR_CLASS_ROUTED_EXPERT, 0.5), 0.4);
	/* the class, not the name, decides a class condition */
	ck_assert_double_eq(param(r, 0, CR_P_DENSITY, mlp, CR_CLASS_ROUTED_EXPERT, 0.5), 0.9);
	/* a NULL tensor name matches no filter */
	ck_assert_double_eq(param(r, 0, CR_P_DENSITY, NULL, CR_CLASS_ATTN, 0.5), 0.4);
	ck_assert_double_eq(param(r, -1, CR_P_LAMBDA, ex, CR_CLASS_ROUTED_EXPERT, 0), 2.0);
	ck_assert_double_eq(param(r, -1, CR_P_NORMALIZE, ex, CR_CLASS_ROUTED_EXPERT, 0), 0.0);
	ck_assert_int_eq(r->dtype, CR_DT_BF16);
	ck_assert_int_eq(r->out_dtype, CR_DT_F16);
	ck_assert_int_eq(r->has_seed, 1);
	ck_assert_uint_eq(r->seed, 42);
	free(round_trip(r));
	cr_recipe_free(r);
}
END_TEST

START_TEST(slices_precedence)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(srcfile("tests/data/recipes/slices.yaml"), &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_int_eq(r->method, CR_M_LINEAR);
	ck_assert_uint_eq(r->nmodels, 0);
	ck_assert_uint_eq(r->nslices, 2);
	ck_assert_uint_eq(r->slices[0].nsources, 2);
	ck_assert_str_eq(r->slices[0].sources[1].path, "m2");
	ck_assert_int_eq(r->slices[0].sources[1].has_range, 1);
	ck_assert_int_eq(r->slices[0].sources[1].layer_start, 4);
	ck_assert_int_eq(r->slices[0].sources[1].layer_end, 8);
	ck_assert_int_eq(r->slices[1].sources[1].layer_end, 12);
	const char *t = "model.layers.2.mlp.up_proj.weight";
	double v;
	/* source > slice > top */
	ck_assert(cr_recipe_param(r, -1, 0, 0, CR_P_WEIGHT, t, CR_CLASS_DENSE_MLP, 0.25, &v));
	ck_assert_double_eq(v, 0.9);
	ck_assert(cr_recipe_param(r, -1, 0, 1, CR_P_WEIGHT, t, CR_CLASS_DENSE_MLP, 0.25, &v));
	ck_assert_double_eq(v, 0.25);
	ck_assert(cr_recipe_param(r, -1, 1, 0, CR_P_WEIGHT, t, CR_CLASS_DENSE_MLP, 0.25, &v));
	ck_assert_double_eq(v, 0.1);
	ck_assert(cr_recipe_param(r, -1, 1, 1, CR_P_WEIGHT, t, CR_CLASS_DENSE_MLP, 0.25, &v));
	ck_assert_double_eq(v, 0.35); /* filter "*" matches every tensor */
	ck_assert(cr_recipe_param(r, -1, 1, 1, CR_P_WEIGHT, NULL, CR_CLASS_NONE, 0.25, &v));
	ck_assert_double_eq(v, 0.35);
	ck_assert(cr_recipe_param(r, -1, -1, -1, CR_P_WEIGHT, t, CR_CLASS_DENSE_MLP, 0.25, &v));
	ck_assert_double_eq(v, 0.1);
	/* the `yes` of YAML 1.1 is true */
	ck_assert(cr_recipe_param(r, -1, 0, -1, CR_P_NORMALIZE, t, CR_CLASS_DENSE_MLP, 0, &v));
	ck_assert_double_eq(v, 1.0);
	free(round_trip(r));
	cr_recipe_free(r);
}
END_TEST

START_TEST(own_recipes_round_trip)
{
	const char *names[] = { "passthrough-llama.yaml", "aoe-classes.yaml" };
	for (size_t i = 0; i < 2; i++) {
		char rel[256];
		snprintf(rel, sizeof rel, "tests/data/recipes/%s", names[i]);
		struct warnings w = { 0 };
		struct cr_recipe *r = load_ok(srcfile(rel), &w);
		ck_assert_msg(w.n == 0, "%s", w.msg[0]);
		free(round_trip(r));
		if (i == 0) {
			ck_assert_int_eq(r->method, CR_M_PASSTHROUGH);
			ck_assert_str_eq(r->tokenizer_source, "base");
			ck_assert_int_eq(r->slices[1].sources[0].layer_start, 1);
			double v;
			ck_assert(cr_recipe_param(r, -1, 1, 0, CR_P_SCALE, "model.layers.1.self_attn.o_proj.weight",
						  CR_CLASS_ATTN, 0, &v));
			ck_assert_double_eq(v, 0.5);
			ck_assert(cr_recipe_param(r, -1, 1, 0, CR_P_SCALE, "model.layers.1.input_layernorm.weight",
						  CR_CLASS_NORM, 0, &v));
			ck_assert_double_eq(v, 1.0);
		} else {
			ck_assert_int_eq(r->method, CR_M_AOE);
			ck_assert_uint_eq(r->seed, UINT64_MAX);
			ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, "x", CR_CLASS_SHARED_EXPERT, 0), 0.5);
			ck_assert_double_eq(param(r, 1, CR_P_WEIGHT, "x", CR_CLASS_ROUTED_EXPERT, 0), 1.0);
			ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, "x", CR_CLASS_HEAD, 0), 1.0);
			ck_assert_double_eq_tol(param(r, -1, CR_P_DELTA, "x", CR_CLASS_ATTN, 0.75), 0.05, 1e-15);
		}
		cr_recipe_free(r);
	}
}
END_TEST

/* Numbers that need all 17 digits, exponents, bools, a single conditional
 * mapping, YAML 1.1 spellings: all read back identically after writing. */
START_TEST(round_trip_numbers_and_shapes)
{
	const char *text = "merge_method: dare_ties\n"
			   "base_model: 'true'\n"
			   "models:\n"
			   "  - model: \"1.5\"\n"
			   "    parameters:\n"
			   "      weight: 0.30000000000000004\n"
			   "      density: {filter: 'a \"quoted\" name: x', value: [1e-05, -0.0, 2.5E+3, 1.7976931348623157e308]}\n"
			   "  - model: dir with spaces/ünïcode\n"
			   "    parameters:\n"
			   "      weight: -3\n"
			   "      density: 4.9406564584124654e-324\n"
			   "parameters:\n"
			   "  rescale: off\n"
			   "  normalize: 1\n"
			   "  int8_mask: True\n"
			   "  lambda: +.5\n"
			   "random_seed: 0\n";
	struct warnings w = { 0 };
	struct cr_recipe *r = parse_ok(text, &w);
	ck_assert_int_eq(w.n, 0);
	ck_assert_str_eq(r->base, "true");
	ck_assert_str_eq(r->models[0].path, "1.5");
	ck_assert_str_eq(r->models[1].path, "dir with spaces/ünïcode");
	const struct cr_param_entry *d = cr_param_set_find(&r->models[0].params, CR_P_DENSITY);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(d->nconds, 1);
	ck_assert_str_eq(d->conds[0].filter, "a \"quoted\" name: x");
	ck_assert_uint_eq(d->conds[0].val.n, 4);
	ck_assert_double_eq(d->conds[0].val.v[2], 2500.0);
	ck_assert(signbit(d->conds[0].val.v[1]));
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, "x", CR_CLASS_NONE, 0), 0.1 + 0.2);
	ck_assert_double_eq(param(r, -1, CR_P_RESCALE, "x", CR_CLASS_NONE, 0), 0.0);
	ck_assert_double_eq(param(r, -1, CR_P_INT8_MASK, "x", CR_CLASS_NONE, 0), 1.0);
	ck_assert_double_eq(param(r, -1, CR_P_LAMBDA, "x", CR_CLASS_NONE, 0), 0.5);
	ck_assert_int_eq(r->has_seed, 1);
	char *y = round_trip(r);
	/* PyYAML reads "1e-05" as a string: numbers are written with a dot */
	ck_assert_msg(strstr(y, "1.0e-05") != NULL, "%s", y);
	ck_assert_msg(strstr(y, "rescale: false") && strstr(y, "normalize: true"), "%s", y);
	ck_assert_msg(strstr(y, "base_model: \"true\""), "%s", y);
	free(y);
	cr_recipe_free(r);
}
END_TEST

START_TEST(save_is_atomic)
{
	char dir[] = "/tmp/check_recipe.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[256], bad[256];
	snprintf(path, sizeof path, "%s/out.yaml", dir);
	snprintf(bad, sizeof bad, "%s/missing/out.yaml", dir);
	struct warnings w = { 0 };
	struct cr_recipe *r = load_ok(EXPECTED("slerp-mixtral.yaml"), &w);
	FILE *f = fopen(path, "w");
	fputs("old contents\n", f);
	fclose(f);
	cr_error err = { 0 };
	ck_assert_int_eq(cr_recipe_save(r, path, &err), 0);
	struct cr_recipe *back = load_ok(path, &w);
	/* same recipe, but paths now resolve against the new folder */
	ck_assert_str_eq(back->models[1].path, "../models/mixtral/instruct");
	char want[512];
	snprintf(want, sizeof want, "%s/../models/mixtral/instruct", dir);
	ck_assert_str_eq(back->models[1].resolved, want);
	free(back->file);
	back->file = cr_xstrdup(r->file);
	free(back->base_resolved);
	back->base_resolved = cr_xstrdup(r->base_resolved);
	for (size_t i = 0; i < back->nmodels; i++) {
		free(back->models[i].resolved);
		back->models[i].resolved = cr_xstrdup(r->models[i].resolved);
	}
	char why[512] = "";
	ck_assert_msg(recipe_equal(r, back, why), "%s", why);
	cr_recipe_free(back);
	/* a folder that does not exist: an error naming the file, nothing left behind */
	ck_assert_int_eq(cr_recipe_save(r, bad, &err), -1);
	ck_assert_msg(strstr(err.msg, bad) != NULL, "%s", err.msg);
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	ck_assert_int_eq(n, 1); /* only out.yaml: no temporary file left */
	/* a recipe that is not a recipe cannot be written */
	enum cr_method_id m = r->method;
	r->method = CR_M_NONE;
	ck_assert_ptr_null(cr_recipe_to_yaml(r));
	ck_assert_int_eq(cr_recipe_save(r, path, &err), -1);
	r->method = m;
	unlink(path);
	rmdir(dir);
	cr_recipe_free(r);
}
END_TEST

/* The fixture aoe-r1t-dsv3, built in code: writes and reads back as the file does. */
START_TEST(builder_matches_fixture)
{
	const char *path = EXPECTED("aoe-r1t-dsv3.yaml");
	struct warnings w = { 0 };
	struct cr_recipe *want = load_ok(path, &w);
	struct cr_recipe *r = cr_recipe_new(CR_M_AOE, path);
	cr_recipe_set_base(r, "somewhere/else");
	cr_recipe_set_base(r, "../models/dsv3/v3-base");
	const double zero = 0.0, one = 1.0, d = 0.05, junk[] = { 3, 4 };
	struct cr_recipe_model *m = cr_recipe_add_model(r, "../models/dsv3/v3-base");
	cr_param_set_add_cond(&m->params, CR_P_WEIGHT, "mlp.experts.", CR_CLASS_NONE, 1, &zero);
	cr_param_set_add_cond(&m->params, CR_P_WEIGHT, NULL, CR_CLASS_NONE, 1, &one);
	m = cr_recipe_add_model(r, "../models/dsv3/r1");
	cr_param_set_value(&m->params, CR_P_DENSITY, 2, junk); /* removed below */
	cr_param_set_add_cond(&m->params, CR_P_WEIGHT, "mlp.experts.", CR_CLASS_NONE, 1, &one);
	cr_param_set_add_cond(&m->params, CR_P_WEIGHT, NULL, CR_CLASS_NONE, 1, &zero);
	cr_param_set_remove(&m->params, CR_P_DENSITY);
	cr_param_set_value(&r->params, CR_P_DELTA, 2, junk);
	cr_param_set_value(&r->params, CR_P_DELTA, 1, &d); /* replaces */
	r->out_dtype = CR_DT_F8_E4M3;
	char why[512] = "";
	ck_assert_msg(recipe_equal(r, want, why), "%s", why);
	char *text = round_trip(r);
	/* and the text reads back equal to the fixture itself */
	struct cr_recipe *back = NULL;
	cr_error err;
	ck_assert_int_eq(cr_recipe_parse(text, strlen(text), path, &back, NULL, NULL, &err), 0);
	ck_assert_msg(recipe_equal(back, want, why), "%s", why);
	cr_recipe_free(back);
	free(text);
	cr_recipe_free(want);
	cr_recipe_free(r);

	/* resolution rules */
	char *p = cr_recipe_resolve("/a/b/r.yaml", "../m");
	ck_assert_str_eq(p, "/a/b/../m");
	free(p);
	p = cr_recipe_resolve("/r.yaml", "m");
	ck_assert_str_eq(p, "/m");
	free(p);
	p = cr_recipe_resolve("r.yaml", "m");
	ck_assert_str_eq(p, "m");
	free(p);
	p = cr_recipe_resolve("x/r.yaml", "/abs/m");
	ck_assert_str_eq(p, "/abs/m");
	free(p);
	p = cr_recipe_resolve(NULL, "m");
	ck_assert_str_eq(p, "m");
	free(p);
}
END_TEST

/* Saving refuses a recipe that would not load, and leaves the old file alone. */
START_TEST(save_refuses_invalid)
{
	char dir[] = "/tmp/check_recipe.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/r.yaml", dir);
	FILE *f = fopen(path, "w");
	fputs("old\n", f);
	fclose(f);
	struct cr_recipe *r = cr_recipe_new(CR_M_TIES, path);
	cr_recipe_add_model(r, "a");
	cr_error err;
	ck_assert_int_eq(cr_recipe_save(r, path, &err), -1);
	char want[512];
	snprintf(want, sizeof want, "not saved, the recipe is not valid: %s:1: merge_method 'ties' needs a base_model",
		 path);
	ck_assert_str_eq(err.msg, want);
	char buf[16] = "";
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
	fclose(f);
	ck_assert_str_eq(buf, "old\n");
	/* with a base it saves, and loads back */
	cr_recipe_set_base(r, "b");
	ck_assert_int_eq(cr_recipe_save(r, path, &err), 0);
	struct warnings w = { 0 };
	struct cr_recipe *back = load_ok(path, &w);
	char why[512] = "";
	ck_assert_msg(recipe_equal(r, back, why), "%s", why);
	cr_recipe_free(back);
	cr_recipe_free(r);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* ---- errors: one line, the file, the exact line, the key ---- */

START_TEST(errors_keys_and_names)
{
	expect_error("merge_method: linear\n"
		     "models:\n"
		     "  - model: a\n"
		     "    parameters:\n"
		     "      weight: 1\n"
		     "  - model: b\n"
		     "    parameters:\n"
		     "      wieght: 1\n",
		     "t.yaml:8: unknown parameter 'wieght' in models[1].parameters (did you mean 'weight'?)");
	expect_error("merge_method: linear\n"
		     "mdoels:\n"
		     "  - model: a\n",
		     "t.yaml:2: unknown key 'mdoels' in the recipe (did you mean 'models'?)");
	expect_error("merge_method: linear\n"
		     "models:\n"
		     "  - model: a\n"
		     "    params: {weight: 1}\n",
		     "t.yaml:4: unknown key 'params' in models[0]");
	expect_error("merge_method: lineer\nmodels: [{model: a}]\n",
		     "t.yaml:1: unknown merge_method 'lineer' (did you mean 'linear'?)");
	expect_error_prefix("\n\nmerge_method: frobnicate\nmodels: [{model: a}]\n", SIZE_MAX,
			    "t.yaml:3: unknown merge_method 'frobnicate'; methods: linear, task_arithmetic, ");
	expect_error("merge_method: ties\n"
		     "base_model: b\n"
		     "models:\n"
		     "  - model: a\n"
		     "    parameters:\n"
		     "      density:\n"
		     "        - class: experts\n"
		     "          value: 1\n",
		     "t.yaml:7: unknown tensor class 'experts' in models[0].parameters.density[0] (classes: embed, attn, "
		     "norm, router, dense_mlp, shared_expert, routed_expert, head, mtp, other)");
	expect_error("merge_method: linear\n"
		     "models:\n"
		     "  - model: a\n"
		     "    parameters:\n"
		     "      weight: 1\n"
		     "      weight: 2\n",
		     "t.yaml:6: duplicate parameter 'weight' in models[0].parameters");
	expect_error("merge_method: linear\n"
		     "models: [{model: a}]\n"
		     "merge_method: ties\n",
		     "t.yaml:3: duplicate key 'merge_method' in the recipe");
	expect_error("merge_method: linear\n"
		     "models:\n"
		     "  - model: a\n"
		     "    parameters:\n"
		     "      weight:\n"
		     "        - filtre: x\n"
		     "          value: 1\n",
		     "t.yaml:6: unknown key 'filtre' in models[0].parameters.weight[0] (did you mean 'filter'?)");
	expect_error("merge_method: linear\n"
		     "models:\n"
		     "  - model: a\n"
		     "    parameters:\n"
		     "      weight:\n"
		     "        - filter: x\n"
		     "          class: attn\n"
		     "          value: 1\n",
		     "t.yaml:7: models[0].parameters.weight[0] has both 'filter' and 'class'; use one per entry");
	expect_error("merge_method: linear\n"
		     "models:\n"
		     "  - model: a\n"
		     "    parameters:\n"
		     "      weight:\n"
		     "        - filter: x\n"
		     "        - value: 1\n",
		     "t.yaml:6: models[0].parameters.weight[0] has no 'value'");
}
END_TEST

START_TEST(errors_structure)
{
	expect_error("models:\n  - model: a\n", "t.yaml:1: missing 'merge_method'");
	expect_error("merge_method: linear\nparameters: {weight: 1}\n",
		     "t.yaml:1: the recipe has neither 'models' nor 'slices'");
	expect_error("merge_method: linear\nmodels:\nslices:\n", "t.yaml:1: the recipe has neither 'models' nor 'slices'");
	expect_error("merge_method: linear\n"
		     "models: [{model: a}]\n"
		     "slices:\n"
		     "  - sources: [{model: a, layer_range: [0, 1]}]\n",
		     "t.yaml:3: give either 'models' or 'slices', not both");
	expect_error("merge_method: ties\nmodels:\n  - model: a\n", "t.yaml:1: merge_method 'ties' needs a base_model");
	expect_error("# comment\nmerge_method: aoe\nbase_model:\nmodels: [{model: a}]\n",
		     "t.yaml:2: merge_method 'aoe' needs a base_model");
	expect_error("merge_method: linear\nmodels: []\n",
		     "t.yaml:2: models must be a non-empty list of {model: PATH, parameters: ...}");
	expect_error("merge_method: linear\nmodels: a\n",
		     "t.yaml:2: models must be a non-empty list of {model: PATH, parameters: ...}");
	expect_error("merge_method: linear\nmodels:\n  - a\n", "t.yaml:3: models[0] must be a mapping (key: value), not a value");
	expect_error("merge_method: linear\nmodels:\n  - parameters: {weight: 1}\n",
		     "t.yaml:3: models[0] has no 'model' (the model's path)");
	expect_error("merge_method: linear\nmodels:\n  - model: [a]\n", "t.yaml:3: model must be a string, not a list");
	expect_error("merge_method: linear\nmodels:\n  - model: ''\n", "t.yaml:3: model must not be empty");
	expect_error("merge_method: [linear]\nmodels: [{model: a}]\n",
		     "t.yaml:1: merge_method must be a method name, not a list");
	expect_error("merge_method: linear\nmodels: [{model: a}]\nparameters: [1]\n",
		     "t.yaml:3: parameters must be a mapping of parameter names to values, not a list");
	expect_error("merge_method: linear\nslices:\n  - parameters: {weight: 1}\n",
		     "t.yaml:3: slices[0] needs 'sources', a non-empty list");
}
END_TEST

START_TEST(errors_values)
{
	const char *head = "merge_method: linear\nmodels:\n  - model: a\n    parameters:\n";
	char text[1024];
	struct {
		const char *line, *want;
	} cases[] = {
		{ "      weight: abc\n", "t.yaml:5: models[0].parameters.weight must be a number, true/false or a list, not 'abc'" },
		{ "      weight: '0.5'\n", "t.yaml:5: models[0].parameters.weight must be a number, true/false or a list, not '0.5'" },
		{ "      weight: .inf\n", "t.yaml:5: models[0].parameters.weight must be a number, true/false or a list, not '.inf'" },
		{ "      weight: .nan\n", "t.yaml:5: models[0].parameters.weight must be a number, true/false or a list, not '.nan'" },
		{ "      weight: 1e999\n", "t.yaml:5: models[0].parameters.weight must be a number, true/false or a list, not '1e999'" },
		{ "      weight: 0x10\n", "t.yaml:5: models[0].parameters.weight must be a number, true/false or a list, not '0x10'" },
		{ "      weight:\n", "t.yaml:5: models[0].parameters.weight must be a number, true/false or a list, not ''" },
		{ "      weight: []\n", "t.yaml:5: models[0].parameters.weight is an empty list" },
		{ "      weight: [0.1,\n        x]\n", "t.yaml:6: models[0].parameters.weight[1]: a gradient is a list of numbers" },
		{ "      weight: [0.1, true]\n", "t.yaml:5: models[0].parameters.weight[1]: a gradient is a list of numbers" },
		{ "      weight: [{value: 1}, 2]\n",
		  "t.yaml:5: models[0].parameters.weight[1]: a list of conditions holds only {filter/class, value} mappings" },
		{ "      weight:\n        - value: {value: 1}\n",
		  "t.yaml:6: models[0].parameters.weight[0].value must be a number or a list of numbers, not a mapping" },
		{ "      weight:\n        - filter: [a]\n          value: 1\n",
		  "t.yaml:6: models[0].parameters.weight[0].filter must be a string, not a list" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "%s%s", head, cases[i].line);
		expect_error(text, cases[i].want);
	}
	const char *ranges[][2] = {
		{ "[4, 2]", "t.yaml:5: slices[0].sources[0].layer_range [4, 2] must have 0 <= start < end <= 1000000" },
		{ "[3, 3]", "t.yaml:5: slices[0].sources[0].layer_range [3, 3] must have 0 <= start < end <= 1000000" },
		{ "[-1, 3]", "t.yaml:5: slices[0].sources[0].layer_range [-1, 3] must have 0 <= start < end <= 1000000" },
		{ "[0, 2000000]",
		  "t.yaml:5: slices[0].sources[0].layer_range [0, 2000000] must have 0 <= start < end <= 1000000" },
		{ "[0]", "t.yaml:5: slices[0].sources[0].layer_range must be two integers [start, end]" },
		{ "[0, 1, 2]", "t.yaml:5: slices[0].sources[0].layer_range must be two integers [start, end]" },
		{ "[0, 1.5]", "t.yaml:5: slices[0].sources[0].layer_range must be two integers [start, end]" },
		{ "[a, 1]", "t.yaml:5: slices[0].sources[0].layer_range must be two integers [start, end]" },
		{ "5", "t.yaml:5: slices[0].sources[0].layer_range must be two integers [start, end]" },
		{ "[0, 99999999999999999999999]",
		  "t.yaml:5: slices[0].sources[0].layer_range must be two integers [start, end]" },
	};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
		snprintf(text, sizeof text,
			 "merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: %s\n",
			 ranges[i][0]);
		expect_error(text, ranges[i][1]);
	}
	expect_error("merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n",
		     "t.yaml:4: slices[0].sources[0] has no 'layer_range: [start, end]'");
	expect_error("merge_method: linear\n"
		     "slices:\n"
		     "  - sources:\n"
		     "      - model: a\n"
		     "        layer_range: [0, 4]\n"
		     "      - model: b\n"
		     "        layer_range: [0, 3]\n",
		     "t.yaml:6: slices[0].sources[1] covers 3 layers but slices[0].sources[0] covers 4; the sources of a "
		     "slice must have the same number of layers");
	const char *tail[][2] = {
		{ "dtype: bfloat15\n",
		  "t.yaml:3: unknown dtype 'bfloat15' (use bfloat16, float16, float32 or float8_e4m3fn)" },
		{ "out_dtype: I8\n", "t.yaml:3: out_dtype 'I8' cannot hold merge results (use a float type)" },
		{ "out_dtype: [a]\n", "t.yaml:3: out_dtype must be a dtype name, not a list" },
		{ "random_seed: -1\n", "t.yaml:3: random_seed must be an integer from 0 to 18446744073709551615, not '-1'" },
		{ "random_seed: 1.5\n", "t.yaml:3: random_seed must be an integer from 0 to 18446744073709551615, not '1.5'" },
		{ "random_seed: '7'\n", "t.yaml:3: random_seed must be an integer from 0 to 18446744073709551615, not '7'" },
		{ "random_seed: 18446744073709551616\n",
		  "t.yaml:3: random_seed must be an integer from 0 to 18446744073709551615, not '18446744073709551616'" },
		{ "tokenizer_source: union\n",
		  "t.yaml:3: tokenizer_source 'union' is not supported: crucible copies the base model's tokenizer "
		  "(tokenizer_source: base)" },
	};
	for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) {
		snprintf(text, sizeof text, "merge_method: linear\nmodels: [{model: a}]\n%s", tail[i][0]);
		expect_error(text, tail[i][1]);
	}
}
END_TEST

START_TEST(warnings_unused_and_misplaced)
{
	struct warnings w = { 0 };
	struct cr_recipe *r = parse_ok("merge_method: linear\n"
				       "models:\n"
				       "  - model: a\n"
				       "    parameters:\n"
				       "      density: 0.5\n"
				       "      weight: 1\n"
				       "parameters:\n"
				       "  t: 0.3\n",
				       &w);
	ck_assert_int_eq(w.n, 2);
	ck_assert_str_eq(w.msg[0], "t.yaml:5: parameter 'density' is not used by method 'linear'");
	ck_assert_str_eq(w.msg[1], "t.yaml:8: parameter 't' is not used by method 'linear'");
	/* the values are still there for whoever asks */
	ck_assert_double_eq(param(r, 0, CR_P_DENSITY, "x", CR_CLASS_NONE, 0), 0.5);
	cr_recipe_free(r);

	/* a global parameter set on one model is ignored (as mergekit does), with a warning */
	memset(&w, 0, sizeof w);
	r = parse_ok("merge_method: ties\n"
		     "base_model: b\n"
		     "models:\n"
		     "  - model: a\n"
		     "    parameters:\n"
		     "      lambda: 3\n"
		     "      weight: 1\n",
		     &w);
	ck_assert_int_eq(w.n, 1);
	ck_assert_str_eq(w.msg[0], "t.yaml:6: parameter 'lambda' applies to the whole merge and is ignored in "
				   "models[0].parameters; set it in the top-level parameters");
	ck_assert_int_eq(cr_recipe_param(r, 0, -1, -1, CR_P_LAMBDA, "x", CR_CLASS_NONE, 0, NULL), 0);
	cr_recipe_free(r);

	/* no callback: no crash */
	struct cr_recipe *q = NULL;
	cr_error err;
	const char *t = "merge_method: linear\nmodels: [{model: a, parameters: {gamma: 1}}]\n";
	ck_assert_int_eq(cr_recipe_parse(t, strlen(t), "t.yaml", &q, NULL, NULL, &err), 0);
	cr_recipe_free(q);
}
END_TEST

/* ---- hostile input ---- */

START_TEST(bad_yaml_and_documents)
{
	expect_error_prefix("merge_method: linear\nmodels:\n  - model: a\n   bad: [\n", SIZE_MAX,
			    "t.yaml:4: YAML syntax error: ");
	expect_error_prefix("merge_method: linear\nmodels: [a, b\n", SIZE_MAX, "t.yaml:3: YAML syntax error: ");
	expect_error("merge_method: linear\n"
		     "models:\n"
		     "  - model: &m a\n"
		     "  - model: *m\n",
		     "t.yaml:4: YAML aliases (*m) are not supported in recipes");
	expect_error("", "t.yaml:1: empty recipe (no YAML document)");
	expect_error("# only a comment\n\n", "t.yaml:1: empty recipe (no YAML document)");
	expect_error("---\n", "t.yaml:2: the top level of a recipe must be a mapping (merge_method: ...), not empty");
	expect_error("- a\n- b\n", "t.yaml:1: the top level of a recipe must be a mapping (merge_method: ...), not a list");
	expect_error("linear\n", "t.yaml:1: the top level of a recipe must be a mapping (merge_method: ...), not a value");
	expect_error("merge_method: linear\nmodels: [{model: a}]\n---\nmerge_method: ties\n",
		     "t.yaml:3: more than one YAML document (a recipe is one document)");
	expect_error("? [a]\n: b\n", "t.yaml:1: a mapping key must be a string, not a list or a mapping");
	expect_error("merge_method: !custom linear\nmodels: [{model: a}]\n", "t.yaml:1: unsupported YAML tag '!custom'");
	/* a quoted string tagged as a float is still validated as a number */
	struct warnings w = { 0 };
	struct cr_recipe *r =
		parse_ok("merge_method: !!str linear\nmodels: [{model: a, parameters: {weight: !!float 2}}]\n", &w);
	ck_assert_double_eq(param(r, 0, CR_P_WEIGHT, "x", CR_CLASS_NONE, 0), 2.0);
	cr_recipe_free(r);
	expect_error("merge_method: linear\nmodels: [{model: a, parameters: {weight: !!str 2}}]\n",
		     "t.yaml:2: models[0].parameters.weight must be a number, true/false or a list, not '2'");
	/* NUL bytes, raw and escaped */
	static const char nul[] = "merge_method: linear\nmodels: [{model: a}]\0\n";
	expect_error_len(nul, sizeof nul - 1, "t.yaml:2: NUL byte in the recipe (not a text file?)");
	expect_error("merge_method: linear\nbase_model: \"a\\0b\"\nmodels: [{model: a}]\n",
		     "t.yaml:2: a string contains a NUL character");
	expect_error_prefix("merge_method: linear\nmodels: [{model: \"\xff\xfe\"}]\n", SIZE_MAX,
			    "t.yaml:2: not valid UTF-8 text: ");
}
END_TEST

START_TEST(deep_and_huge_documents)
{
	/* deep flow nesting is refused early, not recursed into */
	size_t depth = 100000;
	char *deep = malloc(2 * depth + 32);
	size_t k = 0;
	k += (size_t)sprintf(deep, "merge_method: ");
	for (size_t i = 0; i < depth; i++)
		deep[k++] = '[';
	for (size_t i = 0; i < depth; i++)
		deep[k++] = ']';
	deep[k++] = '\n';
	expect_error_len(deep, k, "t.yaml:1: YAML nested deeper than 32 levels");
	/* deep block mappings too */
	k = 0;
	for (int i = 0; i < 40; i++)
		k += (size_t)sprintf(deep + k, "%*sk%d:\n", i, "", i);
	expect_error_len(deep, k, "t.yaml:32: YAML nested deeper than 32 levels");
	free(deep);

	/* a long gradient within the size limit but with too many values */
	size_t n = 150000;
	char *many = malloc(2 * n + 128);
	k = (size_t)sprintf(many, "merge_method: linear\nmodels: [{model: a, parameters: {weight: [");
	for (size_t i = 0; i < n; i++) {
		many[k++] = '0';
		many[k++] = ',';
	}
	k--; /* the last comma */
	k += (size_t)sprintf(many + k, "]}}]\n");
	expect_error_len(many, k, "t.yaml:2: too many YAML values (more than 100000)");
	free(many);

	/* over 1 MiB: refused before parsing, from memory and from a file */
	size_t big = CR_RECIPE_MAX_BYTES + 10;
	char *huge = malloc(big);
	memset(huge, '#', big);
	huge[big - 1] = '\n';
	struct cr_recipe *r = NULL;
	cr_error err;
	ck_assert_int_eq(cr_recipe_parse(huge, big, "t.yaml", &r, NULL, NULL, &err), -1);
	ck_assert_str_eq(err.msg, "t.yaml: recipe is 1048586 bytes; the limit is 1048576 (1 MiB)");
	char path[] = "/tmp/check_recipe_huge.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, huge, big), (ssize_t)big);
	close(fd);
	ck_assert_int_eq(cr_recipe_load(path, &r, NULL, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "larger than 1 MiB") && strstr(err.msg, path), "%s", err.msg);
	unlink(path);
	free(huge);
	/* an endless device is cut off at the limit, no hang */
	ck_assert_int_eq(cr_recipe_load("/dev/zero", &r, NULL, NULL, &err), -1);
	ck_assert_str_eq(err.msg, "/dev/zero: recipe is larger than 1 MiB; a recipe is a short YAML file");
	/* files that are not there, folders */
	ck_assert_int_eq(cr_recipe_load("/nonexistent/r.yaml", &r, NULL, NULL, &err), -1);
	ck_assert_int_eq(err.code, CR_E_IO);
	ck_assert_str_eq(err.msg, "/nonexistent/r.yaml: No such file or directory");
	ck_assert_int_eq(cr_recipe_load("/tmp", &r, NULL, NULL, &err), -1);
	ck_assert_str_eq(err.msg, "/tmp: is a folder, not a recipe file");
	ck_assert_ptr_null(r);
}
END_TEST

/* Random damage to the fixture recipes: every result is a recipe or one clean
 * error line naming the file (ASan/UBSan watch for the rest). */
START_TEST(mutations_never_crash)
{
	const char *names[] = { "slerp-mixtral.yaml", "ties-llama.yaml", "aoe-trimind-dsv3.yaml" };
	uint64_t state = 0x9E3779B97F4A7C15u;
	int accepted = 0, rejected = 0;
	for (size_t f = 0; f < 3; f++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", fixture("expected"), names[f]);
		FILE *fp = fopen(path, "rb");
		ck_assert_ptr_nonnull(fp);
		char orig[4096];
		size_t len = fread(orig, 1, sizeof orig, fp);
		fclose(fp);
		static const char junk[] = ":-[]{}#&*!|>'\"%@`,?\n \t0.5e-x\xff";
		for (int it = 0; it < 1500; it++) {
			char buf[4096];
			memcpy(buf, orig, len);
			size_t l = len;
			int edits = 1 + (int)(state % 4);
			for (int e = 0; e < edits; e++) {
				state = state * 6364136223846793005u + 1442695040888963407u;
				size_t pos = (size_t)(state >> 33) % l;
				int op = (int)((state >> 20) % 3);
				char c = junk[(state >> 8) % (sizeof junk - 1)];
				if (op == 0)
					buf[pos] = c;
				else if (op == 1 && l > 1)
					memmove(buf + pos, buf + pos + 1, l - pos - 1), l--;
				else
					l = pos ? pos : 1; /* truncate */
			}
			struct cr_recipe *r = NULL;
			cr_error err = { 0 };
			struct warnings w = { 0 };
			if (cr_recipe_parse(buf, l, "m.yaml", &r, collect, &w, &err) == 0) {
				accepted++;
				free(round_trip(r));
				cr_recipe_free(r);
			} else {
				rejected++;
				ck_assert_msg(strncmp(err.msg, "m.yaml:", 7) == 0 && !strchr(err.msg, '\n'), "%s",
					      err.msg);
			}
		}
	}
	ck_assert_int_gt(accepted, 0);
	ck_assert_int_gt(rejected, 0);
}
END_TEST

static Suite *recipe_suite(void)
{
	Suite *s = suite_create("recipe");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, layer_t_rules);
	tcase_add_test(tc, gradient_interpolation);
	tcase_add_test(tc, fixture_aoe_r1t);
	tcase_add_test(tc, fixture_aoe_trimind);
	tcase_add_test(tc, fixture_breadcrumbs_ties);
	tcase_add_test(tc, fixture_linear);
	tcase_add_test(tc, fixture_model_stock_and_nuslerp);
	tcase_add_test(tc, fixture_slerp_gradient);
	tcase_add_test(tc, fixture_task_arithmetic_and_ties);
	tcase_add_test(tc, fixtures_all_round_trip);
	tcase_add_test(tc, precedence_and_classes);
	tcase_add_test(tc, slices_precedence);
	tcase_add_test(tc, own_recipes_round_trip);
	tcase_add_test(tc, round_trip_numbers_and_shapes);
	tcase_add_test(tc, save_is_atomic);
	tcase_add_test(tc, builder_matches_fixture);
	tcase_add_test(tc, save_refuses_invalid);
	tcase_add_test(tc, errors_keys_and_names);
	tcase_add_test(tc, errors_structure);
	tcase_add_test(tc, errors_values);
	tcase_add_test(tc, warnings_unused_and_misplaced);
	tcase_add_test(tc, bad_yaml_and_documents);
	tcase_add_test(tc, deep_and_huge_documents);
	tcase_add_test(tc, mutations_never_crash);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(recipe_suite());
}
