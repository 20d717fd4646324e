/*
 * `crucible demo`: make (or reuse) the demo family in the cache folder and
 * open the workbench on it.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "crucible/demo.h"
#include "crucible/format.h"

static void demo_usage(FILE *out)
{
	fprintf(out, "usage: crucible demo [--dir DIR] [--force] [--no-open]\n"
		     "Make a small DeepSeek-V3-style family (FP8 experts; a base and two fine-tuned\n"
		     "parents) and open the workbench on it.\n"
		     "  --dir DIR   where to make it (default $XDG_CACHE_HOME/crucible/demo,\n"
		     "              or ~/.cache/crucible/demo); a complete family there is reused\n"
		     "  --force     make it again even if a complete one exists\n"
		     "  --no-open   only make it, then print the paths and a summary\n"
		     "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "force", no_argument, NULL, 'f' },
		{ "no-open", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_opt = NULL;
	int force = 0, open_it = 1, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "d:fnh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir_opt = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'n':
			open_it = 0;
			break;
		case 'h':
			demo_usage(stdout);
			return EXIT_OK;
		default:
			cli_error("demo: unknown or incomplete option '%s'", argv[optind - 1]);
			demo_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("demo: unexpected argument '%s'", argv[optind]);
		demo_usage(stderr);
		return EXIT_USAGE;
	}

	cr_error err;
	char *dir = dir_opt ? strdup(dir_opt) : cr_demo_default_dir(&err);
	if (!dir) {
		cli_error("demo: %s", err.msg);
		return EXIT_USAGE;
	}
	struct cr_demo_family fam;
	double t0 = now();
	if (cr_demo_prepare(dir, force ? CR_DEMO_FORCE : 0, &fam, &err) < 0) {
		cli_error("demo: %s", err.msg);
		free(dir);
		return EXIT_FAIL;
	}
	double secs = now() - t0;
	free(dir);

	if (!open_it) {
		char size[32];
		for (int m = 0; m < CR_DEMO__COUNT; m++)
			printf("%-8s %s  (%s: %s)\n", cr_demo_member_dir(m), fam.member[m], cr_demo_member_name(m),
			       cr_demo_member_desc(m));
		printf("demo: DeepSeek-V3-style family, %d layers (MTP included), %d routed experts, FP8 blocks; "
		       "%zu tensors and %s per model; %s in %.2f s\n",
		       fam.layers, fam.experts, fam.ntensors, cr_fmt_bytes(fam.bytes, size, sizeof size),
		       fam.reused ? "reused" : "generated", secs);
		cr_demo_family_free(&fam);
		return EXIT_OK;
	}
	char *targv[] = { "crucible", "--base", fam.member[CR_DEMO_BASE], fam.member[CR_DEMO_PARENT_A],
			  fam.member[CR_DEMO_PARENT_B], NULL };
	int rc = tui_main(5, targv);
	cr_demo_family_free(&fam);
	return rc;
}
