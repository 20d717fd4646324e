/* The key-binding table (see keys.h) and key names for the help screen. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"

const struct key_binding key_table[] = {
#define X(ctx, act, help, ...) { CTX_##ctx, ACT_##act, help, { __VA_ARGS__, 0 } },
	TUI_KEYS(X)
#undef X
};
const size_t key_table_len = sizeof key_table / sizeof key_table[0];

static const char *const ctx_names[CTX__COUNT] = {
	[CTX_GLOBAL] = "Everywhere",	  [CTX_LIST] = "Lists and trees",   [CTX_BROWSER] = "Tensor browser",
	[CTX_PANEL] = "Merge panel (Tab)", [CTX_HEATMAP] = "Heat map",	     [CTX_DETAIL] = "Tensor detail",
	[CTX_SESSIONS] = "Sessions screen",
};

const char *key_ctx_name(enum key_ctx c)
{
	return c < CTX__COUNT ? ctx_names[c] : "?";
}

enum tui_action key_lookup(enum key_ctx ctx, int key)
{
	for (size_t i = 0; i < key_table_len; i++) {
		if (key_table[i].ctx != ctx)
			continue;
		for (const int *k = key_table[i].keys; *k; k++)
			if (*k == key)
				return key_table[i].act;
	}
	return ACT_NONE;
}

const char *key_label(int key, char *buf, size_t len)
{
	static const struct {
		int key;
		const char *name;
	} named[] = {
		{ KEY_UP, "Up" },	  { KEY_DOWN, "Down" },	   { KEY_LEFT, "Left" },   { KEY_RIGHT, "Right" },
		{ KEY_PPAGE, "PgUp" },	  { KEY_NPAGE, "PgDn" },   { KEY_HOME, "Home" },   { KEY_END, "End" },
		{ KEY_ENTER, "KpEnter" }, { KEY_RETURN, "Enter" }, { KEY_ESC, "Esc" },	   { KEY_TAB, "Tab" },
		{ ' ', "Space" },	  { KEY_BACKSPACE, "BkSp" }, { KEY_DC, "Del" },
	};
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		if (named[i].key == key) {
			snprintf(buf, len, "%s", named[i].name);
			return buf;
		}
	if (key >= KEY_F(1) && key <= KEY_F(12))
		snprintf(buf, len, "F%d", key - KEY_F0);
	else if (key > 0 && key < 32)
		snprintf(buf, len, "C-%c", key + 'a' - 1);
	else if (key >= 32 && key < 127)
		snprintf(buf, len, "%c", key);
	else
		snprintf(buf, len, "#%d", key);
	return buf;
}

const char *key_labels(const struct key_binding *b, char *buf, size_t len)
{
	size_t pos = 0;
	buf[0] = '\0';
	for (const int *k = b->keys; *k && pos < len; k++) {
		if (*k == KEY_ENTER)
			continue; /* the keypad's Enter is implied by Enter */
		char one[16];
		pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", pos ? " " : "", key_label(*k, one, sizeof one));
	}
	return buf;
}
