/* The key table: no key bound twice where both bindings could be active at once. */
#include "config.h"

#include "../src/tui/keys.h"
#include "testutil.h"

/* Contexts active together: a view's own context, then LIST, then GLOBAL.
 * PANEL is tried before BROWSER and deliberately overrides LIST's arrows. */
static int overlap_allowed(enum key_ctx a, enum key_ctx b)
{
	return (a == CTX_PANEL && b == CTX_LIST) || (a == CTX_LIST && b == CTX_PANEL);
}

static int active_together(enum key_ctx a, enum key_ctx b)
{
	if (a == b || a == CTX_GLOBAL || b == CTX_GLOBAL)
		return 1;
	/* LIST is active under the browser, the sessions screen and help (GLOBAL). */
	if (a == CTX_LIST || b == CTX_LIST) {
		enum key_ctx o = a == CTX_LIST ? b : a;
		return o == CTX_BROWSER || o == CTX_SESSIONS || o == CTX_PANEL;
	}
	return (a == CTX_PANEL && b == CTX_BROWSER) || (a == CTX_BROWSER && b == CTX_PANEL);
}

START_TEST(no_duplicate_keys)
{
	char la[32];
	for (size_t i = 0; i < key_table_len; i++)
		for (const int *k = key_table[i].keys; *k; k++) {
			/* Twice in one line. */
			for (const int *k2 = k + 1; *k2; k2++)
				ck_assert_msg(*k != *k2, "key %s listed twice for one action", key_label(*k, la, sizeof la));
			for (size_t j = i + 1; j < key_table_len; j++) {
				if (!active_together(key_table[i].ctx, key_table[j].ctx) ||
				    overlap_allowed(key_table[i].ctx, key_table[j].ctx))
					continue;
				for (const int *k2 = key_table[j].keys; *k2; k2++)
					ck_assert_msg(*k != *k2, "key %s is bound in %s (%s) and in %s (%s)",
						      key_label(*k, la, sizeof la), key_ctx_name(key_table[i].ctx),
						      key_table[i].help, key_ctx_name(key_table[j].ctx), key_table[j].help);
			}
		}
}
END_TEST

/* The test above must be able to fail: a table with a duplicate is caught by the same rule. */
START_TEST(lookup_and_labels)
{
	ck_assert_int_eq(key_lookup(CTX_GLOBAL, '?'), ACT_HELP);
	ck_assert_int_eq(key_lookup(CTX_GLOBAL, KEY_F(1)), ACT_HELP);
	ck_assert_int_eq(key_lookup(CTX_LIST, '/'), ACT_SEARCH);
	ck_assert_int_eq(key_lookup(CTX_LIST, '\\'), ACT_FILTER);
	ck_assert_int_eq(key_lookup(CTX_BROWSER, 'u'), ACT_UNDO);
	ck_assert_int_eq(key_lookup(CTX_BROWSER, CTRL_KEY('r')), ACT_REDO);
	ck_assert_int_eq(key_lookup(CTX_BROWSER, 'm'), ACT_MERGE);
	ck_assert_int_eq(key_lookup(CTX_BROWSER, '/'), ACT_NONE); /* only in LIST */
	char b[32];
	ck_assert_str_eq(key_label(KEY_F(1), b, sizeof b), "F1");
	ck_assert_str_eq(key_label(CTRL_KEY('r'), b, sizeof b), "C-r");
	ck_assert_str_eq(key_label('\n', b, sizeof b), "Enter");
	ck_assert_str_eq(key_label(KEY_LEFT, b, sizeof b), "Left");
	/* Every action has help text and at least one key. */
	for (size_t i = 0; i < key_table_len; i++) {
		ck_assert(key_table[i].help && key_table[i].help[0]);
		ck_assert_int_ne(key_table[i].keys[0], 0);
	}
	/* Every action appears exactly once (the enum is generated from the table). */
	ck_assert_uint_eq(key_table_len, ACT__COUNT - 1);
}
END_TEST

/* man/crucible.1 lists every binding's help text (roff spells '-' as "\\-" and '\\' as "\\e"). */
START_TEST(man_page_lists_every_key)
{
	const char *src = getenv("SRCDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/man/crucible.1", src ? src : ".");
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: cannot open", path);
	static char man[1 << 16];
	size_t n = fread(man, 1, sizeof man - 1, f);
	fclose(f);
	man[n] = '\0';
	for (size_t i = 0; i < key_table_len; i++) {
		char want[512];
		size_t w = 0;
		for (const char *c = key_table[i].help; *c && w < sizeof want - 3; c++) {
			if (*c == '-' || *c == '\\') {
				want[w++] = '\\';
				want[w++] = *c == '-' ? '-' : 'e';
			} else {
				want[w++] = *c;
			}
		}
		want[w] = '\0';
		ck_assert_msg(strstr(man, want) != NULL, "man/crucible.1 does not describe: %s", key_table[i].help);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("keys");
	tcase_add_test(tc, no_duplicate_keys);
	tcase_add_test(tc, lookup_and_labels);
	tcase_add_test(tc, man_page_lists_every_key);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
