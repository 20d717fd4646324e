/*
 * libFuzzer target: the safetensors header parser (cr_st_open).
 *
 * The input is a whole file.  It is written to a memfd and opened through
 * /proc/self/fd, so the reader runs exactly as on disk, with no change to
 * the core.  Besides "no crash, no leak, no UB" (the sanitizers), it checks
 * the reader's promises: an accepted file has tensors that lie inside the
 * data buffer with sizes matching shape x dtype; a rejected one gives a
 * single-line message naming the file.  A broken promise aborts.
 *
 * It is also a differential test of the hand-written header parser
 * (src/st_header.c): when the input's framing is sound, its header is parsed
 * by that parser and by a jansson reference (tests/st_header_ref.h, the
 * reader as it was before); both must accept or both reject, with the same
 * names, dtypes, shapes, offsets and metadata.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crucible/safetensors.h"
#include "../tests/st_header_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(cond)                                                                             \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "fuzz_safetensors: broken promise: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static int memfd = -1;
static char path[64];

static void check_accepted(const struct cr_st_file *f, size_t size)
{
	PROMISE(f->data_start == 8 + f->header_len && f->data_start <= size);
	uint64_t buffer = size - f->data_start;
	for (size_t i = 0; i < f->ntensors; i++) {
		const struct cr_st_tensor *t = &f->tensors[i];
		PROMISE(t->name != NULL);
		PROMISE(t->begin <= t->end && t->end <= buffer);
		int ok = 1;
		uint64_t n = 1;
		for (int d = 0; d < t->ndim; d++)
			n *= t->shape[d];
		PROMISE(n == t->nelem);
		PROMISE(cr_dtype_nbytes(t->dtype, t->nelem, &ok) == t->end - t->begin && ok);
		PROMISE(cr_st_find(f, t->name) != NULL);
		/* read the first and last bytes through the normal path */
		unsigned char buf[16];
		size_t len = t->end - t->begin < sizeof buf ? (size_t)(t->end - t->begin) : sizeof buf;
		cr_error err;
		PROMISE(cr_st_pread(f, t, 0, buf, len, &err) == 0);
		PROMISE(cr_st_pread(f, t, t->end - t->begin - len, buf, len, &err) == 0);
		/* and one past the end must fail */
		PROMISE(cr_st_pread(f, t, t->end - t->begin, buf, 1, &err) != 0);
	}
	for (size_t i = 0; i < f->nmeta; i++)
		PROMISE(cr_st_meta_get(f, f->meta[i].key) != NULL);
}

/* The header alone, through both parsers. */
static void differential(const uint8_t *data, size_t size)
{
	uint64_t len = 0;
	if (size < 8)
		return;
	for (int i = 7; i >= 0; i--)
		len = len << 8 | data[i];
	if (len > size - 8 || len > CR_ST_MAX_HEADER)
		return;
	cr_error err;
	memset(&err, 0, sizeof err);
	char *want = ref_parse((const char *)data + 8, (size_t)len);
	char *got = new_parse((const char *)data + 8, (size_t)len, &err);
	if (strcmp(want, got) != 0) {
		fprintf(stderr, "fuzz_safetensors: parsers differ\n reference:  %.500s\n st_header:  %.500s\n (%s)\n", want,
			got, err.msg);
		abort();
	}
	if (strcmp(got, "REJECT") == 0)
		PROMISE(strncmp(err.msg, "HDR: ", 5) == 0 && strchr(err.msg, '\n') == NULL);
	free(want);
	free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	differential(data, size);
	if (memfd < 0) {
		memfd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) < 0 || (size && pwrite(memfd, data, size, 0) != (ssize_t)size))
		abort();
	struct cr_st_file *f = NULL;
	cr_error err;
	memset(&err, 0, sizeof err);
	if (cr_st_open(path, &f, &err) == 0) {
		PROMISE(f != NULL);
		check_accepted(f, size);
		cr_st_close(f);
	} else {
		PROMISE(f == NULL);
		PROMISE(err.code != CR_E_OK && err.msg[0] != '\0');
		PROMISE(strncmp(err.msg, path, strlen(path)) == 0); /* names the file */
		PROMISE(strchr(err.msg, '\n') == NULL);		   /* one line */
	}
	return 0;
}
