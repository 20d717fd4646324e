/* The two glyph sets: UTF-8 (block elements, arrows) and plain ASCII. */
#include "config.h"

#include "tui.h"

static const struct glyphs utf8_glyphs = {
	.fold_open = "▾",
	.fold_closed = "▸",
	.leaf = " ",
	.bar_eighths = { "", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█" },
	.shade = { " ", "░", "▒", "▓", "█" },
	.hbar = "─",
	.vbar = "│",
	.ellipsis = "…",
	.arrow_left = "◂",
	.arrow_right = "▸",
	.lambda = "λ",
	.delta = "δ",
	.sort_up = "▴",
	.sort_down = "▾",
	.utf8 = 1,
};

static const struct glyphs ascii_glyphs = {
	.fold_open = "-",
	.fold_closed = "+",
	.leaf = " ",
	/* ASCII has no partial cells: a cell is filled once at least half of it is. */
	.bar_eighths = { "", "", "", "", "#", "#", "#", "#", "#" },
	.shade = { " ", ".", ":", "*", "#" },
	.hbar = "-",
	.vbar = "|",
	.ellipsis = "~",
	.arrow_left = "<",
	.arrow_right = ">",
	.lambda = "lambda",
	.delta = "delta",
	.sort_up = "^",
	.sort_down = "v",
	.utf8 = 0,
};

const struct glyphs *G = &ascii_glyphs;

void glyphs_choose(int ascii)
{
	G = ascii ? &ascii_glyphs : &utf8_glyphs;
}
