/*
 * The merge engine end to end on the fixture checkpoints and on tiny
 * checkpoints written here: thread-count independence, cancellation,
 * resume, passthrough slices, FP8 requantization, refusal to overwrite,
 * mismatched parents, NaN in a parent, vocabulary sub-matrices, shards.
 */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "crucible/engine.h"
#include "crucible/fp8.h"
#include "crucible/output.h"
#include "testutil.h"

static char tmpdir[256];

static void setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/crucible-engine-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	cr_out_rmrf(tmpdir, NULL);
}

static const char *tmp(const char *name)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ & 7];
	snprintf(b, 512, "%s/%s", tmpdir, name);
	return b;
}

static int exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

/* Load a recipe from text (absolute paths) and build its plan. */
static struct cr_plan *plan_of(const char *yaml, struct cr_recipe **r, cr_error *err)
{
	struct cr_plan *p = NULL;
	ck_assert_msg(cr_recipe_parse(yaml, strlen(yaml), tmp("r.yaml"), r, NULL, NULL, err) == 0, "%s", err->msg);
	if (cr_plan_build(*r, &p, NULL, NULL, err) < 0)
		return NULL;
	return p;
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)len + 1);
	*n = fread(b, 1, (size_t)len, f);
	b[*n] = 0;
	fclose(f);
	return b;
}

static int same_file(const char *a, const char *b)
{
	size_t na, nb;
	char *x = slurp(a, &na), *y = slurp(b, &nb);
	int same = x && y && na == nb && memcmp(x, y, na) == 0;
	free(x);
	free(y);
	return same;
}

struct rec {
	size_t n;
	char names[512][128];
	uint64_t sum[512];
	int dec[512], parent[512];
	int cancel_after, calls;
};

static void on_tensor(void *ctx, const char *name, enum cr_decision d, int parent, uint64_t ck)
{
	struct rec *r = ctx;
	if (r->n < 512) {
		snprintf(r->names[r->n], 128, "%s", name);
		r->sum[r->n] = ck;
		r->dec[r->n] = d;
		r->parent[r->n] = parent;
	}
	r->n++;
}

static int on_progress(void *ctx, const struct cr_merge_progress *p)
{
	struct rec *r = ctx;
	ck_assert(p->done <= p->total);
	r->calls++;
	return r->cancel_after && r->calls >= r->cancel_after;
}

static int merge(const char *yaml, const char *out, int threads, size_t chunk, uint64_t shard, struct rec *rec,
		 int resume, struct cr_merge_result *res, cr_error *err)
{
	struct cr_recipe *r = NULL;
	struct cr_plan *p = plan_of(yaml, &r, err);
	int rc = -1;
	if (p) {
		struct cr_merge_opts o = { .out = out,
					   .threads = threads,
					   .chunk = chunk,
					   .shard_size = shard,
					   .resume = resume,
					   .recipe_text = yaml,
					   .tensor_done = rec ? on_tensor : NULL,
					   .progress = rec ? on_progress : NULL,
					   .ctx = rec };
		struct cr_merge_result tmpres;
		rc = cr_merge_run(p, &o, res ? res : &tmpres, err);
		cr_plan_free(p);
	}
	cr_recipe_free(r);
	return rc;
}

static char *recipe(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *recipe(const char *fmt, ...)
{
	static char buf[4][4096];
	static int k;
	char *b = buf[k++ & 3];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, 4096, fmt, ap);
	va_end(ap);
	return b;
}

/* ---------------------------------------------------------------- determinism */

START_TEST(dare_ties_same_bytes_for_any_thread_count)
{
	const char *y = recipe("merge_method: dare_ties\nbase_model: %s\nmodels:\n"
			       "  - model: %s\n    parameters: {weight: 0.6, density: 0.5}\n"
			       "  - model: %s\n    parameters: {weight: 0.4, density: 0.3}\n"
			       "random_seed: 42\nout_dtype: float32\n",
			       fixture("models/mixtral/base"), fixture("models/mixtral/instruct"),
			       fixture("models/mixtral/code"));
	cr_error err;
	struct rec r1 = { 0 }, r2 = { 0 };
	ck_assert_msg(merge(y, tmp("t1"), 1, 1 << 20, 0, &r1, 0, NULL, &err) == 0, "%s", err.msg);
	ck_assert_msg(merge(y, tmp("t2"), 2, 4096, 0, &r2, 0, NULL, &err) == 0, "%s", err.msg);
	ck_assert(same_file(tmp("t1/model-00001-of-00001.safetensors"), tmp("t2/model-00001-of-00001.safetensors")));
	ck_assert_uint_eq(r1.n, r2.n);
	for (size_t i = 0; i < r1.n; i++)
		ck_assert_uint_eq(r1.sum[i], r2.sum[i]);
	/* another seed gives other bytes */
	const char *y2 = recipe("merge_method: dare_ties\nbase_model: %s\nmodels:\n"
				"  - model: %s\n    parameters: {weight: 0.6, density: 0.5}\n"
				"  - model: %s\n    parameters: {weight: 0.4, density: 0.3}\n"
				"random_seed: 43\nout_dtype: float32\n",
				fixture("models/mixtral/base"), fixture("models/mixtral/instruct"),
				fixture("models/mixtral/code"));
	ck_assert_msg(merge(y2, tmp("t3"), 2, 0, 0, NULL, 0, NULL, &err) == 0, "%s", err.msg);
	ck_assert(!same_file(tmp("t1/model-00001-of-00001.safetensors"), tmp("t3/model-00001-of-00001.safetensors")));
	/* the checksum is the tensor's bytes: recompute one from the file, in odd pieces */
	struct cr_ckpt *c;
	ck_assert_int_eq(cr_ckpt_open(tmp("t1"), &c, &err), 0);
	const struct cr_tensor *t = cr_ckpt_find(c, r1.names[0]);
	ck_assert_ptr_nonnull(t);
	uint8_t *raw = malloc(t->nbytes);
	ck_assert_int_eq(cr_tensor_read_raw(c, t, 0, raw, t->nbytes, &err), 0);
	uint64_t s = 0, cut = t->nbytes / 3 + 1;
	s += cr_checksum_piece(raw, cut, 0);
	s += cr_checksum_piece(raw + cut, t->nbytes - cut, cut);
	ck_assert_uint_eq(cr_checksum_final(s, t->nbytes), r1.sum[0]);
	ck_assert_uint_ne(cr_checksum_final(s + 1, t->nbytes), r1.sum[0]);
	free(raw);
	cr_ckpt_close(c);
}
END_TEST

/* ---------------------------------------------------------------- cancel, resume, refuse */

static const char *linear_llama(void)
{
	return recipe("merge_method: linear\nmodels:\n"
		      "  - model: %s\n    parameters: {weight: 0.5}\n"
		      "  - model: %s\n    parameters: {weight: 0.3}\n"
		      "  - model: %s\n    parameters: {weight: 0.2}\n",
		      fixture("models/llama/base"), fixture("models/llama/math"), fixture("models/llama/chat"));
}

START_TEST(cancel_leaves_nothing)
{
	cr_error err;
	struct rec r = { .cancel_after = 3 };
	ck_assert_int_eq(merge(linear_llama(), tmp("c"), 2, 4096, 0, &r, 0, NULL, &err), -1);
	ck_assert_int_eq(err.code, CR_E_CANCELLED);
	ck_assert(!exists(tmp("c")));
	ck_assert(!exists(tmp("c.partial")));
}
END_TEST

static void die_after(void *ctx, const char *name, enum cr_decision d, int parent, uint64_t ck)
{
	(void)name;
	(void)d;
	(void)parent;
	(void)ck;
	int *n = ctx;
	if (--*n == 0)
		_exit(3); /* as if killed mid-run */
}

/* Run the merge in a child that dies (like a kill) after `after` tensors.  Forked before this
 * process uses OpenMP: a thread pool does not survive fork. */
static void interrupted_run(const char *y, const char *out, int after, int resume)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		cr_error err;
		struct cr_recipe *r = NULL;
		struct cr_plan *p = plan_of(y, &r, &err);
		struct cr_merge_result res;
		int n = after;
		struct cr_merge_opts o = { .out = out, .shard_size = 200000, .recipe_text = y, .threads = 1,
					   .tensor_done = die_after, .ctx = &n, .resume = resume };
		if (p)
			cr_merge_run(p, &o, &res, &err);
		_exit(0);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
}

START_TEST(resume_keeps_verified_shards)
{
	cr_error err;
	const char *y = linear_llama();
	interrupted_run(y, tmp("o"), 20, 0);
	interrupted_run(y, tmp("o2"), 25, 0);
	ck_assert(!exists(tmp("o")));
	ck_assert(exists(tmp("o.partial/model-00001-of-00005.safetensors")));
	ck_assert(exists(tmp("o.partial/.crucible-manifest.json")));

	struct cr_merge_result fresh, res;
	ck_assert_msg(merge(y, tmp("fresh"), 2, 0, 200000, NULL, 0, &fresh, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(fresh.nshards, 5);
	ck_assert(!exists(tmp("fresh/.crucible-manifest.json"))); /* the manifest never reaches OUT */

	struct rec rr = { 0 };
	ck_assert_msg(merge(y, tmp("o"), 2, 0, 200000, &rr, 1, &res, &err) == 0, "%s", err.msg);
	ck_assert_uint_ge(res.shards_kept, 1);
	ck_assert_uint_lt(res.shards_kept, res.nshards);
	ck_assert_uint_eq(rr.n, 30); /* every tensor reported once, kept or written */
	for (size_t s = 1; s <= fresh.nshards; s++) {
		char name[96], a[600], b[600];
		snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s, fresh.nshards);
		snprintf(a, sizeof a, "%s/%s", tmp("fresh"), name);
		snprintf(b, sizeof b, "%s/%s", tmp("o"), name);
		ck_assert_msg(same_file(a, b), "%s differs after resume", name);
	}
	ck_assert(same_file(tmp("fresh/model.safetensors.index.json"), tmp("o/model.safetensors.index.json")));

	/* a kept shard that was damaged is found by its checksums and rewritten */
	size_t n;
	char *man = slurp(tmp("o2.partial/.crucible-manifest.json"), &n);
	ck_assert_ptr_nonnull(man);
	size_t finished = 0;
	for (char *q = man; (q = strstr(q, "\"file\"")); q++)
		finished++;
	free(man);
	ck_assert_uint_ge(finished, 2);
	int fd = open(tmp("o2.partial/model-00001-of-00005.safetensors"), O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "\x55\x55\x55\x55", 4, 2000), 4);
	close(fd);
	ck_assert_msg(merge(y, tmp("o2"), 2, 0, 200000, NULL, 1, &res, &err) == 0, "%s", err.msg);
	ck_assert(same_file(tmp("fresh/model-00001-of-00005.safetensors"), tmp("o2/model-00001-of-00005.safetensors")));
	ck_assert_uint_eq(res.shards_kept, finished - 1);
}
END_TEST

START_TEST(refuses_existing_output)
{
	cr_error err;
	ck_assert_int_eq(mkdir(tmp("x"), 0755), 0);
	ck_assert_int_eq(merge(linear_llama(), tmp("x"), 1, 0, 0, NULL, 0, NULL, &err), -1);
	ck_assert_int_eq(err.code, CR_E_EXISTS);
	struct cr_recipe *r = NULL;
	struct cr_plan *p = plan_of(linear_llama(), &r, &err);
	struct cr_merge_result res;
	struct cr_merge_opts o = { .out = tmp("x"), .force = 1 };
	ck_assert_msg(cr_merge_run(p, &o, &res, &err) == 0, "%s", err.msg);
	ck_assert(exists(tmp("x/config.json")));
	ck_assert(exists(tmp("x/README.md")));
	size_t n;
	char *card = slurp(tmp("x/README.md"), &n);
	ck_assert_ptr_nonnull(strstr(card, "merge_method"));
	free(card);
	cr_plan_free(p);
	cr_recipe_free(r);
}
END_TEST

/* ---------------------------------------------------------------- passthrough slices */

/* aoe speculates that parents clear δ; with δ above every distance each tensor is redone as the base */
START_TEST(aoe_all_gated_is_the_base)
{
	const char *y = recipe("merge_method: aoe\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 1.0}\n"
			       "parameters: {delta: 10}\n",
			       fixture("models/dsv3/v3-base"), fixture("models/dsv3/r1"));
	cr_error err;
	struct rec rec = { 0 };
	ck_assert_msg(merge(y, tmp("g"), 2, 0, 0, &rec, 0, NULL, &err) == 0, "%s", err.msg);
	struct cr_ckpt *o, *b;
	ck_assert_int_eq(cr_ckpt_open(tmp("g"), &o, &err), 0);
	ck_assert_int_eq(cr_ckpt_open(fixture("models/dsv3/v3-base"), &b, &err), 0);
	ck_assert_uint_eq(rec.n, o->ntensors);
	for (size_t i = 0; i < rec.n; i++) {
		ck_assert_int_eq(rec.dec[i], CR_DEC_COPY);
		ck_assert_int_eq(rec.parent[i], 0);
	}
	for (size_t i = 0; i < o->ntensors; i++) {
		const struct cr_tensor *t = &o->tensors[i], *u = cr_ckpt_find(b, t->name);
		uint8_t *x = malloc(t->nbytes), *z = malloc(t->nbytes);
		ck_assert_int_eq(cr_tensor_read_raw(o, t, 0, x, t->nbytes, &err), 0);
		ck_assert_int_eq(cr_tensor_read_raw(b, u, 0, z, u->nbytes, &err), 0);
		ck_assert_mem_eq(x, z, t->nbytes);
		if (t->scale) {
			size_t ns = cr_tensor_scale_count(t);
			float *g = malloc(ns * 4), *h = malloc(ns * 4);
			cr_tensor_read_scales(o, t, g, &err);
			cr_tensor_read_scales(b, u, h, &err);
			ck_assert_mem_eq(g, h, ns * 4);
			free(g);
			free(h);
		}
		free(x);
		free(z);
	}
	cr_ckpt_close(o);
	cr_ckpt_close(b);
}
END_TEST

START_TEST(passthrough_slices_stack_layers)
{
	const char *y = recipe("merge_method: passthrough\nslices:\n"
			       "  - sources:\n      - model: %s\n        layer_range: [0, 2]\n"
			       "  - sources:\n      - model: %s\n        layer_range: [1, 3]\n",
			       fixture("models/llama/base"), fixture("models/llama/chat"));
	cr_error err;
	ck_assert_msg(merge(y, tmp("pt"), 2, 0, 0, NULL, 0, NULL, &err) == 0, "%s", err.msg);
	struct cr_ckpt *o, *b, *c;
	ck_assert_int_eq(cr_ckpt_open(tmp("pt"), &o, &err), 0);
	ck_assert_int_eq(cr_ckpt_open(fixture("models/llama/base"), &b, &err), 0);
	ck_assert_int_eq(cr_ckpt_open(fixture("models/llama/chat"), &c, &err), 0);
	ck_assert_int_eq(o->num_layers, 4);
	int per_layer = 0;
	for (size_t i = 0; i < b->ntensors; i++)
		per_layer += b->tensors[i].layer == 0;
	ck_assert_uint_eq(o->ntensors, b->ntensors - 3 * (size_t)per_layer + 4 * (size_t)per_layer);
	for (size_t i = 0; i < o->ntensors; i++) {
		const struct cr_tensor *t = &o->tensors[i];
		const struct cr_ckpt *src = b;
		char name[256];
		snprintf(name, sizeof name, "%s", t->name);
		if (t->layer >= 2) { /* output layers 2, 3 are chat's 1, 2 */
			src = c;
			char *p = strstr(name, "layers.");
			snprintf(p + 7, sizeof name - (size_t)(p + 7 - name), "%d%s", t->layer - 1,
				 strchr(strstr(t->name, "layers.") + 7, '.'));
		}
		const struct cr_tensor *s = cr_ckpt_find(src, name);
		ck_assert_msg(s != NULL, "%s", name);
		ck_assert_int_eq(s->dtype, t->dtype);
		ck_assert_uint_eq(s->nbytes, t->nbytes);
		uint8_t *x = malloc(t->nbytes), *z = malloc(t->nbytes);
		ck_assert_int_eq(cr_tensor_read_raw(o, t, 0, x, t->nbytes, &err), 0);
		ck_assert_int_eq(cr_tensor_read_raw(src, s, 0, z, s->nbytes, &err), 0);
		ck_assert_msg(memcmp(x, z, t->nbytes) == 0, "%s differs from %s", t->name, name);
		free(x);
		free(z);
	}
	cr_ckpt_close(o);
	cr_ckpt_close(b);
	cr_ckpt_close(c);
}
END_TEST

/* ---------------------------------------------------------------- FP8 */

START_TEST(fp8_requantized_and_verbatim)
{
	/* experts averaged (computed, requantized FP8: no out_dtype, FP8 base); everything else the base's bytes */
	const char *y = recipe("merge_method: aoe\nbase_model: %s\nmodels:\n"
			       "  - model: %s\n    parameters:\n      weight:\n        - filter: mlp.experts.\n"
			       "          value: 0.5\n        - value: 1.0\n"
			       "  - model: %s\n    parameters:\n      weight:\n        - filter: mlp.experts.\n"
			       "          value: 0.5\n        - value: 0.0\n",
			       fixture("models/dsv3/v3-base"), fixture("models/dsv3/v3-base"), fixture("models/dsv3/r1"));
	cr_error err;
	struct rec rec = { 0 };
	ck_assert_msg(merge(y, tmp("f8"), 2, 0, 0, &rec, 0, NULL, &err) == 0, "%s", err.msg);
	struct cr_ckpt *o, *b, *r1;
	ck_assert_int_eq(cr_ckpt_open(tmp("f8"), &o, &err), 0);
	ck_assert_int_eq(cr_ckpt_open(fixture("models/dsv3/v3-base"), &b, &err), 0);
	ck_assert_int_eq(cr_ckpt_open(fixture("models/dsv3/r1"), &r1, &err), 0);
	ck_assert_uint_eq(o->ntensors, b->ntensors);
	ck_assert_uint_eq(o->nscales, b->nscales);
	int computed = 0;
	for (size_t i = 0; i < o->ntensors; i++) {
		const struct cr_tensor *t = &o->tensors[i], *tb = cr_ckpt_find(b, t->name), *tr = cr_ckpt_find(r1, t->name);
		ck_assert_int_eq(t->dtype, tb->dtype);
		ck_assert_int_eq(t->scale != NULL, tb->scale != NULL);
		int expert = strstr(t->name, "mlp.experts.") != NULL;
		size_t ns = t->scale ? cr_tensor_scale_count(t) : 0;
		float *g = ns ? malloc(ns * 4) : NULL, *gb = ns ? malloc(ns * 4) : NULL, *gr = ns ? malloc(ns * 4) : NULL;
		if (ns) {
			ck_assert_int_eq(cr_tensor_read_scales(o, t, g, &err), 0);
			ck_assert_int_eq(cr_tensor_read_scales(b, tb, gb, &err), 0);
			ck_assert_int_eq(cr_tensor_read_scales(r1, tr, gr, &err), 0);
		}
		uint8_t *raw = malloc(t->nbytes * 4 + 8);
		float *x = malloc(t->nelem * 4), *xb = malloc(t->nelem * 4), *xr = malloc(t->nelem * 4);
		ck_assert_int_eq(cr_tensor_read_f32(o, t, g, 0, t->nelem, raw, x, &err), 0);
		ck_assert_int_eq(cr_tensor_read_f32(b, tb, gb, 0, t->nelem, raw, xb, &err), 0);
		ck_assert_int_eq(cr_tensor_read_f32(r1, tr, gr, 0, t->nelem, raw, xr, &err), 0);
		if (!expert) {
			ck_assert_mem_eq(x, xb, t->nelem * 4);
			if (ns)
				ck_assert_mem_eq(g, gb, ns * 4);
		} else {
			computed++;
			/* within half an FP8 step (3 mantissa bits) of the block's scale */
			size_t cols = (size_t)t->shape[1], sc = cr_fp8_scale_dim(cols);
			for (uint64_t e = 0; e < t->nelem; e++) {
				double want = 0.5 * xb[e] + 0.5 * xr[e];
				double s = g[(e / cols / 128) * sc + (e % cols) / 128];
				ck_assert_msg(fabs(x[e] - want) <= fabs(want) / 16 + s * 0x1p-9 + 1e-12, "%s[%llu]: %g vs %g",
					      t->name, (unsigned long long)e, x[e], want);
			}
		}
		free(raw);
		free(x);
		free(xb);
		free(xr);
		free(g);
		free(gb);
		free(gr);
	}
	ck_assert_int_gt(computed, 50);
	for (size_t i = 0; i < rec.n && i < 512; i++)
		ck_assert_int_eq(rec.dec[i], strstr(rec.names[i], "mlp.experts.") ? CR_DEC_COMPUTE : CR_DEC_COPY);
	size_t n;
	char *cfg = slurp(tmp("f8/config.json"), &n);
	ck_assert_ptr_nonnull(strstr(cfg, "quantization_config")); /* FP8 written: kept */
	free(cfg);
	cr_ckpt_close(o);
	cr_ckpt_close(b);
	cr_ckpt_close(r1);
}
END_TEST

/* ---------------------------------------------------------------- tiny checkpoints */

static void write_ckpt(const char *dir, const char *const *names, const uint64_t (*shapes)[2],
		       const float *const *vals, int n)
{
	mkdir(dir, 0755);
	char path[600];
	snprintf(path, sizeof path, "%s/config.json", dir);
	const char *cfg = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
			  "\"num_hidden_layers\": 1, \"torch_dtype\": \"float32\"}\n";
	cr_error err;
	ck_assert_int_eq(cr_out_write_file(path, cfg, strlen(cfg), &err), 0);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	struct cr_st_entry e[8];
	for (int i = 0; i < n; i++)
		e[i] = (struct cr_st_entry){ names[i], CR_DT_F32, 2, shapes[i] };
	struct cr_st_writer *w;
	ck_assert_int_eq(cr_st_writer_open(path, e, (size_t)n, NULL, 0, &w, &err), 0);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(cr_st_writer_write(w, (size_t)i, 0, vals[i], shapes[i][0] * shapes[i][1] * 4, &err), 0);
	ck_assert_int_eq(cr_st_writer_finish(w, &err), 0);
}

START_TEST(nan_in_parent_fails_with_name)
{
	const char *names[2] = { "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight" };
	const uint64_t shapes[2][2] = { { 2, 2 }, { 2, 3 } };
	float e1[4] = { 1, 2, 3, 4 }, u1[6] = { 1, 2, 3, 4, 5, 6 }, u2[6] = { 1, 2, 3, NAN, 5, 6 };
	const float *v1[2] = { e1, u1 }, *v2[2] = { e1, u2 };
	write_ckpt(tmp("a"), names, shapes, v1, 2);
	write_ckpt(tmp("b"), names, shapes, v2, 2);
	const char *y = recipe("merge_method: linear\nmodels:\n  - model: %s\n  - model: %s\n", tmp("a"), tmp("b"));
	cr_error err;
	ck_assert_int_eq(merge(y, tmp("nan"), 2, 0, 0, NULL, 0, NULL, &err), -1);
	ck_assert_int_eq(err.code, CR_E_NUMERIC);
	ck_assert_ptr_nonnull(strstr(err.msg, "model.layers.0.mlp.up_proj.weight"));
	ck_assert_ptr_nonnull(strstr(err.msg, tmp("b")));
	ck_assert(!exists(tmp("nan")));
}
END_TEST

START_TEST(mismatched_parents_listed)
{
	const char *na[2] = { "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight" };
	const char *nb[2] = { "model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight" };
	const uint64_t sa[2][2] = { { 2, 2 }, { 2, 3 } }, sb[2][2] = { { 2, 3 }, { 2, 3 } };
	float z[6] = { 0 };
	const float *v[2] = { z, z };
	write_ckpt(tmp("a"), na, sa, v, 2);
	write_ckpt(tmp("b"), nb, sb, v, 2);
	const char *y = recipe("merge_method: linear\nmodels:\n  - model: %s\n  - model: %s\n", tmp("a"), tmp("b"));
	struct cr_recipe *r = NULL;
	cr_error err;
	ck_assert_ptr_null(plan_of(y, &r, &err));
	cr_recipe_free(r);
	ck_assert_int_eq(err.code, CR_E_MISMATCH);
	ck_assert_ptr_nonnull(strstr(err.msg, "up_proj"));   /* missing from b */
	ck_assert_ptr_nonnull(strstr(err.msg, "down_proj")); /* missing from a */
	ck_assert_ptr_nonnull(strstr(err.msg, "[2, 3]"));    /* embed shape differs, not a sub-matrix */
}
END_TEST

static int warned;
static void count_warn(void *ctx, const char *msg)
{
	(void)ctx;
	warned += strstr(msg, "vocabulary") != NULL;
}

START_TEST(vocab_submatrix_with_warning)
{
	const char *nm[1] = { "model.embed_tokens.weight" };
	const uint64_t sa[1][2] = { { 2, 2 } }, sb[1][2] = { { 3, 2 } };
	float a[4] = { 1, 2, 3, 4 }, b[6] = { 3, 4, 5, 6, 7, 8 };
	const float *va[1] = { a }, *vb[1] = { b };
	write_ckpt(tmp("a"), nm, sa, va, 1);
	write_ckpt(tmp("b"), nm, sb, vb, 1);
	const char *y = recipe("merge_method: linear\nmodels:\n  - model: %s\n  - model: %s\nout_dtype: float32\n",
			       tmp("a"), tmp("b"));
	struct cr_recipe *r = NULL;
	struct cr_plan *p = NULL;
	cr_error err;
	ck_assert_int_eq(cr_recipe_parse(y, strlen(y), tmp("r.yaml"), &r, NULL, NULL, &err), 0);
	warned = 0;
	ck_assert_msg(cr_plan_build(r, &p, count_warn, NULL, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(warned, 1);
	struct cr_merge_opts o = { .out = tmp("v") };
	struct cr_merge_result res;
	ck_assert_msg(cr_merge_run(p, &o, &res, &err) == 0, "%s", err.msg);
	struct cr_ckpt *c;
	ck_assert_int_eq(cr_ckpt_open(tmp("v"), &c, &err), 0);
	ck_assert_uint_eq(c->tensors[0].shape[0], 2);
	float x[4];
	uint8_t raw[16];
	ck_assert_int_eq(cr_tensor_read_f32(c, &c->tensors[0], NULL, 0, 4, raw, x, &err), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_float_eq(x[i], (a[i] + b[i]) / 2);
	cr_ckpt_close(c);
	cr_plan_free(p);
	cr_recipe_free(r);
}
END_TEST

START_TEST(shards_and_index)
{
	cr_error err;
	struct cr_merge_result res, one;
	ck_assert_msg(merge(linear_llama(), tmp("s"), 2, 0, 300000, NULL, 0, &res, &err) == 0, "%s", err.msg);
	ck_assert_msg(merge(linear_llama(), tmp("one"), 2, 0, 0, NULL, 0, &one, &err) == 0, "%s", err.msg);
	ck_assert_uint_gt(res.nshards, 1);
	ck_assert_uint_eq(one.nshards, 1);
	size_t n;
	char *idx = slurp(tmp("s/model.safetensors.index.json"), &n);
	char want[64];
	snprintf(want, sizeof want, "\"total_size\": %llu", (unsigned long long)res.bytes);
	ck_assert_ptr_nonnull(strstr(idx, want));
	free(idx);
	/* the same tensors, byte for byte, however sharded */
	struct cr_ckpt *a, *b;
	ck_assert_int_eq(cr_ckpt_open(tmp("s"), &a, &err), 0);
	ck_assert_int_eq(cr_ckpt_open(tmp("one"), &b, &err), 0);
	ck_assert_uint_eq(a->nshards, res.nshards);
	ck_assert_uint_eq(a->ntensors, b->ntensors);
	uint64_t total = 0;
	for (size_t i = 0; i < a->ntensors; i++) {
		const struct cr_tensor *t = &a->tensors[i], *u = cr_ckpt_find(b, t->name);
		ck_assert_uint_eq(t->nbytes, u->nbytes);
		uint8_t *x = malloc(t->nbytes), *y = malloc(t->nbytes);
		cr_tensor_read_raw(a, t, 0, x, t->nbytes, &err);
		cr_tensor_read_raw(b, u, 0, y, u->nbytes, &err);
		ck_assert_mem_eq(x, y, t->nbytes);
		free(x);
		free(y);
		total += t->nbytes;
	}
	ck_assert_uint_eq(total, res.bytes);
	for (size_t s = 0; s < a->nshards; s++) {
		struct stat st;
		ck_assert_int_eq(stat(a->shards[s]->path, &st), 0);
		ck_assert_uint_le(st.st_size - (off_t)a->shards[s]->data_start, 300000 + 200000); /* one tensor may overflow */
	}
	cr_ckpt_close(a);
	cr_ckpt_close(b);
	uint64_t v;
	ck_assert_int_eq(cr_parse_size("500MB", &v), 0);
	ck_assert_uint_eq(v, 500000000ull);
	ck_assert_int_eq(cr_parse_size("2GiB", &v), 0);
	ck_assert_uint_eq(v, 2147483648ull);
	ck_assert_int_eq(cr_parse_size("1.5G", &v), 0);
	ck_assert_uint_eq(v, 1500000000ull);
	ck_assert_int_eq(cr_parse_size("5 apples", &v), -1);
	ck_assert_int_eq(cr_parse_size("0", &v), -1);
}
END_TEST

START_TEST(plan_decisions_and_summary)
{
	cr_error err;
	struct cr_recipe *r = NULL;
	const char *y = recipe("merge_method: aoe\nbase_model: %s\nmodels:\n  - model: %s\n    parameters:\n"
			       "      weight:\n        - class: routed_expert\n          value: 1.0\n        - value: 0.0\n"
			       "parameters: {delta: 0.05}\n",
			       fixture("models/dsv3/v3-base"), fixture("models/dsv3/r1"));
	struct cr_plan *p = plan_of(y, &r, &err);
	ck_assert_ptr_nonnull(p);
	uint8_t *dec = malloc(p->ntensors);
	int16_t *par = malloc(p->ntensors * 2);
	double *rel = malloc(p->ntensors * p->nparents * sizeof(double));
	cr_plan_decide_all(p, NULL, dec, par);
	size_t pending = 0;
	for (size_t i = 0; i < p->ntensors; i++) {
		if (p->t[i].cls == CR_CLASS_ROUTED_EXPERT) {
			ck_assert_int_eq(dec[i], CR_DEC_PENDING);
			pending++;
		} else {
			ck_assert_int_eq(dec[i], CR_DEC_COPY);
			ck_assert_int_eq(par[i], 0);
		}
	}
	ck_assert_uint_eq(pending, 96);
	/* known distances: expert E of every layer moved 0.1 except expert 0 (0.01) */
	for (size_t i = 0; i < p->ntensors; i++) {
		rel[i * p->nparents] = 0;
		rel[i * p->nparents + 1] = p->t[i].expert == 0 ? 0.01 : 0.1;
	}
	cr_plan_decide_all(p, rel, dec, par);
	for (size_t i = 0; i < p->ntensors; i++)
		if (p->t[i].cls == CR_CLASS_ROUTED_EXPERT)
			ck_assert_int_eq(par[i], p->t[i].expert == 0 ? 0 : 1);
	struct cr_plan_summary s;
	cr_plan_summarize(p, rel, &s);
	ck_assert_uint_eq(s.count[CR_CLASS_ROUTED_EXPERT][1], 84);
	ck_assert_uint_eq(s.count[CR_CLASS_ROUTED_EXPERT][0], 12);
	/* refresh after the user changes δ: expert 0 (0.01) now counts */
	cr_recipe_free(r);
	y = recipe("merge_method: aoe\nbase_model: %s\nmodels:\n  - model: %s\n    parameters:\n"
		   "      weight:\n        - class: routed_expert\n          value: 1.0\n        - value: 0.0\n"
		   "parameters: {delta: 0.001}\n",
		   fixture("models/dsv3/v3-base"), fixture("models/dsv3/r1"));
	ck_assert_int_eq(cr_recipe_parse(y, strlen(y), tmp("r.yaml"), &r, NULL, NULL, &err), 0);
	ck_assert_int_eq(cr_plan_refresh(p, r, &err), 0);
	cr_plan_summarize(p, rel, &s);
	ck_assert_uint_eq(s.count[CR_CLASS_ROUTED_EXPERT][1], 96);
	free(dec);
	free(par);
	free(rel);
	cr_plan_free(p);
	cr_recipe_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("engine");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, dare_ties_same_bytes_for_any_thread_count);
	tcase_add_test(tc, cancel_leaves_nothing);
	tcase_add_test(tc, resume_keeps_verified_shards);
	tcase_add_test(tc, refuses_existing_output);
	tcase_add_test(tc, passthrough_slices_stack_layers);
	tcase_add_test(tc, fp8_requantized_and_verbatim);
	tcase_add_test(tc, aoe_all_gated_is_the_base);
	tcase_add_test(tc, nan_in_parent_fails_with_name);
	tcase_add_test(tc, mismatched_parents_listed);
	tcase_add_test(tc, vocab_submatrix_with_warning);
	tcase_add_test(tc, shards_and_index);
	tcase_add_test(tc, plan_decisions_and_summary);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
