/*
 * crucible's entry point: dispatches to a subcommand from the CLI table.
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("crucible: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
#define X(name, fn, help) { #name, fn, help },
	CLI_COMMANDS(X)
#undef X
};

static void usage(FILE *out)
{
	fprintf(out, "usage: crucible [--base BASE PARENT...] [--session ID] [--theme NAME] [--ascii]\n"
		     "       crucible COMMAND [ARGS...]\n\n"
		     "A workbench for merging LLM checkpoints.  Without a command it opens the\n"
		     "workbench: on BASE and its PARENTs, on a saved session, or (no arguments)\n"
		     "on the sessions screen.  `crucible demo` opens it on a built-in example.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\n`crucible COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv)
{
	/* Past a file size limit (ulimit -f) writes must fail with EFBIG and be
	 * reported, not kill the process with SIGXFSZ and leave no message. */
	signal(SIGXFSZ, SIG_IGN);
	/* No subcommand (or only options): the workbench. */
	if (argc < 2 || (argv[1][0] == '-' && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0 &&
			 strcmp(argv[1], "--version") != 0 && strcmp(argv[1], "-V") != 0))
		return tui_main(argc, argv);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("crucible %s\n", PACKAGE_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	cli_error("unknown command '%s' (try 'crucible --help')", argv[1]);
	return EXIT_USAGE;
}
