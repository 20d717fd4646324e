/*
 * The one-line prompt on the bottom row: typed values, search, filter,
 * output folder, yes/no confirmations.  While a prompt is open it gets every
 * key.  Callbacks run after the prompt is closed, so a callback may open the
 * next prompt.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "tui.h"

struct prompt {
	char label[256];
	char buf[1024];
	size_t len;
	prompt_fn on_change, on_done;
	void *ctx;
	int confirm;
	int pristine; /* still showing the initial text: typing replaces it */
};

static void open_prompt(struct app *a, const char *label, const char *initial, prompt_fn on_change,
			prompt_fn on_done, void *ctx, int confirm)
{
	prompt_free(a);
	struct prompt *p = cr_xcalloc(1, sizeof *p);
	snprintf(p->label, sizeof p->label, "%s", label);
	snprintf(p->buf, sizeof p->buf, "%s", initial ? initial : "");
	p->len = strlen(p->buf);
	p->pristine = p->len > 0;
	p->on_change = on_change;
	p->on_done = on_done;
	p->ctx = ctx;
	p->confirm = confirm;
	a->prompt = p;
	curs_set(1);
}

void prompt_start(struct app *a, const char *label, const char *initial, prompt_fn on_change, prompt_fn on_done,
		  void *ctx)
{
	open_prompt(a, label, initial, on_change, on_done, ctx, 0);
}

void confirm_start(struct app *a, const char *question, prompt_fn on_yes, void *ctx)
{
	char label[256];
	snprintf(label, sizeof label, "%s (y/n) ", question);
	open_prompt(a, label, "", NULL, on_yes, ctx, 1);
}

int prompt_active(const struct app *a)
{
	return a->prompt != NULL;
}

void prompt_free(struct app *a)
{
	free(a->prompt);
	a->prompt = NULL;
	curs_set(0);
}

static void finish(struct app *a, int accepted)
{
	struct prompt p = *a->prompt;
	prompt_free(a);
	if (p.confirm) {
		if (accepted && p.on_done)
			p.on_done(a, "y", p.ctx);
		return;
	}
	if (p.on_done)
		p.on_done(a, accepted ? p.buf : NULL, p.ctx);
}

int prompt_key(struct app *a, int is_key, wint_t ch)
{
	struct prompt *p = a->prompt;
	if (p->confirm) {
		finish(a, !is_key && (ch == 'y' || ch == 'Y'));
		return V_REDRAW;
	}
	if ((!is_key && (ch == '\n' || ch == '\r')) || (is_key && ch == KEY_ENTER)) {
		finish(a, 1);
		return V_REDRAW;
	}
	if (!is_key && ch == KEY_ESC) {
		finish(a, 0);
		return V_REDRAW;
	}
	int changed = 0;
	int pristine = p->pristine;
	p->pristine = 0; /* any key but Enter/Esc starts editing */
	if ((is_key && ch == KEY_BACKSPACE) || (!is_key && (ch == 127 || ch == 8))) {
		/* Drop one UTF-8 character. */
		while (p->len > 0) {
			unsigned char c = (unsigned char)p->buf[--p->len];
			if ((c & 0xC0) != 0x80)
				break;
		}
		p->buf[p->len] = '\0';
		changed = 1;
	} else if (!is_key && ch == CTRL_KEY('u')) {
		p->len = 0;
		p->buf[0] = '\0';
		changed = 1;
	} else if (!is_key && ch >= 32 && ch != 127) {
		char mb[MB_LEN_MAX];
		mbstate_t st = { 0 };
		size_t n = wcrtomb(mb, (wchar_t)ch, &st);
		if (pristine) { /* the first character typed replaces the suggestion */
			p->len = 0;
			p->buf[0] = '\0';
		}
		if (n != (size_t)-1 && p->len + n < sizeof p->buf) {
			memcpy(p->buf + p->len, mb, n);
			p->len += n;
			p->buf[p->len] = '\0';
			changed = 1;
		}
	}
	if (changed && p->on_change)
		p->on_change(a, p->buf, p->ctx);
	return V_REDRAW;
}

void prompt_draw(struct app *a)
{
	struct prompt *p = a->prompt;
	int y = a->rows - 1;
	fill_row(y, 0, a->cols, CR_ROLE_NORMAL);
	int lw = text_width(p->label);
	put_text(y, 0, lw < a->cols ? lw : a->cols, CR_ROLE_PROMPT, p->label, 0);
	int room = a->cols - lw - 1;
	const char *shown = p->buf;
	/* Show the end of a long input. */
	while (room > 0 && text_width(shown) > room)
		shown++;
	/* the suggestion is drawn like a selection: typing replaces it */
	put_text(y, lw, room > 0 ? room + 1 : 0, p->pristine ? CR_ROLE_CURSOR : CR_ROLE_NORMAL, shown, 0);
	move(y, lw + text_width(shown));
}
