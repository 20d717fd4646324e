/*
 * The demo family generator (see crucible/demo.h).
 *
 * Owns: the demo layout (one list of tensor specs, built in the order
 * DeepSeek-V3 stores them), the value generator and the folder life cycle.
 *
 * Values.  Every element is a function of (seed, tensor name, element index)
 * through a counter-based hash, so tensors can be produced in any order and
 * on any thread and still give the same bytes.  Base weights are
 * Gaussian-like noise whose spread varies per 128x128 block (so FP8 block
 * scales differ, as in real checkpoints).  A parent is the base's dequantized
 * values plus noise of a relative size set per class (table `changes`),
 * requantized with fresh scales.  Each block's largest element is left alone
 * and the others are clamped to it, so a block's scale stays the base's and
 * a small change stays small after requantization instead of drowning in
 * rounding noise from a shifted grid.  A tensor a parent does not change is
 * written with the base's exact bytes.
 *
 * Invariants: a folder named by cr_demo_prepare is either absent or complete
 * (written under a temporary name, marker last, then renamed); a folder
 * without the marker is never deleted.
 *
 * Called by the `demo` command and by tests.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crucible/checkpoint.h"
#include "crucible/classify.h"
#include "crucible/demo.h"
#include "crucible/dtype.h"
#include "crucible/fp8.h"
#include "crucible/safetensors.h"

/* ---- the layout ---- */

enum {
	D_HIDDEN = 448, /* 3.5 FP8 blocks: partial edge blocks, as the fixtures have */
	D_INTER = 1024,
	D_MOE_INTER = 160,
	D_EXPERTS = 8,
	D_SHARED = 1,
	D_TOPK = 2,
	D_HEADS = 4,
	D_QLORA = 192,
	D_KVLORA = 128,
	D_NOPE = 32,
	D_ROPE = 16,
	D_VDIM = 32,
	D_VOCAB = 768,
	D_LAYERS = 4, /* num_hidden_layers; the MTP layer is index 4 */
	D_DENSE = 1,  /* first_k_dense_replace */
	D_SHARDS = 4,
};
#define D_SEED 0x6372756369626c65ull /* "crucible" */

/*
 * Relative change (‖P−B‖/‖B‖ before requantization) each parent makes, by
 * class.  parentA draws a value in [a_lo, a_hi] per tensor, so experts differ
 * from each other; parentB grows linearly from b_early at layer 0 to b_late
 * at the MTP layer (tensors outside layers get b_early).
 */
static const struct change {
	float a_lo, a_hi, b_early, b_late;
} changes[CR_CLASS__COUNT] = {
	[CR_CLASS_EMBED] = { 0, 0, 0, 0 },
	[CR_CLASS_HEAD] = { 0, 0, 0, 0 },
	[CR_CLASS_ATTN] = { 0.010f, 0.030f, 0.005f, 0.060f },
	[CR_CLASS_NORM] = { 0.005f, 0.015f, 0.003f, 0.030f },
	[CR_CLASS_ROUTER] = { 0.010f, 0.030f, 0.010f, 0.080f },
	[CR_CLASS_DENSE_MLP] = { 0.010f, 0.030f, 0.010f, 0.010f },
	[CR_CLASS_SHARED_EXPERT] = { 0.010f, 0.030f, 0.010f, 0.100f },
	[CR_CLASS_ROUTED_EXPERT] = { 0.150f, 0.250f, 0.020f, 0.200f },
	[CR_CLASS_MTP] = { 0.010f, 0.030f, 0.050f, 0.100f },
	[CR_CLASS_OTHER] = { 0.010f, 0.020f, 0.010f, 0.020f },
};

struct spec {
	char *name;
	enum cr_dtype dtype; /* F8_E4M3 means block FP8 with a scale */
	int ndim;
	uint64_t shape[2];
	uint64_t scale_shape[2];
	char *scale_name;
	float mean, sigma;
	char *values_of; /* MTP copies of the embeddings and head: same values */
	struct cr_class_info ci;
	int shard, scale_shard;
	size_t entry, scale_entry; /* index in its shard's plan */
};

struct layout {
	struct spec *v;
	size_t n, cap;
};

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = cr_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static struct spec *add(struct layout *L, char *name, enum cr_dtype dt, uint64_t rows, uint64_t cols, float mean,
			float sigma)
{
	if (L->n == L->cap) {
		L->cap = L->cap ? 2 * L->cap : 256;
		L->v = cr_xrealloc(L->v, L->cap * sizeof *L->v);
	}
	struct spec *s = &L->v[L->n++];
	memset(s, 0, sizeof *s);
	s->name = name;
	s->dtype = dt;
	s->ndim = cols ? 2 : 1;
	s->shape[0] = rows;
	s->shape[1] = cols;
	s->mean = mean;
	s->sigma = sigma;
	s->ci = cr_classify(name, D_LAYERS);
	if (dt == CR_DT_F8_E4M3) {
		s->scale_name = xasprintf("%s_scale_inv", name);
		s->scale_shape[0] = cr_fp8_scale_dim(rows);
		s->scale_shape[1] = cr_fp8_scale_dim(cols);
	}
	return s;
}

/* An FP8 linear layer [out, in], with the usual 1/sqrt(in) spread. */
static void lin(struct layout *L, const char *prefix, const char *what, uint64_t out, uint64_t in)
{
	add(L, xasprintf("%s%s.weight", prefix, what), CR_DT_F8_E4M3, out, in, 0.0f, 1.0f / sqrtf((float)in));
}

static void norm(struct layout *L, const char *prefix, const char *what, uint64_t n)
{
	add(L, xasprintf("%s%s.weight", prefix, what), CR_DT_BF16, n, 0, 1.0f, 0.08f);
}

static void decoder_layer(struct layout *L, int layer)
{
	char *p = xasprintf("model.layers.%d.", layer);
	lin(L, p, "self_attn.q_a_proj", D_QLORA, D_HIDDEN);
	norm(L, p, "self_attn.q_a_layernorm", D_QLORA);
	lin(L, p, "self_attn.q_b_proj", D_HEADS * (D_NOPE + D_ROPE), D_QLORA);
	lin(L, p, "self_attn.kv_a_proj_with_mqa", D_KVLORA + D_ROPE, D_HIDDEN);
	norm(L, p, "self_attn.kv_a_layernorm", D_KVLORA);
	lin(L, p, "self_attn.kv_b_proj", D_HEADS * (D_NOPE + D_VDIM), D_KVLORA);
	lin(L, p, "self_attn.o_proj", D_HIDDEN, D_HEADS * D_VDIM);
	if (layer < D_DENSE) {
		lin(L, p, "mlp.gate_proj", D_INTER, D_HIDDEN);
		lin(L, p, "mlp.up_proj", D_INTER, D_HIDDEN);
		lin(L, p, "mlp.down_proj", D_HIDDEN, D_INTER);
	} else {
		add(L, xasprintf("%smlp.gate.weight", p), CR_DT_BF16, D_EXPERTS, D_HIDDEN, 0.0f, 0.02f);
		add(L, xasprintf("%smlp.gate.e_score_correction_bias", p), CR_DT_F32, D_EXPERTS, 0, 0.5f, 0.05f);
		for (int e = 0; e < D_EXPERTS; e++) {
			char *what = xasprintf("mlp.experts.%d.gate_proj", e);
			lin(L, p, what, D_MOE_INTER, D_HIDDEN);
			free(what);
			what = xasprintf("mlp.experts.%d.up_proj", e);
			lin(L, p, what, D_MOE_INTER, D_HIDDEN);
			free(what);
			what = xasprintf("mlp.experts.%d.down_proj", e);
			lin(L, p, what, D_HIDDEN, D_MOE_INTER);
			free(what);
		}
		lin(L, p, "mlp.shared_experts.gate_proj", D_SHARED * D_MOE_INTER, D_HIDDEN);
		lin(L, p, "mlp.shared_experts.up_proj", D_SHARED * D_MOE_INTER, D_HIDDEN);
		lin(L, p, "mlp.shared_experts.down_proj", D_HIDDEN, D_SHARED * D_MOE_INTER);
	}
	norm(L, p, "input_layernorm", D_HIDDEN);
	norm(L, p, "post_attention_layernorm", D_HIDDEN);
	free(p);
}

/* The tensors in the order DeepSeek-V3 stores them (shards fill in this order). */
static void layout_build(struct layout *L)
{
	memset(L, 0, sizeof *L);
	add(L, cr_xstrdup("model.embed_tokens.weight"), CR_DT_BF16, D_VOCAB, D_HIDDEN, 0.0f, 0.02f);
	for (int l = 0; l <= D_LAYERS; l++)
		decoder_layer(L, l);
	/* The MTP layer's extras; it shares the embeddings and head, stored as copies. */
	char *p = xasprintf("model.layers.%d.", D_LAYERS);
	struct spec *s = add(L, xasprintf("%sembed_tokens.weight", p), CR_DT_BF16, D_VOCAB, D_HIDDEN, 0.0f, 0.02f);
	s->values_of = cr_xstrdup("model.embed_tokens.weight");
	norm(L, p, "enorm", D_HIDDEN);
	norm(L, p, "hnorm", D_HIDDEN);
	add(L, xasprintf("%seh_proj.weight", p), CR_DT_BF16, D_HIDDEN, 2 * D_HIDDEN, 0.0f,
	    1.0f / sqrtf(2.0f * D_HIDDEN));
	norm(L, p, "shared_head.norm", D_HIDDEN);
	s = add(L, xasprintf("%sshared_head.head.weight", p), CR_DT_BF16, D_VOCAB, D_HIDDEN, 0.0f, 0.02f);
	s->values_of = cr_xstrdup("lm_head.weight");
	free(p);
	norm(L, "model.", "norm", D_HIDDEN);
	add(L, cr_xstrdup("lm_head.weight"), CR_DT_BF16, D_VOCAB, D_HIDDEN, 0.0f, 0.02f);
}

static void layout_free(struct layout *L)
{
	for (size_t i = 0; i < L->n; i++) {
		free(L->v[i].name);
		free(L->v[i].scale_name);
		free(L->v[i].values_of);
	}
	free(L->v);
}

static uint64_t spec_nelem(const struct spec *s)
{
	return s->ndim == 2 ? s->shape[0] * s->shape[1] : s->shape[0];
}

static uint64_t spec_bytes(const struct spec *s)
{
	return spec_nelem(s) * cr_dtype_bits(s->dtype) / 8;
}

static uint64_t scale_bytes(const struct spec *s)
{
	return s->scale_name ? s->scale_shape[0] * s->scale_shape[1] * 4 : 0;
}

static size_t layout_stored(const struct layout *L)
{
	size_t n = L->n;
	for (size_t i = 0; i < L->n; i++)
		n += L->v[i].scale_name != NULL;
	return n;
}

/* ---- values ---- */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* A unit-variance, zero-mean, bell-shaped value for counter idx of stream
 * key: the sum of four 16-bit uniforms (Irwin-Hall), cheap and bounded. */
static inline float gauss(uint64_t key, uint64_t idx)
{
	uint64_t h = mix64(key + (idx + 1) * 0x9e3779b97f4a7c15ull);
	float s = (float)(h & 0xffff) + (float)((h >> 16) & 0xffff) + (float)((h >> 32) & 0xffff) +
		  (float)(h >> 48) + 2.0f;
	return (s / 65536.0f - 2.0f) * 1.7320508f;
}

/* A uniform value in [0, 1) for counter idx of stream key. */
static inline float uniform(uint64_t key, uint64_t idx)
{
	return (float)(mix64(key ^ mix64(idx + 0x632be59bd9b4e019ull)) >> 40) / 16777216.0f;
}

static uint64_t stream_key(const char *name, int member)
{
	return mix64(cr_fnv1a(name, strlen(name), CR_FNV_INIT) ^ D_SEED) + (uint64_t)member * 0x9e3779b97f4a7c15ull;
}

/* Spread of a 128x128 block relative to the tensor's: 0.5-1.5, and one block
 * in sixteen an outlier at 3x, so FP8 scales vary as in real weights. */
static float block_gain(uint64_t key, uint64_t br, uint64_t bc)
{
	float u = uniform(key ^ 0x5bd1e995ull, br * 4096 + bc);
	return u < 1.0f / 16 ? 3.0f : 0.5f + u;
}

static float element_gain(const struct spec *s, uint64_t key, uint64_t idx)
{
	if (s->ndim != 2)
		return 1.0f;
	uint64_t r = idx / s->shape[1], c = idx % s->shape[1];
	return block_gain(key, r / CR_FP8_BLOCK, c / CR_FP8_BLOCK);
}

static void base_values(const struct spec *s, float *out)
{
	uint64_t key = stream_key(s->values_of ? s->values_of : s->name, CR_DEMO_BASE);
	uint64_t n = spec_nelem(s);
	for (uint64_t i = 0; i < n; i++)
		out[i] = s->mean + s->sigma * element_gain(s, key, i) * gauss(key, i);
}

/* How much member m changes tensor s, as a relative size (0: unchanged). */
static float change_of(const struct spec *s, int m)
{
	const struct change *c = &changes[s->ci.cls];
	if (s->values_of) /* the MTP copies of the embeddings and head stay copies */
		return 0.0f;
	if (m == CR_DEMO_PARENT_A) {
		/* An expert's three projections move together, so experts differ
		 * from each other as wholes. */
		float u = s->ci.expert >= 0 ? uniform(stream_key("expert", m), (uint64_t)s->ci.layer * 1024 + (uint64_t)s->ci.expert)
					    : uniform(stream_key(s->name, m), 0xa);
		return c->a_lo + (c->a_hi - c->a_lo) * u;
	}
	if (m == CR_DEMO_PARENT_B) {
		float t = s->ci.layer < 0 ? 0.0f : (float)s->ci.layer / D_LAYERS;
		return c->b_early + (c->b_late - c->b_early) * t;
	}
	return 0.0f;
}

static void quantize(const struct spec *s, const float *w, uint8_t *q, float *scale)
{
	uint64_t rows = s->shape[0], cols = s->shape[1];
	for (uint64_t r = 0; r < rows; r += CR_FP8_BLOCK) {
		uint64_t nr = rows - r < CR_FP8_BLOCK ? rows - r : CR_FP8_BLOCK;
		cr_fp8_quant_stripe(w + r * cols, nr, cols, q + r * cols, scale + (r / CR_FP8_BLOCK) * s->scale_shape[1]);
	}
}

/* Base values plus relative noise of size a, keeping every FP8 block's
 * largest element and so its scale (see the comment at the top). */
static void perturb(const struct spec *s, int m, float a, const float *x, float *y)
{
	uint64_t key = stream_key(s->name, m), n = spec_nelem(s);
	uint64_t bkey = stream_key(s->values_of ? s->values_of : s->name, CR_DEMO_BASE);
	float rms = sqrtf(s->mean * s->mean + s->sigma * s->sigma);
	if (s->dtype != CR_DT_F8_E4M3) {
		for (uint64_t i = 0; i < n; i++)
			y[i] = x[i] + a * rms * element_gain(s, bkey, i) * gauss(key, i);
		return;
	}
	uint64_t rows = s->shape[0], cols = s->shape[1];
	for (uint64_t br = 0; br < rows; br += CR_FP8_BLOCK)
		for (uint64_t bc = 0; bc < cols; bc += CR_FP8_BLOCK) {
			uint64_t r1 = br + CR_FP8_BLOCK < rows ? br + CR_FP8_BLOCK : rows;
			uint64_t c1 = bc + CR_FP8_BLOCK < cols ? bc + CR_FP8_BLOCK : cols;
			float amax = 0.0f;
			for (uint64_t r = br; r < r1; r++)
				for (uint64_t c = bc; c < c1; c++)
					amax = fmaxf(amax, fabsf(x[r * cols + c]));
			float g = rms * block_gain(bkey, br / CR_FP8_BLOCK, bc / CR_FP8_BLOCK);
			for (uint64_t r = br; r < r1; r++)
				for (uint64_t c = bc; c < c1; c++) {
					uint64_t i = r * cols + c;
					if (fabsf(x[i]) == amax) {
						y[i] = x[i];
						continue;
					}
					float v = x[i] + a * g * gauss(key, i);
					y[i] = fminf(fmaxf(v, -amax), amax);
				}
		}
}

/* ---- writing ---- */

struct shard_plan {
	struct cr_st_entry *e;
	size_t n;
};

struct gen {
	const char *dir;
	struct layout L;
	struct shard_plan plan[D_SHARDS];
	struct cr_st_writer *w[CR_DEMO__COUNT][D_SHARDS];
	char *shard_file[D_SHARDS];
	uint64_t total; /* tensor bytes of one model */
};

static void plan_push(struct shard_plan *p, const char *name, enum cr_dtype dt, int ndim, const uint64_t *shape,
		      size_t *entry)
{
	p->e = cr_xrealloc(p->e, (p->n + 1) * sizeof *p->e);
	p->e[p->n] = (struct cr_st_entry){ name, dt, ndim, shape };
	*entry = p->n++;
}

/* Fill shards in layout order, a weight before its scale, so that (as in
 * DeepSeek's checkpoints) a scale can land in the shard after its weight. */
static void assign_shards(struct gen *g)
{
	uint64_t total = 0, acc = 0;
	for (size_t i = 0; i < g->L.n; i++)
		total += spec_bytes(&g->L.v[i]) + scale_bytes(&g->L.v[i]);
	g->total = total;
	double per = (double)total / D_SHARDS;
	for (size_t i = 0; i < g->L.n; i++) {
		struct spec *s = &g->L.v[i];
		int k = (int)((double)acc / per);
		s->shard = k < D_SHARDS ? k : D_SHARDS - 1;
		plan_push(&g->plan[s->shard], s->name, s->dtype, s->ndim, s->shape, &s->entry);
		acc += spec_bytes(s);
		if (s->scale_name) {
			k = (int)((double)acc / per);
			s->scale_shard = k < D_SHARDS ? k : D_SHARDS - 1;
			plan_push(&g->plan[s->scale_shard], s->scale_name, CR_DT_F32, 2, s->scale_shape,
				  &s->scale_entry);
			acc += scale_bytes(s);
		}
	}
	for (int k = 0; k < D_SHARDS; k++)
		g->shard_file[k] = xasprintf("model-%05d-of-%06d.safetensors", k + 1, D_SHARDS);
}

static char *path_join(const char *a, const char *b)
{
	return xasprintf("%s/%s", a, b);
}

static int write_file_sync(const char *path, const char *text, cr_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cr_fail(err, CR_E_IO, "%s: cannot create: %s", path, strerror(errno));
	size_t len = strlen(text), done = 0;
	while (done < len) {
		ssize_t r = write(fd, text + done, len - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return cr_fail(err, CR_E_IO, "%s: write failed: %s", path, strerror(e));
		}
		done += (size_t)r;
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		return cr_fail(err, CR_E_IO, "%s: cannot flush: %s", path, strerror(errno));
	return 0;
}

static int write_json(const char *dir, const char *file, json_t *j, cr_error *err)
{
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	char *path = path_join(dir, file);
	size_t len = strlen(text);
	text = cr_xrealloc(text, len + 2);
	strcpy(text + len, "\n");
	int rc = write_file_sync(path, text, err);
	free(path);
	free(text);
	return rc;
}

#define JSET(o, k, v) json_object_set_new((o), (k), (v))

static json_t *config_json(int m)
{
	json_t *c = json_object(), *a = json_array(), *q = json_object(), *b = json_array();
	json_array_append_new(a, json_string("DeepseekV3ForCausalLM"));
	JSET(c, "architectures", a);
	JSET(c, "model_type", json_string("deepseek_v3"));
	JSET(c, "hidden_size", json_integer(D_HIDDEN));
	JSET(c, "intermediate_size", json_integer(D_INTER));
	JSET(c, "moe_intermediate_size", json_integer(D_MOE_INTER));
	JSET(c, "num_hidden_layers", json_integer(D_LAYERS));
	JSET(c, "first_k_dense_replace", json_integer(D_DENSE));
	JSET(c, "moe_layer_freq", json_integer(1));
	JSET(c, "n_routed_experts", json_integer(D_EXPERTS));
	JSET(c, "n_shared_experts", json_integer(D_SHARED));
	JSET(c, "num_experts_per_tok", json_integer(D_TOPK));
	JSET(c, "n_group", json_integer(2));
	JSET(c, "topk_group", json_integer(1));
	JSET(c, "norm_topk_prob", json_true());
	JSET(c, "routed_scaling_factor", json_real(2.5));
	JSET(c, "scoring_func", json_string("sigmoid"));
	JSET(c, "topk_method", json_string("noaux_tc"));
	JSET(c, "num_attention_heads", json_integer(D_HEADS));
	JSET(c, "num_key_value_heads", json_integer(D_HEADS));
	JSET(c, "q_lora_rank", json_integer(D_QLORA));
	JSET(c, "kv_lora_rank", json_integer(D_KVLORA));
	JSET(c, "qk_nope_head_dim", json_integer(D_NOPE));
	JSET(c, "qk_rope_head_dim", json_integer(D_ROPE));
	JSET(c, "v_head_dim", json_integer(D_VDIM));
	JSET(c, "vocab_size", json_integer(D_VOCAB));
	JSET(c, "max_position_embeddings", json_integer(4096));
	JSET(c, "rms_norm_eps", json_real(1e-6));
	JSET(c, "num_nextn_predict_layers", json_integer(1));
	JSET(c, "tie_word_embeddings", json_false());
	JSET(c, "torch_dtype", json_string("bfloat16"));
	JSET(c, "bos_token_id", json_integer(0));
	JSET(c, "eos_token_id", json_integer(1));
	JSET(q, "activation_scheme", json_string("dynamic"));
	JSET(q, "fmt", json_string("e4m3"));
	JSET(q, "quant_method", json_string("fp8"));
	json_array_append_new(b, json_integer(CR_FP8_BLOCK));
	json_array_append_new(b, json_integer(CR_FP8_BLOCK));
	JSET(q, "weight_block_size", b);
	JSET(c, "quantization_config", q);
	char *name = xasprintf("crucible-demo/%s", cr_demo_member_name(m));
	JSET(c, "_name_or_path", json_string(name));
	free(name);
	return c;
}

static int write_side_files(const struct gen *g, const char *mdir, int m, cr_error *err)
{
	if (write_json(mdir, "config.json", config_json(m), err) < 0)
		return -1;
	json_t *gc = json_object();
	JSET(gc, "_from_model_config", json_true());
	JSET(gc, "bos_token_id", json_integer(0));
	JSET(gc, "eos_token_id", json_integer(1));
	JSET(gc, "do_sample", json_true());
	JSET(gc, "temperature", json_real(0.6));
	JSET(gc, "top_p", json_real(0.95));
	if (write_json(mdir, "generation_config.json", gc, err) < 0)
		return -1;
	json_t *tc = json_object();
	JSET(tc, "add_bos_token", json_true());
	JSET(tc, "add_eos_token", json_false());
	JSET(tc, "bos_token", json_string("<|begin_of_sentence|>"));
	JSET(tc, "eos_token", json_string("<|end_of_sentence|>"));
	JSET(tc, "model_max_length", json_integer(4096));
	JSET(tc, "tokenizer_class", json_string("LlamaTokenizerFast"));
	if (write_json(mdir, "tokenizer_config.json", tc, err) < 0)
		return -1;
	/* The index lists every stored tensor, sorted by name as HF writes it. */
	json_t *idx = json_object(), *meta = json_object(), *map = json_object();
	JSET(meta, "total_size", json_integer((json_int_t)g->total));
	JSET(idx, "metadata", meta);
	for (size_t i = 0; i < g->L.n; i++) {
		const struct spec *s = &g->L.v[i];
		JSET(map, s->name, json_string(g->shard_file[s->shard]));
		if (s->scale_name)
			JSET(map, s->scale_name, json_string(g->shard_file[s->scale_shard]));
	}
	JSET(idx, "weight_map", map);
	char *text = json_dumps(idx, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(idx);
	char *path = path_join(mdir, "model.safetensors.index.json");
	int rc = write_file_sync(path, text, err);
	free(path);
	free(text);
	return rc;
}

/* Produce tensor s for every member and hand the bytes to the writers. */
static int emit_tensor(struct gen *g, const struct spec *s, float *f, float *x, float *y, uint8_t *buf,
		       float *scale, cr_error *err)
{
	uint64_t n = spec_nelem(s), nb = spec_bytes(s), ns = scale_bytes(s);
	base_values(s, f);
	/* base bytes into buf, base scale into scale */
	if (s->dtype == CR_DT_F8_E4M3) {
		quantize(s, f, buf, scale);
		cr_fp8_dequant_range(buf, scale, s->shape[1], 0, n, x);
	} else {
		cr_convert_from_f32(s->dtype, f, buf, n);
		cr_convert_to_f32(s->dtype, buf, x, n);
	}
	uint8_t *pbuf = buf + nb;
	float *pscale = scale + ns / 4;
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		const uint8_t *out = buf;
		const float *osc = scale;
		float a = change_of(s, m);
		if (a > 0.0f) {
			perturb(s, m, a, x, y);
			if (s->dtype == CR_DT_F8_E4M3)
				quantize(s, y, pbuf, pscale);
			else
				cr_convert_from_f32(s->dtype, y, pbuf, n);
			out = pbuf;
			osc = pscale;
		}
		if (cr_st_writer_write(g->w[m][s->shard], s->entry, 0, out, nb, err) < 0)
			return -1;
		if (s->scale_name && cr_st_writer_write(g->w[m][s->scale_shard], s->scale_entry, 0, osc, ns, err) < 0)
			return -1;
	}
	return 0;
}

static int generate(struct gen *g, cr_error *err)
{
	uint64_t maxn = 0, maxs = 0;
	for (size_t i = 0; i < g->L.n; i++) {
		uint64_t n = spec_nelem(&g->L.v[i]);
		maxn = n > maxn ? n : maxn;
		maxs = scale_bytes(&g->L.v[i]) > maxs ? scale_bytes(&g->L.v[i]) : maxs;
	}
	int failed = 0;
	cr_error first = { 0 };
#pragma omp parallel
	{
		float *f = cr_xmalloc(maxn * sizeof *f), *x = cr_xmalloc(maxn * sizeof *x);
		float *y = cr_xmalloc(maxn * sizeof *y), *scale = cr_xmalloc(2 * maxs + 8);
		uint8_t *buf = cr_xmalloc(2 * maxn * sizeof(float));
		cr_error e;
#pragma omp for schedule(dynamic, 1)
		for (size_t i = 0; i < g->L.n; i++) {
			if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
				continue;
			if (emit_tensor(g, &g->L.v[i], f, x, y, buf, scale, &e) < 0) {
#pragma omp critical(demo_error)
				if (!failed) {
					first = e;
					__atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
				}
			}
		}
		free(f);
		free(x);
		free(y);
		free(scale);
		free(buf);
	}
	if (failed) {
		if (err)
			*err = first;
		return -1;
	}
	return 0;
}

static int make_dir(const char *path, cr_error *err)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return cr_fail(err, CR_E_IO, "%s: cannot create folder: %s", path, strerror(errno));
	return 0;
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static json_t *marker_json(const struct gen *g)
{
	json_t *mk = json_object(), *mem = json_object();
	JSET(mk, "version", json_integer(CR_DEMO_VERSION));
	JSET(mk, "generator", json_string(PACKAGE_STRING));
	char seed[24];
	snprintf(seed, sizeof seed, "0x%016llx", (unsigned long long)D_SEED);
	JSET(mk, "seed", json_string(seed));
	JSET(mk, "tensors_per_model", json_integer((json_int_t)layout_stored(&g->L)));
	JSET(mk, "bytes_per_model", json_integer((json_int_t)g->total));
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		json_t *o = json_object();
		JSET(o, "name", json_string(cr_demo_member_name(m)));
		JSET(o, "about", json_string(cr_demo_member_desc(m)));
		JSET(mem, cr_demo_member_dir(m), o);
	}
	JSET(mk, "members", mem);
	return mk;
}

int cr_demo_generate(const char *dir, cr_error *err)
{
	struct gen g;
	memset(&g, 0, sizeof g);
	g.dir = dir;
	layout_build(&g.L);
	assign_shards(&g);
	int rc = -1;
	char *mdir[CR_DEMO__COUNT] = { 0 };

	if (make_dir(dir, err) < 0)
		goto out;
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		mdir[m] = path_join(dir, cr_demo_member_dir(m));
		if (mkdir(mdir[m], 0755) < 0) {
			cr_fail(err, CR_E_IO, "%s: cannot create folder: %s", mdir[m], strerror(errno));
			goto out;
		}
		for (int k = 0; k < D_SHARDS; k++) {
			char *path = path_join(mdir[m], g.shard_file[k]);
			struct cr_st_meta meta = { "format", "pt" };
			int r = cr_st_writer_open(path, g.plan[k].e, g.plan[k].n, &meta, 1, &g.w[m][k], err);
			free(path);
			if (r < 0)
				goto out;
		}
	}
	if (generate(&g, err) < 0)
		goto out;
	for (int m = 0; m < CR_DEMO__COUNT; m++)
		for (int k = 0; k < D_SHARDS; k++) {
			struct cr_st_writer *w = g.w[m][k];
			g.w[m][k] = NULL;
			if (cr_st_writer_finish(w, err) < 0)
				goto out;
		}
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		if (write_side_files(&g, mdir[m], m, err) < 0)
			goto out;
		sync_dir(mdir[m]);
	}
	/* The marker goes last: its presence means everything above is on disk. */
	if (write_json(dir, CR_DEMO_MARKER, marker_json(&g), err) < 0)
		goto out;
	sync_dir(dir);
	rc = 0;
out:
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		for (int k = 0; k < D_SHARDS; k++)
			cr_st_writer_abort(g.w[m][k]);
		free(mdir[m]);
	}
	for (int k = 0; k < D_SHARDS; k++) {
		free(g.plan[k].e);
		free(g.shard_file[k]);
	}
	layout_free(&g.L);
	return rc;
}

/* ---- the folder's life cycle ---- */

static const struct {
	const char *dir, *name, *desc;
} members[] = {
#define X(id, dir, name, desc) { dir, name, desc },
	CR_DEMO_MEMBERS(X)
#undef X
};

const char *cr_demo_member_dir(enum cr_demo_member m)
{
	return (unsigned)m < CR_DEMO__COUNT ? members[m].dir : "?";
}

const char *cr_demo_member_name(enum cr_demo_member m)
{
	return (unsigned)m < CR_DEMO__COUNT ? members[m].name : "?";
}

const char *cr_demo_member_desc(enum cr_demo_member m)
{
	return (unsigned)m < CR_DEMO__COUNT ? members[m].desc : "?";
}

char *cr_demo_default_dir(cr_error *err)
{
	const char *x = getenv("XDG_CACHE_HOME");
	if (x && x[0] == '/')
		return xasprintf("%s/crucible/demo", x);
	const char *h = getenv("HOME");
	if (h && h[0] == '/')
		return xasprintf("%s/.cache/crucible/demo", h);
	cr_fail(err, CR_E_USAGE, "neither XDG_CACHE_HOME nor HOME is an absolute path; give a folder with --dir");
	return NULL;
}

/* Check dir and fill the counts of f; 0 when complete and of this version. */
static int check_family(const char *dir, struct cr_demo_family *f, cr_error *err)
{
	char *mp = path_join(dir, CR_DEMO_MARKER);
	json_error_t je;
	json_t *mk = json_load_file(mp, JSON_REJECT_DUPLICATES, &je);
	int rc = -1;
	if (!mk) {
		cr_fail(err, CR_E_NOTFOUND, "%s: not a complete demo family: %s", dir, je.text);
		goto out;
	}
	json_t *v = json_object_get(mk, "version");
	if (!json_is_integer(v) || json_integer_value(v) != CR_DEMO_VERSION) {
		cr_fail(err, CR_E_FORMAT, "%s: demo family of another version (want %d)", mp, CR_DEMO_VERSION);
		goto out;
	}
	struct layout L;
	layout_build(&L);
	size_t want = layout_stored(&L);
	layout_free(&L);
	for (int m = 0; m < CR_DEMO__COUNT; m++) {
		char *p = path_join(dir, cr_demo_member_dir(m));
		struct cr_ckpt *c;
		int r = cr_ckpt_open(p, &c, err);
		free(p);
		if (r < 0)
			goto out;
		size_t got = c->ntensors + c->nscales;
		if (f && m == CR_DEMO_BASE) {
			struct cr_ckpt_summary s;
			cr_ckpt_summarize(c, &s);
			f->bytes = s.bytes;
			f->ntensors = got;
			f->experts = s.experts;
			f->layers = 0;
			for (size_t i = 0; i < c->ntensors; i++)
				if (c->tensors[i].layer + 1 > f->layers)
					f->layers = c->tensors[i].layer + 1;
		}
		cr_ckpt_close(c);
		if (got != want) {
			cr_fail(err, CR_E_FORMAT, "%s/%s: %zu tensors, a demo model has %zu", dir,
				cr_demo_member_dir(m), got, want);
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(mk);
	free(mp);
	return rc;
}

int cr_demo_check(const char *dir, cr_error *err)
{
	return check_family(dir, NULL, err);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* Remove a folder this module made (a temporary one, or an old family). */
static void remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* mkdir -p of the folder that will hold dir. */
static int make_parents(const char *dir, cr_error *err)
{
	char *p = cr_xstrdup(dir);
	int rc = 0;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			rc = cr_fail(err, CR_E_IO, "%s: cannot create folder: %s", p, strerror(errno));
		*s = '/';
		if (rc < 0)
			break;
	}
	free(p);
	return rc;
}

static void family_fill_paths(struct cr_demo_family *f, const char *dir)
{
	f->dir = cr_xstrdup(dir);
	for (int m = 0; m < CR_DEMO__COUNT; m++)
		f->member[m] = path_join(dir, cr_demo_member_dir(m));
}

int cr_demo_prepare(const char *dir, unsigned flags, struct cr_demo_family *out, cr_error *err)
{
	memset(out, 0, sizeof *out);
	if (dir[0] == '\0')
		return cr_fail(err, CR_E_USAGE, "the demo folder name is empty");
	/* Strip trailing slashes so the temporary sibling is a real sibling. */
	char *d = cr_xstrdup(dir);
	for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--)
		d[n - 1] = '\0';
	int rc = -1;
	char *tmp = NULL, *old = NULL, *marker = path_join(d, CR_DEMO_MARKER);

	if (!(flags & CR_DEMO_FORCE) && check_family(d, out, NULL) == 0) {
		out->reused = 1;
		rc = 0;
		goto done;
	}
	struct stat st;
	int exists = lstat(d, &st) == 0;
	if (exists && (!S_ISDIR(st.st_mode) || (access(marker, F_OK) != 0 && !dir_is_empty(d)))) {
		cr_fail(err, CR_E_EXISTS, "%s: exists and is not a crucible demo folder (no %s); choose another --dir",
			d, CR_DEMO_MARKER);
		goto done;
	}
	if (make_parents(d, err) < 0)
		goto done;
	tmp = xasprintf("%s.tmp-XXXXXX", d);
	if (!mkdtemp(tmp)) {
		cr_fail(err, CR_E_IO, "%s: cannot create a temporary folder: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto done;
	}
	chmod(tmp, 0755); /* mkdtemp makes it private; the family is not secret */
	if (cr_demo_generate(tmp, err) < 0)
		goto done;
	if (exists) {
		/* Move the old family aside (rename onto an empty folder is allowed). */
		old = xasprintf("%s.old-XXXXXX", d);
		if (!mkdtemp(old) || rename(d, old) < 0) {
			cr_fail(err, CR_E_IO, "%s: cannot move the old demo aside: %s", d, strerror(errno));
			if (old)
				rmdir(old);
			free(old);
			old = NULL;
			goto done;
		}
	}
	if (rename(tmp, d) < 0) {
		/* Another `crucible demo` may have won the race: use its family. */
		if (check_family(d, out, NULL) == 0) {
			out->reused = 1;
			rc = 0;
		} else {
			cr_fail(err, CR_E_IO, "%s: cannot rename %s into place: %s", d, tmp, strerror(errno));
		}
		goto done;
	}
	free(tmp);
	tmp = NULL;
	char *parent = cr_xstrdup(d), *slash = strrchr(parent, '/');
	if (slash)
		*(slash == parent ? slash + 1 : slash) = '\0';
	sync_dir(slash ? parent : ".");
	free(parent);
	rc = check_family(d, out, err);
done:
	if (tmp)
		remove_tree(tmp);
	if (old)
		remove_tree(old);
	free(tmp);
	free(old);
	free(marker);
	if (rc == 0)
		family_fill_paths(out, d);
	free(d);
	return rc;
}

void cr_demo_family_free(struct cr_demo_family *f)
{
	free(f->dir);
	for (int m = 0; m < CR_DEMO__COUNT; m++)
		free(f->member[m]);
	memset(f, 0, sizeof *f);
}
