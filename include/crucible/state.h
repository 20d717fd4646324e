/*
 * The parameter state of a session: an ordered set of assignments
 * (scope, model, key) = value, rebuilt by replaying the session's events.
 *
 * scope   "*"             every tensor (a plain value in the recipe)
 *         "class:NAME"    tensors of a class (recipe `class: NAME`)
 *         "filter:TEXT"   tensors whose name contains TEXT (recipe `filter:`)
 *         "layers:A-B"    layers A..B inclusive (one `filter: "layers.N."` per layer)
 * model   -1 for the top-level `parameters` and for settings; else the index
 *         of the model in the session's parents (the recipe's `models` list).
 * key     a parameter name from methods.h ("weight", "delta", ...) or a
 *         setting: "merge_method", "dtype", "out_dtype", "random_seed",
 *         "tokenizer_source" (settings take scope "*" and model -1).
 * value   canonical text: a number in its shortest round-trip form, "true" /
 *         "false" for boolean parameters, "[a, b, ...]" for a gradient over
 *         layers, or a name for settings.
 *
 * Order: assignments keep the order in which they were first made.  In the
 * recipe, the conditional entries of one (model, key) list the NEWEST scope
 * first (first match wins, so a narrower scope set later overrides an older
 * one where they overlap), and "*" always last as the fallback.  Changing the
 * value of an existing assignment keeps its place; unsetting removes it.
 */
#ifndef CRUCIBLE_STATE_H
#define CRUCIBLE_STATE_H

#include <stddef.h>

#include "crucible/error.h"

struct cr_assign {
	char *scope;
	int model;
	char *key;
	char *value;
};

struct cr_state {
	size_t n, cap;
	struct cr_assign *a; /* in first-assignment order */
};

void cr_state_init(struct cr_state *s);
void cr_state_free(struct cr_state *s);
void cr_state_copy(struct cr_state *dst, const struct cr_state *src);
/* NULL when unset. */
const char *cr_state_get(const struct cr_state *s, const char *scope, int model, const char *key);
/* value NULL unsets.  The value is stored as given: canonicalize it first. */
void cr_state_apply(struct cr_state *s, const char *scope, int model, const char *key, const char *value);
/* 1 when both hold the same assignments with the same values, in the same order. */
int cr_state_equal(const struct cr_state *a, const struct cr_state *b);

/* Check scope, model (against nmodels; < 0 skips that check), key and value;
 * on success *canon is the canonical value text (malloc'd; NULL when value is NULL). */
int cr_state_canonical(const char *scope, int model, int nmodels, const char *key, const char *value, char **canon,
		       cr_error *err);
/* Shortest text that reads back as exactly v ("0.5", "1", "0.1"). */
void cr_fmt_double(double v, char *buf, size_t n);

/* Differences between two states: callback per (scope, model, key) whose
 * values differ (either may be NULL), a's order first, then b's new ones. */
typedef void (*cr_state_diff_fn)(void *ctx, const char *scope, int model, const char *key, const char *va,
				 const char *vb);
size_t cr_state_diff(const struct cr_state *a, const struct cr_state *b, cr_state_diff_fn fn, void *ctx);

/* ---- recipes (state_yaml.c) ---- */
/* The recipe YAML (malloc'd) for this state, with the given base and models
 * (absolute paths are best: a relative path is relative to the recipe file). */
char *cr_state_to_yaml(const struct cr_state *s, const char *base, const char *const *models, size_t nmodels,
		       cr_error *err);

/* The paths and state of a recipe.  Paths are resolved against dir (the
 * recipe file's folder) and made absolute. */
struct cr_recipe_import {
	char *base; /* NULL without base_model */
	size_t nmodels;
	char **models;
	struct cr_state state;
};
int cr_state_from_yaml(const char *text, size_t len, const char *file, const char *dir, struct cr_recipe_import *out,
		       cr_error *err);
void cr_recipe_import_free(struct cr_recipe_import *r);

#endif
