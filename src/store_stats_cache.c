/*
 * The session store as the statistics scan's cache (struct cr_stats_cache in
 * crucible/stats.h): adapts the scan's keys (cr_st_file identities of the
 * weights and FP8 scale files) and sums to the store's statistics tables
 * (store_stats.c).
 *
 * Paths in keys are made absolute (realpath, remembered per file object), so
 * the same file opened through different relative paths shares its rows.
 * Writes go into one transaction that flush (and destroy) commits: a scan of
 * ~92k tensors is one commit, not 92k.  The cache uses its store handle from
 * the scan's thread only, as stats.h promises; a TUI worker opens its own
 * handle (cr_store_stats_cache_open).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crucible/stats.h"
#include "store_internal.h"

struct canon {
	const struct cr_st_file *f;
	char *real;
};

struct store_cache {
	struct cr_store *st;
	int own;      /* close st on destroy */
	int in_tx;    /* a write transaction is open */
	int64_t tx_ms; /* when it began */
	size_t tx_rows;
	struct canon *canon;
	size_t ncanon, capcanon;
};

static const char *canonical(struct store_cache *c, const struct cr_st_file *f)
{
	for (size_t i = c->ncanon; i-- > 0;) /* scans touch a few files at a time: newest first */
		if (c->canon[i].f == f)
			return c->canon[i].real;
	char *real = realpath(f->path, NULL);
	if (!real)
		real = cr_xstrdup(f->path);
	if (c->ncanon == c->capcanon)
		c->canon = cr_xrealloc(c->canon, (c->capcanon = c->capcanon ? 2 * c->capcanon : 64) * sizeof *c->canon);
	c->canon[c->ncanon++] = (struct canon){ f, real };
	return real;
}

struct src_buf {
	struct cr_file_identity w, s;
	struct cr_store_src src;
};

static void to_src(struct store_cache *c, const struct cr_stats_src *in, struct src_buf *out)
{
	out->w = (struct cr_file_identity){ canonical(c, in->weights), in->weights->file_size, in->weights->mtime_ns,
					    in->weights->header_hash };
	out->src.weights = &out->w;
	out->src.scales = NULL;
	if (in->scales) {
		out->s = (struct cr_file_identity){ canonical(c, in->scales), in->scales->file_size,
						    in->scales->mtime_ns, in->scales->header_hash };
		out->src.scales = &out->s;
	}
}

static void sums_to_store(const struct cr_stats_sums *a, struct cr_store_sums *b)
{
	memset(b, 0, sizeof *b);
	b->identical = a->identical;
	b->nelem = a->nelem;
	b->n = a->n;
	b->nan = a->nan;
	b->inf = a->inf;
	b->base_nan = a->base_nan;
	b->base_inf = a->base_inf;
	b->base_sq = a->base_sq;
	b->sum_bb = a->sum_bb;
	b->sum_pp = a->sum_pp;
	b->sum_pb = a->sum_pb;
	b->sum_dd = a->sum_dd;
	b->sum_absd = a->sum_absd;
	b->max_absd = a->max_absd;
	b->hist_width = a->hist_width;
	/* a record scanned without histograms stores no bins */
	b->nbins = a->has_hist ? CR_STATS_HIST_BINS : 0;
	memcpy(b->hist, a->hist, sizeof a->hist);
}

static int sums_from_store(const struct cr_store_sums *b, struct cr_stats_sums *a)
{
	if (b->nbins != CR_STATS_HIST_BINS && b->nbins != 0)
		return 0; /* another layout: a miss */
	memset(a, 0, sizeof *a);
	a->has_hist = b->nbins == CR_STATS_HIST_BINS;
	a->identical = (uint8_t)b->identical;
	a->nelem = b->nelem;
	a->n = b->n;
	a->nan = b->nan;
	a->inf = b->inf;
	a->base_nan = b->base_nan;
	a->base_inf = b->base_inf;
	a->base_sq = b->base_sq;
	a->sum_bb = b->sum_bb;
	a->sum_pp = b->sum_pp;
	a->sum_pb = b->sum_pb;
	a->sum_dd = b->sum_dd;
	a->sum_absd = b->sum_absd;
	a->max_absd = b->max_absd;
	a->hist_width = b->hist_width;
	memcpy(a->hist, b->hist, sizeof a->hist);
	return 1;
}

/* Writes are batched, but a transaction never stays open long: another
 * connection (the TUI's UI thread recording λ changes) must not wait. */
static int begin_writes(struct store_cache *c, cr_error *err)
{
	if (c->in_tx && (c->tx_rows >= 1024 || cr_store_now_ms() - c->tx_ms > 100)) {
		c->in_tx = 0;
		if (store_tx_commit(c->st, err) < 0)
			return -1;
	}
	if (c->in_tx) {
		c->tx_rows++;
		return 0;
	}
	if (store_tx_begin(c->st, err) < 0)
		return -1;
	c->in_tx = 1;
	c->tx_ms = cr_store_now_ms();
	c->tx_rows = 1;
	return 0;
}

static int get_pair(void *self, const struct cr_stats_key *k, struct cr_stats_sums *out, cr_error *err)
{
	struct store_cache *c = self;
	struct src_buf b, p;
	struct cr_store_sums v;
	if (k->nparents != 1)
		return 0;
	to_src(c, &k->base, &b);
	to_src(c, &k->parents[0], &p);
	int rc = cr_store_stats_get(c->st, k->tensor, CR_STATS_VERSION, &b.src, &p.src, &v, err);
	if (rc <= 0)
		return rc;
	return sums_from_store(&v, out);
}

static int put_pair(void *self, const struct cr_stats_key *k, const struct cr_stats_sums *in, cr_error *err)
{
	struct store_cache *c = self;
	struct src_buf b, p;
	struct cr_store_sums v;
	if (k->nparents != 1)
		return cr_fail(err, CR_E_USAGE, "statistics cache: a pair record has one parent, not %zu", k->nparents);
	if (begin_writes(c, err) < 0)
		return -1;
	to_src(c, &k->base, &b);
	to_src(c, &k->parents[0], &p);
	sums_to_store(in, &v);
	int rc = cr_store_stats_put(c->st, k->tensor, CR_STATS_VERSION, &b.src, &p.src, &v, err);
	if (rc < 0)
		c->in_tx = 0; /* the store rolled the transaction back */
	return rc;
}

static struct src_buf *parents_src(struct store_cache *c, const struct cr_stats_key *k, struct cr_store_src **srcs)
{
	struct src_buf *pb = cr_xcalloc(k->nparents ? k->nparents : 1, sizeof *pb);
	*srcs = cr_xcalloc(k->nparents ? k->nparents : 1, sizeof **srcs);
	for (size_t i = 0; i < k->nparents; i++) {
		to_src(c, &k->parents[i], &pb[i]);
		(*srcs)[i] = pb[i].src;
	}
	return pb;
}

static int get_agree(void *self, const struct cr_stats_key *k, uint64_t *agree, uint64_t *counted, cr_error *err)
{
	struct store_cache *c = self;
	struct src_buf b;
	struct cr_store_src *srcs;
	to_src(c, &k->base, &b);
	struct src_buf *pb = parents_src(c, k, &srcs);
	int rc = cr_store_agree_get(c->st, k->tensor, CR_STATS_VERSION, &b.src, srcs, k->nparents, agree, counted, err);
	free(srcs);
	free(pb);
	return rc;
}

static int put_agree(void *self, const struct cr_stats_key *k, uint64_t agree, uint64_t counted, cr_error *err)
{
	struct store_cache *c = self;
	struct src_buf b;
	struct cr_store_src *srcs;
	if (begin_writes(c, err) < 0)
		return -1;
	to_src(c, &k->base, &b);
	struct src_buf *pb = parents_src(c, k, &srcs);
	int rc = cr_store_agree_put(c->st, k->tensor, CR_STATS_VERSION, &b.src, srcs, k->nparents, agree, counted, err);
	if (rc < 0)
		c->in_tx = 0;
	free(srcs);
	free(pb);
	return rc;
}

static int flush(void *self, cr_error *err)
{
	struct store_cache *c = self;
	if (!c->in_tx)
		return 0;
	c->in_tx = 0;
	return store_tx_commit(c->st, err);
}

static void destroy(void *self)
{
	struct store_cache *c = self;
	/* Rows stored are final results even if the scan stopped early: keep them. */
	flush(c, NULL);
	for (size_t i = 0; i < c->ncanon; i++)
		free(c->canon[i].real);
	free(c->canon);
	if (c->own)
		cr_store_close(c->st);
	free(c);
}

static const struct cr_stats_cache_ops store_cache_ops = { get_pair, put_pair, get_agree, put_agree, flush, destroy };

int cr_store_stats_cache(struct cr_store *st, struct cr_stats_cache *out)
{
	struct store_cache *c = cr_xcalloc(1, sizeof *c);
	c->st = st;
	out->ops = &store_cache_ops;
	out->self = c;
	return 0;
}

int cr_store_stats_cache_open(const char *db, struct cr_stats_cache *out, cr_error *err)
{
	struct cr_store *st;
	if (cr_store_open(db, &st, err) < 0)
		return -1;
	cr_store_stats_cache(st, out);
	((struct store_cache *)out->self)->own = 1;
	return 0;
}
