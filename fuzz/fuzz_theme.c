/*
 * libFuzzer target: the theme reader (cr_theme_parse).
 *
 * Promises checked besides the sanitizers': whatever the text, every role
 * ends with colours in -1..255 and known attribute bits; every warning is one
 * line that starts with the file name and a line number within the text.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/theme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(cond)                                                                        \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "fuzz_theme: broken promise: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                             \
		}                                                                            \
	} while (0)

#define NAME "fuzz/theme"
#define ALL_ATTRS                                                                                      \
	(CR_ATTR_BOLD | CR_ATTR_DIM | CR_ATTR_REVERSE | CR_ATTR_UNDERLINE | CR_ATTR_STANDOUT | CR_ATTR_ITALIC | \
	 CR_ATTR_BLINK)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += text[i] == '\n';

	struct cr_theme t;
	cr_theme_init(&t);
	cr_theme_parse(&t, text, NAME);
	for (int r = 0; r < CR_ROLE__COUNT; r++) {
		PROMISE(t.role[r].fg >= -1 && t.role[r].fg <= 255);
		PROMISE(t.role[r].bg >= -1 && t.role[r].bg <= 255);
		PROMISE((t.role[r].attrs & ~ALL_ATTRS) == 0);
	}
	PROMISE(t.nwarnings <= lines);
	for (size_t i = 0; i < t.nwarnings; i++) {
		const char *w = t.warnings[i];
		PROMISE(w != NULL && strncmp(w, NAME ":", strlen(NAME) + 1) == 0);
		PROMISE(strchr(w, '\n') == NULL);
		unsigned long line = strtoul(w + strlen(NAME) + 1, NULL, 10);
		PROMISE(line >= 1 && line <= lines);
	}
	cr_theme_free(&t);
	free(text);
	return 0;
}
