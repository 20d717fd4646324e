/* The command-line front end: one function per subcommand. */
#ifndef CRUCIBLE_CLI_H
#define CRUCIBLE_CLI_H

/* Exit statuses shared by every subcommand. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* X(name, function, one-line summary) */
#define CLI_COMMANDS(X)                                                          \
	X(inspect, cmd_inspect, "summarize a checkpoint or .safetensors file")   \
	X(diff, cmd_diff, "per-tensor difference statistics of parents vs a base") \
	X(merge, cmd_merge, "run a merge recipe into an output folder")          \
	X(sessions, cmd_sessions, "list, show, export, replay and remove sessions") \
	X(demo, cmd_demo, "make a small DeepSeek-style family and open it")

#define X(name, fn, help) int fn(int argc, char **argv);
CLI_COMMANDS(X)
#undef X

/* The workbench (src/tui): `crucible [--base B P...] [--session ID]`. */
int tui_main(int argc, char **argv);

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
