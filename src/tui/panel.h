/*
 * The merge panel below the tensor tree: method, scope, λ per parent and δ,
 * and the live summary of where each class's tensors and bytes come from.
 * Every change goes through the session state (crucible/state.h) as an
 * event, and the decisions are recomputed by the planner.
 */
#ifndef CRUCIBLE_TUI_PANEL_H
#define CRUCIBLE_TUI_PANEL_H

#include "tui.h"

struct browser;
struct panel;

struct panel *panel_new(struct app *a, struct browser *b);
void panel_free(struct panel *p);
/* Rows the panel wants on a screen of `rows` lines (0 hides it). */
int panel_height(const struct panel *p, int rows);
void panel_draw(struct panel *p, int y, int x, int h, int w, int focused);
/* PANEL actions while the panel has the focus. */
int panel_action(struct panel *p, enum tui_action act);
/* BROWSER actions the panel owns (undo, redo, export, merge, cancel, sessions). */
int panel_browser_action(struct panel *p, enum tui_action act);
int panel_mouse(struct panel *p, const MEVENT *ev);
void panel_set_class_scope(struct panel *p, enum cr_class cls);

#endif
