/*
 * `crucible sessions`: list, show, export, replay, diff and remove sessions,
 * plus new/set/undo/redo/fork/rename for scripts and tests.  All the work is
 * in the store (crucible/store.h) and the state (crucible/state.h); this file
 * parses arguments and prints.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "crucible/engine.h"
#include "crucible/kernels.h"
#include "crucible/recipe.h"
#include "crucible/run_record.h"
#include "crucible/state.h"
#include "crucible/store.h"

static void sessions_usage(FILE *out)
{
	fprintf(out,
		"usage: crucible sessions [--db PATH] COMMAND ...\n"
		"  list [--json]                      one line per session: id, date, name, base, parents, runs, last status\n"
		"  show ID [--json]                   parents, the event timeline, the state, runs and their outputs\n"
		"  export ID [--run N] [-o FILE]      recipe YAML of the session's state, or the recipe that run N ran\n"
		"                                     (with its model paths made absolute)\n"
		"  replay ID -o OUT [--run N]         merge again and compare checksums with the recorded run\n"
		"  diff ID1 ID2                       the parameters that differ\n"
		"  rm ID                              remove a session with its events and runs\n"
		"  new [--name N] --recipe R.yaml     a session holding a recipe's state\n"
		"  new [--name N] --base B P...       an empty session over base B and models P...\n"
		"  set ID [--scope S] [--model I] KEY VALUE|--unset\n"
		"                                     record a change (scope: *, class:NAME, filter:TEXT, layers:A-B;\n"
		"                                     model: index in the parents, none for the top level)\n"
		"  undo ID | redo ID                  undo or redo the last change\n"
		"  fork ID [--name N]                 a new session starting from this one's state\n"
		"  rename ID NAME\n"
		"ID is a session's number or its unique name.  The database is --db PATH, else $CRUCIBLE_DB,\n"
		"else $XDG_DATA_HOME/crucible/sessions.db (~/.local/share/crucible/sessions.db).\n");
}

struct args {
	const char *db, *run, *out, *name, *base, *recipe, *scope, *model;
	int json, unset, help;
	int npos;
	char **pos;
};

/* Options are recognized anywhere; everything else is positional (so "-0.5" is a value). */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct {
		const char *name;
		size_t off; /* offsetof the const char * field */
	} known[] = {
		{ "--db", offsetof(struct args, db) },	   { "--run", offsetof(struct args, run) },
		{ "--output", offsetof(struct args, out) }, { "-o", offsetof(struct args, out) },
		{ "--name", offsetof(struct args, name) },  { "--base", offsetof(struct args, base) },
		{ "--recipe", offsetof(struct args, recipe) }, { "--scope", offsetof(struct args, scope) },
		{ "--model", offsetof(struct args, model) },
	};
	memset(a, 0, sizeof *a);
	a->pos = calloc((size_t)argc + 1, sizeof(char *));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--") == 0) {
			while (++i < argc)
				a->pos[a->npos++] = argv[i];
			break;
		}
		if (strcmp(s, "--json") == 0) {
			a->json = 1;
			continue;
		}
		if (strcmp(s, "--unset") == 0) {
			a->unset = 1;
			continue;
		}
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			a->help = 1;
			continue;
		}
		int matched = 0;
		for (size_t k = 0; k < sizeof known / sizeof known[0] && !matched; k++) {
			size_t l = strlen(known[k].name);
			if (strncmp(s, known[k].name, l) != 0)
				continue;
			const char **field = (const char **)((char *)a + known[k].off);
			if (s[l] == '=') {
				*field = s + l + 1;
				matched = 1;
			} else if (s[l] == '\0') {
				if (i + 1 >= argc) {
					cli_error("sessions: %s needs a value", s);
					return -1;
				}
				*field = argv[++i];
				matched = 1;
			}
		}
		if (matched)
			continue;
		if (s[0] == '-' && s[1] == '-') {
			cli_error("sessions: unknown option '%s' (try 'crucible sessions --help')", s);
			return -1;
		}
		a->pos[a->npos++] = argv[i];
	}
	return 0;
}

static const char *base_name(const char *path)
{
	if (!path)
		return "-";
	const char *s = strrchr(path, '/');
	return s && s[1] ? s + 1 : path;
}

static void fmt_time(int64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_bytes(int64_t b, char *buf, size_t n)
{
	static const char *const unit[] = { "B", "KB", "MB", "GB", "TB" };
	double v = (double)b;
	int u = 0;
	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* "weight[r1] @ class:routed_expert" */
static void fmt_target(const struct cr_session_info *si, const char *scope, int model, const char *key, char *buf,
		       size_t n)
{
	int l = snprintf(buf, n, "%s", key);
	if (model >= 0 && (size_t)l < n) {
		const char *who = (size_t)model < si->nparents ? base_name(si->parents[model]) : "?";
		l += snprintf(buf + l, n - (size_t)l, "[%d:%s]", model, who);
	}
	if (strcmp(scope, "*") != 0 && l >= 0 && (size_t)l < n)
		snprintf(buf + l, n - (size_t)l, " @ %s", scope);
}

static struct cr_store *open_store(const struct args *a)
{
	struct cr_store *st;
	cr_error err = { 0 };
	if (cr_store_open(a->db, &st, &err) < 0) {
		cli_error("%s", err.msg);
		return NULL;
	}
	return st;
}

static int find(struct cr_store *st, const char *arg, int64_t *id)
{
	cr_error err = { 0 };
	if (cr_store_session_find(st, arg, id, &err) < 0) {
		cli_error("%s", err.msg);
		return -1;
	}
	return 0;
}

static int fail(const cr_error *err)
{
	cli_error("%s", err->msg);
	return EXIT_FAIL;
}

/* ---------------------------------------------------------------- list */

static json_t *session_json(const struct cr_session_info *s)
{
	char when[32];
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(s->id));
	json_object_set_new(o, "name", json_string(s->name));
	fmt_time(s->created_ms, when, sizeof when);
	json_object_set_new(o, "created", json_string(when));
	json_object_set_new(o, "created_ms", json_integer(s->created_ms));
	json_object_set_new(o, "base", s->base ? json_string(s->base) : json_null());
	json_t *p = json_array();
	for (size_t i = 0; i < s->nparents; i++)
		json_array_append_new(p, json_string(s->parents[i]));
	json_object_set_new(o, "parents", p);
	json_object_set_new(o, "events", json_integer(s->nevents));
	json_object_set_new(o, "runs", json_integer(s->nruns));
	json_object_set_new(o, "last_status", s->last_status ? json_string(s->last_status) : json_null());
	json_object_set_new(o, "forked_from", s->forked_from ? json_integer(s->forked_from) : json_null());
	json_object_set_new(o, "notes", s->notes ? json_string(s->notes) : json_null());
	return o;
}

static void print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
}

static int do_list(struct cr_store *st, const struct args *a)
{
	struct cr_session_info *v;
	size_t n;
	cr_error err = { 0 };
	if (cr_store_session_list(st, &v, &n, &err) < 0)
		return fail(&err);
	if (a->json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, session_json(&v[i]));
		print_json(arr);
	} else {
		if (n == 0)
			fprintf(stderr, "no sessions in %s\n", cr_store_path(st));
		for (size_t i = 0; i < n; i++) {
			char when[32], parents[512] = "";
			size_t l = 0;
			fmt_time(v[i].created_ms, when, sizeof when);
			for (size_t p = 0; p < v[i].nparents && l < sizeof parents; p++)
				l += (size_t)snprintf(parents + l, sizeof parents - l, "%s%s", p ? "," : "",
						      base_name(v[i].parents[p]));
			printf("%-4lld %s  %-24s base %-16s parents %-28s runs %-3d %s\n", (long long)v[i].id, when,
			       v[i].name, base_name(v[i].base), v[i].nparents ? parents : "-", v[i].nruns,
			       v[i].last_status ? v[i].last_status : "-");
		}
	}
	cr_session_list_free(v, n);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- show */

/* Decision counts of a run's tensors: "base 40, parent 1 12, compute 3". */
static void decision_summary(struct cr_store *st, int64_t run, char *buf, size_t n, json_t *obj)
{
	struct cr_run_tensor *t;
	size_t nt;
	buf[0] = '\0';
	if (cr_store_run_tensors(st, run, &t, &nt, NULL) < 0)
		return;
	/* few distinct decisions: a small linear table */
	const char *names[32];
	int counts[32], nd = 0;
	for (size_t i = 0; i < nt; i++) {
		int k = 0;
		while (k < nd && strcmp(names[k], t[i].decision) != 0)
			k++;
		if (k == nd && nd < 32) {
			names[nd] = t[i].decision;
			counts[nd++] = 0;
		}
		if (k < nd)
			counts[k]++;
	}
	size_t l = 0;
	for (int k = 0; k < nd && l < n; k++) {
		l += (size_t)snprintf(buf + l, n - l, "%s%s %d", k ? ", " : "", names[k], counts[k]);
		if (obj)
			json_object_set_new(obj, names[k], json_integer(counts[k]));
	}
	cr_run_tensors_free(t, nt);
}

static int do_show(struct cr_store *st, const struct args *a, int64_t id)
{
	struct cr_session_info si;
	struct cr_event *ev = NULL;
	struct cr_run_info *runs = NULL;
	struct cr_state state;
	size_t nev = 0, nruns = 0;
	cr_error err = { 0 };
	char when[32], target[512], bytes[32], dec[512];
	if (cr_store_session_get(st, id, &si, &err) < 0)
		return fail(&err);
	if (cr_store_events(st, id, &ev, &nev, &err) < 0 || cr_store_runs(st, id, &runs, &nruns, &err) < 0 ||
	    cr_store_session_state(st, id, -1, &state, &err) < 0) {
		cr_events_free(ev, nev);
		cr_run_list_free(runs, nruns);
		cr_session_info_free(&si);
		return fail(&err);
	}
	if (a->json) {
		json_t *o = session_json(&si);
		json_t *je = json_array();
		for (size_t i = 0; i < nev; i++) {
			json_t *e = json_object();
			fmt_time(ev[i].time_ms, when, sizeof when);
			json_object_set_new(e, "seq", json_integer(ev[i].seq));
			json_object_set_new(e, "time", json_string(when));
			json_object_set_new(e, "kind", json_string(cr_event_kind_name(ev[i].kind)));
			json_object_set_new(e, "batch", json_integer(ev[i].batch));
			json_object_set_new(e, "target", ev[i].target ? json_integer(ev[i].target) : json_null());
			json_object_set_new(e, "scope", json_string(ev[i].scope));
			json_object_set_new(e, "model", ev[i].model >= 0 ? json_integer(ev[i].model) : json_null());
			json_object_set_new(e, "key", json_string(ev[i].key));
			json_object_set_new(e, "old", ev[i].old_value ? json_string(ev[i].old_value) : json_null());
			json_object_set_new(e, "new", ev[i].new_value ? json_string(ev[i].new_value) : json_null());
			json_array_append_new(je, e);
		}
		json_object_set_new(o, "event_list", je);
		json_t *js = json_array();
		for (size_t i = 0; i < state.n; i++) {
			json_t *e = json_object();
			json_object_set_new(e, "scope", json_string(state.a[i].scope));
			json_object_set_new(e, "model", state.a[i].model >= 0 ? json_integer(state.a[i].model) : json_null());
			json_object_set_new(e, "key", json_string(state.a[i].key));
			json_object_set_new(e, "value", json_string(state.a[i].value));
			json_array_append_new(js, e);
		}
		json_object_set_new(o, "state", js);
		json_t *jr = json_array();
		for (size_t i = 0; i < nruns; i++) {
			const struct cr_run_info *r = &runs[i];
			json_t *e = json_object(), *d = json_object();
			json_object_set_new(e, "id", json_integer(r->id));
			json_object_set_new(e, "status", json_string(cr_run_status_name(r->status)));
			json_object_set_new(e, "output", json_string(r->output));
			json_object_set_new(e, "bytes", json_integer(r->bytes));
			json_object_set_new(e, "tensors", json_integer(r->tensors));
			json_object_set_new(e, "seconds", json_real(r->seconds));
			json_object_set_new(e, "error", r->error ? json_string(r->error) : json_null());
			json_object_set_new(e, "pid", json_integer(r->pid));
			fmt_time(r->started_ms, when, sizeof when);
			json_object_set_new(e, "started", json_string(when));
			if (r->finished_ms)
				fmt_time(r->finished_ms, when, sizeof when);
			json_object_set_new(e, "finished", r->finished_ms ? json_string(when) : json_null());
			json_object_set_new(e, "event_seq", json_integer(r->event_seq));
			decision_summary(st, r->id, dec, sizeof dec, d);
			json_object_set_new(e, "decisions", d);
			json_array_append_new(jr, e);
		}
		json_object_set_new(o, "run_list", jr);
		print_json(o);
	} else {
		fmt_time(si.created_ms, when, sizeof when);
		printf("session %lld: %s\ncreated  %s\nbase     %s\n", (long long)si.id, si.name, when,
		       si.base ? si.base : "-");
		for (size_t i = 0; i < si.nparents; i++)
			printf("%s %zu %s\n", i ? "        " : "parents ", i, si.parents[i]);
		if (si.forked_from)
			printf("forked from session %lld\n", (long long)si.forked_from);
		if (si.notes)
			printf("notes    %s\n", si.notes);
		printf("\nevents (%zu):\n", nev);
		for (size_t i = 0; i < nev; i++) {
			const struct cr_event *e = &ev[i];
			fmt_time(e->time_ms, when, sizeof when);
			fmt_target(&si, e->scope, e->model, e->key, target, sizeof target);
			printf("  %4lld  %s  %-4s %s: %s -> %s", (long long)e->seq, when, cr_event_kind_name(e->kind),
			       target, e->old_value ? e->old_value : "(unset)", e->new_value ? e->new_value : "(unset)");
			if (e->target)
				printf("  (of #%lld)", (long long)e->target);
			putchar('\n');
		}
		printf("\nstate (%zu):\n", state.n);
		for (size_t i = 0; i < state.n; i++) {
			fmt_target(&si, state.a[i].scope, state.a[i].model, state.a[i].key, target, sizeof target);
			printf("  %s = %s\n", target, state.a[i].value);
		}
		printf("\nruns (%zu):\n", nruns);
		for (size_t i = 0; i < nruns; i++) {
			const struct cr_run_info *r = &runs[i];
			fmt_time(r->started_ms, when, sizeof when);
			fmt_bytes(r->bytes, bytes, sizeof bytes);
			printf("  run %lld  %-11s %s  %s  %s in %.1f s, %lld tensors\n", (long long)r->id,
			       cr_run_status_name(r->status), when, r->output, bytes, r->seconds, (long long)r->tensors);
			decision_summary(st, r->id, dec, sizeof dec, NULL);
			if (dec[0])
				printf("        decisions: %s\n", dec);
			if (r->error)
				printf("        error: %s\n", r->error);
		}
	}
	cr_state_free(&state);
	cr_events_free(ev, nev);
	cr_run_list_free(runs, nruns);
	cr_session_info_free(&si);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- export */

static int write_text(const char *path, const char *text)
{
	if (!path) {
		fputs(text, stdout);
		return EXIT_OK;
	}
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		cli_error("%s: cannot write the recipe", path);
		if (f)
			fclose(f);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int do_export(struct cr_store *st, const struct args *a, int64_t id)
{
	cr_error err = { 0 };
	if (a->run) {
		struct cr_run_info r;
		char *end;
		long long rid = strtoll(a->run, &end, 10);
		if (!*a->run || *end) {
			cli_error("sessions export: --run takes a run number, not '%s'", a->run);
			return EXIT_USAGE;
		}
		if (cr_store_run_get(st, rid, &r, &err) < 0)
			return fail(&err);
		if (r.session != id) {
			cli_error("sessions export: run %lld belongs to session %lld, not %lld", rid, (long long)r.session,
				  (long long)id);
			cr_run_info_free(&r);
			return EXIT_FAIL;
		}
		/* paths made absolute, so the recipe works wherever it is saved */
		char *y = cr_run_recipe_absolute(&r, &err);
		int rc = y ? write_text(a->out, y) : fail(&err);
		free(y);
		cr_run_info_free(&r);
		return rc;
	}
	char *y = cr_store_session_recipe(st, id, &err);
	if (!y)
		return fail(&err);
	int rc = write_text(a->out, y);
	free(y);
	return rc;
}

/* ---------------------------------------------------------------- diff */

struct diff_ctx {
	const struct cr_session_info *a, *b;
};

static void diff_line(void *ctx, const char *scope, int model, const char *key, const char *va, const char *vb)
{
	struct diff_ctx *d = ctx;
	char target[512];
	fmt_target(d->a, scope, model, key, target, sizeof target);
	printf("  %s: %s -> %s\n", target, va ? va : "(unset)", vb ? vb : "(unset)");
}

static int do_diff(struct cr_store *st, int64_t ia, int64_t ib)
{
	struct cr_session_info a, b;
	struct cr_state sa, sb;
	cr_error err = { 0 };
	if (cr_store_session_get(st, ia, &a, &err) < 0)
		return fail(&err);
	if (cr_store_session_get(st, ib, &b, &err) < 0) {
		cr_session_info_free(&a);
		return fail(&err);
	}
	if (cr_store_session_state(st, ia, -1, &sa, &err) < 0 || cr_store_session_state(st, ib, -1, &sb, &err) < 0) {
		cr_session_info_free(&a);
		cr_session_info_free(&b);
		return fail(&err);
	}
	printf("--- session %lld: %s\n+++ session %lld: %s\n", (long long)ia, a.name, (long long)ib, b.name);
	size_t n = 0;
	if ((a.base == NULL) != (b.base == NULL) || (a.base && strcmp(a.base, b.base) != 0)) {
		printf("  base: %s -> %s\n", a.base ? a.base : "-", b.base ? b.base : "-");
		n++;
	}
	for (size_t i = 0; i < a.nparents || i < b.nparents; i++) {
		const char *pa = i < a.nparents ? a.parents[i] : NULL, *pb = i < b.nparents ? b.parents[i] : NULL;
		if (!pa || !pb || strcmp(pa, pb) != 0) {
			printf("  model %zu: %s -> %s\n", i, pa ? pa : "(none)", pb ? pb : "(none)");
			n++;
		}
	}
	struct diff_ctx ctx = { &a, &b };
	n += cr_state_diff(&sa, &sb, diff_line, &ctx);
	if (n == 0)
		printf("  no differences\n");
	cr_state_free(&sa);
	cr_state_free(&sb);
	cr_session_info_free(&a);
	cr_session_info_free(&b);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- new, set, ... */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	size_t r;
	while ((r = fread(b + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap)
			b = realloc(b, cap *= 2);
	}
	fclose(f);
	b[n] = '\0';
	*len = n;
	return b;
}

/* Create a session from a recipe file: its base and models, its state as one batch. */
static int session_from_recipe(struct cr_store *st, const char *recipe, const char *name, int64_t *id)
{
	cr_error err = { 0 };
	size_t len;
	char *text = read_file(recipe, &len);
	if (!text) {
		cli_error("%s: cannot read the recipe", recipe);
		return -1;
	}
	int rc = cr_store_session_import(st, text, len, recipe, name, id, &err);
	free(text);
	if (rc < 0)
		cli_error("%s", err.msg);
	return rc;
}

static int do_new(struct cr_store *st, const struct args *a)
{
	cr_error err = { 0 };
	int64_t id;
	if (a->recipe) {
		if (a->npos > 1 || a->base) {
			cli_error("sessions new: --recipe takes its base and models from the recipe");
			return EXIT_USAGE;
		}
		if (session_from_recipe(st, a->recipe, a->name, &id) < 0)
			return EXIT_FAIL;
	} else {
		if (!a->base && a->npos < 2) {
			cli_error("sessions new: give --recipe R.yaml, or --base B and models");
			return EXIT_USAGE;
		}
		if (cr_store_session_create(st, a->name, a->base, (const char *const *)a->pos + 1, (size_t)a->npos - 1,
					    NULL, &id, &err) < 0)
			return fail(&err);
	}
	printf("%lld\n", (long long)id);
	return EXIT_OK;
}

static int do_set(struct cr_store *st, const struct args *a, int64_t id)
{
	cr_error err = { 0 };
	int model = -1;
	if (a->npos != (a->unset ? 3 : 4)) {
		cli_error("sessions set: expected ID KEY VALUE (or ID KEY --unset)");
		return EXIT_USAGE;
	}
	if (a->model) {
		char *end;
		model = (int)strtol(a->model, &end, 10);
		if (!*a->model || *end || model < 0) {
			cli_error("sessions set: --model takes a model's index, not '%s'", a->model);
			return EXIT_USAGE;
		}
	}
	if (cr_store_set(st, id, a->scope ? a->scope : "*", model, a->pos[2], a->unset ? NULL : a->pos[3], NULL, NULL,
			 &err) < 0)
		return fail(&err);
	return EXIT_OK;
}

static int do_undo_redo(struct cr_store *st, int64_t id, int redo)
{
	cr_error err = { 0 };
	int changed;
	if ((redo ? cr_store_redo : cr_store_undo)(st, id, NULL, &changed, &err) < 0)
		return fail(&err);
	if (!changed) {
		cli_error("sessions %s: nothing to %s", redo ? "redo" : "undo", redo ? "redo" : "undo");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

struct replayed {
	char *name, *sum;
};

static int replayed_cmp(const void *a, const void *b)
{
	return strcmp(((const struct replayed *)a)->name, ((const struct replayed *)b)->name);
}

struct replay_ctx {
	struct replayed *v;
	size_t n, cap;
};

static void replay_tensor(void *ctx, const char *name, enum cr_decision d, int parent, uint64_t checksum)
{
	struct replay_ctx *r = ctx;
	char sum[17];
	(void)d;
	(void)parent;
	cr_run_checksum_text(checksum, sum);
	if (r->n == r->cap)
		r->v = cr_xrealloc(r->v, (r->cap = r->cap ? 2 * r->cap : 256) * sizeof *r->v);
	r->v[r->n++] = (struct replayed){ cr_xstrdup(name), cr_xstrdup(sum) };
}

static void replay_warn(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "crucible: warning: %s\n", msg);
}

/* The run to replay: --run N, else the session's newest finished run. */
static int replay_pick(struct cr_store *st, const struct args *a, int64_t id, struct cr_run_info *out)
{
	cr_error err = { 0 };
	if (a->run) {
		char *end;
		long long rid = strtoll(a->run, &end, 10);
		if (!*a->run || *end) {
			cli_error("sessions replay: --run takes a run number, not '%s'", a->run);
			return -1;
		}
		if (cr_store_run_get(st, rid, out, &err) < 0)
			return fail(&err), -1;
		if (out->session != id) {
			cli_error("sessions replay: run %lld belongs to session %lld", rid, (long long)out->session);
			cr_run_info_free(out);
			return -1;
		}
		return 0;
	}
	struct cr_run_info *runs;
	size_t n;
	if (cr_store_runs(st, id, &runs, &n, &err) < 0)
		return fail(&err), -1;
	size_t k = n;
	while (k > 0 && runs[k - 1].status != CR_RUN_DONE)
		k--;
	if (k == 0) {
		cli_error("sessions replay: session %lld has no finished run to replay", (long long)id);
		cr_run_list_free(runs, n);
		return -1;
	}
	*out = runs[k - 1];
	memset(&runs[k - 1], 0, sizeof runs[k - 1]);
	cr_run_list_free(runs, n);
	return 0;
}

static int do_replay(struct cr_store *st, const struct args *a, int64_t id)
{
	cr_error err = { 0 };
	struct cr_run_info run;
	if (!a->out) {
		cli_error("sessions replay: -o OUT is required");
		return EXIT_USAGE;
	}
	if (replay_pick(st, a, id, &run) < 0)
		return EXIT_FAIL;
	/* the recipe's relative paths resolve against the folder it was run from */
	char *file = cr_xmalloc((run.recipe_dir ? strlen(run.recipe_dir) : 1) + 16);
	sprintf(file, "%s/recipe.yaml", run.recipe_dir ? run.recipe_dir : ".");
	struct cr_recipe *r = NULL;
	struct cr_plan *p = NULL;
	if (cr_recipe_parse(run.recipe, strlen(run.recipe), file, &r, replay_warn, NULL, &err) < 0 ||
	    cr_plan_build(r, &p, replay_warn, NULL, &err) < 0) {
		cli_error("run %lld: %s", (long long)run.id, err.msg);
		cr_recipe_free(r);
		free(file);
		cr_run_info_free(&run);
		return EXIT_FAIL;
	}
	free(file);
	struct replay_ctx got = { 0 };
	struct cr_run_record rec = { .chain_tensor = replay_tensor, .chain_ctx = &got };
	int recording = cr_run_record_begin(&rec, st, id, run.recipe, run.recipe_dir, a->out, &err) == 0;
	if (!recording)
		cli_error("warning: %s; the replay is not recorded", err.msg);
	struct cr_merge_opts mo = { .out = a->out, .warn = replay_warn };
	if (recording) {
		mo.progress = cr_run_record_progress;
		mo.tensor_done = cr_run_record_tensor;
		mo.ctx = &rec;
	} else {
		mo.tensor_done = replay_tensor;
		mo.ctx = &got;
	}
	struct cr_merge_result res;
	cr_error merr = { 0 };
	int mrc = cr_merge_run(p, &mo, &res, &merr);
	if (recording)
		cr_run_record_end(&rec, mrc, &merr, mrc == 0 ? &res : NULL, NULL);
	cr_plan_free(p);
	cr_recipe_free(r);
	int rc = EXIT_OK;
	if (mrc < 0) {
		cli_error("%s", merr.msg);
		rc = EXIT_FAIL;
		goto out;
	}
	/* compare with the recorded checksums, both in name order */
	struct cr_run_tensor *want;
	size_t nwant;
	if (cr_store_run_tensors(st, run.id, &want, &nwant, &err) < 0) {
		rc = fail(&err);
		goto out;
	}
	qsort(got.v, got.n, sizeof *got.v, replayed_cmp);
	size_t i = 0, j = 0, same = 0, differ = 0, missing = 0, extra = 0, shown = 0;
	while (i < nwant || j < got.n) {
		int c = i == nwant ? 1 : j == got.n ? -1 : strcmp(want[i].name, got.v[j].name);
		if (c == 0) {
			if (want[i].checksum && strcmp(want[i].checksum, got.v[j].sum) == 0) {
				same++;
			} else {
				differ++;
				if (shown++ < 10)
					printf("  differs: %s (recorded %s, now %s)\n", want[i].name,
					       want[i].checksum ? want[i].checksum : "-", got.v[j].sum);
			}
			i++;
			j++;
		} else if (c < 0) {
			missing++;
			if (shown++ < 10)
				printf("  missing now: %s\n", want[i].name);
			i++;
		} else {
			extra++;
			if (shown++ < 10)
				printf("  not in the recorded run: %s\n", got.v[j].name);
			j++;
		}
	}
	if (nwant == 0) {
		printf("replayed run %lld into %s: the recorded run has no tensor checksums to compare\n",
		       (long long)run.id, a->out);
		rc = EXIT_FAIL;
	} else if (differ || missing || extra) {
		printf("replayed run %lld into %s: %zu of %zu tensors match; %zu differ, %zu missing, %zu extra\n",
		       (long long)run.id, a->out, same, nwant, differ, missing, extra);
		rc = EXIT_FAIL;
	} else {
		printf("replayed run %lld into %s: all %zu tensor checksums match\n", (long long)run.id, a->out, same);
	}
	cr_run_tensors_free(want, nwant);
out:
	for (size_t k = 0; k < got.n; k++) {
		free(got.v[k].name);
		free(got.v[k].sum);
	}
	free(got.v);
	cr_run_info_free(&run);
	return rc;
}

/* ---------------------------------------------------------------- dispatch */

static int dispatch(struct cr_store *st, const struct args *a)
{
	const char *cmd = a->pos[0];
	int64_t id = 0, id2 = 0;
	/* commands that take a session first */
	static const struct {
		const char *name;
		int min, max;
	} arity[] = { { "list", 1, 1 }, { "show", 2, 2 }, { "export", 2, 2 }, { "replay", 2, 2 },
		      { "diff", 3, 3 }, { "rm", 2, 2 },	  { "new", 1, 1 << 20 }, { "set", 3, 4 },
		      { "undo", 2, 2 }, { "redo", 2, 2 }, { "fork", 2, 2 },	   { "rename", 3, 3 } };
	size_t k = 0;
	while (k < sizeof arity / sizeof arity[0] && strcmp(arity[k].name, cmd) != 0)
		k++;
	if (k == sizeof arity / sizeof arity[0]) {
		cli_error("sessions: unknown command '%s' (try 'crucible sessions --help')", cmd);
		return EXIT_USAGE;
	}
	if (a->npos < arity[k].min || a->npos > arity[k].max) {
		cli_error("sessions %s: wrong number of arguments (try 'crucible sessions --help')", cmd);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "list") == 0)
		return do_list(st, a);
	if (strcmp(cmd, "new") == 0)
		return do_new(st, a);
	if (find(st, a->pos[1], &id) < 0)
		return EXIT_FAIL;
	cr_error err = { 0 };
	if (strcmp(cmd, "show") == 0)
		return do_show(st, a, id);
	if (strcmp(cmd, "export") == 0)
		return do_export(st, a, id);
	if (strcmp(cmd, "replay") == 0)
		return do_replay(st, a, id);
	if (strcmp(cmd, "diff") == 0)
		return find(st, a->pos[2], &id2) < 0 ? EXIT_FAIL : do_diff(st, id, id2);
	if (strcmp(cmd, "rm") == 0) {
		if (cr_store_session_delete(st, id, &err) < 0)
			return fail(&err);
		return EXIT_OK;
	}
	if (strcmp(cmd, "set") == 0)
		return do_set(st, a, id);
	if (strcmp(cmd, "undo") == 0 || strcmp(cmd, "redo") == 0)
		return do_undo_redo(st, id, cmd[0] == 'r');
	if (strcmp(cmd, "fork") == 0) {
		if (cr_store_session_fork(st, id, a->name, &id2, &err) < 0)
			return fail(&err);
		printf("%lld\n", (long long)id2);
		return EXIT_OK;
	}
	/* rename */
	if (cr_store_session_rename(st, id, a->pos[2], &err) < 0)
		return fail(&err);
	return EXIT_OK;
}

int cmd_sessions(int argc, char **argv)
{
	struct args a;
	if (parse_args(argc, argv, &a) < 0) {
		free(a.pos);
		return EXIT_USAGE;
	}
	if (a.help) {
		sessions_usage(stdout);
		free(a.pos);
		return EXIT_OK;
	}
	if (a.npos == 0) {
		sessions_usage(stderr);
		free(a.pos);
		return EXIT_USAGE;
	}
	struct cr_store *st = open_store(&a);
	if (!st) {
		free(a.pos);
		return EXIT_FAIL;
	}
	int rc = dispatch(st, &a);
	cr_store_close(st);
	free(a.pos);
	return rc;
}
