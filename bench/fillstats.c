/*
 * bench/fillstats: fill a session database's statistics cache for a base and
 * its parents without reading any tensor data, for bench/tune.sh.
 *
 *   bench/fillstats DB BASE PARENT...
 *
 * The DeepSeek-V3 skeleton (../shared/tools/mkskeleton.py) is 689 GB of
 * holes: scanning it would read nothing useful for minutes.  The workbench
 * only needs what a scan would have cached, so this writes, for every base
 * tensor and every parent, a plausible record through the store's public
 * API (cr_store_stats_put, cr_store_agree_put), keyed exactly as the scan
 * keys it: the real path, size, mtime and header hash of the shard holding
 * the weights and, for block FP8, of the shard holding the scales.  The
 * workbench's scan then finds every tensor cached and reads no data.
 *
 * Values are made up but shaped like a fine-tune (deterministic, fixed seed):
 * rel = ||P - B|| / ||B|| drawn log-normally around a class mean (routed
 * experts 0.18, shared experts and router 0.05, attention 0.03, the rest
 * 0.01), about 1 tensor in 20 identical to the base, a Gaussian histogram of
 * the delta, sign agreement between 60% and 95%.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/checkpoint.h"
#include "crucible/stats.h"
#include "crucible/store.h"

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Uniform in (0, 1) from a key. */
static double uniform(uint64_t key)
{
	return ((double)(mix(key) >> 11) + 0.5) / 9007199254740992.0;
}

/* N(0, 1) (Box-Muller) from a key. */
static double gauss(uint64_t key)
{
	return sqrt(-2.0 * log(uniform(key))) * cos(6.283185307179586 * uniform(key ^ 0xabcdefull));
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static double class_rel(enum cr_class c)
{
	switch (c) {
	case CR_CLASS_ROUTED_EXPERT:
		return 0.18;
	case CR_CLASS_SHARED_EXPERT:
	case CR_CLASS_ROUTER:
		return 0.05;
	case CR_CLASS_ATTN:
		return 0.03;
	default:
		return 0.01;
	}
}

/* The identity of one file as the scan keys it (absolute, resolved path). */
struct ident {
	struct cr_file_identity w, s;
	struct cr_store_src src;
	char *wpath, *spath;
};

static void ident_of(const struct cr_ckpt *c, const struct cr_tensor *t, struct ident *id)
{
	const struct cr_st_file *wf = c->shards[t->shard];
	id->wpath = realpath(wf->path, NULL);
	id->w = (struct cr_file_identity){ id->wpath ? id->wpath : wf->path, wf->file_size, wf->mtime_ns,
					   wf->header_hash };
	id->src.weights = &id->w;
	id->src.scales = NULL;
	id->spath = NULL;
	if (t->scale) {
		const struct cr_st_file *sf = c->shards[t->scale_shard];
		id->spath = realpath(sf->path, NULL);
		id->s = (struct cr_file_identity){ id->spath ? id->spath : sf->path, sf->file_size, sf->mtime_ns,
						   sf->header_hash };
		id->src.scales = &id->s;
	}
}

static void ident_free(struct ident *id)
{
	free(id->wpath);
	free(id->spath);
}

/* Sums of an N-element tensor whose parent differs by relative size rel. */
static void make_sums(const struct cr_tensor *t, double rel, int identical, struct cr_store_sums *v)
{
	double n = (double)t->nelem;
	int norm = t->ndim == 1;
	double sb = norm ? 0.05 : 0.02, mb = norm ? 1.0 : 0.0;
	memset(v, 0, sizeof *v);
	v->identical = identical;
	v->nelem = v->n = t->nelem;
	v->base_sq = v->sum_bb = n * (mb * mb + sb * sb);
	v->sum_pb = v->base_sq;
	v->nbins = CR_STATS_HIST_BINS;
	if (identical) {
		v->sum_pp = v->base_sq;
		v->hist[CR_STATS_HIST_SIDE] = t->nelem; /* every delta is 0 */
		return;
	}
	v->sum_dd = rel * rel * v->base_sq;
	v->sum_pp = v->base_sq + v->sum_dd;
	double sd = sqrt(v->sum_dd / n);
	v->sum_absd = n * sd * sqrt(2.0 / 3.141592653589793);
	/* the largest of n Gaussian deltas */
	v->max_absd = sd * (n > 1 ? sqrt(2.0 * log(n)) : 1.0);
	v->hist_width = v->max_absd * 1.02 / CR_STATS_HIST_SIDE;
	/* Counts of a Gaussian in each bin (see stats.h for the edges); the rest to the middle ones. */
	uint64_t total = 0;
	for (int i = 0; i < CR_STATS_HIST_SIDE; i++) {
		double lo = (double)i * v->hist_width / sd, hi = (double)(i + 1) * v->hist_width / sd;
		double p = 0.5 * (erf(hi / sqrt(2.0)) - erf(lo / sqrt(2.0)));
		uint64_t c = (uint64_t)(p * n / 1.0000001);
		v->hist[CR_STATS_HIST_SIDE + 1 + i] = c;
		v->hist[CR_STATS_HIST_SIDE - 1 - i] = c;
		total += 2 * c;
	}
	if (total < t->nelem) {
		uint64_t rest = t->nelem - total;
		v->hist[CR_STATS_HIST_SIDE + 1] += rest / 2;
		v->hist[CR_STATS_HIST_SIDE - 1] += rest - rest / 2;
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: bench/fillstats DB BASE PARENT...\n"
				"Fills DB's statistics cache for BASE and every PARENT with made-up values\n"
				"(no tensor data is read).\n");
		return 2;
	}
	cr_error err = { 0 };
	size_t np = (size_t)argc - 3;
	struct cr_ckpt *base, **par = calloc(np, sizeof *par);
	struct cr_store *st;
	if (!par)
		return 1;
	if (cr_ckpt_open(argv[2], &base, &err) < 0) {
		fprintf(stderr, "fillstats: %s\n", err.msg);
		return 1;
	}
	for (size_t p = 0; p < np; p++)
		if (cr_ckpt_open(argv[3 + p], &par[p], &err) < 0) {
			fprintf(stderr, "fillstats: %s\n", err.msg);
			return 1;
		}
	if (cr_store_open(argv[1], &st, &err) < 0 || cr_store_begin(st, &err) < 0) {
		fprintf(stderr, "fillstats: %s\n", err.msg);
		return 1;
	}
	struct ident *pid = calloc(np, sizeof *pid);
	struct cr_store_src *psrc = calloc(np, sizeof *psrc);
	size_t rows = 0, same = 0, agree_rows = 0;
	for (size_t i = 0; i < base->ntensors; i++) {
		const struct cr_tensor *bt = &base->tensors[i];
		uint64_t h = name_hash(bt->name);
		struct ident bid;
		size_t ncmp = 0;
		ident_of(base, bt, &bid);
		for (size_t p = 0; p < np; p++) {
			const struct cr_tensor *pt = cr_ckpt_find(par[p], bt->name);
			if (!pt || pt->nelem != bt->nelem)
				continue;
			ident_of(par[p], pt, &pid[ncmp]);
			/* a parent that is the base's own file is identical, as a scan would find */
			int identical = strcmp(pid[ncmp].w.path, bid.w.path) == 0 ||
					uniform(h ^ (p + 1) * 0x1234567ull) < 0.05;
			double rel = class_rel(bt->cls) * exp(0.4 * gauss(h ^ (p + 1) * 0x7654321ull));
			struct cr_store_sums v;
			make_sums(bt, rel, identical, &v);
			if (cr_store_stats_put(st, bt->name, CR_STATS_VERSION, &bid.src, &pid[ncmp].src, &v, &err) < 0) {
				fprintf(stderr, "fillstats: %s\n", err.msg);
				return 1;
			}
			same += (size_t)identical;
			psrc[ncmp] = pid[ncmp].src;
			ncmp++;
			rows++;
		}
		/* Sign agreement over every parent compared, keyed by all of them in order. */
		if (ncmp >= 2) {
			uint64_t agree = (uint64_t)((0.6 + 0.35 * uniform(h ^ 0x5151ull)) * (double)bt->nelem);
			if (cr_store_agree_put(st, bt->name, CR_STATS_VERSION, &bid.src, psrc, ncmp, agree, bt->nelem,
					       &err) < 0) {
				fprintf(stderr, "fillstats: %s\n", err.msg);
				return 1;
			}
			agree_rows++;
		}
		for (size_t k = 0; k < ncmp; k++)
			ident_free(&pid[k]);
		ident_free(&bid);
	}
	if (cr_store_commit(st, &err) < 0) {
		fprintf(stderr, "fillstats: %s\n", err.msg);
		return 1;
	}
	printf("fillstats: %zu tensors, %zu pair records (%zu identical), %zu agreement records\n", base->ntensors,
	       rows, same, agree_rows);
	cr_store_close(st);
	for (size_t p = 0; p < np; p++)
		cr_ckpt_close(par[p]);
	cr_ckpt_close(base);
	free(par);
	free(pid);
	free(psrc);
	return 0;
}
