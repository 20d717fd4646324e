/* The workbench entry point: placeholder until the TUI issue lands. */
#include "config.h"

#include "../cli/cli.h"

int tui_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("the workbench is not built yet; try 'crucible --help'");
	return EXIT_USAGE;
}
