/* The command-line progress bar (see progress.h). */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "crucible/format.h"
#include "progress.h"

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

void cli_bar_start(struct cli_bar *b)
{
	b->tty = isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &b->t0);
	b->last = b->t0;
}

double cli_bar_elapsed(const struct cli_bar *b)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return since(&b->t0, &now);
}

void cli_bar_draw(struct cli_bar *b, uint64_t done, uint64_t total, size_t tensors_done, size_t ntensors,
		  const char *name)
{
	if (!b->tty)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (since(&b->last, &now) < 0.1 && done < total)
		return;
	b->last = now;
	double el = since(&b->t0, &now), frac = total ? (double)done / (double)total : 1.0;
	double rate = el > 0 ? (double)done / el : 0;
	char d[32], t[32], r[32], bar[32];
	cr_fmt_bytes(done, d, sizeof d);
	cr_fmt_bytes(total, t, sizeof t);
	cr_fmt_bytes((uint64_t)rate, r, sizeof r);
	int w = 24, fill = (int)(frac * w);
	for (int i = 0; i < w; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[w] = 0;
	double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
	fprintf(stderr, "\r[%s] %5.1f%% %s/%s %s/s ETA %3.0fs %zu/%zu %-30.30s\033[K", bar, frac * 100, d, t, r, eta,
		tensors_done, ntensors, name ? name : "");
	fflush(stderr);
}

void cli_bar_clear(const struct cli_bar *b)
{
	if (b->tty)
		fputs("\r\033[K", stderr);
}
