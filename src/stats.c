/*
 * The statistics scan (see crucible/stats.h).
 *
 * Owns the plan (which pairs need reading, which come from the cache or are
 * skipped), the work list and the reduction.  The work list is cut into
 * batches of chunks (a chunk is chunk_elems elements of the base and of each
 * parent being read); a batch may span tensors and a tensor may span
 * batches.  OpenMP threads take the chunks of a batch; each chunk writes its
 * partial sums into its own slot, and the calling thread then adds the slots
 * in order.  So sums are reduced in chunk order whatever the threads did,
 * callbacks and cache calls stay on the calling thread, and memory is the
 * batch's slots plus one chunk buffer per thread and input.
 *
 * Invariants: a tensor's state (scale grids, accumulators) lives from the
 * batch that reads its first chunk to the one that reduces its last; a pair
 * is final (not PENDING) exactly when its tensor's callback has run or will
 * run in this scan.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "crucible/format.h"
#include "crucible/stats.h"
#include "stats_kernel.h"

#define DEFAULT_CHUNK (256u * 1024u)
#define MAX_CHUNK (64u * 1024u * 1024u)
/* A batch ends in a barrier; big batches keep threads from idling there
 * (which costs most on a busy machine) at the price of coarser progress
 * and cancellation (one batch, about half a second at page-cache speed). */
#define BATCH_ITEMS 256
#define BATCH_BYTES (512ull << 20)

const char *cr_stats_status_name(enum cr_stats_status st)
{
	static const char *const names[] = {
#define X(id, name, desc) name,
		CR_STATS_STATUSES(X)
#undef X
	};
	return (unsigned)st < CR_STATS__COUNT ? names[st] : "?";
}

static char *fmt_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_note(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return cr_xstrdup(buf);
}

void cr_stats_derive(struct cr_stats_pair *p)
{
	const struct cr_stats_sums *s = &p->s;
	p->norm_base = sqrt(s->base_sq);
	p->norm_delta = sqrt(s->sum_dd);
	if (p->norm_base > 0)
		p->rel = p->norm_delta / p->norm_base;
	else
		p->rel = p->norm_delta > 0 ? INFINITY : 0.0;
	if (s->sum_pp > 0 && s->sum_bb > 0) {
		p->cosine = s->sum_pb / (sqrt(s->sum_pp) * sqrt(s->sum_bb));
		p->cosine = p->cosine > 1 ? 1 : p->cosine < -1 ? -1 : p->cosine;
	} else {
		p->cosine = s->sum_pp == 0 && s->sum_bb == 0 ? 1.0 : 0.0;
	}
	if (s->identical) {
		p->rel = 0;
		p->cosine = 1;
	}
	p->max_abs = s->max_absd;
	p->mean_abs = s->n ? s->sum_absd / (double)s->n : 0.0;
}

void cr_stats_hist_edges(double w, double edges[CR_STATS_HIST_BINS + 1])
{
	const int side = CR_STATS_HIST_SIDE;
	for (int i = 0; i <= side; i++) {
		edges[i] = -(double)(side - i) * w; /* -R .. 0 */
		edges[side + 1 + i] = (double)i * w; /* 0 .. R */
	}
}

/* ---- planning ---- */

/* A tensor with pairs to read. */
struct plan {
	size_t ti;
	size_t nact;
	size_t *act; /* parent indices to read */
	int agree;   /* compute the sign agreement */
	uint64_t bytes;
};

/* A tensor being read: from its first chunk's batch to its last one's. */
struct open_tensor {
	const struct plan *pl;
	const struct cr_tensor *bt;
	const struct cr_tensor **pt; /* [nact] */
	float *bgrid, **pgrid;
	int *eq_ok; /* [nact]: same dtype and scale bytes, so equal chunk bytes mean equal values */
	uint64_t nchunks, reduced;
	struct sk_base_part base;
	struct sk_acc *acc; /* [nact] */
	uint64_t agree;
	char *fail; /* first read error */
};

struct scan {
	const struct cr_ckpt *base;
	const struct cr_ckpt *const *parents;
	size_t npar;
	const struct cr_stats_options *opt;
	struct cr_stats *s;
	size_t chunk;
	int nth;
	struct cr_stats_progress prog;
};

static struct cr_stats_src src_of(const struct cr_ckpt *c, const struct cr_tensor *t)
{
	return (struct cr_stats_src){ c->shards[t->shard], t->scale ? c->shards[t->scale_shard] : NULL };
}

static uint64_t stored_bytes(const struct cr_tensor *t)
{
	return t->nbytes + (t->scale ? cr_st_tensor_nbytes(t->scale) : 0);
}

static int tensor_done(const struct cr_stats *s, const struct cr_stats_tensor *st)
{
	for (size_t i = 0; i < s->nparents; i++)
		if (st->pairs[i].status == CR_STATS_PENDING)
			return 0;
	return 1;
}

static void finish_tensor(struct scan *sc, struct cr_stats_tensor *st)
{
	st->done = 1;
	st->sign_agree = st->agree_n ? (double)st->agree / (double)st->agree_n : NAN;
	sc->prog.tensors_done++;
	if (sc->opt->on_tensor)
		sc->opt->on_tensor(sc->s, st, sc->opt->user);
}

/* Decide each pair of a tensor: skipped, cached, or to read.  Returns 1
 * when something must be read (and fills pl). */
static int plan_tensor(struct scan *sc, size_t ti, struct plan *pl)
{
	struct cr_stats *s = sc->s;
	struct cr_stats_tensor *st = &s->tensors[ti];
	const struct cr_tensor *bt = st->t;
	struct cr_stats_cache *cache = sc->opt->cache;
	struct cr_stats_src bsrc = src_of(sc->base, bt);
	struct cr_stats_src *psrc = cr_xcalloc(sc->npar, sizeof *psrc);
	size_t *cmp = cr_xcalloc(sc->npar, sizeof *cmp), ncmp = 0;
	char b1[128], b2[128];
	cr_error err;

	for (size_t i = 0; i < sc->npar; i++) {
		struct cr_stats_pair *p = &st->pairs[i];
		const struct cr_ckpt *pc = sc->parents[i];
		const struct cr_tensor *pt = cr_ckpt_find(pc, bt->name);
		int same_shape = pt && pt->ndim == bt->ndim;
		for (int d = 0; same_shape && d < bt->ndim; d++)
			same_shape = pt->shape[d] == bt->shape[d];
		if (!pt) {
			p->status = CR_STATS_MISSING;
			p->note = fmt_note("%s: tensor '%s' is missing (the base has it); skipped", pc->path, bt->name);
		} else if (!same_shape) {
			p->status = CR_STATS_SHAPE;
			p->note = fmt_note("%s: tensor '%s': shape %s differs from the base's %s; skipped", pc->path,
					   bt->name, cr_fmt_shape(pt->shape, pt->ndim, b1, sizeof b1),
					   cr_fmt_shape(bt->shape, bt->ndim, b2, sizeof b2));
		} else if (!cr_dtype_has_math(bt->dtype)) {
			p->status = CR_STATS_UNSUPPORTED;
			p->note = fmt_note("%s: tensor '%s': dtype %s has no arithmetic support; skipped",
					   sc->base->path, bt->name, cr_dtype_name(bt->dtype));
		} else if (!cr_dtype_has_math(pt->dtype)) {
			p->status = CR_STATS_UNSUPPORTED;
			p->note = fmt_note("%s: tensor '%s': dtype %s has no arithmetic support; skipped", pc->path,
					   bt->name, cr_dtype_name(pt->dtype));
		} else {
			psrc[ncmp] = src_of(pc, pt);
			cmp[ncmp++] = i;
			if (cache) {
				struct cr_stats_key k = { bt->name, bsrc, 1, &psrc[ncmp - 1] };
				/* a record without a histogram does not serve a scan that wants one */
				if (cache->ops->get_pair(cache->self, &k, &p->s, &err) == 1 && p->s.nelem == bt->nelem &&
				    (p->s.has_hist || sc->opt->skip_histograms)) {
					p->status = p->s.identical ? CR_STATS_IDENTICAL : CR_STATS_OK;
					p->cached = 1;
					cr_stats_derive(p);
				} else {
					memset(&p->s, 0, sizeof p->s);
				}
			}
		}
	}
	int need_agree = 0;
	if (ncmp >= 2) {
		need_agree = 1;
		if (cache) {
			struct cr_stats_key k = { bt->name, bsrc, ncmp, psrc };
			uint64_t a, n;
			if (cache->ops->get_agree(cache->self, &k, &a, &n, &err) == 1 && n == bt->nelem) {
				st->agree = a;
				st->agree_n = n;
				need_agree = 0;
			}
		}
	}
	pl->ti = ti;
	pl->nact = 0;
	pl->act = NULL;
	pl->agree = need_agree;
	pl->bytes = 0;
	for (size_t c = 0; c < ncmp; c++) {
		struct cr_stats_pair *p = &st->pairs[cmp[c]];
		/* Agreement needs every parent that changed; identical ones are neutral. */
		if (p->status == CR_STATS_PENDING || (need_agree && p->status == CR_STATS_OK)) {
			if (!pl->act)
				pl->act = cr_xcalloc(ncmp, sizeof *pl->act);
			pl->act[pl->nact++] = cmp[c];
			p->status = CR_STATS_PENDING;
			p->cached = 0;
			pl->bytes += stored_bytes(cr_ckpt_find(sc->parents[cmp[c]], bt->name));
		}
	}
	if (need_agree && pl->nact < 2) {
		/* At most one parent changed: nothing can conflict. */
		st->agree = st->agree_n = bt->nelem;
		pl->agree = 0;
		if (cache) {
			struct cr_stats_key k = { bt->name, bsrc, ncmp, psrc };
			cache->ops->put_agree(cache->self, &k, st->agree, st->agree_n, &err);
		}
	}
	free(psrc);
	free(cmp);
	if (pl->nact)
		pl->bytes += stored_bytes(bt);
	return pl->nact > 0;
}

/* ---- reading ---- */

static void close_tensor(struct open_tensor *ot)
{
	if (!ot)
		return;
	free(ot->pt);
	free(ot->bgrid);
	if (ot->pgrid)
		for (size_t i = 0; i < ot->pl->nact; i++)
			free(ot->pgrid[i]);
	free(ot->pgrid);
	free(ot->eq_ok);
	free(ot->acc);
	free(ot->fail);
	free(ot);
}

static float *read_grid(const struct cr_ckpt *c, const struct cr_tensor *t, struct scan *sc, cr_error *err)
{
	if (!t->scale)
		return NULL;
	float *g = cr_xmalloc(cr_tensor_scale_count(t) * sizeof *g + 1);
	if (cr_tensor_read_scales(c, t, g, err) < 0) {
		free(g);
		return NULL;
	}
	sc->s->bytes_read += cr_st_tensor_nbytes(t->scale);
	sc->prog.bytes_done += cr_st_tensor_nbytes(t->scale);
	return g;
}

static struct open_tensor *open_tensor(struct scan *sc, const struct plan *pl)
{
	struct open_tensor *ot = cr_xcalloc(1, sizeof *ot);
	size_t na = pl->nact;
	cr_error err;

	ot->pl = pl;
	ot->bt = sc->s->tensors[pl->ti].t;
	ot->pt = cr_xcalloc(na, sizeof *ot->pt);
	ot->pgrid = cr_xcalloc(na, sizeof *ot->pgrid);
	ot->eq_ok = cr_xcalloc(na, sizeof *ot->eq_ok);
	ot->acc = cr_xcalloc(na, sizeof *ot->acc);
	ot->nchunks = (ot->bt->nelem + sc->chunk - 1) / sc->chunk;
	ot->bgrid = read_grid(sc->base, ot->bt, sc, &err);
	if (ot->bt->scale && !ot->bgrid)
		ot->fail = cr_xstrdup(err.msg);
	for (size_t i = 0; i < na; i++) {
		const struct cr_ckpt *pc = sc->parents[pl->act[i]];
		const struct cr_tensor *pt = cr_ckpt_find(pc, ot->bt->name);
		ot->pt[i] = pt;
		sk_acc_init(&ot->acc[i]);
		ot->pgrid[i] = read_grid(pc, pt, sc, &err);
		if (pt->scale && !ot->pgrid[i] && !ot->fail)
			ot->fail = cr_xstrdup(err.msg);
		ot->eq_ok[i] = pt->dtype == ot->bt->dtype && !pt->scale == !ot->bt->scale;
		if (ot->eq_ok[i] && pt->scale)
			ot->eq_ok[i] = ot->bgrid && ot->pgrid[i] &&
				       cr_tensor_scale_count(pt) == cr_tensor_scale_count(ot->bt) &&
				       memcmp(ot->bgrid, ot->pgrid[i], cr_tensor_scale_count(pt) * sizeof(float)) == 0;
	}
	return ot;
}

struct item {
	struct open_tensor *ot;
	uint64_t chunk;
};

struct slot {
	struct sk_base_part b;
	struct sk_pair_part *pp; /* [npar] */
	uint64_t agree;
	uint64_t bytes;
	int failed;
	cr_error err;
};

struct thread_buf {
	uint8_t *raw;	/* (1 + npar) chunk buffers */
	size_t stride;	/* bytes per buffer */
	struct sk_scratch sk;
	struct sk_in *in; /* [npar] */
	int *eq;	  /* [npar] */
};

static void read_item(struct scan *sc, const struct item *it, struct slot *sl, struct thread_buf *tb)
{
	const struct open_tensor *ot = it->ot;
	const struct cr_tensor *bt = ot->bt;
	size_t na = ot->pl->nact;
	uint64_t first = it->chunk * sc->chunk;
	size_t n = (size_t)(bt->nelem - first < sc->chunk ? bt->nelem - first : sc->chunk);
	size_t bsz = cr_dtype_bits(bt->dtype) / 8;
	uint8_t *rb = tb->raw;

	sl->failed = 0;
	sl->bytes = 0;
	if (ot->fail)
		return;
	if (cr_tensor_read_raw(sc->base, bt, first * bsz, rb, n * bsz, &sl->err) < 0) {
		sl->failed = 1;
		return;
	}
	sl->bytes += n * bsz;
	for (size_t i = 0; i < na; i++) {
		const struct cr_tensor *pt = ot->pt[i];
		size_t psz = cr_dtype_bits(pt->dtype) / 8;
		uint8_t *rp = tb->raw + (i + 1) * tb->stride;
		if (cr_tensor_read_raw(sc->parents[ot->pl->act[i]], pt, first * psz, rp, n * psz, &sl->err) < 0) {
			sl->failed = 1;
			return;
		}
		sl->bytes += n * psz;
		tb->eq[i] = ot->eq_ok[i] && memcmp(rb, rp, n * psz) == 0;
		uint64_t cols = 1;
		cr_tensor_cols(pt, &cols);
		tb->in[i] = (struct sk_in){ pt->dtype, rp, ot->pgrid[i], (size_t)cols };
	}
	uint64_t bcols = 1;
	cr_tensor_cols(bt, &bcols);
	struct sk_in bin = { bt->dtype, rb, ot->bgrid, (size_t)bcols };
	sk_chunk(&bin, tb->in, na, tb->eq, first, n, ot->pl->agree, !sc->opt->skip_histograms, &tb->sk, &sl->b, sl->pp,
		 &sl->agree);
}

/* Tell the kernel which bytes the batch will read, so that files not in the
 * page cache are read ahead in large sequential runs while the threads
 * pread chunk by chunk (two files read in turn otherwise look random). */
static void advise_range(const struct cr_ckpt *c, const struct cr_tensor *t, uint64_t first, uint64_t n)
{
	const struct cr_st_file *f = c->shards[t->shard];
	size_t esz = cr_dtype_bits(t->dtype) / 8;
	posix_fadvise(f->fd, (off_t)(f->data_start + t->st->begin + first * esz), (off_t)(n * esz),
		      POSIX_FADV_WILLNEED);
}

static void prefetch_batch(struct scan *sc, const struct item *items, size_t ni)
{
	for (size_t i = 0; i < ni;) {
		const struct open_tensor *ot = items[i].ot;
		size_t j = i;
		while (j + 1 < ni && items[j + 1].ot == ot)
			j++;
		uint64_t first = items[i].chunk * sc->chunk;
		uint64_t last = (items[j].chunk + 1) * sc->chunk;
		if (last > ot->bt->nelem)
			last = ot->bt->nelem;
		advise_range(sc->base, ot->bt, first, last - first);
		for (size_t k = 0; k < ot->pl->nact; k++)
			advise_range(sc->parents[ot->pl->act[k]], ot->pt[k], first, last - first);
		i = j + 1;
	}
}

static void put_results(struct scan *sc, struct open_tensor *ot)
{
	struct cr_stats_tensor *st = &sc->s->tensors[ot->pl->ti];
	struct cr_stats_cache *cache = sc->opt->cache;
	const struct cr_tensor *bt = ot->bt;
	struct cr_stats_src bsrc = src_of(sc->base, bt);
	size_t na = ot->pl->nact;
	cr_error err;

	for (size_t i = 0; i < na; i++) {
		struct cr_stats_pair *p = &st->pairs[ot->pl->act[i]];
		if (ot->fail) {
			p->status = CR_STATS_FAILED;
			p->note = fmt_note("%s", ot->fail);
			continue;
		}
		sk_acc_finish(&ot->acc[i], &ot->base, bt->nelem, !sc->opt->skip_histograms, &p->s);
		p->status = p->s.identical ? CR_STATS_IDENTICAL : CR_STATS_OK;
		cr_stats_derive(p);
		if (cache) {
			struct cr_stats_src ps = src_of(sc->parents[ot->pl->act[i]], ot->pt[i]);
			struct cr_stats_key k = { bt->name, bsrc, 1, &ps };
			cache->ops->put_pair(cache->self, &k, &p->s, &err);
		}
	}
	if (ot->pl->agree && !ot->fail) {
		st->agree = ot->agree;
		st->agree_n = bt->nelem;
		if (cache) {
			/* Keyed by every parent compared, in parent order. */
			struct cr_stats_src *ps = cr_xcalloc(sc->npar, sizeof *ps);
			size_t k = 0;
			for (size_t i = 0; i < sc->npar; i++) {
				enum cr_stats_status stt = st->pairs[i].status;
				if (stt == CR_STATS_OK || stt == CR_STATS_IDENTICAL)
					ps[k++] = src_of(sc->parents[i], cr_ckpt_find(sc->parents[i], bt->name));
			}
			struct cr_stats_key key = { bt->name, bsrc, k, ps };
			cache->ops->put_agree(cache->self, &key, st->agree, st->agree_n, &err);
			free(ps);
		}
	}
}

static void reduce_item(const struct item *it, const struct slot *sl)
{
	struct open_tensor *ot = it->ot;
	if (sl->failed && !ot->fail)
		ot->fail = cr_xstrdup(sl->err.msg);
	if (!ot->fail) {
		ot->base.nfin += sl->b.nfin;
		ot->base.nan += sl->b.nan;
		ot->base.inf += sl->b.inf;
		ot->base.sq += sl->b.sq;
		for (size_t i = 0; i < ot->pl->nact; i++)
			sk_acc_add(&ot->acc[i], &sl->pp[i], &sl->b);
		ot->agree += sl->agree;
	}
	ot->reduced++;
}

static int report(struct scan *sc)
{
	return sc->opt->progress && sc->opt->progress(&sc->prog, sc->opt->user) != 0;
}

static int run_plans(struct scan *sc, struct plan *plans, size_t nplans, cr_error *err)
{
	size_t maxesz = 1;
	for (size_t q = 0; q < nplans; q++) {
		const struct cr_tensor *bt = sc->s->tensors[plans[q].ti].t;
		size_t e = cr_dtype_bits(bt->dtype) / 8;
		maxesz = e > maxesz ? e : maxesz;
		for (size_t i = 0; i < plans[q].nact; i++) {
			e = cr_dtype_bits(cr_ckpt_find(sc->parents[plans[q].act[i]], bt->name)->dtype) / 8;
			maxesz = e > maxesz ? e : maxesz;
		}
	}
	struct thread_buf *tb = cr_xcalloc((size_t)sc->nth, sizeof *tb);
	for (int t = 0; t < sc->nth; t++) {
		tb[t].stride = (sc->chunk * maxesz + 63) / 64 * 64;
		tb[t].raw = aligned_alloc(64, tb[t].stride * (sc->npar + 1));
		if (!tb[t].raw)
			abort();
		tb[t].sk.npar = sc->npar;
		sk_scratch_init(&tb[t].sk);
		tb[t].in = cr_xcalloc(sc->npar, sizeof *tb[t].in);
		tb[t].eq = cr_xcalloc(sc->npar, sizeof *tb[t].eq);
	}
	struct item *items = cr_xcalloc(BATCH_ITEMS, sizeof *items);
	struct slot *slots = cr_xcalloc(BATCH_ITEMS, sizeof *slots);
	for (int i = 0; i < BATCH_ITEMS; i++)
		slots[i].pp = cr_xcalloc(sc->npar ? sc->npar : 1, sizeof *slots[i].pp);
	/* Tensors whose chunks are in flight, oldest first. */
	struct open_tensor **open = cr_xcalloc(BATCH_ITEMS + 2, sizeof *open);
	size_t nopen = 0, q = 0;
	uint64_t next_chunk = 0;
	int rc = 0;

	while (q < nplans) {
		size_t ni = 0;
		uint64_t bbytes = 0;
		while (ni < BATCH_ITEMS && nopen < BATCH_ITEMS && q < nplans && bbytes < BATCH_BYTES) {
			if (next_chunk == 0 && (nopen == 0 || open[nopen - 1]->pl != &plans[q]))
				open[nopen++] = open_tensor(sc, &plans[q]);
			struct open_tensor *ot = open[nopen - 1];
			if (ot->nchunks == 0) { /* an empty tensor: nothing to read */
				q++;
				next_chunk = 0;
				continue;
			}
			items[ni++] = (struct item){ ot, next_chunk };
			bbytes += plans[q].bytes / ot->nchunks;
			if (++next_chunk == ot->nchunks) {
				q++;
				next_chunk = 0;
			}
		}
		sc->prog.tensor = open[nopen - 1]->bt->name;
		prefetch_batch(sc, items, ni);
#pragma omp parallel for schedule(dynamic, 1) num_threads(sc->nth)
		for (size_t i = 0; i < ni; i++) {
			int t = 0;
#ifdef _OPENMP
			t = omp_get_thread_num();
#endif
			read_item(sc, &items[i], &slots[i], &tb[t]);
		}
		for (size_t i = 0; i < ni; i++) {
			reduce_item(&items[i], &slots[i]);
			sc->s->bytes_read += slots[i].bytes;
			sc->prog.bytes_done += slots[i].bytes;
		}
		/* Finish tensors whose last chunk is in (they are the oldest). */
		size_t keep = 0;
		for (size_t o = 0; o < nopen; o++) {
			struct open_tensor *ot = open[o];
			if (ot->reduced == ot->nchunks) {
				struct cr_stats_tensor *st = &sc->s->tensors[ot->pl->ti];
				put_results(sc, ot);
				sc->s->tensors_computed++;
				close_tensor(ot);
				if (tensor_done(sc->s, st))
					finish_tensor(sc, st);
			} else {
				open[keep++] = ot;
			}
		}
		nopen = keep;
		if (report(sc)) {
			rc = cr_fail(err, CR_E_CANCELLED, "statistics scan cancelled");
			break;
		}
	}
	for (size_t o = 0; o < nopen; o++)
		close_tensor(open[o]);
	free(open);
	for (int i = 0; i < BATCH_ITEMS; i++)
		free(slots[i].pp);
	free(slots);
	free(items);
	for (int t = 0; t < sc->nth; t++) {
		free(tb[t].raw);
		sk_scratch_free(&tb[t].sk);
		free(tb[t].in);
		free(tb[t].eq);
	}
	free(tb);
	return rc;
}

int cr_stats_scan(const struct cr_ckpt *base, const struct cr_ckpt *const *parents, size_t nparents,
		  const struct cr_stats_options *opt, struct cr_stats **out, cr_error *err)
{
	static const struct cr_stats_options defaults;
	struct scan sc = { 0 };
	int rc = 0;

	*out = NULL;
	if (!opt)
		opt = &defaults;
	if (!base || (nparents && !parents))
		return cr_fail(err, CR_E_USAGE, "statistics scan: no base or parents given");
	if (opt->chunk_elems > MAX_CHUNK || (opt->chunk_elems && opt->chunk_elems % SK_SUB))
		return cr_fail(err, CR_E_USAGE, "statistics scan: chunk size %zu is not a multiple of %d up to %u",
			       opt->chunk_elems, SK_SUB, MAX_CHUNK);
	sc.base = base;
	sc.parents = parents;
	sc.npar = nparents;
	sc.opt = opt;
	sc.chunk = opt->chunk_elems ? opt->chunk_elems : DEFAULT_CHUNK;
	sc.nth = opt->threads > 0 ? opt->threads : 1;
#ifdef _OPENMP
	if (opt->threads <= 0)
		sc.nth = omp_get_max_threads();
#endif

	struct cr_stats *s = cr_xcalloc(1, sizeof *s);
	sc.s = s;
	s->nparents = nparents;
	s->ntensors = base->ntensors;
	s->tensors = cr_xcalloc(base->ntensors ? base->ntensors : 1, sizeof *s->tensors);
	for (size_t i = 0; i < base->ntensors; i++) {
		s->tensors[i].t = &base->tensors[i];
		s->tensors[i].index = i;
		s->tensors[i].sign_agree = NAN;
		s->tensors[i].pairs = cr_xcalloc(nparents ? nparents : 1, sizeof *s->tensors[i].pairs);
	}
	size_t cap = 0;
	for (size_t p = 0; p < nparents; p++)
		for (size_t i = 0; i < parents[p]->ntensors; i++)
			if (!cr_ckpt_find(base, parents[p]->tensors[i].name)) {
				if (s->nextra == cap) {
					cap = cap ? 2 * cap : 16;
					s->extra = cr_xrealloc(s->extra, cap * sizeof *s->extra);
				}
				s->extra[s->nextra++] = (struct cr_stats_extra){ p, parents[p]->tensors[i].name };
			}

	/* Plan every selected tensor; those needing no reads finish now. */
	struct plan *plans = cr_xcalloc(base->ntensors ? base->ntensors : 1, sizeof *plans);
	size_t nplans = 0;
	for (size_t i = 0; i < base->ntensors; i++) {
		if (opt->select && !opt->select(&base->tensors[i], opt->user))
			continue;
		s->tensors_selected++;
		sc.prog.tensors_total++;
		if (plan_tensor(&sc, i, &plans[nplans])) {
			sc.prog.bytes_total += plans[nplans].bytes;
			nplans++;
		} else {
			free(plans[nplans].act);
			s->tensors_cached++;
		}
	}
	for (size_t i = 0; i < base->ntensors; i++) {
		struct cr_stats_tensor *st = &s->tensors[i];
		if (!st->done && tensor_done(s, st) && (!opt->select || opt->select(st->t, opt->user)))
			finish_tensor(&sc, st);
	}
	if (report(&sc))
		rc = cr_fail(err, CR_E_CANCELLED, "statistics scan cancelled");
	else
		rc = run_plans(&sc, plans, nplans, err);
	for (size_t q = 0; q < nplans; q++)
		free(plans[q].act);
	free(plans);
	if (opt->cache && opt->cache->ops->flush) {
		cr_error ferr;
		opt->cache->ops->flush(opt->cache->self, &ferr);
	}
	if (rc == 0) {
		sc.prog.tensor = NULL;
		report(&sc);
	}
	*out = s;
	return rc;
}

void cr_stats_free(struct cr_stats *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ntensors; i++) {
		for (size_t p = 0; p < s->nparents; p++)
			free(s->tensors[i].pairs[p].note);
		free(s->tensors[i].pairs);
	}
	free(s->tensors);
	free(s->extra);
	free(s);
}
