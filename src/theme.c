/*
 * Theme files (see crucible/theme.h).
 *
 * Owns the colour-role table and the theme-file reader.  A theme always
 * starts from the built-in defaults, so a partial file or a file with bad
 * lines still gives every role a usable value.  Called by the TUI at start-up
 * and by tests/check_theme.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crucible/textfile.h"
#include "crucible/theme.h"

static const struct {
	const char *name, *desc;
	struct cr_theme_entry def;
} roles[] = {
#define X(id, name, fg, bg, attr, desc) { name, desc, { fg, bg, attr } },
	CR_COLOR_ROLES(X)
#undef X
};

static const char *const color_names[8] = { "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white" };

static const struct {
	const char *name;
	unsigned bit;
} attr_names[] = {
	{ "bold", CR_ATTR_BOLD },	    { "dim", CR_ATTR_DIM },	      { "reverse", CR_ATTR_REVERSE },
	{ "underline", CR_ATTR_UNDERLINE }, { "standout", CR_ATTR_STANDOUT }, { "italic", CR_ATTR_ITALIC },
	{ "blink", CR_ATTR_BLINK },
};

const char *cr_role_name(enum cr_color_role r)
{
	return r >= 0 && r < CR_ROLE__COUNT ? roles[r].name : "?";
}

const char *cr_role_desc(enum cr_color_role r)
{
	return r >= 0 && r < CR_ROLE__COUNT ? roles[r].desc : "?";
}

enum cr_color_role cr_role_parse(const char *name)
{
	for (int r = 0; r < CR_ROLE__COUNT; r++)
		if (strcmp(roles[r].name, name) == 0)
			return (enum cr_color_role)r;
	return CR_ROLE_NONE;
}

int cr_color_parse(const char *s)
{
	if (strcmp(s, "default") == 0)
		return -1;
	if (isdigit((unsigned char)s[0])) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		return *end || errno || v > 255 ? -2 : (int)v;
	}
	int bright = strncmp(s, "bright-", 7) == 0;
	const char *base = bright ? s + 7 : s;
	for (int i = 0; i < 8; i++)
		if (strcmp(base, color_names[i]) == 0)
			return i + (bright ? 8 : 0);
	return -2;
}

int cr_attr_parse(const char *s)
{
	if (strcmp(s, "normal") == 0)
		return 0;
	for (size_t i = 0; i < sizeof attr_names / sizeof attr_names[0]; i++)
		if (strcmp(s, attr_names[i].name) == 0)
			return (int)attr_names[i].bit;
	return -1;
}

void cr_theme_init(struct cr_theme *t)
{
	memset(t, 0, sizeof *t);
	for (int r = 0; r < CR_ROLE__COUNT; r++)
		t->role[r] = roles[r].def;
}

void cr_theme_free(struct cr_theme *t)
{
	for (size_t i = 0; i < t->nwarnings; i++)
		free(t->warnings[i]);
	free(t->warnings);
	t->warnings = NULL;
	t->nwarnings = 0;
}

/* a warning about one line of the theme file, kept for the caller to show */
#define warn(t, file, line, ...) cr_add_line_warning(&(t)->warnings, &(t)->nwarnings, file, line, __VA_ARGS__)

/* One line, already stripped of its comment; words split in place. */
static void parse_line(void *ctx, char *line, const char *file, int lineno)
{
	struct cr_theme *t = ctx;
	char *word[16];
	int n = 0;
	char *save = NULL;
	for (char *p = strtok_r(line, " \t\r", &save); p; p = strtok_r(NULL, " \t\r", &save)) {
		if (n == 16) {
			warn(t, file, lineno, "too many words");
			return;
		}
		word[n++] = p;
	}
	if (n == 0)
		return;
	if (strcmp(word[0], "color") != 0) {
		warn(t, file, lineno, "unknown command '%s' (expected 'color ROLE FG BG [ATTR...]')", word[0]);
		return;
	}
	if (n < 4) {
		warn(t, file, lineno, "'color' needs ROLE FG BG [ATTR...]");
		return;
	}
	enum cr_color_role r = cr_role_parse(word[1]);
	if (r == CR_ROLE_NONE) {
		warn(t, file, lineno, "unknown colour role '%s'", word[1]);
		return;
	}
	int fg = cr_color_parse(word[2]), bg = cr_color_parse(word[3]);
	if (fg == -2 || bg == -2) {
		warn(t, file, lineno, "unknown colour '%s' (use default, a name such as red or bright-red, or 0-255)",
		     fg == -2 ? word[2] : word[3]);
		return;
	}
	unsigned attrs = 0;
	for (int i = 4; i < n; i++) {
		int a = cr_attr_parse(word[i]);
		if (a < 0) {
			warn(t, file, lineno, "unknown attribute '%s'", word[i]);
			return;
		}
		attrs |= (unsigned)a;
	}
	t->role[r] = (struct cr_theme_entry){ (short)fg, (short)bg, attrs };
}

void cr_theme_parse(struct cr_theme *t, const char *text, const char *file)
{
	cr_each_line(text, file, parse_line, t);
}

int cr_theme_load(struct cr_theme *t, const char *path, cr_error *err)
{
	cr_error e;
	char *buf = cr_read_text_file(path, 1u << 20, &e);
	if (!buf)
		return cr_fail(err, e.code, "theme %s", e.msg);
	cr_theme_parse(t, buf, path);
	free(buf);
	return 0;
}

static int is_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int cr_theme_find(const char *name_or_path, const char *const *dirs, char *out, size_t len, cr_error *err)
{
	if (strchr(name_or_path, '/') || is_file(name_or_path)) {
		if (!is_file(name_or_path))
			return cr_fail(err, CR_E_NOTFOUND, "%s: no such theme file", name_or_path);
		snprintf(out, len, "%s", name_or_path);
		return 0;
	}
	char looked[768] = "";
	size_t pos = 0;
	for (size_t i = 0; dirs && dirs[i]; i++) {
		snprintf(out, len, "%s/%s", dirs[i], name_or_path);
		if (is_file(out))
			return 0;
		if (pos < sizeof looked)
			pos += (size_t)snprintf(looked + pos, sizeof looked - pos, "%s%s", pos ? ", " : "", dirs[i]);
	}
	return cr_fail(err, CR_E_NOTFOUND, "theme '%s' not found (looked in %s)", name_or_path,
		       pos ? looked : "no folders");
}
