/* `crucible merge`: placeholder until its issue lands (replace this file). */
#include "config.h"

#include "cli.h"

int cmd_merge(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("merge: not implemented yet");
	return EXIT_FAIL;
}
