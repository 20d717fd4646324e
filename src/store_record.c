/*
 * Recording a merge in the session store (see crucible/run_record.h).
 * Decisions are stored by their names from the decision table ("copy",
 * "compute"), the source as the copied parent's index, the checksum as 16
 * hex digits, so a replay compares text with text.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crucible/kernels.h"
#include "crucible/recipe.h"
#include "crucible/run_record.h"

void cr_run_checksum_text(uint64_t sum, char buf[17])
{
	snprintf(buf, 17, "%016llx", (unsigned long long)sum);
}

int cr_run_record_begin(struct cr_run_record *rec, struct cr_store *st, int64_t session, const char *recipe_text,
			const char *recipe_dir, const char *out, cr_error *err)
{
	cr_progress_fn cp = rec->chain_progress;
	cr_tensor_fn ct = rec->chain_tensor;
	void *cc = rec->chain_ctx;
	memset(rec, 0, sizeof *rec);
	rec->chain_progress = cp;
	rec->chain_tensor = ct;
	rec->chain_ctx = cc;
	rec->st = st;
	rec->started_ms = rec->last_ms = cr_store_now_ms();
	return cr_store_run_begin(st, session, recipe_text, recipe_dir, out, &rec->run, err);
}

int cr_run_record_progress(void *ctx, const struct cr_merge_progress *p)
{
	struct cr_run_record *rec = ctx;
	int stop = rec->chain_progress ? rec->chain_progress(rec->chain_ctx, p) : 0;
	rec->bytes = p->done;
	rec->tensors = p->tensors_done;
	int64_t now = cr_store_now_ms();
	if (now - rec->last_ms >= 1000) {
		rec->last_ms = now;
		/* a failed progress write must not stop the merge: the end writes it all again */
		cr_store_run_progress(rec->st, rec->run, (int64_t)p->done, (int64_t)p->tensors_done,
				      (double)(now - rec->started_ms) / 1000.0, NULL);
	}
	return stop;
}

void cr_run_record_tensor(void *ctx, const char *name, enum cr_decision d, int parent, uint64_t checksum)
{
	struct cr_run_record *rec = ctx;
	char src[16], sum[17];
	if (rec->chain_tensor)
		rec->chain_tensor(rec->chain_ctx, name, d, parent, checksum);
	snprintf(src, sizeof src, "%d", parent);
	cr_run_checksum_text(checksum, sum);
	cr_store_run_tensor(rec->st, rec->run, name, cr_decision_name(d), d == CR_DEC_COPY ? src : NULL, sum, NULL);
}

int cr_run_record_end(struct cr_run_record *rec, int merge_rc, const cr_error *merge_err,
		      const struct cr_merge_result *res, cr_error *err)
{
	enum cr_run_status s = CR_RUN_DONE;
	const char *msg = NULL;
	if (merge_rc < 0) {
		s = merge_err && merge_err->code == CR_E_CANCELLED ? CR_RUN_CANCELLED : CR_RUN_FAILED;
		msg = merge_err && merge_err->msg[0] ? merge_err->msg : "failed";
	}
	int64_t bytes = res && merge_rc == 0 ? (int64_t)res->bytes : (int64_t)rec->bytes;
	int64_t tensors = res && merge_rc == 0 ? (int64_t)(res->copied + res->computed) : (int64_t)rec->tensors;
	double secs = (double)(cr_store_now_ms() - rec->started_ms) / 1000.0;
	return cr_store_run_finish(rec->st, rec->run, s, bytes, tensors, secs, msg, err);
}

/* Replace a path as written by its resolved (absolute) form. */
static void absolutize(char **path, const char *resolved)
{
	if (*path && resolved && strcmp(*path, resolved) != 0) {
		free(*path);
		*path = cr_xstrdup(resolved);
	}
}

char *cr_run_recipe_absolute(const struct cr_run_info *run, cr_error *err)
{
	char *file = cr_xmalloc((run->recipe_dir ? strlen(run->recipe_dir) : 1) + 16);
	sprintf(file, "%s/recipe.yaml", run->recipe_dir ? run->recipe_dir : ".");
	struct cr_recipe *r;
	int rc = cr_recipe_parse(run->recipe, strlen(run->recipe), file, &r, NULL, NULL, err);
	free(file);
	if (rc < 0)
		return NULL;
	absolutize(&r->base, r->base_resolved);
	for (size_t i = 0; i < r->nmodels; i++)
		absolutize(&r->models[i].path, r->models[i].resolved);
	for (size_t i = 0; i < r->nslices; i++)
		for (size_t j = 0; j < r->slices[i].nsources; j++)
			absolutize(&r->slices[i].sources[j].path, r->slices[i].sources[j].resolved);
	char *y = cr_recipe_to_yaml(r);
	cr_recipe_free(r);
	if (!y)
		cr_fail(err, CR_E_RECIPE, "run %lld: its recipe cannot be written back", (long long)run->id);
	return y;
}
