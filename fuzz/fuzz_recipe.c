/*
 * libFuzzer target: the recipe reader (cr_recipe_parse) and writer.
 *
 * Promises checked besides the sanitizers': a rejected recipe gives one line
 * naming the recipe; an accepted one can be looked up for every parameter
 * and, when it can be written back as YAML, that YAML reads again and
 * writes the same text (the export the workbench does must round-trip).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(cond)                                                                         \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "fuzz_recipe: broken promise: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                              \
		}                                                                             \
	} while (0)

#define NAME "fuzz/recipe.yaml"

static void ignore_warning(void *ctx, const char *msg)
{
	(void)ctx;
	PROMISE(msg != NULL && strchr(msg, '\n') == NULL);
}

static void lookups(const struct cr_recipe *r)
{
	static const char *const tensors[] = { NULL, "model.layers.3.mlp.experts.7.up_proj.weight", "lm_head.weight" };
	int nm = r->nslices ? (int)r->slices[0].nsources : (int)r->nmodels;
	for (int p = 0; p < CR_P__COUNT; p++)
		for (int m = -1; m < nm && m < 4; m++)
			for (int k = 0; k < 3; k++) {
				double v;
				int slice = r->nslices ? 0 : -1, src = r->nslices ? (m < 0 ? 0 : m) : -1;
				cr_recipe_param(r, r->nslices ? -1 : m, slice, src, p, tensors[k],
						k == 1 ? CR_CLASS_ROUTED_EXPERT : CR_CLASS_HEAD, k * 0.5, &v);
			}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cr_recipe *r = NULL;
	cr_error err;
	memset(&err, 0, sizeof err);
	if (cr_recipe_parse((const char *)data, size, NAME, &r, ignore_warning, NULL, &err) < 0) {
		PROMISE(r == NULL);
		PROMISE(err.code != CR_E_OK && err.msg[0] != '\0');
		PROMISE(strstr(err.msg, NAME) != NULL);
		PROMISE(strchr(err.msg, '\n') == NULL);
		return 0;
	}
	PROMISE(r != NULL);
	lookups(r);
	char *yaml = cr_recipe_to_yaml(r);
	if (yaml) {
		struct cr_recipe *again = NULL;
		int rc = cr_recipe_parse(yaml, strlen(yaml), NAME, &again, NULL, NULL, &err);
		if (rc < 0)
			fprintf(stderr, "fuzz_recipe: written YAML does not read back: %s\n---\n%s---\n", err.msg, yaml);
		PROMISE(rc == 0);
		char *yaml2 = cr_recipe_to_yaml(again);
		PROMISE(yaml2 != NULL);
		if (strcmp(yaml, yaml2) != 0)
			fprintf(stderr, "fuzz_recipe: round trip differs:\n---\n%s---\n%s---\n", yaml, yaml2);
		PROMISE(strcmp(yaml, yaml2) == 0);
		free(yaml2);
		cr_recipe_free(again);
		free(yaml);
	}
	cr_recipe_free(r);
	return 0;
}
