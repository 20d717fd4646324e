/* `crucible sessions`: placeholder until its issue lands (replace this file). */
#include "config.h"

#include "cli.h"

int cmd_sessions(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("sessions: not implemented yet");
	return EXIT_FAIL;
}
