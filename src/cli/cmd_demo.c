/*
 * `crucible demo`: until the workbench lands, print the catalog of the
 * built-in demo family's base.
 */
#include "config.h"

#include <stdio.h>

#include "cli.h"

int cmd_demo(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("demo: the workbench is not built yet");
	return EXIT_FAIL;
}
