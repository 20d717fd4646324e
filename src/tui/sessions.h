/* The sessions screen (sessions.c). */
#ifndef CRUCIBLE_TUI_SESSIONS_H
#define CRUCIBLE_TUI_SESSIONS_H

#include "tui.h"

/* db NULL: the default database.  NULL with err when the store cannot be opened. */
struct view *sessions_view_new(struct app *a, const char *db, cr_error *err);

#endif
