/*
 * libFuzzer target: the checkpoint index reader (cr_ckpt_open on a folder).
 *
 * The input is model.safetensors.index.json.  The folder also holds real
 * shards for the index to point at: the DeepSeek-V3 fixture's five shards
 * and config.json (FP8 weights with scales, some across shards) and the
 * small shards of the malformed index fixtures (a.safetensors, ...), copied
 * once into a temporary folder.  Promises checked besides the sanitizers': an
 * accepted folder has every tensor in a shard of the folder, scales with the
 * grid their weight implies, and a working name lookup; a rejected one gives
 * a single-line message naming the folder or a file in it.
 *
 * It also checks that parsing the index in pieces (src/index_split.c) gives
 * what jansson gives on the whole document (tests/index_split_ref.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/checkpoint.h"
#include "crucible/fp8.h"
#include "../tests/index_split_ref.h"

#ifndef FUZZ_FIXTURES
#define FUZZ_FIXTURES "../shared/fixtures"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(cond)                                                                        \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "fuzz_index: broken promise: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                             \
		}                                                                            \
	} while (0)

static char dir[256];
static char index_path[300];

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	if (!in || !out) {
		fprintf(stderr, "fuzz_index: cannot copy %s to %s: %s\n", from, to, strerror(errno));
		exit(1);
	}
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	fclose(out);
}

static int rm_entry(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)type;
	(void)f;
	return remove(p);
}

static void cleanup(void)
{
	if (dir[0])
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *fx = getenv("FIXTURES") ? getenv("FIXTURES") : FUZZ_FIXTURES;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof dir, "%s/fuzz-index-XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		perror("fuzz_index: mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	static const char *const files[] = {
		"models/dsv3/v3-base/config.json",
		"models/dsv3/v3-base/model-000001-of-000005.safetensors",
		"models/dsv3/v3-base/model-000002-of-000005.safetensors",
		"models/dsv3/v3-base/model-000003-of-000005.safetensors",
		"models/dsv3/v3-base/model-000004-of-000005.safetensors",
		"models/dsv3/v3-base/model-000005-of-000005.safetensors",
		"malformed/index-ok/a.safetensors",
		"malformed/index-duplicate-tensor/b.safetensors",
		"malformed/index-missing-shard/model-00001-of-00002.safetensors",
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char from[4096], to[512];
		snprintf(from, sizeof from, "%s/%s", fx, files[i]);
		snprintf(to, sizeof to, "%s/%s", dir, strrchr(files[i], '/') + 1);
		copy_file(from, to);
	}
	snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
	return 0;
}

static void check_accepted(const struct cr_ckpt *c)
{
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		PROMISE(t->shard >= 0 && (size_t)t->shard < c->nshards);
		PROMISE(strncmp(c->shards[t->shard]->path, dir, strlen(dir)) == 0);
		PROMISE(cr_ckpt_find(c, t->name) == t);
		if (t->scale) {
			PROMISE(t->scale_shard >= 0 && (size_t)t->scale_shard < c->nshards);
			PROMISE(t->ndim == 2 && t->scale->ndim == 2);
			PROMISE(t->scale->shape[0] == cr_fp8_scale_dim(t->shape[0]));
			PROMISE(t->scale->shape[1] == cr_fp8_scale_dim(t->shape[1]));
		}
	}
	struct cr_ckpt_summary s;
	cr_ckpt_summarize(c, &s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), why[300];
	memcpy(text, data, size);
	text[size] = '\0';
	if (split_agrees(text, why, sizeof why) < 0) {
		fprintf(stderr, "fuzz_index: the split index differs from the whole: %s\n", why);
		abort();
	}
	free(text);
	int fd = open(index_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	struct cr_ckpt *c = NULL;
	cr_error err;
	memset(&err, 0, sizeof err);
	if (cr_ckpt_open(dir, &c, &err) == 0) {
		PROMISE(c != NULL);
		check_accepted(c);
		cr_ckpt_close(c);
	} else {
		PROMISE(c == NULL);
		PROMISE(err.code != CR_E_OK && err.msg[0] != '\0');
		PROMISE(strstr(err.msg, dir) != NULL); /* names the folder or a file in it */
		PROMISE(strchr(err.msg, '\n') == NULL);
	}
	return 0;
}
