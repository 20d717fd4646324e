/* The merge panel (see panel.h).  Placeholder until the session state and the planner land. */
#include "config.h"

#include <stdlib.h>

#include "browser.h"
#include "panel.h"

struct panel {
	struct app *app;
	struct browser *b;
};

struct panel *panel_new(struct app *a, struct browser *b)
{
	struct panel *p = cr_xcalloc(1, sizeof *p);
	p->app = a;
	p->b = b;
	return p;
}

void panel_free(struct panel *p)
{
	free(p);
}

int panel_height(const struct panel *p, int rows)
{
	(void)p;
	return rows >= 24 ? 3 : 0;
}

void panel_draw(struct panel *p, int y, int x, int h, int w, int focused)
{
	(void)p;
	(void)focused;
	for (int i = 0; i < h; i++)
		fill_row(y + i, x, w, CR_ROLE_NORMAL);
	put_text(y, x, w, CR_ROLE_PANEL_TITLE, "merge panel", 0);
}

int panel_action(struct panel *p, enum tui_action act)
{
	(void)p;
	(void)act;
	return 0;
}

int panel_browser_action(struct panel *p, enum tui_action act)
{
	(void)p;
	(void)act;
	return 0;
}

int panel_mouse(struct panel *p, const MEVENT *ev)
{
	(void)p;
	(void)ev;
	return 0;
}

void panel_set_class_scope(struct panel *p, enum cr_class cls)
{
	(void)p;
	(void)cls;
}
