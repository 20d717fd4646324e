/* Drawing helpers: width-aware text, padded cells, bars. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "tui.h"

int text_width(const char *s)
{
	mbstate_t st = { 0 };
	int w = 0;
	const char *p = s;
	size_t left = strlen(s);
	while (left) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, p, left, &st);
		if (n == (size_t)-1 || n == (size_t)-2) {
			memset(&st, 0, sizeof st);
			n = 1;
			wc = '?';
		} else if (n == 0) {
			break;
		}
		int cw = wcwidth(wc);
		w += cw > 0 ? cw : 0;
		p += n;
		left -= n;
	}
	return w;
}

/* Write at most w columns of s; returns the columns written. */
static int add_clipped(const char *s, int w)
{
	mbstate_t st = { 0 };
	int used = 0;
	const char *p = s;
	size_t left = strlen(s);
	while (left && used < w) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, p, left, &st);
		if (n == (size_t)-1 || n == (size_t)-2) {
			memset(&st, 0, sizeof st);
			n = 1;
			wc = '?';
		} else if (n == 0) {
			break;
		}
		int cw = wcwidth(wc);
		if (cw < 0)
			cw = 0, wc = '?';
		if (used + cw > w)
			break;
		addnwstr(&wc, 1);
		used += cw;
		p += n;
		left -= n;
	}
	return used;
}

void put_attr_text(int y, int x, int w, attr_t attr, const char *s, int right)
{
	if (w <= 0)
		return;
	attrset(attr);
	move(y, x);
	int tw = text_width(s), used = 0;
	int middle = right == 2;
	if (middle)
		right = 0;
	if (right && tw < w) {
		for (int i = 0; i < w - tw; i++)
			addch(' ');
		used = w - tw;
	}
	if (tw > w && w > 1 && !middle) {
		used += add_clipped(s, w - 1);
		attrset(attr);
		addstr(G->ellipsis);
		used++;
	} else if (tw > w && w > 1) {
		/* Keep both ends of a long name, more of the tail: it says what the tensor is. */
		int head = (w - 1) / 3, tail = w - 1 - head;
		used += add_clipped(s, head);
		attrset(attr);
		addstr(G->ellipsis);
		used++;
		const char *t = s + strlen(s);
		while (t > s && text_width(t - 1) <= tail)
			t--;
		while ((*t & 0xC0) == 0x80)
			t++;
		used += add_clipped(t, w - used);
	} else {
		used += add_clipped(s, w - used);
	}
	for (; used < w; used++)
		addch(' ');
	attrset(A_NORMAL);
}

void put_text(int y, int x, int w, enum cr_color_role role, const char *s, int right)
{
	put_attr_text(y, x, w, role_attr(role), s, right);
}

void fill_row(int y, int x, int w, enum cr_color_role role)
{
	put_text(y, x, w, role, "", 0);
}

void put_bar(int y, int x, int w, double v, enum cr_color_role role)
{
	if (w <= 0)
		return;
	if (!(v >= 0))
		v = 0;
	if (v > 1)
		v = 1;
	int eighths = (int)lround(v * w * 8);
	move(y, x);
	attrset(role_attr(role));
	int used = 0;
	for (; used < w && eighths >= 8; used++, eighths -= 8)
		addstr(G->bar_eighths[8]);
	if (used < w && eighths > 0 && G->bar_eighths[eighths][0]) {
		addstr(G->bar_eighths[eighths]);
		used++;
	}
	attrset(role_attr(CR_ROLE_DIM));
	for (; used < w; used++)
		addstr(G->utf8 ? "·" : ".");
	attrset(A_NORMAL);
}

enum cr_color_role rel_role(double rel)
{
	if (!(rel > 0))
		return CR_ROLE_REL_ZERO;
	if (rel < 0.01)
		return CR_ROLE_REL_LOW;
	if (rel < 0.1)
		return CR_ROLE_REL_MID;
	return CR_ROLE_REL_HIGH;
}
