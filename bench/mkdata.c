/*
 * bench/mkdata: make a DeepSeek-V3-style base and N fine-tuned parents of a
 * given size for the benchmarks, with crucible's own safetensors writer.
 *
 *   bench/mkdata OUTDIR [--size-gb G] [--dtype bf16|fp8] [--parents N] [--seed S]
 *
 * Writes OUTDIR/base and OUTDIR/p1..pN, each a checkpoint folder with
 * config.json, 1 GiB shards and model.safetensors.index.json.  Values are
 * deterministic in (seed, tensor, element): base weights ~ N(0, 0.02) (the
 * sum of four uniforms), a parent adds noise of relative size 0.18 on
 * routed experts, 0.05 on shared experts and the router, 0.03 on attention
 * and 0.01 elsewhere.  With --dtype fp8 the 2-D projections are block FP8
 * (E4M3 with 128x128 float32 scale_inv), the rest BF16, as DeepSeek ships.
 * Generation streams in 128-row stripes (OpenMP), so memory stays small.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "crucible/dtype.h"
#include "crucible/fp8.h"
#include "crucible/safetensors.h"

#define H 2048
#define INTER 1024
#define EXPERTS 8
#define VOCAB 16384
#define SHARD_BYTES (1ull << 30)

struct tdef {
	char name[128];
	uint64_t rows, cols;
	int fp8;    /* block FP8 in an fp8 checkpoint */
	double rel; /* parent noise, relative to the base's spread */
};

static struct tdef *defs;
static size_t ndefs, capdefs;

static void add(const char *name, uint64_t rows, uint64_t cols, int fp8, double rel)
{
	if (ndefs == capdefs) {
		capdefs = capdefs ? 2 * capdefs : 256;
		defs = realloc(defs, capdefs * sizeof *defs);
		if (!defs)
			abort();
	}
	struct tdef *d = &defs[ndefs++];
	snprintf(d->name, sizeof d->name, "%s", name);
	d->rows = rows;
	d->cols = cols;
	d->fp8 = fp8;
	d->rel = rel;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Approximately N(0, 1): four 16-bit uniforms (Irwin-Hall, variance 4/12). */
static inline float gauss(uint64_t key)
{
	uint64_t r = mix(key);
	float s = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
	return (s / 65536.0f - 2.0f) * 1.7320508f;
}

static void layout(int layers)
{
	char n[128];
	add("model.embed_tokens.weight", VOCAB, H, 0, 0.01);
	for (int l = 0; l < layers; l++) {
#define NAME(fmt, ...) (snprintf(n, sizeof n, "model.layers.%d." fmt, l, ##__VA_ARGS__), n)
		add(NAME("input_layernorm.weight"), 1, H, 0, 0.01);
		add(NAME("post_attention_layernorm.weight"), 1, H, 0, 0.01);
		add(NAME("self_attn.q_b_proj.weight"), H, H, 1, 0.03);
		add(NAME("self_attn.kv_b_proj.weight"), H, H, 1, 0.03);
		add(NAME("self_attn.o_proj.weight"), H, H, 1, 0.03);
		add(NAME("mlp.gate.weight"), EXPERTS, H, 0, 0.05);
		for (int e = 0; e < EXPERTS; e++) {
			add(NAME("mlp.experts.%d.gate_proj.weight", e), INTER, H, 1, 0.18);
			add(NAME("mlp.experts.%d.up_proj.weight", e), INTER, H, 1, 0.18);
			add(NAME("mlp.experts.%d.down_proj.weight", e), H, INTER, 1, 0.18);
		}
		add(NAME("mlp.shared_experts.gate_proj.weight"), INTER, H, 1, 0.05);
		add(NAME("mlp.shared_experts.up_proj.weight"), INTER, H, 1, 0.05);
		add(NAME("mlp.shared_experts.down_proj.weight"), H, INTER, 1, 0.05);
#undef NAME
	}
	add("model.norm.weight", 1, H, 0, 0.01);
	add("lm_head.weight", VOCAB, H, 0, 0.01);
}

static uint64_t layer_bytes(int fp8)
{
	uint64_t proj = 3ull * H * H + EXPERTS * 3ull * INTER * H + 3ull * INTER * H;
	return proj * (fp8 ? 1 : 2) + 2ull * (2 * H + EXPERTS * H);
}

static int write_json(const char *path, json_t *j)
{
	int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(j);
	if (rc != 0)
		fprintf(stderr, "mkdata: %s: cannot write\n", path);
	return rc;
}

/* One stripe of rows [r0, r0+nr) of tensor d for model `who` (0 = base). */
static void gen_stripe(const struct tdef *d, size_t ti, uint64_t seed, int who, uint64_t r0, uint64_t nr, float *w)
{
	int norm = d->rows == 1;
	for (uint64_t r = 0; r < nr; r++)
		for (uint64_t c = 0; c < d->cols; c++) {
			uint64_t e = (r0 + r) * d->cols + c;
			uint64_t key = (seed << 40) ^ ((uint64_t)ti << 32) ^ e;
			float v = norm ? 1.0f + 0.05f * gauss(key) : 0.02f * gauss(key);
			if (who)
				v += (float)d->rel * (norm ? 0.05f : 0.02f) * gauss(key ^ ((uint64_t)who << 58) ^ 0x5555);
			w[r * d->cols + c] = v;
		}
}

static int write_model(const char *dir, uint64_t seed, int who, int fp8)
{
	cr_error err;
	json_t *map = json_object();
	uint64_t total = 0;
	size_t first = 0;
	int nshard = 0;
	/* Count shards first: names say "-of-N". */
	{
		uint64_t acc = 0;
		int k = 1;
		for (size_t i = 0; i < ndefs; i++) {
			uint64_t b = defs[i].rows * defs[i].cols * (fp8 && defs[i].fp8 ? 1 : 2);
			if (acc && acc + b > SHARD_BYTES) {
				k++;
				acc = 0;
			}
			acc += b;
		}
		nshard = k;
	}
	for (int s = 1; s <= nshard; s++) {
		/* tensors [first, last) go to shard s */
		size_t last = first;
		uint64_t acc = 0;
		while (last < ndefs) {
			uint64_t b = defs[last].rows * defs[last].cols * (fp8 && defs[last].fp8 ? 1 : 2);
			if (acc && acc + b > SHARD_BYTES)
				break;
			acc += b;
			last++;
		}
		size_t cap = 2 * (last - first);
		struct cr_st_entry *plan = calloc(cap, sizeof *plan);
		uint64_t (*shapes)[2] = calloc(cap, sizeof *shapes);
		char (*names)[140] = calloc(cap, sizeof *names);
		size_t *src = calloc(cap, sizeof *src);
		int *is_scale = calloc(cap, sizeof *is_scale);
		size_t n = 0;
		for (size_t i = first; i < last; i++) {
			const struct tdef *d = &defs[i];
			int q = fp8 && d->fp8;
			snprintf(names[n], sizeof names[n], "%s", d->name);
			shapes[n][0] = d->rows;
			shapes[n][1] = d->cols;
			plan[n] = (struct cr_st_entry){ names[n], q ? CR_DT_F8_E4M3 : CR_DT_BF16, d->rows == 1 ? 1 : 2,
							d->rows == 1 ? &shapes[n][1] : shapes[n] };
			src[n++] = i;
			if (q) {
				snprintf(names[n], sizeof names[n], "%s_scale_inv", d->name);
				shapes[n][0] = cr_fp8_scale_dim(d->rows);
				shapes[n][1] = cr_fp8_scale_dim(d->cols);
				plan[n] = (struct cr_st_entry){ names[n], CR_DT_F32, 2, shapes[n] };
				is_scale[n] = 1;
				src[n++] = i;
			}
		}
		char fname[64], path[4200];
		snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s, nshard);
		snprintf(path, sizeof path, "%s/%s", dir, fname);
		struct cr_st_meta meta = { "format", "pt" };
		struct cr_st_writer *w;
		if (cr_st_writer_open(path, plan, n, &meta, 1, &w, &err) < 0) {
			fprintf(stderr, "mkdata: %s\n", err.msg);
			return -1;
		}
		int bad = 0;
		for (size_t k = 0; k < n; k++) {
			if (is_scale[k])
				continue;
			const struct tdef *d = &defs[src[k]];
			int q = fp8 && d->fp8;
			uint64_t stripes = (d->rows + CR_FP8_BLOCK - 1) / CR_FP8_BLOCK;
			json_object_set_new(map, d->name, json_string(fname));
			if (q)
				json_object_set_new(map, names[k + 1], json_string(fname));
#pragma omp parallel for schedule(dynamic, 1) reduction(| : bad)
			for (uint64_t st = 0; st < stripes; st++) {
				uint64_t r0 = st * CR_FP8_BLOCK;
				uint64_t nr = d->rows - r0 < CR_FP8_BLOCK ? d->rows - r0 : CR_FP8_BLOCK;
				float *v = malloc(nr * d->cols * sizeof *v);
				void *out = malloc(nr * d->cols * 2);
				float srow[64];
				cr_error e2;
				gen_stripe(d, src[k], seed, who, r0, nr, v);
				if (q) {
					cr_fp8_quant_stripe(v, nr, d->cols, out, srow);
					bad |= cr_st_writer_write(w, k, r0 * d->cols, out, nr * d->cols, &e2) < 0;
					bad |= cr_st_writer_write(w, k + 1, st * cr_fp8_scale_dim(d->cols) * 4, srow,
								  cr_fp8_scale_dim(d->cols) * 4, &e2) < 0;
				} else {
					cr_convert_from_f32(CR_DT_BF16, v, out, nr * d->cols);
					bad |= cr_st_writer_write(w, k, r0 * d->cols * 2, out, nr * d->cols * 2, &e2) < 0;
				}
				free(v);
				free(out);
			}
		}
		total += cr_st_writer_total(w);
		if (bad) {
			cr_st_writer_abort(w);
			fprintf(stderr, "mkdata: %s: write failed\n", path);
			return -1;
		}
		if (cr_st_writer_finish(w, &err) < 0) {
			fprintf(stderr, "mkdata: %s\n", err.msg);
			return -1;
		}
		free(plan);
		free(shapes);
		free(names);
		free(src);
		free(is_scale);
		first = last;
	}
	json_t *idx = json_object(), *md = json_object();
	json_object_set_new(md, "total_size", json_integer((json_int_t)total));
	json_object_set_new(idx, "metadata", md);
	json_object_set_new(idx, "weight_map", map);
	char path[4096];
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	return write_json(path, idx);
}

static int write_config(const char *dir, int layers, int fp8)
{
	json_t *c = json_object();
	json_object_set_new(c, "architectures", json_pack("[s]", "DeepseekV3ForCausalLM"));
	json_object_set_new(c, "model_type", json_string("deepseek_v3"));
	json_object_set_new(c, "hidden_size", json_integer(H));
	json_object_set_new(c, "moe_intermediate_size", json_integer(INTER));
	json_object_set_new(c, "n_routed_experts", json_integer(EXPERTS));
	json_object_set_new(c, "n_shared_experts", json_integer(1));
	json_object_set_new(c, "num_hidden_layers", json_integer(layers));
	json_object_set_new(c, "vocab_size", json_integer(VOCAB));
	json_object_set_new(c, "torch_dtype", json_string("bfloat16"));
	if (fp8)
		json_object_set_new(c, "quantization_config",
				    json_pack("{s:s, s:s, s:[i,i]}", "quant_method", "fp8", "fmt", "e4m3",
					      "weight_block_size", 128, 128));
	char path[4096];
	snprintf(path, sizeof path, "%s/config.json", dir);
	return write_json(path, c);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench/mkdata OUTDIR [--size-gb G] [--dtype bf16|fp8] [--parents N] [--seed S]\n"
		   "Writes OUTDIR/base and OUTDIR/p1..pN (DeepSeek-V3-style checkpoints of about G GB each).\n");
}

int main(int argc, char **argv)
{
	const char *out = NULL;
	double gb = 2;
	int fp8 = 0, parents = 1;
	uint64_t seed = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--size-gb") == 0 && i + 1 < argc)
			gb = atof(argv[++i]);
		else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "fp8") == 0)
				fp8 = 1;
			else if (strcmp(argv[i], "bf16") != 0) {
				usage(stderr);
				return 2;
			}
		} else if (strcmp(argv[i], "--parents") == 0 && i + 1 < argc)
			parents = atoi(argv[++i]);
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && !out)
			out = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!out || gb <= 0 || gb > 4096 || parents < 0 || parents > 16) {
		usage(stderr);
		return 2;
	}
	uint64_t fixed = 2ull * VOCAB * H * 2 + 2 * H;
	double want = gb * 1e9;
	int layers = want > (double)fixed ? (int)((want - (double)fixed) / (double)layer_bytes(fp8) + 0.5) : 1;
	if (layers < 1)
		layers = 1;
	layout(layers);
	if (mkdir(out, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "mkdata: %s: %s\n", out, strerror(errno));
		return 1;
	}
	for (int who = 0; who <= parents; who++) {
		char dir[3900];
		if (who == 0)
			snprintf(dir, sizeof dir, "%s/base", out);
		else
			snprintf(dir, sizeof dir, "%s/p%d", out, who);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "mkdata: %s: %s\n", dir, strerror(errno));
			return 1;
		}
		if (write_config(dir, layers, fp8) < 0 || write_model(dir, seed, who, fp8) < 0)
			return 1;
		printf("%s: %d layers, %s\n", dir, layers, fp8 ? "fp8 + bf16" : "bf16");
	}
	free(defs);
	return 0;
}
