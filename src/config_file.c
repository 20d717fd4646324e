/*
 * The configuration file reader (see crucible/config_file.h).
 *
 * Owns the defaults for the workbench's settings.  Called once by the TUI
 * at start-up, before command-line options (which win) are applied.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/config_file.h"
#include "crucible/textfile.h"

void cr_config_init(struct cr_config *c)
{
	memset(c, 0, sizeof *c);
	c->lambda_step = 0.05;
	c->delta_step = 0.01;
}

void cr_config_free(struct cr_config *c)
{
	free(c->theme);
	free(c->database);
	free(c->path);
	for (size_t i = 0; i < c->nwarnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	memset(c, 0, sizeof *c);
}

/* a warning about one line of the file, kept for the caller to show */
#define warn(c, file, line, ...) cr_add_line_warning(&(c)->warnings, &(c)->nwarnings, file, line, __VA_ARGS__)

char *cr_expand_home(const char *path)
{
	const char *home = getenv("HOME");
	if (path[0] == '~' && path[1] == '/' && home) {
		size_t n = strlen(home) + strlen(path);
		char *p = cr_xmalloc(n);
		snprintf(p, n, "%s%s", home, path + 1);
		return p;
	}
	return cr_xstrdup(path);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_step(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (*end || errno || !isfinite(d) || d <= 0 || d > 1)
		return -1;
	*out = d;
	return 0;
}

static void parse_line(void *ctx, char *line, const char *file, int lineno)
{
	struct cr_config *c = ctx;
	char *s = trim(line);
	if (!*s)
		return;
	char *key = s;
	while (*s && !isspace((unsigned char)*s) && *s != '=')
		s++;
	char *val = s;
	if (*val) {
		*val++ = '\0';
		val = trim(val);
		if (*val == '=')
			val = trim(val + 1);
	}
	if (!*val) {
		warn(c, file, lineno, "'%s' needs a value", key);
		return;
	}
	if (strcmp(key, "theme") == 0) {
		free(c->theme);
		c->theme = cr_xstrdup(val);
	} else if (strcmp(key, "database") == 0) {
		free(c->database);
		c->database = cr_expand_home(val);
	} else if (strcmp(key, "lambda-step") == 0 || strcmp(key, "delta-step") == 0) {
		double *dst = key[0] == 'l' ? &c->lambda_step : &c->delta_step;
		if (parse_step(val, dst) < 0)
			warn(c, file, lineno, "%s: '%s' is not a number in (0, 1]", key, val);
	} else if (strcmp(key, "ascii") == 0) {
		if (strcmp(val, "yes") == 0 || strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
			c->ascii = 1;
		else if (strcmp(val, "no") == 0 || strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
			c->ascii = 0;
		else
			warn(c, file, lineno, "ascii: '%s' is not yes or no", val);
	} else {
		warn(c, file, lineno, "unknown setting '%s' (known: theme, database, lambda-step, delta-step, ascii)",
		     key);
	}
}

void cr_config_parse(struct cr_config *c, const char *text, const char *file)
{
	cr_each_line(text, file, parse_line, c);
}

int cr_config_load(struct cr_config *c, const char *path, cr_error *err)
{
	cr_error e;
	char *buf = cr_read_text_file(path, 65536, &e);
	if (!buf) {
		if (e.code == CR_E_NOTFOUND)
			return 0; /* no config file: the defaults */
		if (err)
			*err = e;
		return -1;
	}
	free(c->path);
	c->path = cr_xstrdup(path);
	cr_config_parse(c, buf, path);
	free(buf);
	return 0;
}

int cr_config_default_path(char *out, size_t len)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	if (x && *x)
		snprintf(out, len, "%s/crucible/config", x);
	else if (home && *home)
		snprintf(out, len, "%s/.config/crucible/config", home);
	else
		return -1;
	return 0;
}
