/*
 * The worker thread: runs one job at a time (a statistics scan or a merge)
 * off the UI thread.  The job publishes progress through a locked struct
 * and wakes the UI through a pipe; the UI's loop polls the pipe and calls
 * worker_drain(), which runs the job's UI-side callbacks on the UI thread.
 * The job never calls curses.
 */
#ifndef CRUCIBLE_TUI_WORKER_H
#define CRUCIBLE_TUI_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct worker;

enum work_kind { WORK_NONE, WORK_SCAN, WORK_MERGE };

struct work_progress {
	uint64_t bytes_done, bytes_total;
	size_t items_done, items_total;
	char current[256];
};

struct work_job {
	enum work_kind kind;
	void *ctx;
	/* On the worker thread; returns 0 or -1 with a message in err (1024 bytes). */
	int (*run)(struct worker *w, void *ctx, char *err);
	/* On the UI thread after each wake-up (may be NULL); returns V_* flags. */
	int (*drain)(struct app *a, void *ctx);
	/* On the UI thread once the job has ended; rc and message from run.  Returns V_* flags. */
	int (*done)(struct app *a, void *ctx, int rc, const char *err, int cancelled);
};

struct worker *worker_new(void);
void worker_free(struct worker *w); /* cancels and joins a running job */
int worker_wake_fd(const struct worker *w);
/* -1 when a job is already running. */
int worker_start(struct worker *w, const struct work_job *job);
enum work_kind worker_busy(const struct worker *w);
void worker_cancel(struct worker *w);
/* Called by the job (worker thread). */
int worker_cancelled(struct worker *w);
void worker_progress(struct worker *w, const struct work_progress *p);
void worker_lock(struct worker *w);
void worker_unlock(struct worker *w);
void worker_wake(struct worker *w);
/* UI thread: handle a wake-up. */
int worker_drain(struct worker *w, struct app *a);
/* UI thread: a copy of the latest progress and the seconds since the start. */
void worker_get_progress(struct worker *w, struct work_progress *p, double *elapsed);
/* "scan 42% 1.3 GiB/s ETA 0:12" for the status line, or "". */
void worker_status_line(struct worker *w, char *buf, size_t len);

#endif
