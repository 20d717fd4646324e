/*
 * The worker thread (see worker.h).
 *
 * Invariants: `busy` is set by the UI thread when a job starts and cleared
 * by the UI thread in worker_drain() after joining the thread, so the UI
 * always sees a finished job's results before it can start the next one.
 * Progress wake-ups are throttled (one per 40 ms) so a fast job cannot
 * flood the UI; the end of a job always wakes it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crucible/error.h"
#include "crucible/format.h"
#include "tui.h"
#include "worker.h"

struct worker {
	pthread_t thread;
	pthread_mutex_t lock;
	int pipe[2];
	enum work_kind busy; /* UI thread only */
	struct work_job job;
	atomic_int cancel, finished;
	int rc;
	char err[1024];
	struct work_progress prog;
	double started, last_wake;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct worker *worker_new(void)
{
	struct worker *w = cr_xcalloc(1, sizeof *w);
	pthread_mutex_init(&w->lock, NULL);
	if (pipe(w->pipe) < 0) {
		w->pipe[0] = w->pipe[1] = -1;
	} else {
		for (int i = 0; i < 2; i++) {
			fcntl(w->pipe[i], F_SETFL, fcntl(w->pipe[i], F_GETFL) | O_NONBLOCK);
			fcntl(w->pipe[i], F_SETFD, FD_CLOEXEC);
		}
	}
	return w;
}

int worker_wake_fd(const struct worker *w)
{
	return w ? w->pipe[0] : -1;
}

void worker_wake(struct worker *w)
{
	char c = 1;
	/* A full pipe already holds a pending wake-up. */
	if (write(w->pipe[1], &c, 1) < 0 && errno != EAGAIN)
		return;
}

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	char err[1024] = "";
	int rc = w->job.run(w, w->job.ctx, err);
	pthread_mutex_lock(&w->lock);
	w->rc = rc;
	memcpy(w->err, err, sizeof err);
	pthread_mutex_unlock(&w->lock);
	atomic_store(&w->finished, 1);
	worker_wake(w);
	return NULL;
}

int worker_start(struct worker *w, const struct work_job *job)
{
	if (w->busy)
		return -1;
	w->job = *job;
	atomic_store(&w->cancel, 0);
	atomic_store(&w->finished, 0);
	memset(&w->prog, 0, sizeof w->prog);
	w->err[0] = '\0';
	w->started = now();
	w->last_wake = 0;
	if (pthread_create(&w->thread, NULL, thread_main, w) != 0)
		return -1;
	w->busy = job->kind;
	return 0;
}

enum work_kind worker_busy(const struct worker *w)
{
	return w ? w->busy : WORK_NONE;
}

void worker_cancel(struct worker *w)
{
	if (w)
		atomic_store(&w->cancel, 1);
}

int worker_cancelled(struct worker *w)
{
	return atomic_load(&w->cancel);
}

void worker_lock(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
}

void worker_unlock(struct worker *w)
{
	pthread_mutex_unlock(&w->lock);
}

void worker_progress(struct worker *w, const struct work_progress *p)
{
	pthread_mutex_lock(&w->lock);
	w->prog = *p;
	double t = now();
	int wake = t - w->last_wake >= 0.04;
	if (wake)
		w->last_wake = t;
	pthread_mutex_unlock(&w->lock);
	if (wake)
		worker_wake(w);
}

void worker_get_progress(struct worker *w, struct work_progress *p, double *elapsed)
{
	pthread_mutex_lock(&w->lock);
	*p = w->prog;
	pthread_mutex_unlock(&w->lock);
	if (elapsed)
		*elapsed = now() - w->started;
}

int worker_drain(struct worker *w, struct app *a)
{
	char buf[256];
	while (read(w->pipe[0], buf, sizeof buf) > 0)
		;
	if (!w->busy)
		return 0;
	int flags = V_REDRAW;
	if (w->job.drain)
		flags |= w->job.drain(a, w->job.ctx);
	if (atomic_load(&w->finished)) {
		pthread_join(w->thread, NULL);
		w->busy = WORK_NONE;
		if (w->job.done)
			flags |= w->job.done(a, w->job.ctx, w->rc, w->err, atomic_load(&w->cancel));
	}
	return flags;
}

void worker_status_line(struct worker *w, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!w->busy)
		return;
	struct work_progress p;
	double el;
	worker_get_progress(w, &p, &el);
	const char *what = w->busy == WORK_SCAN ? "scan" : "merge";
	if (!p.items_total && !p.bytes_total) {
		snprintf(buf, len, "%s: opening the models%s", what, G->ellipsis);
		return;
	}
	double frac = p.bytes_total ? (double)p.bytes_done / (double)p.bytes_total
		      : p.items_total ? (double)p.items_done / (double)p.items_total
				      : 0;
	char rate[32] = "";
	if (el > 0.2 && p.bytes_done) {
		cr_fmt_bytes((uint64_t)((double)p.bytes_done / el), rate, sizeof rate);
		strcat(rate, "/s");
	}
	snprintf(buf, len, "%s %3.0f%% %zu/%zu %s", what, 100 * frac, p.items_done, p.items_total, rate);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->busy) {
		atomic_store(&w->cancel, 1);
		pthread_join(w->thread, NULL);
		if (w->job.done)
			w->job.done(NULL, w->job.ctx, w->rc, w->err, 1);
	}
	if (w->pipe[0] >= 0) {
		close(w->pipe[0]);
		close(w->pipe[1]);
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}
