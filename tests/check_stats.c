/*
 * Difference statistics against values computed here, independently: the
 * test reads each tensor's bytes from the shard file itself, decodes them
 * with its own reference decoders (BF16, F16, F32, block E4M3) and runs a
 * naive f64 loop over the whole tensor.  Every statistic of every pair is
 * compared, on the dsv3, llama and mixtral families, and on small
 * checkpoints written here for the edge cases.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/checkpoint.h"
#include "crucible/stats.h"

/* ---- reference decoding ---- */

static float ref_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static float ref_f16(uint16_t h)
{
	int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v;
	if (e == 31)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp(m, -24);
	else
		v = ldexp(1024 + m, e - 25);
	return (float)(s ? -v : v);
}

static void read_file_at(const char *path, uint64_t off, void *buf, size_t n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert(fseeko(f, (off_t)off, SEEK_SET) == 0);
	ck_assert_uint_eq(fread(buf, 1, n, f), n);
	fclose(f);
}

/* Stored bytes of a tensor (and of its scale when scale is not NULL). */
static uint8_t *ref_raw(const struct cr_ckpt *c, const struct cr_tensor *t, uint8_t **scale, size_t *nscale)
{
	const struct cr_st_file *f = c->shards[t->shard];
	uint8_t *raw = malloc(t->nbytes + 1);
	read_file_at(f->path, f->data_start + t->st->begin, raw, t->nbytes);
	if (scale) {
		*scale = NULL;
		*nscale = 0;
		if (t->scale) {
			const struct cr_st_file *sf = c->shards[t->scale_shard];
			*nscale = t->scale->end - t->scale->begin;
			*scale = malloc(*nscale);
			read_file_at(sf->path, sf->data_start + t->scale->begin, *scale, *nscale);
		}
	}
	return raw;
}

static float *ref_values(const struct cr_ckpt *c, const struct cr_tensor *t)
{
	uint8_t *sc;
	size_t nsc;
	uint8_t *raw = ref_raw(c, t, &sc, &nsc);
	float *v = malloc((t->nelem + 1) * sizeof *v);
	size_t cols = t->ndim ? (size_t)t->shape[t->ndim - 1] : 1;
	for (uint64_t i = 0; i < t->nelem; i++) {
		switch (t->dtype) {
		case CR_DT_BF16: {
			uint16_t h;
			memcpy(&h, raw + 2 * i, 2);
			v[i] = ref_bf16(h);
			break;
		}
		case CR_DT_F16: {
			uint16_t h;
			memcpy(&h, raw + 2 * i, 2);
			v[i] = ref_f16(h);
			break;
		}
		case CR_DT_F32:
			memcpy(&v[i], raw + 4 * i, 4);
			break;
		case CR_DT_F8_E4M3: {
			double s = 1.0;
			if (sc) {
				size_t r = (size_t)(i / cols), col = (size_t)(i % cols), scols = (cols + 127) / 128;
				float fs;
				memcpy(&fs, sc + 4 * ((r / 128) * scols + col / 128), 4);
				s = fs;
			}
			/* exact in double (4 x 24 bits), then one rounding to f32 */
			v[i] = (float)(ref_e4m3(raw[i]) * s);
			break;
		}
		default:
			ck_abort_msg("%s: dtype %s in a test fixture", t->name, cr_dtype_name(t->dtype));
		}
	}
	free(raw);
	free(sc);
	return v;
}

static int bytes_equal(const struct cr_ckpt *a, const struct cr_tensor *ta, const struct cr_ckpt *b,
		       const struct cr_tensor *tb)
{
	if (ta->dtype != tb->dtype || ta->nbytes != tb->nbytes || !ta->scale != !tb->scale)
		return 0;
	uint8_t *sa, *sb;
	size_t na, nb;
	uint8_t *ra = ref_raw(a, ta, &sa, &na), *rb = ref_raw(b, tb, &sb, &nb);
	int eq = memcmp(ra, rb, ta->nbytes) == 0 && na == nb && (na == 0 || memcmp(sa, sb, na) == 0);
	free(ra);
	free(rb);
	free(sa);
	free(sb);
	return eq;
}

/* ---- the naive loop ---- */

struct ref {
	double bsq;
	uint64_t n, nan, inf, bnan, binf;
	double bb, pp, pb, dd, ad, mx;
};

static int finite_f(float x)
{
	return !isnan(x) && !isinf(x);
}

static struct ref ref_pair(const float *b, const float *p, uint64_t n)
{
	struct ref r = { 0 };
	for (uint64_t i = 0; i < n; i++) {
		if (finite_f(b[i]))
			r.bsq += (double)b[i] * b[i];
		r.bnan += isnan(b[i]) != 0;
		r.binf += isinf(b[i]) != 0;
		r.nan += isnan(p[i]) != 0;
		r.inf += isinf(p[i]) != 0;
		if (!finite_f(b[i]) || !finite_f(p[i]))
			continue;
		double x = p[i], y = b[i], d = x - y;
		r.n++;
		r.bb += y * y;
		r.pp += x * x;
		r.pb += x * y;
		r.dd += d * d;
		r.ad += fabs(d);
		if (fabs(d) > r.mx)
			r.mx = fabs(d);
	}
	return r;
}

static void near(double got, double want, double rtol, const char *what, const char *name)
{
	double tol = rtol * fmax(fabs(want), 1e-300);
	ck_assert_msg(fabs(got - want) <= tol || (got == want), "%s: %s = %.17g, want %.17g", name, what, got, want);
}

/* The histogram: range and width as documented, and every count exact. */
static void check_hist(const struct cr_stats_pair *p, const float *b, const float *pv, uint64_t n, double mx,
		       const char *name)
{
	const int side = CR_STATS_HIST_SIDE;
	uint64_t want[CR_STATS_HIST_BINS] = { 0 };
	double w = p->s.hist_width;
	if (mx == 0) {
		ck_assert_msg(w == 0, "%s: histogram width %g with no delta", name, w);
	} else {
		int e = 0;
		while (ldexp(1.0, e) <= mx)
			e++;
		while (ldexp(1.0, e - 1) > mx)
			e--;
		double wf = ldexp(1.0, e - 9), g = w / wf;
		ck_assert_msg(g >= 1 && g == floor(g), "%s: width %g is not whole fine bins", name, w);
		ck_assert_msg(side * w >= mx, "%s: range %g below max %g", name, side * w, mx);
		ck_assert_msg(side * (g - 1) * wf < mx, "%s: range %g not the smallest", name, side * w);
		ck_assert_msg(side * w <= mx * 1.08, "%s: range %g far above max %g", name, side * w, mx);
	}
	for (uint64_t i = 0; i < n; i++) {
		if (!finite_f(b[i]) || !finite_f(pv[i]))
			continue;
		double d = (double)pv[i] - (double)b[i], a = fabs(d);
		if (d == 0) {
			want[side]++;
			continue;
		}
		long j = (long)floor(a / w);
		while (j > 0 && j * w > a)
			j--;
		while ((j + 1) * w <= a)
			j++;
		if (j > side - 1)
			j = side - 1;
		want[d > 0 ? side + 1 + j : side - 1 - j]++;
	}
	for (int i = 0; i < CR_STATS_HIST_BINS; i++)
		ck_assert_msg(p->s.hist[i] == want[i], "%s: histogram bin %d holds %llu, want %llu", name, i,
			      (unsigned long long)p->s.hist[i], (unsigned long long)want[i]);
	double e[CR_STATS_HIST_BINS + 1];
	cr_stats_hist_edges(w, e);
	ck_assert(e[0] == -side * w && e[side] == 0 && e[side + 1] == 0 && e[CR_STATS_HIST_BINS] == side * w);
}

/* Compare one pair with the naive loop; returns its sums for aggregates. */
static struct ref check_pair(const struct cr_ckpt *bc, const struct cr_ckpt *pc, const struct cr_stats_tensor *st,
			     size_t k)
{
	const struct cr_tensor *bt = st->t, *pt = cr_ckpt_find(pc, bt->name);
	const struct cr_stats_pair *p = &st->pairs[k];
	const char *name = bt->name;
	ck_assert_msg(pt != NULL, "%s missing in a fixture parent", name);
	ck_assert_msg(p->status == CR_STATS_OK || p->status == CR_STATS_IDENTICAL, "%s: status %s (%s)", name,
		      cr_stats_status_name(p->status), p->note ? p->note : "");
	float *b = ref_values(bc, bt), *pv = ref_values(pc, pt);
	struct ref r = ref_pair(b, pv, bt->nelem);
	int eq = bytes_equal(bc, bt, pc, pt);
	ck_assert_msg(p->s.identical == eq, "%s: identical %d, bytes equal %d", name, p->s.identical, eq);
	ck_assert_msg((p->status == CR_STATS_IDENTICAL) == eq, "%s: status %s", name, cr_stats_status_name(p->status));
	ck_assert_uint_eq(p->s.nelem, bt->nelem);
	ck_assert_uint_eq(p->s.n, r.n);
	ck_assert_uint_eq(p->s.nan, r.nan);
	ck_assert_uint_eq(p->s.inf, r.inf);
	ck_assert_uint_eq(p->s.base_nan, r.bnan);
	ck_assert_uint_eq(p->s.base_inf, r.binf);
	near(p->norm_base, sqrt(r.bsq), 1e-12, "norm_base", name);
	near(p->norm_delta, sqrt(r.dd), 1e-12, "norm_delta", name);
	double rel = r.bsq > 0 ? sqrt(r.dd) / sqrt(r.bsq) : (r.dd > 0 ? INFINITY : 0);
	if (isinf(rel))
		ck_assert(isinf(p->rel));
	else
		near(p->rel, rel, 1e-12, "rel", name);
	double cosv = r.pp > 0 && r.bb > 0 ? r.pb / sqrt(r.pp * r.bb) : (r.pp == 0 && r.bb == 0 ? 1 : 0);
	ck_assert_msg(fabs(p->cosine - cosv) <= 1e-12, "%s: cosine %.17g, want %.17g", name, p->cosine, cosv);
	ck_assert_msg(p->max_abs == r.mx, "%s: max %.17g, want %.17g", name, p->max_abs, r.mx);
	near(p->mean_abs, r.n ? r.ad / (double)r.n : 0, 1e-12, "mean_abs", name);
	if (eq) {
		ck_assert(p->rel == 0 && p->cosine == 1 && p->max_abs == 0);
	}
	if (p->s.has_hist)
		check_hist(p, b, pv, bt->nelem, r.mx, name);
	else
		ck_assert_msg(!eq, "%s: identical pair without its (known) histogram", name);
	free(b);
	free(pv);
	return r;
}

/* Sign agreement over the parents compared. */
static void check_agree(const struct cr_ckpt *bc, struct cr_ckpt **pcs, size_t np, const struct cr_stats_tensor *st)
{
	const struct cr_tensor *bt = st->t;
	size_t ncmp = 0;
	for (size_t k = 0; k < np; k++)
		ncmp += st->pairs[k].status == CR_STATS_OK || st->pairs[k].status == CR_STATS_IDENTICAL;
	if (ncmp < 2) {
		ck_assert_msg(isnan(st->sign_agree), "%s: sign share with %zu parents", bt->name, ncmp);
		return;
	}
	float *b = ref_values(bc, bt);
	uint8_t *pos = calloc(bt->nelem + 1, 1), *neg = calloc(bt->nelem + 1, 1);
	for (size_t k = 0; k < np; k++) {
		if (st->pairs[k].status != CR_STATS_OK && st->pairs[k].status != CR_STATS_IDENTICAL)
			continue;
		float *p = ref_values(pcs[k], cr_ckpt_find(pcs[k], bt->name));
		for (uint64_t i = 0; i < bt->nelem; i++) {
			if (!finite_f(p[i]) || !finite_f(b[i]))
				continue;
			pos[i] |= p[i] > b[i];
			neg[i] |= p[i] < b[i];
		}
		free(p);
	}
	uint64_t agree = 0;
	for (uint64_t i = 0; i < bt->nelem; i++)
		agree += !(pos[i] && neg[i]);
	ck_assert_msg(st->agree == agree && st->agree_n == bt->nelem, "%s: agree %llu/%llu, want %llu/%llu", bt->name,
		      (unsigned long long)st->agree, (unsigned long long)st->agree_n, (unsigned long long)agree,
		      (unsigned long long)bt->nelem);
	near(st->sign_agree, (double)agree / (double)bt->nelem, 1e-15, "sign_agree", bt->name);
	free(b);
	free(pos);
	free(neg);
}

static struct cr_ckpt *open_path(const char *path)
{
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(path, &c, &err) == 0, "%s", err.msg);
	return c;
}

static struct cr_stats *scan(const struct cr_ckpt *base, struct cr_ckpt **ps, size_t np,
			     const struct cr_stats_options *o)
{
	struct cr_stats *s;
	cr_error err;
	ck_assert_msg(cr_stats_scan(base, (const struct cr_ckpt *const *)ps, np, o, &s, &err) == 0, "%s", err.msg);
	return s;
}

/* Scan a family and compare every pair and every sign share. */
static void check_family(const char *base, const char *const *parents, size_t np, int threads, size_t chunk)
{
	struct cr_ckpt *bc = open_path(fixture(base)), *pcs[4];
	for (size_t k = 0; k < np; k++)
		pcs[k] = open_path(fixture(parents[k]));
	struct cr_stats_options o = { .threads = threads, .chunk_elems = chunk };
	struct cr_stats *s = scan(bc, pcs, np, &o);
	ck_assert_uint_eq(s->ntensors, bc->ntensors);
	for (size_t i = 0; i < s->ntensors; i++) {
		ck_assert(s->tensors[i].done);
		for (size_t k = 0; k < np; k++)
			check_pair(bc, pcs[k], &s->tensors[i], k);
		check_agree(bc, pcs, np, &s->tensors[i]);
	}
	cr_stats_free(s);
	for (size_t k = 0; k < np; k++)
		cr_ckpt_close(pcs[k]);
	cr_ckpt_close(bc);
}

START_TEST(dsv3_every_statistic)
{
	static const char *const ps[] = { "models/dsv3/r1", "models/dsv3/r1-0528" };
	/* small chunks: many per tensor, partial FP8 blocks at chunk edges */
	check_family("models/dsv3/v3-base", ps, 2, 2, 3 * 1024);
}
END_TEST

START_TEST(llama_every_statistic)
{
	static const char *const ps[] = { "models/llama/math", "models/llama/chat" };
	check_family("models/llama/base", ps, 2, 2, 0);
}
END_TEST

START_TEST(mixtral_every_statistic)
{
	static const char *const ps[] = { "models/mixtral/instruct", "models/mixtral/code" };
	check_family("models/mixtral/base", ps, 2, 2, 1024);
}
END_TEST

/* Known facts of the dsv3 family. */
START_TEST(dsv3_known_facts)
{
	struct cr_ckpt *bc = open_path(fixture("models/dsv3/v3-base")), *r1 = open_path(fixture("models/dsv3/r1"));
	struct cr_stats *s = scan(bc, &r1, 1, NULL);
	static const char *const same[] = { "model.embed_tokens.weight", "lm_head.weight" };
	for (size_t i = 0; i < 2; i++) {
		const struct cr_stats_tensor *t = &s->tensors[cr_ckpt_find(bc, same[i]) - bc->tensors];
		ck_assert_msg(t->pairs[0].status == CR_STATS_IDENTICAL && t->pairs[0].s.identical, "%s not identical",
			      same[i]);
		ck_assert(t->pairs[0].rel == 0 && t->pairs[0].cosine == 1);
	}
	/* Routed experts: the aggregate over the class, against the naive sums. */
	double dd = 0, bb = 0;
	size_t nexp = 0;
	for (size_t i = 0; i < s->ntensors; i++) {
		const struct cr_stats_tensor *t = &s->tensors[i];
		if (t->t->cls != CR_CLASS_ROUTED_EXPERT)
			continue;
		struct ref r = check_pair(bc, r1, t, 0);
		dd += r.dd;
		bb += r.bsq;
		nexp++;
		ck_assert_msg(t->pairs[0].rel > 0.17 && t->pairs[0].rel < 0.20, "%s: rel %g", t->t->name,
			      t->pairs[0].rel);
	}
	ck_assert_uint_gt(nexp, 0);
	struct cr_stats_agg *g;
	size_t ng = cr_stats_aggregate(s, 0, CR_GROUP_CLASS, &g), found = 0;
	for (size_t k = 0; k < ng; k++) {
		if (g[k].cls != CR_CLASS_ROUTED_EXPERT)
			continue;
		found = 1;
		ck_assert_uint_eq(g[k].tensors, nexp);
		near(g[k].rel, sqrt(dd) / sqrt(bb), 1e-12, "aggregate rel", "routed_expert");
		ck_assert_msg(g[k].rel > 0.175 && g[k].rel < 0.195, "routed experts rel %g, want about 0.18", g[k].rel);
	}
	ck_assert(found);
	free(g);
	/* layer x class groups add up to the class group */
	ng = cr_stats_aggregate(s, 0, CR_GROUP_LAYER_CLASS, &g);
	double sdd = 0, sbb = 0;
	size_t nt = 0;
	for (size_t k = 0; k < ng; k++)
		if (g[k].cls == CR_CLASS_ROUTED_EXPERT) {
			ck_assert_int_ge(g[k].layer, 1);
			sdd += g[k].sum_dd;
			sbb += g[k].base_sq;
			nt += g[k].tensors;
		}
	ck_assert_uint_eq(nt, nexp);
	near(sqrt(sdd) / sqrt(sbb), sqrt(dd) / sqrt(bb), 1e-12, "layer groups rel", "routed_expert");
	free(g);
	cr_stats_free(s);
	cr_ckpt_close(r1);
	cr_ckpt_close(bc);
}
END_TEST

START_TEST(mixtral_code_changes_experts_1_and_3)
{
	struct cr_ckpt *bc = open_path(fixture("models/mixtral/base")), *code = open_path(fixture("models/mixtral/code"));
	struct cr_stats *s = scan(bc, &code, 1, NULL);
	size_t changed = 0;
	for (size_t i = 0; i < s->ntensors; i++) {
		const struct cr_stats_tensor *t = &s->tensors[i];
		int want = strstr(t->t->name, "experts.1.") || strstr(t->t->name, "experts.3.");
		int got = t->pairs[0].status == CR_STATS_OK;
		ck_assert_msg(got == want, "%s: %s", t->t->name, cr_stats_status_name(t->pairs[0].status));
		ck_assert_msg(got || t->pairs[0].status == CR_STATS_IDENTICAL, "%s", t->t->name);
		if (got)
			ck_assert_msg(t->pairs[0].rel > 0.01, "%s: rel %g", t->t->name, t->pairs[0].rel);
		changed += got;
	}
	ck_assert_uint_gt(changed, 0);
	cr_stats_free(s);
	cr_ckpt_close(code);
	cr_ckpt_close(bc);
}
END_TEST

/* Sums reduce in chunk order: 1 and 2 threads give the same bits. */
START_TEST(threads_do_not_change_results)
{
	struct cr_ckpt *bc = open_path(fixture("models/dsv3/v3-base"));
	struct cr_ckpt *ps[2] = { open_path(fixture("models/dsv3/r1")), open_path(fixture("models/dsv3/r1-0528")) };
	struct cr_stats_options o1 = { .threads = 1, .chunk_elems = 1024 }, o2 = { .threads = 2, .chunk_elems = 1024 };
	struct cr_stats *a = scan(bc, ps, 2, &o1), *b = scan(bc, ps, 2, &o2);
	for (size_t i = 0; i < a->ntensors; i++) {
		ck_assert_uint_eq(a->tensors[i].agree, b->tensors[i].agree);
		for (size_t k = 0; k < 2; k++) {
			const struct cr_stats_sums *x = &a->tensors[i].pairs[k].s, *y = &b->tensors[i].pairs[k].s;
			ck_assert_msg(x->sum_dd == y->sum_dd && x->sum_bb == y->sum_bb && x->sum_pb == y->sum_pb &&
					      x->sum_pp == y->sum_pp && x->sum_absd == y->sum_absd &&
					      x->base_sq == y->base_sq && x->max_absd == y->max_absd &&
					      x->hist_width == y->hist_width &&
					      memcmp(x->hist, y->hist, sizeof x->hist) == 0,
				      "%s: 1 and 2 threads differ", a->tensors[i].t->name);
		}
	}
	cr_stats_free(a);
	cr_stats_free(b);
	cr_ckpt_close(ps[0]);
	cr_ckpt_close(ps[1]);
	cr_ckpt_close(bc);
}
END_TEST

/* ---- cancellation and callbacks ---- */

struct counter {
	int calls, cancel_after;
	uint64_t last_done;
	size_t tensors_seen;
};

static int count_progress(const struct cr_stats_progress *p, void *user)
{
	struct counter *c = user;
	ck_assert(p->bytes_done >= c->last_done && p->bytes_done <= p->bytes_total);
	ck_assert(p->tensors_done <= p->tensors_total);
	c->last_done = p->bytes_done;
	return ++c->calls > c->cancel_after;
}

static void count_tensor(const struct cr_stats *s, const struct cr_stats_tensor *t, void *user)
{
	struct counter *c = user;
	ck_assert(t->done);
	for (size_t k = 0; k < s->nparents; k++)
		ck_assert(t->pairs[k].status != CR_STATS_PENDING);
	c->tensors_seen++;
}

START_TEST(cancel_stops_the_scan)
{
	struct cr_ckpt *bc = open_path(fixture("models/dsv3/v3-base")), *r1 = open_path(fixture("models/dsv3/r1"));
	struct counter c = { .cancel_after = 2 };
	struct cr_stats_options o = { .threads = 2, .chunk_elems = 1024, .progress = count_progress,
				      .on_tensor = count_tensor, .user = &c };
	struct cr_stats *s;
	cr_error err;
	ck_assert_int_eq(cr_stats_scan(bc, (const struct cr_ckpt *const *)&r1, 1, &o, &s, &err), -1);
	ck_assert_int_eq(err.code, CR_E_CANCELLED);
	ck_assert_int_eq(c.calls, 3);
	size_t done = 0;
	for (size_t i = 0; i < s->ntensors; i++)
		done += s->tensors[i].done;
	ck_assert_uint_eq(done, c.tensors_seen);
	ck_assert_msg(done < s->ntensors, "cancelled scan finished every tensor");
	uint64_t total = 0;
	for (size_t i = 0; i < bc->ntensors; i++)
		total += bc->tensors[i].nbytes;
	ck_assert_uint_lt(s->bytes_read, total);
	cr_stats_free(s);

	/* cancelled before any read */
	c = (struct counter){ .cancel_after = 0 };
	ck_assert_int_eq(cr_stats_scan(bc, (const struct cr_ckpt *const *)&r1, 1, &o, &s, &err), -1);
	ck_assert_uint_eq(s->bytes_read, 0);
	cr_stats_free(s);

	/* not cancelled: every tensor reported once */
	c = (struct counter){ .cancel_after = 1 << 30 };
	s = scan(bc, &r1, 1, &o);
	ck_assert_uint_eq(c.tensors_seen, bc->ntensors);
	ck_assert_uint_eq(c.last_done, s->bytes_read);
	cr_stats_free(s);
	cr_ckpt_close(r1);
	cr_ckpt_close(bc);
}
END_TEST

/* ---- small checkpoints written here ---- */

static char *tmpdir(void)
{
	char *d = strdup("/tmp/crucible-stats-XXXXXX");
	ck_assert(mkdtemp(d) != NULL);
	return d;
}

static void rm_rf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

struct wt {
	const char *name;
	enum cr_dtype dt;
	int ndim;
	uint64_t shape[2];
	const void *data;
};

static void write_st(const char *path, const struct wt *t, size_t n)
{
	struct cr_st_entry plan[16];
	for (size_t i = 0; i < n; i++)
		plan[i] = (struct cr_st_entry){ t[i].name, t[i].dt, t[i].ndim, t[i].shape };
	struct cr_st_writer *w;
	cr_error err;
	ck_assert_msg(cr_st_writer_open(path, plan, n, NULL, 0, &w, &err) == 0, "%s", err.msg);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(cr_st_writer_write(w, i, 0, t[i].data, cr_st_writer_nbytes(w, i), &err) == 0, "%s",
			      err.msg);
	ck_assert_msg(cr_st_writer_finish(w, &err) == 0, "%s", err.msg);
}

static const struct cr_stats_tensor *by_name(const struct cr_stats *s, const struct cr_ckpt *bc, const char *name)
{
	const struct cr_tensor *t = cr_ckpt_find(bc, name);
	ck_assert_msg(t != NULL, "%s", name);
	return &s->tensors[t - bc->tensors];
}

START_TEST(missing_shape_dtype_and_extra)
{
	char *d = tmpdir(), pb[4200], pp[4200];
	float a[32], a2[32], b3[3] = { 1, 2, 3 }, b4[4] = { 1, 2, 3, 4 };
	int32_t c4[4] = { 1, 2, 3, 4 }, c4b[4] = { 1, 2, 3, 5 };
	for (int i = 0; i < 32; i++) {
		a[i] = (float)i - 10;
		a2[i] = a[i] + (i % 3 == 0 ? 0.5f : 0.0f);
	}
	struct wt base[] = { { "a", CR_DT_F32, 2, { 4, 8 }, a },
			     { "b", CR_DT_F32, 1, { 3 }, b3 },
			     { "c", CR_DT_I32, 1, { 4 }, c4 },
			     { "gone", CR_DT_F32, 1, { 3 }, b3 } };
	struct wt par[] = { { "a", CR_DT_F32, 2, { 4, 8 }, a2 },
			    { "b", CR_DT_F32, 1, { 4 }, b4 },
			    { "c", CR_DT_I32, 1, { 4 }, c4b },
			    { "new", CR_DT_F32, 1, { 3 }, b3 } };
	snprintf(pb, sizeof pb, "%s/base.safetensors", d);
	snprintf(pp, sizeof pp, "%s/parent.safetensors", d);
	write_st(pb, base, 4);
	write_st(pp, par, 4);
	struct cr_ckpt *bc = open_path(pb), *pc = open_path(pp);
	struct cr_stats *s = scan(bc, &pc, 1, NULL);
	const struct cr_stats_tensor *t = by_name(s, bc, "a");
	ck_assert_int_eq(t->pairs[0].status, CR_STATS_OK);
	check_pair(bc, pc, t, 0);
	t = by_name(s, bc, "b");
	ck_assert_int_eq(t->pairs[0].status, CR_STATS_SHAPE);
	ck_assert_msg(t->pairs[0].note && strstr(t->pairs[0].note, "'b'") && strstr(t->pairs[0].note, "[4]") &&
			      strstr(t->pairs[0].note, "[3]"),
		      "note: %s", t->pairs[0].note);
	t = by_name(s, bc, "c");
	ck_assert_int_eq(t->pairs[0].status, CR_STATS_UNSUPPORTED);
	ck_assert_msg(t->pairs[0].note && strstr(t->pairs[0].note, "I32"), "note: %s", t->pairs[0].note);
	t = by_name(s, bc, "gone");
	ck_assert_int_eq(t->pairs[0].status, CR_STATS_MISSING);
	ck_assert_msg(t->pairs[0].note && strstr(t->pairs[0].note, "'gone'") && strstr(t->pairs[0].note, pp), "note: %s",
		      t->pairs[0].note);
	ck_assert_uint_eq(s->nextra, 1);
	ck_assert_str_eq(s->extra[0].name, "new");
	ck_assert_uint_eq(s->extra[0].parent, 0);
	/* aggregates count only computed pairs, and the skipped ones apart */
	struct cr_stats_agg *g;
	size_t ng = cr_stats_aggregate(s, 0, CR_GROUP_ALL, &g);
	ck_assert_uint_eq(ng, 1);
	ck_assert_uint_eq(g[0].tensors, 1);
	ck_assert_uint_eq(g[0].skipped, 3);
	near(g[0].rel, by_name(s, bc, "a")->pairs[0].rel, 1e-15, "rel", "ALL");
	free(g);
	cr_stats_free(s);
	cr_ckpt_close(pc);
	cr_ckpt_close(bc);
	rm_rf(d);
	free(d);
}
END_TEST

/* NaN/Inf, zero deltas, histogram edges, and FP8 with equal bytes but other
 * scales (not identical), against the naive loop. */
START_TEST(edge_values)
{
	char *d = tmpdir(), pb[4200], pp[4200], pq[4200];
	float b[12] = { 0, 0, 0, 0, 0, 0, 0, 1, NAN, 2, INFINITY, 3 };
	float p[12] = { -2, -1, -0.5f, 0, 0.25f, 1, 2, 1, 1, NAN, 1, -INFINITY };
	float q[12] = { 2, -1, 0.5f, 0, -0.25f, 1, 2, 1, 1, 1, 1, 1 };
	uint8_t w8[200 * 130];
	float sb[2 * 2] = { 0.01f, 0.02f, 0.03f, 0.04f }, sp[4] = { 0.02f, 0.04f, 0.06f, 0.08f };
	for (size_t i = 0; i < sizeof w8; i++)
		w8[i] = (uint8_t)((i * 37 + 11) & 0xff);
	struct wt base[] = { { "v", CR_DT_F32, 1, { 12 }, b },
			     { "w", CR_DT_F8_E4M3, 2, { 200, 130 }, w8 },
			     { "w_scale_inv", CR_DT_F32, 2, { 2, 2 }, sb } };
	struct wt par[] = { { "v", CR_DT_F32, 1, { 12 }, p },
			    { "w", CR_DT_F8_E4M3, 2, { 200, 130 }, w8 },
			    { "w_scale_inv", CR_DT_F32, 2, { 2, 2 }, sp } };
	struct wt par2[] = { { "v", CR_DT_F32, 1, { 12 }, q },
			     { "w", CR_DT_F8_E4M3, 2, { 200, 130 }, w8 },
			     { "w_scale_inv", CR_DT_F32, 2, { 2, 2 }, sb } };
	snprintf(pb, sizeof pb, "%s/base.safetensors", d);
	snprintf(pp, sizeof pp, "%s/p.safetensors", d);
	snprintf(pq, sizeof pq, "%s/q.safetensors", d);
	write_st(pb, base, 3);
	write_st(pp, par, 3);
	write_st(pq, par2, 3);
	struct cr_ckpt *bc = open_path(pb), *pcs[2] = { open_path(pp), open_path(pq) };
	ck_assert_msg(cr_ckpt_find(bc, "w")->scale != NULL, "scale not folded");
	struct cr_stats *s = scan(bc, pcs, 2, NULL);
	const struct cr_stats_tensor *v = by_name(s, bc, "v"), *w = by_name(s, bc, "w");
	for (size_t k = 0; k < 2; k++) {
		check_pair(bc, pcs[k], v, k);
		check_pair(bc, pcs[k], w, k);
	}
	check_agree(bc, pcs, 2, v);
	check_agree(bc, pcs, 2, w);
	ck_assert_uint_eq(v->pairs[0].s.nan, 1);
	ck_assert_uint_eq(v->pairs[0].s.inf, 1);
	ck_assert_uint_eq(v->pairs[0].s.n, 8);
	ck_assert(v->pairs[0].max_abs == 2);
	ck_assert_uint_eq(v->pairs[0].s.hist[CR_STATS_HIST_SIDE], 2); /* two exact zeros */
	/* same bytes, doubled scales: P = 2B, so D = B and rel = 1 */
	ck_assert_int_eq(w->pairs[0].status, CR_STATS_OK);
	ck_assert_msg(fabs(w->pairs[0].rel - 1) < 1e-6, "rel %g", w->pairs[0].rel);
	ck_assert_int_eq(w->pairs[1].status, CR_STATS_IDENTICAL);
	/* one parent changed, the other identical: nothing can conflict */
	ck_assert_uint_eq(w->agree, w->agree_n);
	/* elements 0, 2 and 4 have opposite deltas in p and q */
	ck_assert_uint_eq(v->agree, 12 - 3);
	cr_stats_free(s);
	cr_ckpt_close(pcs[0]);
	cr_ckpt_close(pcs[1]);
	cr_ckpt_close(bc);
	rm_rf(d);
	free(d);
}
END_TEST

/* ---- the cache ---- */

static void copy_file(const char *from, const char *to)
{
	char cmd[9000];
	snprintf(cmd, sizeof cmd, "cp -p '%s' '%s'", from, to);
	ck_assert_int_eq(system(cmd), 0);
}

static void same_sums(const struct cr_stats *a, const struct cr_stats *b)
{
	ck_assert_uint_eq(a->ntensors, b->ntensors);
	for (size_t i = 0; i < a->ntensors; i++) {
		ck_assert_uint_eq(a->tensors[i].agree, b->tensors[i].agree);
		ck_assert_uint_eq(a->tensors[i].agree_n, b->tensors[i].agree_n);
		for (size_t k = 0; k < a->nparents; k++) {
			const struct cr_stats_pair *x = &a->tensors[i].pairs[k], *y = &b->tensors[i].pairs[k];
			ck_assert_int_eq(x->status, y->status);
			ck_assert_msg(memcmp(&x->s, &y->s, sizeof x->s) == 0, "%s: sums differ", a->tensors[i].t->name);
			ck_assert(x->rel == y->rel && x->cosine == y->cosine);
		}
	}
}

START_TEST(cache_second_scan_reads_nothing)
{
	char *d = tmpdir(), cdir[4200];
	snprintf(cdir, sizeof cdir, "%s/cache", d);
	struct cr_ckpt *bc = open_path(fixture("models/dsv3/v3-base"));
	struct cr_ckpt *ps[2] = { open_path(fixture("models/dsv3/r1")), open_path(fixture("models/dsv3/r1-0528")) };
	struct cr_stats_cache cache;
	cr_error err;
	ck_assert_msg(cr_stats_cache_file_open(cdir, &cache, &err) == 0, "%s", err.msg);
	struct cr_stats_options o = { .threads = 2, .cache = &cache };
	struct cr_stats *a = scan(bc, ps, 2, &o);
	ck_assert_uint_gt(a->bytes_read, 0);
	ck_assert_uint_eq(a->tensors_computed, bc->ntensors);
	cr_stats_cache_close(&cache);

	/* a new cache object on the same folder: loaded from disk */
	ck_assert_msg(cr_stats_cache_file_open(cdir, &cache, &err) == 0, "%s", err.msg);
	struct cr_stats *b = scan(bc, ps, 2, &o);
	ck_assert_uint_eq(b->bytes_read, 0);
	ck_assert_uint_eq(b->tensors_computed, 0);
	ck_assert_uint_eq(b->tensors_cached, bc->ntensors);
	for (size_t i = 0; i < b->ntensors; i++)
		for (size_t k = 0; k < 2; k++)
			ck_assert(b->tensors[i].pairs[k].cached);
	same_sums(a, b);
	cr_stats_free(b);

	/* one parent alone: pair records hit, no agreement needed */
	b = scan(bc, ps, 1, &o);
	ck_assert_uint_eq(b->bytes_read, 0);
	cr_stats_free(b);
	/* parents swapped: pairs hit, but the agreement record is keyed by the
	 * parent list, so this one must be computed (all parents read) */
	struct cr_ckpt *sw[2] = { ps[1], ps[0] };
	b = scan(bc, sw, 2, &o);
	ck_assert_uint_gt(b->bytes_read, 0);
	for (size_t i = 0; i < b->ntensors; i++)
		ck_assert_uint_eq(b->tensors[i].agree, a->tensors[i].agree);
	cr_stats_free(b);
	cr_stats_cache_close(&cache);
	cr_stats_free(a);
	cr_ckpt_close(ps[0]);
	cr_ckpt_close(ps[1]);
	cr_ckpt_close(bc);
	rm_rf(d);
	free(d);
}
END_TEST

/* The honest check: garble a parent's tensor data behind the cache's back
 * (same size, header and mtime).  A cached scan still gives the old numbers,
 * which it could not if it read the data; once the mtime changes the cache
 * misses and the garbled data shows. */
START_TEST(cache_is_keyed_by_file_identity)
{
	char *d = tmpdir(), cdir[4200], pdir[4200], pfile[4300];
	snprintf(cdir, sizeof cdir, "%s/cache", d);
	snprintf(pdir, sizeof pdir, "%s/code", d);
	snprintf(pfile, sizeof pfile, "%s/model.safetensors", pdir);
	ck_assert_int_eq(mkdir(pdir, 0755), 0);
	char from[4200];
	snprintf(from, sizeof from, "%s/model.safetensors", fixture("models/mixtral/code"));
	copy_file(from, pfile);
	snprintf(from, sizeof from, "%s/config.json", fixture("models/mixtral/code"));
	copy_file(from, pdir);

	struct cr_ckpt *bc = open_path(fixture("models/mixtral/base")), *pc = open_path(pdir);
	struct cr_stats_cache cache;
	cr_error err;
	ck_assert_msg(cr_stats_cache_file_open(cdir, &cache, &err) == 0, "%s", err.msg);
	struct cr_stats_options o = { .threads = 2, .cache = &cache };
	struct cr_stats *a = scan(bc, &pc, 1, &o);
	cr_ckpt_close(pc);

	/* overwrite the data of an expert that differs, keep size and mtime */
	struct stat st0;
	ck_assert_int_eq(stat(pfile, &st0), 0);
	pc = open_path(pdir);
	const struct cr_tensor *t = cr_ckpt_find(pc, "model.layers.0.block_sparse_moe.experts.1.w1.weight");
	ck_assert(t != NULL);
	uint64_t off = pc->shards[t->shard]->data_start + t->st->begin;
	size_t n = (size_t)t->nbytes;
	cr_ckpt_close(pc);
	FILE *f = fopen(pfile, "r+b");
	ck_assert(f != NULL);
	ck_assert(fseeko(f, (off_t)off, SEEK_SET) == 0);
	uint8_t *junk = malloc(n);
	for (size_t i = 0; i < n; i++)
		junk[i] = (uint8_t)(i * 7);
	ck_assert_uint_eq(fwrite(junk, 1, n, f), n);
	fclose(f);
	free(junk);
	struct timespec ts[2] = { st0.st_atim, st0.st_mtim };
	ck_assert_int_eq(utimensat(AT_FDCWD, pfile, ts, 0), 0);

	pc = open_path(pdir);
	struct cr_stats *b = scan(bc, &pc, 1, &o);
	ck_assert_uint_eq(b->bytes_read, 0);
	same_sums(a, b);
	cr_stats_free(b);
	cr_ckpt_close(pc);

	/* a new mtime: the records of that file no longer match */
	ts[1].tv_sec += 10;
	ck_assert_int_eq(utimensat(AT_FDCWD, pfile, ts, 0), 0);
	pc = open_path(pdir);
	b = scan(bc, &pc, 1, &o);
	ck_assert_uint_gt(b->bytes_read, 0);
	const struct cr_stats_tensor *ta = by_name(a, bc, "model.layers.0.block_sparse_moe.experts.1.w1.weight");
	const struct cr_stats_tensor *tb = by_name(b, bc, "model.layers.0.block_sparse_moe.experts.1.w1.weight");
	ck_assert_msg(ta->pairs[0].s.sum_dd != tb->pairs[0].s.sum_dd, "garbled data not seen");
	check_pair(bc, pc, tb, 0);
	cr_stats_free(b);
	cr_stats_free(a);
	cr_ckpt_close(pc);
	cr_stats_cache_close(&cache);

	/* a damaged cache file is ignored, not trusted */
	char cmd[9000];
	snprintf(cmd, sizeof cmd, "for f in '%s'/*.bin; do head -c 100 \"$f\" > \"$f.x\" && mv \"$f.x\" \"$f\"; done", cdir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_msg(cr_stats_cache_file_open(cdir, &cache, &err) == 0, "%s", err.msg);
	pc = open_path(pdir);
	b = scan(bc, &pc, 1, &o);
	ck_assert_uint_gt(b->bytes_read, 0);
	check_pair(bc, pc, by_name(b, bc, "model.layers.0.block_sparse_moe.experts.1.w1.weight"), 0);
	cr_stats_free(b);
	cr_ckpt_close(pc);
	cr_stats_cache_close(&cache);
	cr_ckpt_close(bc);
	rm_rf(d);
	free(d);
}
END_TEST

/* Without histograms: the same statistics, no bins; and a cached record
 * without bins does not serve a scan that wants them. */
START_TEST(skip_histograms)
{
	char *d = tmpdir();
	struct cr_ckpt *bc = open_path(fixture("models/dsv3/v3-base"));
	struct cr_ckpt *ps[2] = { open_path(fixture("models/dsv3/r1")), open_path(fixture("models/dsv3/r1-0528")) };
	struct cr_stats_cache cache;
	cr_error err;
	ck_assert_msg(cr_stats_cache_file_open(d, &cache, &err) == 0, "%s", err.msg);
	struct cr_stats_options o = { .threads = 2, .chunk_elems = 2048, .skip_histograms = 1, .cache = &cache };
	struct cr_stats *s = scan(bc, ps, 2, &o);
	size_t nohist = 0;
	for (size_t i = 0; i < s->ntensors; i++) {
		for (size_t k = 0; k < 2; k++) {
			const struct cr_stats_pair *p = &s->tensors[i].pairs[k];
			check_pair(bc, ps[k], &s->tensors[i], k);
			ck_assert_int_eq(p->s.has_hist, p->status == CR_STATS_IDENTICAL);
			nohist += !p->s.has_hist;
			for (int b = 0; b < CR_STATS_HIST_BINS && !p->s.has_hist; b++)
				ck_assert_uint_eq(p->s.hist[b], 0);
		}
		check_agree(bc, ps, 2, &s->tensors[i]);
	}
	ck_assert_uint_gt(nohist, 0);
	cr_stats_free(s);
	s = scan(bc, ps, 2, &o); /* cached */
	ck_assert_uint_eq(s->bytes_read, 0);
	cr_stats_free(s);
	o.skip_histograms = 0;
	s = scan(bc, ps, 2, &o); /* wants bins: the records without them miss */
	ck_assert_uint_gt(s->bytes_read, 0);
	for (size_t i = 0; i < s->ntensors; i++)
		for (size_t k = 0; k < 2; k++) {
			ck_assert(s->tensors[i].pairs[k].s.has_hist);
			check_pair(bc, ps[k], &s->tensors[i], k);
		}
	cr_stats_free(s);
	o.skip_histograms = 1;
	s = scan(bc, ps, 2, &o); /* records with bins serve a scan without */
	ck_assert_uint_eq(s->bytes_read, 0);
	cr_stats_free(s);
	cr_stats_cache_close(&cache);
	cr_ckpt_close(ps[0]);
	cr_ckpt_close(ps[1]);
	cr_ckpt_close(bc);
	rm_rf(d);
	free(d);
}
END_TEST

static int only_experts(const struct cr_tensor *t, void *user)
{
	(void)user;
	return t->cls == CR_CLASS_ROUTED_EXPERT;
}

START_TEST(select_scans_only_selected)
{
	struct cr_ckpt *bc = open_path(fixture("models/dsv3/v3-base")), *r1 = open_path(fixture("models/dsv3/r1"));
	struct cr_stats_options o = { .select = only_experts };
	struct cr_stats *s = scan(bc, &r1, 1, &o);
	uint64_t want = 0;
	size_t n = 0;
	for (size_t i = 0; i < s->ntensors; i++) {
		const struct cr_stats_tensor *t = &s->tensors[i];
		int sel = t->t->cls == CR_CLASS_ROUTED_EXPERT;
		ck_assert_int_eq(t->done, sel);
		ck_assert_int_eq(t->pairs[0].status == CR_STATS_PENDING, !sel);
		if (sel) {
			const struct cr_tensor *pt = cr_ckpt_find(r1, t->t->name);
			want += t->t->nbytes + pt->nbytes;
			want += t->t->scale ? cr_st_tensor_nbytes(t->t->scale) : 0;
			want += pt->scale ? cr_st_tensor_nbytes(pt->scale) : 0;
			n++;
		}
	}
	ck_assert_uint_eq(s->tensors_selected, n);
	ck_assert_uint_eq(s->bytes_read, want);
	cr_stats_free(s);
	cr_ckpt_close(r1);
	cr_ckpt_close(bc);
}
END_TEST

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, dsv3_every_statistic);
	tcase_add_test(tc, llama_every_statistic);
	tcase_add_test(tc, mixtral_every_statistic);
	tcase_add_test(tc, dsv3_known_facts);
	tcase_add_test(tc, mixtral_code_changes_experts_1_and_3);
	tcase_add_test(tc, threads_do_not_change_results);
	tcase_add_test(tc, cancel_stops_the_scan);
	tcase_add_test(tc, missing_shape_dtype_and_extra);
	tcase_add_test(tc, edge_values);
	tcase_add_test(tc, cache_second_scan_reads_nothing);
	tcase_add_test(tc, cache_is_keyed_by_file_identity);
	tcase_add_test(tc, select_scans_only_selected);
	tcase_add_test(tc, skip_histograms);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(stats_suite());
}
