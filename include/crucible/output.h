/*
 * The files of an output folder other than the shards: index, config.json,
 * tokenizer and generation files, the model card, plus the filesystem steps
 * of an atomic finish.  Used by the engine only.
 */
#ifndef CRUCIBLE_OUTPUT_H
#define CRUCIBLE_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "crucible/error.h"

/* Write a whole file and fsync it. */
int cr_out_write_file(const char *path, const char *text, size_t len, cr_error *err);
int cr_out_fsync_dir(const char *dir, cr_error *err);
/* Remove a folder and everything under it (no error when absent). */
int cr_out_rmrf(const char *path, cr_error *err);

/* model.safetensors.index.json: names[i] lives in files[i]. */
int cr_out_write_index(const char *dir, const char *const *names, const char *const *files, size_t n,
		       uint64_t total, cr_error *err);
/* config.json from the base's text: torch_dtype (NULL: keep), quantization_config kept only when
 * fp8 is set, num_hidden_layers when layers >= 0. */
int cr_out_write_config(const char *dir, const char *base_config, const char *torch_dtype, int fp8, int layers,
			cr_error *err);
/* Copy tokenizer, generation and other small support files from the base folder. */
int cr_out_copy_support(const char *dir, const char *base_dir, cr_error *err);
/* README.md model card holding the recipe. */
int cr_out_write_card(const char *dir, const char *name, const char *method, const char *const *parents,
		      size_t nparents, const char *recipe_yaml, cr_error *err);

#endif
