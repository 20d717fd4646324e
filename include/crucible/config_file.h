/*
 * The user's configuration file, $XDG_CONFIG_HOME/crucible/config
 * (~/.config/crucible/config when XDG_CONFIG_HOME is unset).
 *
 * One setting per line, `KEY = VALUE` (the `=` is optional), `#` comments:
 *     theme = solarized-dark      # NAME or PATH, as --theme
 *     database = ~/merges.db      # session database, as --db
 *     lambda-step = 0.05          # ←/→ step for λ
 *     delta-step = 0.01           # ←/→ step for δ
 *     ascii = yes                 # ASCII glyphs even on a UTF-8 terminal
 * Unknown keys and bad values are warnings naming the file and line; the
 * rest of the file still applies.  No curses, no printing.
 */
#ifndef CRUCIBLE_CONFIG_FILE_H
#define CRUCIBLE_CONFIG_FILE_H

#include <stddef.h>

#include "crucible/error.h"

struct cr_config {
	char *theme;	/* NULL: built-in default */
	char *database; /* NULL: $XDG_DATA_HOME/crucible/sessions.db */
	double lambda_step, delta_step;
	int ascii;
	char *path; /* the file read, or NULL */
	char **warnings;
	size_t nwarnings;
};

void cr_config_init(struct cr_config *c);
void cr_config_free(struct cr_config *c);
/* Apply config text; bad lines become warnings naming `file` and the line. */
void cr_config_parse(struct cr_config *c, const char *text, const char *file);
/* Read `path` if it exists (a missing file is not an error). */
int cr_config_load(struct cr_config *c, const char *path, cr_error *err);
/* $XDG_CONFIG_HOME/crucible/config or $HOME/.config/crucible/config into out; -1 if neither is set. */
int cr_config_default_path(char *out, size_t len);
/* Expand a leading "~/" with $HOME; returns a new string. */
char *cr_expand_home(const char *path);

#endif
