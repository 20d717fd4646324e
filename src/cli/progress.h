/* The progress bar of long commands (diff, merge): on stderr, only on a TTY. */
#ifndef CRUCIBLE_CLI_PROGRESS_H
#define CRUCIBLE_CLI_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cli_bar {
	int tty;
	struct timespec t0, last;
};

void cli_bar_start(struct cli_bar *b);
/* Redraws at most ten times a second (and at the end): bar, percent,
 * bytes, bytes/s, ETA, tensors and the current tensor's name. */
void cli_bar_draw(struct cli_bar *b, uint64_t done, uint64_t total, size_t tensors_done, size_t ntensors,
		  const char *name);
void cli_bar_clear(const struct cli_bar *b);
double cli_bar_elapsed(const struct cli_bar *b);

#endif
