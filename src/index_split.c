/*
 * Cutting an index's weight_map into pieces (see index_split.h).
 *
 * One pass over the bytes tracks strings (a backslash escapes the next byte,
 * as in JSON) and bracket depth: the top-level object is depth 1, so a string
 * at depth 1 followed by ':' is a key, and weight_map's members are separated
 * by the commas at depth 2 between its braces.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/error.h"
#include "index_split.h"

static char *wrap(const char *a, size_t n, size_t *len)
{
	char *p = cr_xmalloc(n + 3);
	p[0] = '{';
	memcpy(p + 1, a, n);
	p[n + 1] = '}';
	p[n + 2] = '\0';
	*len = n + 2;
	return p;
}

int cr_index_split(const char *text, size_t n, size_t want, struct cr_index_split *s)
{
	memset(s, 0, sizeof *s);
	if (want < 2 || memchr(text, '\0', n))
		return -1;
	int depth = 0, in_str = 0;
	size_t key_a = 0, key_b = 0, wo = SIZE_MAX, wc = SIZE_MAX;
	int key_open = 0; /* a string just closed at depth 1: a key if ':' follows */
	size_t *cut = NULL, ncut = 0, capcut = 0, target = 0, last = 0;
	for (size_t i = 0; i < n && wc == SIZE_MAX; i++) {
		unsigned char c = (unsigned char)text[i];
		if (in_str) {
			if (c == '\\') {
				i++;
			} else if (c == '"') {
				in_str = 0;
				if (depth == 1) {
					key_b = i;
					key_open = 1;
				}
			}
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		int was_key = key_open;
		key_open = 0;
		switch (c) {
		case '"':
			in_str = 1;
			key_a = i + 1;
			break;
		case ':':
			if (was_key && wo == SIZE_MAX && key_b - key_a == 10 && memcmp(text + key_a, "weight_map", 10) == 0) {
				size_t j = i + 1;
				while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r'))
					j++;
				if (j < n && text[j] == '{') {
					wo = j;
					last = j;
					target = n / want;
				}
			}
			break;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			depth--;
			if (depth == 1 && wo != SIZE_MAX && i > wo)
				wc = i;
			if (depth < 1 && wo == SIZE_MAX)
				i = n; /* the top-level value ended without one */
			break;
		case ',':
			if (depth == 2 && wo != SIZE_MAX && i - last >= target) {
				if (ncut == capcut) {
					capcut = capcut ? capcut * 2 : 16;
					cut = cr_xrealloc(cut, capcut * sizeof *cut);
				}
				cut[ncut++] = last = i;
			}
			break;
		}
	}
	if (wc == SIZE_MAX || ncut == 0) {
		free(cut);
		return -1;
	}
	s->npieces = ncut + 1;
	s->piece = cr_xcalloc(s->npieces, sizeof *s->piece);
	s->piece_len = cr_xcalloc(s->npieces, sizeof *s->piece_len);
	size_t from = wo + 1;
	for (size_t k = 0; k <= ncut; k++) {
		size_t to = k < ncut ? cut[k] : wc;
		s->piece[k] = wrap(text + from, to - from, &s->piece_len[k]);
		from = to + 1;
	}
	free(cut);
	s->outer_len = wo + 2 + (n - wc - 1);
	s->outer = cr_xmalloc(s->outer_len + 1);
	memcpy(s->outer, text, wo);
	memcpy(s->outer + wo, "{}", 2);
	memcpy(s->outer + wo + 2, text + wc + 1, n - wc - 1);
	s->outer[s->outer_len] = '\0';
	return 0;
}

void cr_index_split_free(struct cr_index_split *s)
{
	for (size_t k = 0; k < s->npieces; k++)
		free(s->piece[k]);
	free(s->piece);
	free(s->piece_len);
	free(s->outer);
	memset(s, 0, sizeof *s);
}
