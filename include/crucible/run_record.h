/*
 * Recording a merge in the session store: the engine's callbacks
 * (crucible/engine.h) feed a run row and its output tensors (store.h).
 *
 * Use: cr_run_record_begin, then pass cr_run_record_progress and
 * cr_run_record_tensor as the merge options' progress and tensor_done with
 * the record as ctx (the record calls the caller's own callbacks, set in
 * chain_*, with chain_ctx), then cr_run_record_end with the merge's outcome.
 * Everything happens on the thread that calls cr_merge_run, which must own
 * the store handle.  Progress reaches the database at most once a second.
 * Callers: `crucible merge`, `crucible sessions replay`, the TUI's worker.
 */
#ifndef CRUCIBLE_RUN_RECORD_H
#define CRUCIBLE_RUN_RECORD_H

#include "crucible/engine.h"
#include "crucible/store.h"

struct cr_run_record {
	struct cr_store *st;
	int64_t run;
	int64_t last_ms;
	uint64_t bytes;
	size_t tensors;
	int64_t started_ms;
	/* the caller's callbacks, called first (progress's answer is kept) */
	cr_progress_fn chain_progress;
	cr_tensor_fn chain_tensor;
	void *chain_ctx;
};

int cr_run_record_begin(struct cr_run_record *rec, struct cr_store *st, int64_t session, const char *recipe_text,
			const char *recipe_dir, const char *out, cr_error *err);
int cr_run_record_progress(void *rec, const struct cr_merge_progress *p);
void cr_run_record_tensor(void *rec, const char *name, enum cr_decision d, int parent, uint64_t checksum);
/* merge_rc/merge_err: what cr_merge_run returned (CR_E_CANCELLED -> cancelled);
 * res may be NULL when the merge failed. */
int cr_run_record_end(struct cr_run_record *rec, int merge_rc, const cr_error *merge_err,
		      const struct cr_merge_result *res, cr_error *err);
/* A run's recorded recipe, rewritten by the recipe writer with every model
 * path absolute (resolved against the folder it ran from), so it reproduces
 * the run from anywhere.  Malloc'd; NULL with err when it does not parse. */
char *cr_run_recipe_absolute(const struct cr_run_info *run, cr_error *err);
/* The text stored as a tensor's checksum: 16 hex digits. */
void cr_run_checksum_text(uint64_t sum, char buf[17]);

#endif
