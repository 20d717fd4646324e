/*
 * `crucible diff BASE PARENT...`: difference statistics of each parent
 * against the base, per tensor or aggregated per layer x class or class,
 * as an aligned table, CSV or JSON.  The numbers come from the core's scan
 * (crucible/stats.h); this file only parses options and formats.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "progress.h"
#include "crucible/format.h"
#include "crucible/stats.h"
#include "crucible/store.h"

enum by { BY_TENSOR, BY_LAYER, BY_CLASS };
enum fmt { FMT_TABLE, FMT_CSV, FMT_JSON };

/* Per-pair columns: X(header, width, printf format, value expression on `p`). */
#define PAIR_COLUMNS(X)                                  \
	X("REL", 9, "%.6f", p->rel)                      \
	X("COS", 9, "%.6f", p->cosine)                   \
	X("MAX|D|", 10, "%.4g", p->max_abs)              \
	X("MEAN|D|", 10, "%.4g", p->mean_abs)            \
	X("|B|", 10, "%.4g", p->norm_base)               \
	X("|D|", 10, "%.4g", p->norm_delta)

/* Aggregate columns over a struct cr_stats_agg *g. */
#define AGG_COLUMNS(X)                                   \
	X("REL", 9, "%.6f", g->rel)                      \
	X("COS", 9, "%.6f", g->cosine)                   \
	X("MAX|D|", 10, "%.4g", g->max_abs)              \
	X("MEAN|D|", 10, "%.4g", g->mean_abs)            \
	X("|B|", 10, "%.4g", g->norm_base)               \
	X("|D|", 10, "%.4g", g->norm_delta)              \
	X("AGREE", 7, "%.4f", g->sign_agree)

struct diff_opts {
	struct cli_bar bar;
	enum by by;
	enum fmt fmt;
	int sort_rel;
	const char *filter;
	enum cr_class filter_class;
	int threads;
	int no_cache;
	const char *cache_dir;
	const char *db; /* session store holding the cache (issue 5) */
};

static void diff_usage(FILE *out)
{
	fprintf(out,
		"usage: crucible diff [OPTIONS] BASE PARENT...\n"
		"Per-tensor difference statistics of each parent against the base.\n"
		"  --by tensor|layer|class  one row per tensor (default), per layer x class, or per class\n"
		"  --csv, --json            machine-readable output instead of a table\n"
		"  --sort rel|name          largest rel (over the parents) first, or name order (default)\n"
		"  --filter SUBSTRING       only tensors whose name contains SUBSTRING\n"
		"  --filter class:NAME      only tensors of a class (embed, attn, norm, router, dense_mlp,\n"
		"                           shared_expert, routed_expert, head, mtp, other)\n"
		"  --threads N              worker threads (default: all cores)\n"
		"  --db PATH                session database that caches the statistics (default $CRUCIBLE_DB,\n"
		"                           else $XDG_DATA_HOME/crucible/sessions.db)\n"
		"  --cache DIR              cache in files under DIR instead of the session database\n"
		"  --no-cache               neither read nor write the cache\n"
		"Statistics: rel = |P-B|/|B| (Frobenius), cosine(P,B), max and mean |P-B|, and AGREE, the\n"
		"share of elements whose deltas have no opposite signs across the parents.  Tensors whose\n"
		"bytes equal the base's are marked identical.  Progress goes to stderr when it is a terminal.\n"
		"Exit status: 0 ok, 1 failure (reason on stderr), 2 usage error.\n");
}

static int select_tensor(const struct cr_tensor *t, void *user)
{
	const struct diff_opts *o = user;
	if (o->filter_class != CR_CLASS_NONE)
		return t->cls == o->filter_class;
	return !o->filter || strstr(t->name, o->filter) != NULL;
}

static int show_progress(const struct cr_stats_progress *p, void *user)
{
	struct diff_opts *o = user;
	cli_bar_draw(&o->bar, p->bytes_done, p->bytes_total, p->tensors_done, p->tensors_total, p->tensor);
	return 0;
}

/* ---- rows ---- */

static double max_rel(const struct cr_stats *s, const struct cr_stats_tensor *t)
{
	double m = -1;
	for (size_t i = 0; i < s->nparents; i++) {
		const struct cr_stats_pair *p = &t->pairs[i];
		if ((p->status == CR_STATS_OK || p->status == CR_STATS_IDENTICAL) && p->rel > m)
			m = p->rel;
	}
	return m;
}

static const struct cr_stats *sort_stats;
static int cmp_rel(const void *a, const void *b)
{
	const struct cr_stats_tensor *x = *(const struct cr_stats_tensor *const *)a;
	const struct cr_stats_tensor *y = *(const struct cr_stats_tensor *const *)b;
	double rx = max_rel(sort_stats, x), ry = max_rel(sort_stats, y);
	if (rx != ry)
		return rx > ry ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static const char *csv_field(const char *s, char *buf, size_t len)
{
	if (!strpbrk(s, ",\"\n"))
		return s;
	size_t k = 0;
	buf[k++] = '"';
	for (; *s && k + 3 < len; s++) {
		if (*s == '"')
			buf[k++] = '"';
		buf[k++] = *s;
	}
	buf[k++] = '"';
	buf[k] = 0;
	return buf;
}

static void print_num(enum fmt f, int width, const char *fmt, double v)
{
	char b[64];
	if (isnan(v))
		snprintf(b, sizeof b, "-");
	else
		snprintf(b, sizeof b, fmt, v);
	if (f == FMT_CSV)
		printf(",%s", isnan(v) ? "" : b);
	else
		printf(" %*s", width, b);
}

static void tensor_rows(const struct cr_stats *s, struct cr_stats_tensor **rows, size_t n, enum fmt f)
{
	char lay[16], cb[512];
	if (f == FMT_CSV) {
		printf("tensor,class,layer,parent,status");
#define X(h, w, fm, v) printf(",%s", h);
		PAIR_COLUMNS(X)
#undef X
		printf(",NAN,INF,AGREE\n");
	} else {
		printf("%-56s %-13s %5s %2s %-9s", "TENSOR", "CLASS", "LAYER", "P", "STATUS");
#define X(h, w, fm, v) printf(" %*s", w, h);
		PAIR_COLUMNS(X)
#undef X
		printf(" %6s %6s %7s\n", "NAN", "INF", "AGREE");
	}
	for (size_t r = 0; r < n; r++) {
		const struct cr_stats_tensor *t = rows[r];
		snprintf(lay, sizeof lay, "%d", t->t->layer);
		for (size_t i = 0; i < s->nparents; i++) {
			const struct cr_stats_pair *p = &t->pairs[i];
			int have = p->status == CR_STATS_OK || p->status == CR_STATS_IDENTICAL;
			if (f == FMT_CSV)
				printf("%s,%s,%s,%zu,%s", csv_field(t->t->name, cb, sizeof cb), cr_class_name(t->t->cls),
				       t->t->layer >= 0 ? lay : "", i + 1, cr_stats_status_name(p->status));
			else
				printf("%-56s %-13s %5s %2zu %-9s", t->t->name, cr_class_name(t->t->cls),
				       t->t->layer >= 0 ? lay : "-", i + 1, cr_stats_status_name(p->status));
#define X(h, w, fm, v) print_num(f, w, fm, have ? (v) : NAN);
			PAIR_COLUMNS(X)
#undef X
			print_num(f, 6, "%.0f", have ? (double)p->s.nan : NAN);
			print_num(f, 6, "%.0f", have ? (double)p->s.inf : NAN);
			print_num(f, 7, "%.4f", t->sign_agree);
			putchar('\n');
		}
	}
}

static void agg_rows(const struct cr_stats *s, enum by by, enum fmt f)
{
	enum cr_stats_group grp = by == BY_LAYER ? CR_GROUP_LAYER_CLASS : CR_GROUP_CLASS;
	if (f == FMT_CSV) {
		printf("layer,class,parent,tensors,identical");
#define X(h, w, fm, v) printf(",%s", h);
		AGG_COLUMNS(X)
#undef X
		putchar('\n');
	} else {
		printf("%5s %-13s %2s %7s %9s", "LAYER", "CLASS", "P", "TENSORS", "IDENTICAL");
#define X(h, w, fm, v) printf(" %*s", w, h);
		AGG_COLUMNS(X)
#undef X
		putchar('\n');
	}
	/* Group rows of every parent together: walk parent 0's groups. */
	struct cr_stats_agg **per = cr_xcalloc(s->nparents, sizeof *per);
	size_t *nper = cr_xcalloc(s->nparents, sizeof *nper);
	for (size_t i = 0; i < s->nparents; i++)
		nper[i] = cr_stats_aggregate(s, i, grp, &per[i]);
	for (size_t k = 0; s->nparents && k < nper[0]; k++) {
		for (size_t i = 0; i < s->nparents; i++) {
			const struct cr_stats_agg *a = NULL;
			for (size_t j = 0; j < nper[i]; j++)
				if (per[i][j].layer == per[0][k].layer && per[i][j].cls == per[0][k].cls)
					a = &per[i][j];
			if (!a || !a->tensors)
				continue;
			const struct cr_stats_agg *gg = a;
			char lay[16];
			snprintf(lay, sizeof lay, "%d", gg->layer);
			const char *ls = by == BY_CLASS ? "all" : gg->layer >= 0 ? lay : "-";
			if (f == FMT_CSV)
				printf("%s,%s,%zu,%zu,%zu", by == BY_CLASS ? "" : gg->layer >= 0 ? lay : "",
				       cr_class_name(gg->cls), i + 1, gg->tensors, gg->identical);
			else
				printf("%5s %-13s %2zu %7zu %9zu", ls, cr_class_name(gg->cls), i + 1, gg->tensors,
				       gg->identical);
#define X(h, w, fm, v)                                 \
	do {                                           \
		const struct cr_stats_agg *g = gg;     \
		print_num(f, w, fm, v);                \
	} while (0);
			AGG_COLUMNS(X)
#undef X
			putchar('\n');
		}
	}
	for (size_t i = 0; i < s->nparents; i++)
		free(per[i]);
	free(per);
	free(nper);
}

/* ---- JSON ---- */

static json_t *jnum(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *pair_json(const struct cr_stats_pair *p)
{
	json_t *o = json_object();
	json_object_set_new(o, "status", json_string(cr_stats_status_name(p->status)));
	if (p->note)
		json_object_set_new(o, "note", json_string(p->note));
	if (p->status != CR_STATS_OK && p->status != CR_STATS_IDENTICAL)
		return o;
	json_object_set_new(o, "identical", json_boolean(p->s.identical));
	json_object_set_new(o, "cached", json_boolean(p->cached));
	json_object_set_new(o, "rel", jnum(p->rel));
	json_object_set_new(o, "cosine", jnum(p->cosine));
	json_object_set_new(o, "max_abs", jnum(p->max_abs));
	json_object_set_new(o, "mean_abs", jnum(p->mean_abs));
	json_object_set_new(o, "norm_base", jnum(p->norm_base));
	json_object_set_new(o, "norm_delta", jnum(p->norm_delta));
	json_object_set_new(o, "elements", json_integer((json_int_t)p->s.nelem));
	json_object_set_new(o, "finite", json_integer((json_int_t)p->s.n));
	json_object_set_new(o, "nan", json_integer((json_int_t)p->s.nan));
	json_object_set_new(o, "inf", json_integer((json_int_t)p->s.inf));
	json_object_set_new(o, "base_nan", json_integer((json_int_t)p->s.base_nan));
	json_object_set_new(o, "base_inf", json_integer((json_int_t)p->s.base_inf));
	if (!p->s.has_hist)
		return o;
	json_t *h = json_object(), *edges = json_array(), *counts = json_array();
	double e[CR_STATS_HIST_BINS + 1];
	cr_stats_hist_edges(p->s.hist_width, e);
	for (int i = 0; i <= CR_STATS_HIST_BINS; i++)
		json_array_append_new(edges, json_real(e[i]));
	for (int i = 0; i < CR_STATS_HIST_BINS; i++)
		json_array_append_new(counts, json_integer((json_int_t)p->s.hist[i]));
	json_object_set_new(h, "width", json_real(p->s.hist_width));
	json_object_set_new(h, "edges", edges);
	json_object_set_new(h, "counts", counts);
	json_object_set_new(o, "histogram", h);
	return o;
}

static json_t *agg_json(const struct cr_stats_agg *g)
{
	json_t *o = json_object();
	json_object_set_new(o, "tensors", json_integer((json_int_t)g->tensors));
	json_object_set_new(o, "identical", json_integer((json_int_t)g->identical));
	json_object_set_new(o, "elements", json_integer((json_int_t)g->elements));
	json_object_set_new(o, "rel", jnum(g->rel));
	json_object_set_new(o, "cosine", jnum(g->cosine));
	json_object_set_new(o, "max_abs", jnum(g->max_abs));
	json_object_set_new(o, "mean_abs", jnum(g->mean_abs));
	json_object_set_new(o, "norm_base", jnum(g->norm_base));
	json_object_set_new(o, "norm_delta", jnum(g->norm_delta));
	json_object_set_new(o, "sign_agree", jnum(g->sign_agree));
	json_object_set_new(o, "nan", json_integer((json_int_t)g->nan));
	json_object_set_new(o, "inf", json_integer((json_int_t)g->inf));
	return o;
}

static void print_json(const struct cr_stats *s, const struct cr_ckpt *base, struct cr_ckpt **parents,
		       struct cr_stats_tensor **rows, size_t n, enum by by)
{
	json_t *o = json_object(), *ps = json_array();
	json_object_set_new(o, "base", json_string(base->path));
	for (size_t i = 0; i < s->nparents; i++)
		json_array_append_new(ps, json_string(parents[i]->path));
	json_object_set_new(o, "parents", ps);
	json_object_set_new(o, "by", json_string(by == BY_TENSOR ? "tensor" : by == BY_LAYER ? "layer" : "class"));
	if (by == BY_TENSOR) {
		json_t *arr = json_array();
		for (size_t r = 0; r < n; r++) {
			const struct cr_stats_tensor *t = rows[r];
			json_t *e = json_object(), *pa = json_array();
			char b[128];
			json_object_set_new(e, "name", json_string(t->t->name));
			json_object_set_new(e, "class", json_string(cr_class_name(t->t->cls)));
			json_object_set_new(e, "layer", t->t->layer >= 0 ? json_integer(t->t->layer) : json_null());
			json_object_set_new(e, "expert", t->t->expert >= 0 ? json_integer(t->t->expert) : json_null());
			json_object_set_new(e, "dtype", json_string(cr_dtype_name(t->t->dtype)));
			json_object_set_new(e, "shape", json_string(cr_fmt_shape(t->t->shape, t->t->ndim, b, sizeof b)));
			json_object_set_new(e, "sign_agree", jnum(t->sign_agree));
			for (size_t i = 0; i < s->nparents; i++)
				json_array_append_new(pa, pair_json(&t->pairs[i]));
			json_object_set_new(e, "parents", pa);
			json_array_append_new(arr, e);
		}
		json_object_set_new(o, "tensors", arr);
	} else {
		enum cr_stats_group g = by == BY_LAYER ? CR_GROUP_LAYER_CLASS : CR_GROUP_CLASS;
		json_t *arr = json_array();
		struct cr_stats_agg **per = cr_xcalloc(s->nparents, sizeof *per);
		size_t *nper = cr_xcalloc(s->nparents, sizeof *nper);
		for (size_t i = 0; i < s->nparents; i++)
			nper[i] = cr_stats_aggregate(s, i, g, &per[i]);
		for (size_t k = 0; s->nparents && k < nper[0]; k++) {
			json_t *e = json_object(), *pa = json_array();
			if (by == BY_LAYER)
				json_object_set_new(e, "layer",
						    per[0][k].layer >= 0 ? json_integer(per[0][k].layer) : json_null());
			json_object_set_new(e, "class", json_string(cr_class_name(per[0][k].cls)));
			for (size_t i = 0; i < s->nparents; i++) {
				const struct cr_stats_agg *a = NULL;
				for (size_t j = 0; j < nper[i]; j++)
					if (per[i][j].layer == per[0][k].layer && per[i][j].cls == per[0][k].cls)
						a = &per[i][j];
				json_array_append_new(pa, a ? agg_json(a) : json_null());
			}
			json_object_set_new(e, "parents", pa);
			json_array_append_new(arr, e);
		}
		for (size_t i = 0; i < s->nparents; i++)
			free(per[i]);
		free(per);
		free(nper);
		json_object_set_new(o, "groups", arr);
	}
	json_t *ex = json_array();
	for (size_t i = 0; i < s->nextra; i++) {
		json_t *e = json_object();
		json_object_set_new(e, "parent", json_integer((json_int_t)s->extra[i].parent + 1));
		json_object_set_new(e, "tensor", json_string(s->extra[i].name));
		json_array_append_new(ex, e);
	}
	json_object_set_new(o, "extra", ex);
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	fputc('\n', stdout);
	json_decref(o);
}

static int parse_args(int argc, char **argv, struct diff_opts *o)
{
	static const struct option opts[] = { { "by", required_argument, NULL, 'b' },
					      { "csv", no_argument, NULL, 'c' },
					      { "json", no_argument, NULL, 'j' },
					      { "sort", required_argument, NULL, 's' },
					      { "filter", required_argument, NULL, 'f' },
					      { "threads", required_argument, NULL, 't' },
					      { "cache", required_argument, NULL, 'C' },
					      { "no-cache", no_argument, NULL, 'n' },
					      { "db", required_argument, NULL, 'D' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	int ch;
	char *end;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "b:cjs:f:t:C:nD:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			if (strcmp(optarg, "tensor") == 0)
				o->by = BY_TENSOR;
			else if (strcmp(optarg, "layer") == 0)
				o->by = BY_LAYER;
			else if (strcmp(optarg, "class") == 0)
				o->by = BY_CLASS;
			else {
				cli_error("diff: --by takes tensor, layer or class, not '%s'", optarg);
				return -1;
			}
			break;
		case 'c': o->fmt = FMT_CSV; break;
		case 'j': o->fmt = FMT_JSON; break;
		case 's':
			if (strcmp(optarg, "rel") == 0)
				o->sort_rel = 1;
			else if (strcmp(optarg, "name") == 0)
				o->sort_rel = 0;
			else {
				cli_error("diff: --sort takes rel or name, not '%s'", optarg);
				return -1;
			}
			break;
		case 'f':
			if (strncmp(optarg, "class:", 6) == 0) {
				o->filter_class = cr_class_parse(optarg + 6);
				if (o->filter_class == CR_CLASS_NONE) {
					cli_error("diff: unknown tensor class '%s' in --filter", optarg + 6);
					return -1;
				}
			} else {
				o->filter = optarg;
			}
			break;
		case 't':
			errno = 0;
			o->threads = (int)strtol(optarg, &end, 10);
			if (errno || *end || o->threads < 1 || o->threads > 1024) {
				cli_error("diff: --threads takes a number from 1 to 1024, not '%s'", optarg);
				return -1;
			}
			break;
		case 'C': o->cache_dir = optarg; break;
		case 'n': o->no_cache = 1; break;
		case 'D': o->db = optarg; break;
		case 'h': diff_usage(stdout); return 1;
		default: return -1;
		}
	}
	if (argc - optind < 2) {
		cli_error("diff: need a base and at least one parent");
		return -1;
	}
	return 0;
}

int cmd_diff(int argc, char **argv)
{
	struct diff_opts o = { .filter_class = CR_CLASS_NONE };
	int r = parse_args(argc, argv, &o);
	if (r != 0) {
		if (r < 0)
			diff_usage(stderr);
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	}
	size_t np = (size_t)(argc - optind - 1);
	struct cr_ckpt *base = NULL, **parents = cr_xcalloc(np, sizeof *parents);
	struct cr_stats_cache cache = { 0 };
	struct cr_stats *s = NULL;
	cr_error err;
	int rc = EXIT_FAIL;

	if (cr_ckpt_open(argv[optind], &base, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	for (size_t i = 0; i < np; i++)
		if (cr_ckpt_open(argv[optind + 1 + i], &parents[i], &err) < 0) {
			cli_error("%s", err.msg);
			goto out;
		}
	/* The cache: the session store (issue 5), or files with --cache DIR. */
	if (!o.no_cache && (o.cache_dir ? cr_stats_cache_file_open(o.cache_dir, &cache, &err)
					 : cr_store_stats_cache_open(o.db, &cache, &err)) < 0) {
		cli_error("warning: %s; continuing without a cache", err.msg);
		cache.ops = NULL;
	}
	cli_bar_start(&o.bar);
	int tty = o.bar.tty;
	struct cr_stats_options so = {
		.threads = o.threads,
		.cache = cache.ops ? &cache : NULL,
		.select = select_tensor,
		.progress = tty ? show_progress : NULL,
		.user = &o,
		/* only the per-tensor JSON shows histograms */
		.skip_histograms = !(o.fmt == FMT_JSON && o.by == BY_TENSOR),
	};
	int sr = cr_stats_scan(base, (const struct cr_ckpt *const *)parents, np, &so, &s, &err);
	cli_bar_clear(&o.bar);
	if (sr < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	/* Problems with single tensors: one line each, then the report. */
	int failed = 0;
	for (size_t i = 0; i < s->ntensors; i++)
		for (size_t k = 0; k < np; k++) {
			const struct cr_stats_pair *p = &s->tensors[i].pairs[k];
			if (p->note)
				cli_error("%s: %s", p->status == CR_STATS_FAILED ? "error" : "warning", p->note);
			failed |= p->status == CR_STATS_FAILED;
		}
	for (size_t i = 0; i < s->nextra; i++)
		cli_error("warning: %s: tensor '%s' is not in the base; skipped", parents[s->extra[i].parent]->path,
			  s->extra[i].name);

	struct cr_stats_tensor **rows = cr_xcalloc(s->ntensors + 1, sizeof *rows);
	size_t nrows = 0;
	for (size_t i = 0; i < s->ntensors; i++)
		if (s->tensors[i].done)
			rows[nrows++] = &s->tensors[i];
	if (o.sort_rel) {
		sort_stats = s;
		qsort(rows, nrows, sizeof *rows, cmp_rel);
	}
	if (o.fmt == FMT_JSON) {
		print_json(s, base, parents, rows, nrows, o.by);
	} else {
		if (o.fmt == FMT_TABLE) {
			printf("base: %s\n", base->path);
			for (size_t i = 0; i < np; i++)
				printf("P%zu:   %s\n", i + 1, parents[i]->path);
			putchar('\n');
		}
		if (o.by == BY_TENSOR)
			tensor_rows(s, rows, nrows, o.fmt);
		else
			agg_rows(s, o.by, o.fmt);
	}
	free(rows);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("diff: cannot write the output: %s", strerror(errno));
		goto out;
	}
	rc = failed ? EXIT_FAIL : EXIT_OK;
out:
	cr_stats_free(s);
	if (cache.ops)
		cr_stats_cache_close(&cache);
	for (size_t i = 0; i < np; i++)
		cr_ckpt_close(parents[i]);
	free(parents);
	cr_ckpt_close(base);
	return rc;
}
