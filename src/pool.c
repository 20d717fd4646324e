/*
 * Worker pool (see pool.h).  One job at a time: the caller publishes it with
 * a new generation number, every thread takes indices from a shared counter,
 * and the caller waits until all workers have left the job.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "crucible/error.h"
#include "pool.h"

struct cr_pool {
	pthread_mutex_t mu;
	pthread_cond_t start, done;
	pthread_t *th;
	int n, nstarted;
	unsigned long gen;
	int busy; /* workers still inside the current job */
	int stop;
	/* the current job */
	void (*fn)(void *, size_t, int);
	void *ctx;
	size_t count;
	size_t next; /* atomic */
};

struct worker_arg {
	struct cr_pool *p;
	int tid;
};

static __thread int pool_tid = -1;

int cr_pool_tid(void)
{
	return pool_tid;
}

static void run_job(struct cr_pool *p, int tid)
{
	for (;;) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		if (i >= p->count)
			break;
		p->fn(p->ctx, i, tid);
	}
}

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct cr_pool *p = wa->p;
	pool_tid = wa->tid;
	free(wa);
	unsigned long seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->stop)
			pthread_cond_wait(&p->start, &p->mu);
		if (p->stop)
			break;
		seen = p->gen;
		pthread_mutex_unlock(&p->mu);
		run_job(p, pool_tid);
		pthread_mutex_lock(&p->mu);
		if (--p->busy == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct cr_pool *cr_pool_new(int nthreads)
{
	struct cr_pool *p = cr_xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->start, NULL);
	pthread_cond_init(&p->done, NULL);
	p->n = nthreads > 0 ? nthreads : 1;
	p->th = cr_xcalloc((size_t)p->n, sizeof *p->th);
	p->nstarted = 1; /* the caller is thread 0 */
	for (int t = 1; t < p->n; t++) {
		struct worker_arg *wa = cr_xmalloc(sizeof *wa);
		wa->p = p;
		wa->tid = t;
		if (pthread_create(&p->th[t], NULL, worker, wa) != 0) {
			free(wa); /* fewer threads: slower, not wrong */
			break;
		}
		p->nstarted++;
	}
	return p;
}

int cr_pool_threads(const struct cr_pool *p)
{
	return p->nstarted;
}

void cr_pool_for(struct cr_pool *p, size_t count, void (*fn)(void *ctx, size_t i, int tid), void *ctx)
{
	int outer = pool_tid;
	pool_tid = 0;
	if (count <= 1 || p->nstarted == 1) {
		for (size_t i = 0; i < count; i++)
			fn(ctx, i, 0);
		pool_tid = outer;
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->count = count;
	p->next = 0;
	p->busy = p->nstarted - 1;
	p->gen++;
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	run_job(p, 0);
	pthread_mutex_lock(&p->mu);
	while (p->busy > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	pool_tid = outer;
}

void cr_pool_free(struct cr_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	for (int t = 1; t < p->nstarted; t++)
		pthread_join(p->th[t], NULL);
	free(p->th);
	pthread_cond_destroy(&p->start);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
