/*
 * A small pool of worker threads for the merge engine's chunk loops.
 *
 *   struct cr_pool *p = cr_pool_new(n);      n threads in all: the caller and n-1 workers
 *   cr_pool_for(p, count, fn, ctx);          fn(ctx, i, tid) for every i < count, spread
 *                                            over the threads (tid 0 is the caller), and
 *                                            back when all are done
 *   cr_pool_free(p);
 *
 * Why not an OpenMP loop: libgomp's threads spin at every barrier, and the
 * engine ends a loop per tensor while its writer thread needs a core;
 * idle workers here sleep on a condition variable.  cr_pool_tid() is the
 * calling thread's tid inside fn, -1 elsewhere.
 */
#ifndef CRUCIBLE_POOL_H
#define CRUCIBLE_POOL_H

#include <stddef.h>

struct cr_pool;

struct cr_pool *cr_pool_new(int nthreads);
void cr_pool_free(struct cr_pool *p);
int cr_pool_threads(const struct cr_pool *p);
void cr_pool_for(struct cr_pool *p, size_t count, void (*fn)(void *ctx, size_t i, int tid), void *ctx);
int cr_pool_tid(void);

#endif
