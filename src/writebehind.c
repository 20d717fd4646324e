/*
 * Write-behind for the merge engine (see writebehind.h).
 *
 * The kernel serializes writes to one file (the inode lock), so compute
 * threads that write their own chunks wait on each other, and a tensor's
 * last writes hold every thread at the end of the tensor.  Here one thread
 * does all the writes, in the order they were queued, from a fixed pool of
 * buffers: the compute threads go on reading and computing while it writes.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/safetensors.h"
#include "writebehind.h"

struct job {
	struct cr_st_writer *w;
	size_t i;
	uint64_t off;
	uint8_t *buf;
	size_t len;
	int owned; /* buf is a malloc'd copy, not a pool buffer */
};

struct cr_wb {
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* a job was queued, a buffer came back, or the queue drained */
	pthread_t thread;
	size_t nbuf, bufsize;
	uint8_t **free_bufs; /* stack of free pool buffers */
	size_t nfree;
	struct job *q; /* ring of queued jobs, capacity nbuf + extra */
	size_t cap, head, count;
	int busy; /* the writer holds a job outside the lock */
	int stop, failed;
	int sync; /* no writer thread could be started: writes happen in put */
	cr_error err;
};

static void *writer_main(void *arg)
{
	struct cr_wb *wb = arg;
	pthread_mutex_lock(&wb->mu);
	for (;;) {
		while (wb->count == 0 && !wb->stop)
			pthread_cond_wait(&wb->cv, &wb->mu);
		if (wb->count == 0 && wb->stop)
			break;
		struct job j = wb->q[wb->head];
		wb->head = (wb->head + 1) % wb->cap;
		wb->count--;
		wb->busy = 1;
		int skip = wb->failed;
		pthread_mutex_unlock(&wb->mu);
		cr_error e1;
		int bad = !skip && cr_st_writer_write(j.w, j.i, j.off, j.buf, j.len, &e1) < 0;
		pthread_mutex_lock(&wb->mu);
		if (bad && !wb->failed) {
			wb->failed = 1;
			wb->err = e1;
		}
		if (j.owned)
			free(j.buf);
		else
			wb->free_bufs[wb->nfree++] = j.buf;
		wb->busy = 0;
		pthread_cond_broadcast(&wb->cv);
	}
	pthread_mutex_unlock(&wb->mu);
	return NULL;
}

struct cr_wb *cr_wb_new(size_t nbuf, size_t bufsize)
{
	struct cr_wb *wb = cr_xcalloc(1, sizeof *wb);
	pthread_mutex_init(&wb->mu, NULL);
	pthread_cond_init(&wb->cv, NULL);
	wb->nbuf = nbuf ? nbuf : 1;
	wb->bufsize = bufsize;
	wb->free_bufs = cr_xcalloc(wb->nbuf, sizeof *wb->free_bufs);
	for (size_t k = 0; k < wb->nbuf; k++)
		wb->free_bufs[wb->nfree++] = cr_xmalloc(bufsize ? bufsize : 1);
	wb->cap = 4 * wb->nbuf + 64; /* pool buffers plus small copies */
	wb->q = cr_xcalloc(wb->cap, sizeof *wb->q);
	if (pthread_create(&wb->thread, NULL, writer_main, wb) != 0)
		wb->sync = 1; /* slower, not wrong */
	return wb;
}

size_t cr_wb_bufsize(const struct cr_wb *wb)
{
	return wb->bufsize;
}

uint8_t *cr_wb_get(struct cr_wb *wb)
{
	pthread_mutex_lock(&wb->mu);
	while (wb->nfree == 0)
		pthread_cond_wait(&wb->cv, &wb->mu);
	uint8_t *b = wb->free_bufs[--wb->nfree];
	pthread_mutex_unlock(&wb->mu);
	return b;
}

void cr_wb_release(struct cr_wb *wb, uint8_t *buf)
{
	pthread_mutex_lock(&wb->mu);
	wb->free_bufs[wb->nfree++] = buf;
	pthread_cond_broadcast(&wb->cv);
	pthread_mutex_unlock(&wb->mu);
}

/* Without a writer thread: write now, then hand the buffer back. */
static int write_now(struct cr_wb *wb, const struct job *j)
{
	cr_error e1;
	int bad = cr_st_writer_write(j->w, j->i, j->off, j->buf, j->len, &e1) < 0;
	pthread_mutex_lock(&wb->mu);
	if (bad && !wb->failed) {
		wb->failed = 1;
		wb->err = e1;
	}
	int failed = wb->failed;
	if (!j->owned)
		wb->free_bufs[wb->nfree++] = j->buf;
	pthread_cond_broadcast(&wb->cv);
	pthread_mutex_unlock(&wb->mu);
	if (j->owned)
		free(j->buf);
	return failed ? -1 : 0;
}

static int enqueue(struct cr_wb *wb, const struct job *j)
{
	if (wb->sync)
		return write_now(wb, j);
	pthread_mutex_lock(&wb->mu);
	while (wb->count == wb->cap)
		pthread_cond_wait(&wb->cv, &wb->mu);
	int failed = wb->failed;
	wb->q[(wb->head + wb->count) % wb->cap] = *j;
	wb->count++;
	pthread_cond_broadcast(&wb->cv);
	pthread_mutex_unlock(&wb->mu);
	return failed ? -1 : 0;
}

int cr_wb_put(struct cr_wb *wb, struct cr_st_writer *w, size_t i, uint64_t off, uint8_t *buf, size_t len)
{
	struct job j = { w, i, off, buf, len, 0 };
	return enqueue(wb, &j);
}

int cr_wb_put_copy(struct cr_wb *wb, struct cr_st_writer *w, size_t i, uint64_t off, const void *src, size_t len)
{
	uint8_t *c = cr_xmalloc(len ? len : 1);
	memcpy(c, src, len);
	struct job j = { w, i, off, c, len, 1 };
	return enqueue(wb, &j);
}

int cr_wb_flush(struct cr_wb *wb, cr_error *err)
{
	pthread_mutex_lock(&wb->mu);
	while (wb->count > 0 || wb->busy)
		pthread_cond_wait(&wb->cv, &wb->mu);
	int failed = wb->failed;
	if (failed && err)
		*err = wb->err;
	wb->failed = 0;
	pthread_mutex_unlock(&wb->mu);
	return failed ? -1 : 0;
}

int cr_wb_failed(struct cr_wb *wb, cr_error *err)
{
	pthread_mutex_lock(&wb->mu);
	int failed = wb->failed;
	if (failed && err)
		*err = wb->err;
	pthread_mutex_unlock(&wb->mu);
	return failed;
}

void cr_wb_free(struct cr_wb *wb)
{
	if (!wb)
		return;
	pthread_mutex_lock(&wb->mu);
	wb->stop = 1;
	pthread_cond_broadcast(&wb->cv);
	pthread_mutex_unlock(&wb->mu);
	if (!wb->sync)
		pthread_join(wb->thread, NULL);
	for (size_t k = 0; k < wb->nfree; k++)
		free(wb->free_bufs[k]);
	free(wb->free_bufs);
	free(wb->q);
	pthread_cond_destroy(&wb->cv);
	pthread_mutex_destroy(&wb->mu);
	free(wb);
}
