/*
 * `crucible merge RECIPE.yaml -o OUT`: load the recipe, build the plan and
 * run the engine, with a progress bar on a TTY; --dry-run prints the plan's
 * decisions per tensor class instead.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "crucible/engine.h"
#include "crucible/format.h"
#include "crucible/recipe.h"
#include "crucible/run_record.h"

static void merge_usage(FILE *out)
{
	fprintf(out,
		"usage: crucible merge RECIPE.yaml -o OUT [--threads N] [--dry-run] [--shard-size S]\n"
		"                      [--resume] [--force]\n"
		"  -o, --output OUT    output folder (written as OUT.partial, renamed when complete)\n"
		"  -j, --threads N     worker threads (default: all cores)\n"
		"  -n, --dry-run       print what each tensor class would get, write nothing\n"
		"  -s, --shard-size S  bytes per shard, e.g. 5GB (default), 500MB, 2GiB\n"
		"  -r, --resume        keep verified shards of an interrupted run in OUT.partial\n"
		"  -f, --force         replace an existing OUT\n"
		"      --no-record     do not record the run in the session database\n"
		"      --session ID    record the run in this session (default: a new session from the recipe)\n"
		"      --db PATH       session database (default $CRUCIBLE_DB, else $XDG_DATA_HOME/crucible/sessions.db)\n"
		"methods:\n");
	for (int m = 0; m < CR_M__COUNT; m++)
		fprintf(out, "  %-17s %s\n", cr_method_info(m)->name, cr_method_info(m)->desc);
	fprintf(out, "parameters:\n");
	for (int p = 0; p < CR_P__COUNT; p++)
		fprintf(out, "  %-17s %s (default %g)\n", cr_param_info(p)->name, cr_param_info(p)->desc,
			cr_param_info(p)->def);
	fprintf(out, "Exit status: 0 merged, 1 failed (reason on stderr), 2 usage error.\n");
}

static void warn_cb(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "crucible: warning: %s\n", msg);
}

static int progress_cb(void *ctx, const struct cr_merge_progress *p)
{
	cli_bar_draw(ctx, p->done, p->total, p->tensors_done, p->ntensors, p->tensor);
	return 0;
}

static void print_plan(const struct cr_plan *p)
{
	struct cr_plan_summary s;
	cr_plan_summarize(p, NULL, &s);
	printf("method %s, %zu tensors, %zu parents:\n", cr_method_info(p->method)->name, p->ntensors, p->nparents);
	for (size_t k = 0; k < p->nparents; k++)
		printf("  parent %zu%s: %s\n", k, k == 0 && p->has_base ? " (base)" : "", p->parent_path[k]);
	printf("%-14s %-16s %8s %12s\n", "class", "decision", "tensors", "bytes");
	uint64_t tb = 0;
	for (int c = 0; c < CR_CLASS__COUNT; c++)
		for (size_t j = 0; j < p->nparents + 2; j++) {
			if (!s.count[c][j])
				continue;
			char what[32], b[32];
			if (j < p->nparents)
				snprintf(what, sizeof what, "copy parent %zu", j);
			else
				snprintf(what, sizeof what, "%s", j == p->nparents ? "compute" : "pending (aoe δ)");
			cr_fmt_bytes(s.bytes[c][j], b, sizeof b);
			printf("%-14s %-16s %8llu %12s\n", cr_class_name(c), what, (unsigned long long)s.count[c][j], b);
			tb += s.bytes[c][j];
		}
	char b[32];
	cr_fmt_bytes(tb, b, sizeof b);
	printf("total output %s\n", b);
}

/* ---- recording the run in the session store (issue 5) ---- */

/* Open the store and begin a run for this recipe: in session `session` (an id
 * or a name), else in a new session made from the recipe.  A store that
 * cannot be used is a warning: the merge matters more than its record. */
static struct cr_store *record_begin(const char *db, const char *session, const char *recipe_path, const char *out,
				     struct cr_run_record *rec)
{
	cr_error err = { 0 };
	struct cr_store *st = NULL;
	int64_t sid = 0;
	char *text = NULL, *dir = NULL;
	FILE *f = fopen(recipe_path, "rb");
	size_t len = 0, cap = 0;
	if (f) {
		size_t n;
		do {
			text = cr_xrealloc(text, (cap += 65536) + 1);
			n = fread(text + len, 1, cap - len, f);
			len += n;
		} while (n > 0 && len == cap);
		fclose(f);
		text[len] = '\0';
	}
	if (!text) {
		cli_error("warning: %s: cannot read the recipe again; the run is not recorded", recipe_path);
		return NULL;
	}
	char *real = realpath(recipe_path, NULL);
	dir = cr_xstrdup(real ? real : recipe_path);
	free(real);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	if (cr_store_open(db, &st, &err) < 0 ||
	    (session ? cr_store_session_find(st, session, &sid, &err)
		     : cr_store_session_import(st, text, len, recipe_path, NULL, &sid, &err)) < 0 ||
	    cr_run_record_begin(rec, st, sid, text, dir, out, &err) < 0) {
		cli_error("warning: %s; the run is not recorded (use --no-record to skip recording)", err.msg);
		cr_store_close(st);
		st = NULL;
	} else if (isatty(2)) {
		fprintf(stderr, "recording as run %lld of session %lld\n", (long long)rec->run, (long long)sid);
	}
	free(text);
	free(dir);
	return st;
}

int cmd_merge(int argc, char **argv)
{
	static const struct option opts[] = { { "output", required_argument, NULL, 'o' },
					      { "threads", required_argument, NULL, 'j' },
					      { "dry-run", no_argument, NULL, 'n' },
					      { "shard-size", required_argument, NULL, 's' },
					      { "resume", no_argument, NULL, 'r' },
					      { "force", no_argument, NULL, 'f' },
					      { "help", no_argument, NULL, 'h' },
					      { "no-record", no_argument, NULL, 'R' },
					      { "session", required_argument, NULL, 'S' },
					      { "db", required_argument, NULL, 'D' },
					      { NULL, 0, NULL, 0 } };
	const char *out = NULL, *db = NULL, *session = NULL;
	int no_record = 0;
	int threads = 0, dry = 0, resume = 0, force = 0, ch;
	uint64_t shard = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:j:ns:rfh", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'j': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1024) {
				cli_error("merge: --threads wants a number from 1 to 1024, got '%s'", optarg);
				return EXIT_USAGE;
			}
			threads = (int)v;
			break;
		}
		case 'n':
			dry = 1;
			break;
		case 's':
			if (cr_parse_size(optarg, &shard) < 0) {
				cli_error("merge: --shard-size wants a size such as 5GB or 500MB, got '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'r':
			resume = 1;
			break;
		case 'f':
			force = 1;
			break;
		case 'h':
			merge_usage(stdout);
			return EXIT_OK;
		case 'R':
			no_record = 1;
			break;
		case 'S':
			session = optarg;
			break;
		case 'D':
			db = optarg;
			break;
		default:
			merge_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || (!out && !dry)) {
		cli_error("merge: need one RECIPE.yaml and -o OUT (see 'crucible merge --help')");
		return EXIT_USAGE;
	}
	cr_error err;
	cr_error_clear(&err);
	struct cr_recipe *r = NULL;
	struct cr_plan *p = NULL;
	if (cr_recipe_load(argv[optind], &r, warn_cb, NULL, &err) < 0 || cr_plan_build(r, &p, warn_cb, NULL, &err) < 0) {
		cli_error("%s", err.msg);
		cr_recipe_free(r);
		return EXIT_FAIL;
	}
	int rc = EXIT_OK;
	if (dry) {
		print_plan(p);
	} else {
		struct cli_bar b;
		cli_bar_start(&b);
		char *yaml = cr_recipe_to_yaml(r);
		struct cr_merge_opts mo = { .out = out,
					    .shard_size = shard,
					    .threads = threads,
					    .resume = resume,
					    .force = force,
					    .recipe_text = yaml,
					    .progress = progress_cb,
					    .warn = warn_cb,
					    .ctx = &b };
		/* Session store (issue 5): record the run unless --no-record. */
		struct cr_run_record rec = { .chain_progress = progress_cb, .chain_ctx = &b };
		struct cr_store *st = no_record ? NULL : record_begin(db, session, argv[optind], out, &rec);
		if (st) {
			mo.progress = cr_run_record_progress;
			mo.tensor_done = cr_run_record_tensor;
			mo.ctx = &rec;
		}
		struct cr_merge_result res;
		int mrc = cr_merge_run(p, &mo, &res, &err);
		if (st) {
			cr_error rerr = { 0 };
			/* After a failed merge its error is the one line to show (a full disk
			 * fails both); the run then reads as interrupted at the next open. */
			if (cr_run_record_end(&rec, mrc, &err, mrc == 0 ? &res : NULL, &rerr) < 0 && mrc == 0)
				cli_error("warning: %s", rerr.msg);
			cr_store_close(st);
		}
		cli_bar_clear(&b);
		if (mrc < 0) {
			cli_error("%s", err.msg);
			rc = EXIT_FAIL;
		} else {
			char bb[32];
			cr_fmt_bytes(res.bytes, bb, sizeof bb);
			if (b.tty)
				fprintf(stderr,
					"merged %zu tensors (%zu copied, %zu computed) into %s: %s in %zu shard%s, %.1f s\n",
					p->ntensors, res.copied, res.computed, out, bb, res.nshards,
					res.nshards == 1 ? "" : "s", cli_bar_elapsed(&b));
		}
		free(yaml);
	}
	cr_plan_free(p);
	cr_recipe_free(r);
	return rc;
}
