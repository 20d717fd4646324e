/*
 * Cutting a model.safetensors.index.json into pieces that jansson can parse
 * on several threads (private to checkpoint.c, and the tests).
 *
 * DeepSeek-V3's index is 9 MB, almost all of it the "weight_map" object, and
 * jansson parses it at about 20 ns a byte on one thread.  The split finds the
 * top-level "weight_map" object and cuts its members at commas into about
 * `want` pieces, each made an object of its own ("{" + members + "}"), and
 * makes the rest of the document with that value replaced by "{}".  It only
 * decides where to cut: jansson still reads every byte, and if the outer
 * document and every piece are valid JSON then so is the whole (a valid
 * value put where "{}" was, members joined by the commas cut at).  Keys
 * repeated across pieces are the caller's to refuse.  When the document
 * does not look like that (no such object, a NUL byte, fewer than two
 * pieces), there is no split and the caller parses it whole.
 */
#ifndef CRUCIBLE_INDEX_SPLIT_H
#define CRUCIBLE_INDEX_SPLIT_H

#include <stddef.h>

struct cr_index_split {
	char *outer; /* the document, weight_map's value replaced by {} */
	size_t outer_len;
	size_t npieces;
	char **piece; /* "{" + some members + "}", in document order */
	size_t *piece_len;
};

/* 0 and the pieces in s, or -1: no split (s is empty). */
int cr_index_split(const char *text, size_t n, size_t want, struct cr_index_split *s);
void cr_index_split_free(struct cr_index_split *s);

#endif
