/*
 * Colour roles to curses attributes.  Each role gets its own colour pair
 * from the theme.  Without colours (TERM=vt100, NO_COLOR) only attributes
 * apply, and a role that shows itself by its background (cursor, title,
 * heat cells) is drawn reversed so it stays visible.
 */
#include "config.h"

#include <stdlib.h>

#include "tui.h"

static attr_t role_attrs[CR_ROLE__COUNT];

static attr_t attrs_of(unsigned a)
{
	attr_t r = A_NORMAL;
	if (a & CR_ATTR_BOLD)
		r |= A_BOLD;
	if (a & CR_ATTR_DIM)
		r |= A_DIM;
	if (a & CR_ATTR_REVERSE)
		r |= A_REVERSE;
	if (a & CR_ATTR_UNDERLINE)
		r |= A_UNDERLINE;
	if (a & CR_ATTR_STANDOUT)
		r |= A_STANDOUT;
#ifdef A_ITALIC
	if (a & CR_ATTR_ITALIC)
		r |= A_ITALIC;
#endif
	if (a & CR_ATTR_BLINK)
		r |= A_BLINK;
	return r;
}

/* A colour the terminal can show: 8..15 become 0..7 plus bold on 8-colour terminals. */
static short fit_color(short c, attr_t *extra)
{
	if (c < 0 || c < COLORS)
		return c;
	if (c < 16) {
		*extra |= A_BOLD;
		return (short)(c - 8);
	}
	return -1;
}

void colors_init(const struct cr_theme *t)
{
	int colors = has_colors() && getenv("NO_COLOR") == NULL;
	if (colors) {
		start_color();
		use_default_colors();
	}
	for (int r = 0; r < CR_ROLE__COUNT; r++) {
		const struct cr_theme_entry *e = &t->role[r];
		attr_t a = attrs_of(e->attrs);
		if (colors && r + 1 < COLOR_PAIRS) {
			attr_t extra = 0;
			short fg = fit_color(e->fg, &extra), bg = fit_color(e->bg, &extra);
			if (e->bg >= 8 && e->bg < 16 && COLORS < 16)
				extra &= ~(attr_t)A_BOLD; /* bold brightens the text, not the background */
			init_pair((short)(r + 1), fg, bg);
			a |= COLOR_PAIR(r + 1) | extra;
		} else if (e->bg >= 0) {
			a |= A_REVERSE;
		}
		role_attrs[r] = a;
	}
}

attr_t role_attr(enum cr_color_role r)
{
	return r >= 0 && r < CR_ROLE__COUNT ? role_attrs[r] : A_NORMAL;
}
