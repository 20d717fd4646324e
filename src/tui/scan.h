/* The start-up job: plan, then statistics scan, on the worker thread (scan.c). */
#ifndef CRUCIBLE_TUI_SCAN_H
#define CRUCIBLE_TUI_SCAN_H

struct app;
int scan_start(struct app *a);

#endif
