/*
 * The workbench: shared types of the curses front end.
 *
 * Model: one UI thread owns curses and every structure here.  Work (scans,
 * merges) runs on a worker thread (worker.c) that publishes progress in a
 * locked struct and wakes the UI through a pipe; the event loop (tui_main.c)
 * poll()s that pipe and the keyboard.  Screens are views (a vtable: draw,
 * handle an action, handle a mouse event) on a stack; the top one is drawn
 * over the whole screen and gets the input.  Handlers return flags instead
 * of touching the loop.  Drawing names colour roles (crucible/theme.h),
 * never colours, and glyphs from the active glyph set (glyphs.c).
 */
#ifndef CRUCIBLE_TUI_H
#define CRUCIBLE_TUI_H

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>
#include <stddef.h>
#include <stdint.h>

#include "crucible/checkpoint.h"
#include "crucible/config_file.h"
#include "crucible/theme.h"
#include "keys.h"
#include "workbench.h"

/* Handler results. */
enum {
	V_HANDLED = 0x1, /* the action was used */
	V_REDRAW = 0x2,	 /* redraw the screen */
	V_QUIT = 0x4,	 /* leave the program */
	V_CLOSE = 0x8,	 /* pop this view */
};

struct app;
struct view;

struct view_ops {
	const char *name;
	enum key_ctx ctx; /* the view's own key context (LIST and GLOBAL are tried after) */
	int uses_list;	  /* LIST keys apply */
	void (*draw)(struct app *a, struct view *v);
	int (*action)(struct app *a, struct view *v, enum tui_action act, int key);
	int (*mouse)(struct app *a, struct view *v, const MEVENT *ev);
	void (*destroy)(struct view *v);
};

struct view {
	const struct view_ops *ops;
};

/* Glyphs: UTF-8 or ASCII, chosen once at start-up. */
struct glyphs {
	const char *fold_open, *fold_closed, *leaf;
	const char *bar_eighths[9]; /* "", 1/8 .. 8/8 of a cell */
	const char *shade[5];	    /* heat map: none .. full */
	const char *hbar, *vbar, *ellipsis, *arrow_left, *arrow_right, *lambda, *delta, *sort_up, *sort_down;
	int utf8;
};
extern const struct glyphs *G;
void glyphs_choose(int ascii);

/* Colour roles to curses attributes (colors.c). */
void colors_init(const struct cr_theme *t);
attr_t role_attr(enum cr_color_role r);

/* Drawing helpers (draw.c). */
/* Display width of a UTF-8 string. */
int text_width(const char *s);
/* Put s at (y, x) in at most w columns, padded with blanks.  right: 0 left-aligned, 1 right-aligned,
 * 2 left-aligned with a long text cut in the middle (names). */
void put_text(int y, int x, int w, enum cr_color_role role, const char *s, int right);
void put_attr_text(int y, int x, int w, attr_t attr, const char *s, int right);
/* Fill a row segment with blanks in a role. */
void fill_row(int y, int x, int w, enum cr_color_role role);
/* A horizontal bar of v in [0,1] over w cells, in eighths when UTF-8. */
void put_bar(int y, int x, int w, double v, enum cr_color_role role);
/* The role that colours a relative distance. */
enum cr_color_role rel_role(double rel);

/* A one-line text prompt at the bottom of the screen (prompt.c). */
struct prompt;
typedef void (*prompt_fn)(struct app *a, const char *text, void *ctx);
/* on_change may be NULL; on_done gets NULL when cancelled. */
void prompt_start(struct app *a, const char *label, const char *initial, prompt_fn on_change, prompt_fn on_done,
		  void *ctx);
int prompt_active(const struct app *a);
/* Feed one key; returns V_* flags. */
int prompt_key(struct app *a, int is_key, wint_t ch);
void prompt_draw(struct app *a);
void prompt_free(struct app *a);
/* A yes/no question: on_done gets "y" or NULL. */
void confirm_start(struct app *a, const char *question, prompt_fn on_yes, void *ctx);

/* The application. */
struct app {
	struct config {
		const char *base;
		const char **parents;
		int nparents;
		long session_id;
		const char *theme, *db;
		int ascii, no_scan;
	} opt;
	struct cr_config cfg;
	struct cr_theme theme;
	SCREEN *screen;
	int rows, cols;
	int has_colors;
	int wake_fd;   /* read end of the worker's wake pipe */
	struct view *stack[8];
	int nviews;
	struct prompt *prompt;
	char status[512]; /* transient message on the status line */
	enum cr_color_role status_role;
	int quit;
	/* The open checkpoints: 0 is the base. */
	struct cr_ckpt *ckpt[9];
	char *model_name[9];
	int nmodels;
	struct browser *browser;
	struct worker *worker;
	struct workbench wb;
	int have_wb;
	/* Latency of the last parameter change: recompute time, and the full key-to-screen time. */
	double last_change_ms, last_redraw_ms, last_event_ms;
	double t_recipe, t_plan, t_decide; /* parts of last_change_ms */
	int change_pending, show_timing;
	double start_ms, catalog_ms;
	int64_t open_request; /* session to open once the current handler returns */
};

void app_push(struct app *a, struct view *v);
/* Open session id in the workbench (after the current key is handled). */
void app_open_session(struct app *a, int64_t id);
void app_message(struct app *a, enum cr_color_role role, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A message from background work: it does not replace a warning or error the user has not seen yet. */
void app_note(struct app *a, enum cr_color_role role, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Draw the title bar (row 0) and the status line (last row). */
void app_draw_frame(struct app *a, const char *title);

/* Views. */
struct view *help_view_new(struct app *a, enum key_ctx ctx);
struct browser *browser_new(struct app *a);
struct view *browser_view(struct browser *b);
void browser_free(struct browser *b);
struct view *heatmap_view_new(struct app *a, struct browser *b);
struct view *detail_view_new(struct app *a, struct browser *b, size_t tensor);

#endif
