/*
 * The check that cutting an index into pieces (src/index_split.c) changes
 * nothing, shared by tests/check_open.c and fuzz/fuzz_index.c: jansson on
 * the whole document and jansson on the outer part and every piece must
 * agree on whether it is valid JSON (no key twice), and when it is, the
 * pieces' members in order must be the weight_map's, and the outer part the
 * document with an empty weight_map.
 */
#ifndef CRUCIBLE_INDEX_SPLIT_REF_H
#define CRUCIBLE_INDEX_SPLIT_REF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../src/index_split.h"

/* 1: split, and agrees; 0: not split; -1: disagrees (why says how). */
__attribute__((unused)) static int split_agrees(const char *text, char *why, size_t whylen)
{
	struct cr_index_split sp;
	if (cr_index_split(text, strlen(text), 8, &sp) < 0)
		return 0;
	json_t *whole = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	json_t *outer = json_loadb(sp.outer, sp.outer_len, JSON_REJECT_DUPLICATES, NULL);
	json_t **parts = calloc(sp.npieces, sizeof *parts);
	json_t *wm0 = json_object_get(outer, "weight_map");
	int ok = json_is_object(outer) && json_is_object(wm0) && json_object_size(wm0) == 0;
	for (size_t k = 0; k < sp.npieces; k++) {
		parts[k] = json_loadb(sp.piece[k], sp.piece_len[k], JSON_REJECT_DUPLICATES, NULL);
		ok = ok && parts[k] && json_object_size(parts[k]) > 0;
	}
	for (size_t k = 1; k < sp.npieces && ok; k++) { /* a key in two pieces */
		const char *key;
		json_t *v;
		json_object_foreach(parts[k], key, v)
		for (size_t j = 0; j < k && ok; j++)
			ok = json_object_get(parts[j], key) == NULL;
	}
	int rc = 1;
	if (ok != (whole != NULL)) {
		snprintf(why, whylen, "whole document %s, pieces %s", whole ? "valid" : "invalid", ok ? "valid" : "invalid");
		rc = -1;
	} else if (ok) {
		json_t *wm = json_object_get(whole, "weight_map");
		void *it = json_object_iter(wm);
		for (size_t k = 0; k < sp.npieces && rc == 1; k++) {
			const char *key;
			json_t *v;
			json_object_foreach(parts[k], key, v)
			{
				if (!it || strcmp(json_object_iter_key(it), key) != 0 ||
				    !json_equal(json_object_iter_value(it), v)) {
					snprintf(why, whylen, "piece %zu: member '%.100s' differs from the whole's", k, key);
					rc = -1;
					break;
				}
				it = json_object_iter_next(wm, it);
			}
		}
		if (rc == 1 && it) {
			snprintf(why, whylen, "the whole has members the pieces lack");
			rc = -1;
		}
		json_t *copy = json_deep_copy(whole);
		json_object_set_new(copy, "weight_map", json_object());
		if (rc == 1 && !json_equal(copy, outer)) {
			snprintf(why, whylen, "the outer part differs from the document without weight_map");
			rc = -1;
		}
		json_decref(copy);
	}
	for (size_t k = 0; k < sp.npieces; k++)
		json_decref(parts[k]);
	free(parts);
	json_decref(outer);
	json_decref(whole);
	cr_index_split_free(&sp);
	return rc;
}

#endif
