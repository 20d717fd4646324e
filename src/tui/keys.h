/*
 * Key bindings: one table.  Each line is an action with its context, its
 * help text and the keys bound to it.  The enum of actions, the lookup and
 * the help screen are all generated from it, so adding a binding is one line.
 *
 * Contexts: a view's own context is tried first, then LIST (for views built
 * on the list widget), then GLOBAL.  PANEL (the merge panel has the focus)
 * deliberately overrides LIST's arrow keys; tests/check_keys verifies there
 * is no other overlap and no duplicate key inside a context.
 */
#ifndef CRUCIBLE_TUI_KEYS_H
#define CRUCIBLE_TUI_KEYS_H

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>
#include <stddef.h>

#define CTRL_KEY(c) ((c) & 0x1f)
#define KEY_ESC 27
#define KEY_TAB '\t'
#define KEY_RETURN '\n'

/* X(context, ACTION, "help", keys...) */
#define TUI_KEYS(X)                                                                                  \
	X(GLOBAL, HELP, "show this help (every key, by screen)", KEY_F(1), '?')                      \
	X(GLOBAL, QUIT, "quit (close the screen on top; asks while a merge runs)", 'q')             \
	X(GLOBAL, BACK, "close this screen or cancel", KEY_ESC)                                     \
	X(GLOBAL, REDRAW, "redraw the screen", CTRL_KEY('l'))                                        \
	X(LIST, UP, "move up", KEY_UP, 'k')                                                          \
	X(LIST, DOWN, "move down", KEY_DOWN, 'j')                                                    \
	X(LIST, PAGE_UP, "page up", KEY_PPAGE, CTRL_KEY('b'))                                        \
	X(LIST, PAGE_DOWN, "page down", KEY_NPAGE, CTRL_KEY('f'), ' ')                              \
	X(LIST, TOP, "first row", KEY_HOME, 'g')                                                     \
	X(LIST, BOTTOM, "last row", KEY_END, 'G')                                                    \
	X(LIST, TOGGLE, "fold or unfold a group; open a tensor's detail", KEY_RETURN, KEY_ENTER)    \
	X(LIST, EXPAND, "unfold the group", '+', KEY_RIGHT, 'l')                                     \
	X(LIST, COLLAPSE, "fold the group (or go to its parent)", '-', KEY_LEFT, 'h')                \
	X(LIST, EXPAND_ALL, "unfold everything (again: fold everything)", '*')                       \
	X(LIST, SORT, "sort by the next column (or click a header)", 's')                           \
	X(LIST, SORT_REVERSE, "reverse the sort order", 'r')                                         \
	X(LIST, SEARCH, "search as you type", '/')                                                   \
	X(LIST, SEARCH_NEXT, "next match", 'n')                                                      \
	X(LIST, SEARCH_PREV, "previous match", 'N')                                                  \
	X(LIST, FILTER, "filter: a substring or class:NAME (empty clears)", '\\')                   \
	X(BROWSER, FOCUS, "move the focus between the tensor tree and the merge panel", KEY_TAB)    \
	X(BROWSER, FLAT, "tree or flat list", 'f')                                                   \
	X(BROWSER, HEATMAP, "heat map of rel, layers x classes", 'H')                                \
	X(BROWSER, DETAIL, "detail of the selected tensor", 'd')                                     \
	X(BROWSER, SCOPE_ROW, "set the panel's scope to the selected row's class", 'c')              \
	X(BROWSER, UNDO, "undo the last parameter change", 'u')                                      \
	X(BROWSER, REDO, "redo", CTRL_KEY('r'))                                                      \
	X(BROWSER, EXPORT, "export the recipe (YAML)", 'e')                                          \
	X(BROWSER, MERGE, "run the merge (asks for an output folder)", 'm')                          \
	X(BROWSER, CANCEL_RUN, "cancel the running merge or scan", 'x')                              \
	X(BROWSER, SESSIONS, "sessions screen", 'S')                                                 \
	X(PANEL, PARAM_UP, "previous parameter", KEY_UP, 'k')                                        \
	X(PANEL, PARAM_DOWN, "next parameter", KEY_DOWN, 'j')                                        \
	X(PANEL, DEC, "decrease the value (or previous choice)", KEY_LEFT, 'h')                      \
	X(PANEL, INC, "increase the value (or next choice)", KEY_RIGHT, 'l')                         \
	X(PANEL, EDIT, "type a value", KEY_RETURN, KEY_ENTER, '=')                                   \
	X(HEATMAP, PREV_PARENT, "previous parent", '[', KEY_LEFT)                                    \
	X(HEATMAP, NEXT_PARENT, "next parent", ']', KEY_RIGHT)                                       \
	X(HEATMAP, SCROLL_UP, "scroll up", KEY_UP, 'k')                                              \
	X(HEATMAP, SCROLL_DOWN, "scroll down", KEY_DOWN, 'j')                                        \
	X(DETAIL, DETAIL_PREV, "previous tensor", KEY_UP, 'k')                                       \
	X(DETAIL, DETAIL_NEXT, "next tensor", KEY_DOWN, 'j')                                         \
	X(SESSIONS, OPEN, "open the session (or re-run the selected run)", 'o')                      \
	X(SESSIONS, FORK, "fork the session into a new one", 'F')                                    \
	X(SESSIONS, RENAME, "rename the session", 'R')                                               \
	X(SESSIONS, DELETE, "delete the session (asks first)", 'D')                                  \
	X(SESSIONS, MARK, "mark for comparison; with two marked, compare", 'C')                      \
	X(SESSIONS, RERUN, "re-run the session's last run", 'X')

enum key_ctx { CTX_GLOBAL, CTX_LIST, CTX_BROWSER, CTX_PANEL, CTX_HEATMAP, CTX_DETAIL, CTX_SESSIONS, CTX__COUNT };

enum tui_action {
	ACT_NONE = 0,
#define X(ctx, act, help, ...) ACT_##act,
	TUI_KEYS(X)
#undef X
	ACT__COUNT
};

struct key_binding {
	enum key_ctx ctx;
	enum tui_action act;
	const char *help;
	int keys[6]; /* 0-terminated */
};

extern const struct key_binding key_table[];
extern const size_t key_table_len;

const char *key_ctx_name(enum key_ctx c);
/* The action for key in ctx (only that context), or ACT_NONE. */
enum tui_action key_lookup(enum key_ctx ctx, int key);
/* "Up", "F1", "C-r", "Enter", "x"... into buf. */
const char *key_label(int key, char *buf, size_t len);
/* The keys of a binding as "Up k" into buf. */
const char *key_labels(const struct key_binding *b, char *buf, size_t len);

#endif
