/* `crucible diff`: placeholder until its issue lands (replace this file). */
#include "config.h"

#include "cli.h"

int cmd_diff(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("diff: not implemented yet");
	return EXIT_FAIL;
}
