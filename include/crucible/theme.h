/*
 * Colour themes: the table of colour roles the workbench draws with, and a
 * reader for theme files.  No curses here: a theme is plain data (colour
 * numbers and attribute bits) that the TUI turns into curses attributes.
 *
 * A theme file has one role per line:
 *     color ROLE FG BG [ATTR...]
 * FG and BG are `default`, a colour name (black red green yellow blue magenta
 * cyan white, `bright-` in front for 8..15) or a number 0..255.  ATTR words
 * are normal bold dim reverse underline standout italic blink.  `#` starts a
 * comment.  A bad line is skipped with a warning naming the file and line;
 * the other lines still apply, over the built-in defaults.
 *
 * Drawing code names roles only (CR_ROLE_...), never a colour.
 */
#ifndef CRUCIBLE_THEME_H
#define CRUCIBLE_THEME_H

#include <stddef.h>

#include "crucible/error.h"

/* X(ID, "name", default fg, default bg, default attrs, what it colours)
 * Colours: -1 is the terminal's default, 0..7 the ANSI colours. */
#define CR_COLOR_ROLES(X)                                                                           \
	X(NORMAL, "normal", -1, -1, 0, "ordinary text")                                               \
	X(TITLE, "title", 0, 6, 0, "title bar")                                                        \
	X(STATUS, "status", 0, 6, 0, "status line at the bottom")                                      \
	X(HEADER, "header", 3, -1, CR_ATTR_BOLD | CR_ATTR_UNDERLINE, "column headers")                 \
	X(HEADER_SORTED, "header-sorted", 6, -1, CR_ATTR_BOLD | CR_ATTR_UNDERLINE, "the sort column")  \
	X(CURSOR, "cursor", 0, 6, 0, "selected row")                                                   \
	X(CURSOR_IDLE, "cursor-idle", -1, -1, CR_ATTR_REVERSE, "selected row of an unfocused pane")     \
	X(LAYER, "layer", 3, -1, CR_ATTR_BOLD, "layer summary rows")                                   \
	X(CLASS, "class", 6, -1, 0, "class summary rows")                                              \
	X(TENSOR, "tensor", -1, -1, 0, "tensor rows")                                                  \
	X(DIM, "dim", -1, -1, CR_ATTR_DIM, "values not known yet, secondary text")                    \
	X(MATCH, "match", 0, 3, 0, "search match")                                                     \
	X(REL_ZERO, "rel-zero", 4, -1, 0, "rel: identical to the base")                               \
	X(REL_LOW, "rel-low", 2, -1, 0, "rel: small change")                                           \
	X(REL_MID, "rel-mid", 3, -1, 0, "rel: medium change")                                          \
	X(REL_HIGH, "rel-high", 1, -1, CR_ATTR_BOLD, "rel: large change")                             \
	X(HEAT_0, "heat-0", -1, 4, 0, "heat map: no change")                                           \
	X(HEAT_1, "heat-1", 0, 6, 0, "heat map: small")                                                \
	X(HEAT_2, "heat-2", 0, 2, 0, "heat map: medium-small")                                         \
	X(HEAT_3, "heat-3", 0, 3, 0, "heat map: medium-large")                                         \
	X(HEAT_4, "heat-4", 7, 1, CR_ATTR_BOLD, "heat map: large")                                     \
	X(DECISION_BASE, "decision-base", -1, -1, CR_ATTR_DIM, "decision: copy the base")             \
	X(DECISION_PARENT, "decision-parent", 5, -1, CR_ATTR_BOLD, "decision: copy a parent")          \
	X(DECISION_MERGE, "decision-merge", 2, -1, CR_ATTR_BOLD, "decision: compute")                  \
	X(PANEL_TITLE, "panel-title", 3, -1, CR_ATTR_BOLD, "panel headings")                           \
	X(PANEL_LABEL, "panel-label", -1, -1, 0, "panel labels")                                       \
	X(PANEL_VALUE, "panel-value", 6, -1, CR_ATTR_BOLD, "panel values")                             \
	X(PANEL_ACTIVE, "panel-active", 0, 3, 0, "the parameter being edited")                         \
	X(BORDER, "border", 4, -1, 0, "separators")                                                    \
	X(PROGRESS, "progress", 0, 2, 0, "progress bar, done part")                                    \
	X(PROGRESS_TODO, "progress-todo", -1, -1, CR_ATTR_DIM, "progress bar, remaining part")        \
	X(ERROR, "error", 7, 1, CR_ATTR_BOLD, "error messages")                                        \
	X(WARNING, "warning", 3, -1, CR_ATTR_BOLD, "warnings")                                         \
	X(OK, "ok", 2, -1, CR_ATTR_BOLD, "success messages")                                           \
	X(HELP_KEY, "help-key", 3, -1, CR_ATTR_BOLD, "help: key names")                                \
	X(HELP_SECTION, "help-section", 6, -1, CR_ATTR_BOLD | CR_ATTR_UNDERLINE, "help: section titles") \
	X(PROMPT, "prompt", 3, -1, CR_ATTR_BOLD, "prompts and typed input")

#define CR_ATTR_BOLD 0x01u
#define CR_ATTR_DIM 0x02u
#define CR_ATTR_REVERSE 0x04u
#define CR_ATTR_UNDERLINE 0x08u
#define CR_ATTR_STANDOUT 0x10u
#define CR_ATTR_ITALIC 0x20u
#define CR_ATTR_BLINK 0x40u

enum cr_color_role {
#define X(id, name, fg, bg, attr, desc) CR_ROLE_##id,
	CR_COLOR_ROLES(X)
#undef X
	CR_ROLE__COUNT,
	CR_ROLE_NONE = -1
};

struct cr_theme_entry {
	short fg, bg;	/* -1 default, 0..255 */
	unsigned attrs; /* CR_ATTR_* bits */
};

struct cr_theme {
	struct cr_theme_entry role[CR_ROLE__COUNT];
	char **warnings; /* "FILE:LINE: message", one per bad line */
	size_t nwarnings;
};

const char *cr_role_name(enum cr_color_role r);
const char *cr_role_desc(enum cr_color_role r);
enum cr_color_role cr_role_parse(const char *name);

/* The built-in colours (the same as themes/default). */
void cr_theme_init(struct cr_theme *t);
void cr_theme_free(struct cr_theme *t);
/* Apply theme text over t; bad lines become warnings naming `file` and the line. */
void cr_theme_parse(struct cr_theme *t, const char *text, const char *file);
/* Read a theme file over t.  -1 only when the file cannot be read. */
int cr_theme_load(struct cr_theme *t, const char *path, cr_error *err);
/*
 * Find a theme by NAME or PATH: a value with a '/' or naming an existing
 * file is a path; otherwise NAME is looked up in each of dirs (NULL-ended).
 * Writes the path found into out; -1 with a message listing where it looked.
 */
int cr_theme_find(const char *name_or_path, const char *const *dirs, char *out, size_t len, cr_error *err);

/* Parse "red", "bright-blue", "default", "208": -1..255, or -2 when unknown. */
int cr_color_parse(const char *s);
/* Parse one attribute word: its CR_ATTR_* bit, 0 for "normal", -1 when unknown. */
int cr_attr_parse(const char *s);

#endif
