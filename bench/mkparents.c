/*
 * Benchmark data: a Llama-shaped checkpoint of BF16 tensors, 4096 x 4096
 * each, written as one model.safetensors plus config.json.  Parents made
 * with the same base seed and different seeds are the base plus 1% noise, so
 * merges compute real values.  Standalone (no libcrucible), used by
 * bench/merge.sh.  usage: mkparents DIR MEGABYTES BASE_SEED [PARENT_SEED]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ROWS 4096
#define COLS 4096

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float unif(uint64_t seed, uint64_t i)
{
	return (float)(mix(seed * 0x9e3779b97f4a7c15ull + i) >> 40) / 16777216.0f - 0.5f;
}

static uint16_t bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

static const char *const kinds[4] = { "mlp.down_proj", "mlp.up_proj", "self_attn.o_proj", "self_attn.q_proj" };

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: mkparents DIR MEGABYTES BASE_SEED [PARENT_SEED]\n");
		return 2;
	}
	const char *dir = argv[1];
	long mb = atol(argv[2]);
	uint64_t bseed = strtoull(argv[3], NULL, 10), pseed = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
	size_t tbytes = (size_t)ROWS * COLS * 2, nt = (size_t)mb * 1000000 / tbytes;
	if (nt < 1)
		nt = 1;
	mkdir(dir, 0755);
	char path[4096];
	snprintf(path, sizeof path, "%s/config.json", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": %d,\n"
		   " \"num_hidden_layers\": %zu, \"torch_dtype\": \"bfloat16\"}\n",
		COLS, (nt + 3) / 4);
	fclose(f);
	/* names in sorted order = the official order for one dtype */
	char (*names)[96] = calloc(nt, 96);
	for (size_t i = 0; i < nt; i++)
		snprintf(names[i], 96, "model.layers.%zu.%s.weight", i / 4, kinds[i % 4]);
	qsort(names, nt, 96, (int (*)(const void *, const void *))strcmp);
	size_t cap = 128 + nt * 160, n = 0;
	char *h = malloc(cap);
	n += (size_t)snprintf(h + n, cap - n, "{\"__metadata__\":{\"format\":\"pt\"}");
	for (size_t i = 0; i < nt; i++)
		n += (size_t)snprintf(h + n, cap - n, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
				      names[i], ROWS, COLS, i * tbytes, (i + 1) * tbytes);
	n += (size_t)snprintf(h + n, cap - n, "}");
	while (n % 8)
		h[n++] = ' ';
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	f = fopen(path, "wb");
	if (!f)
		return 1;
	uint64_t hl = n;
	fwrite(&hl, 8, 1, f);
	fwrite(h, 1, n, f);
	uint16_t *buf = malloc(tbytes);
	for (size_t i = 0; i < nt; i++) {
		uint64_t ts = mix(bseed + i);
		for (size_t e = 0; e < (size_t)ROWS * COLS; e++) {
			float v = 0.05f * unif(ts, e);
			if (pseed)
				v += 0.0005f * unif(mix(pseed + i), e);
			buf[e] = bf16(v);
		}
		if (fwrite(buf, 1, tbytes, f) != tbytes)
			return 1;
	}
	fclose(f);
	free(buf);
	free(h);
	free(names);
	return 0;
}
