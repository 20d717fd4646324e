/*
 * Running the merge from the workbench: `m` asks for an output folder and
 * starts the engine on the worker thread with the session's current recipe;
 * the run is recorded in the session store (the worker has its own store
 * connection).  Progress shows in the panel's title and the status line.
 */
#ifndef CRUCIBLE_TUI_RUN_H
#define CRUCIBLE_TUI_RUN_H

#include <stddef.h>
#include <stdint.h>

struct app;

void run_ask(struct app *a);
/* Start a merge of recipe text (paths absolute) into out, recorded as a run of session in db. */
int run_start_recipe(struct app *a, const char *db, int64_t session, const char *recipe_yaml, const char *out);
void run_ask_cancel(struct app *a);
/* "merging -> OUT 42% 1.2 GiB/s ETA 0:05 TENSOR", the last run's result, or "". */
void run_status_text(struct app *a, char *buf, size_t len);

#endif
