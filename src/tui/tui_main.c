/*
 * The workbench's entry point and event loop.
 *
 * Start-up: options, the config file, the theme, the checkpoints (so a bad
 * path fails before the screen changes), then the terminal.  The terminal is
 * opened with newterm(), which returns NULL for an unknown TERM instead of
 * exiting, and a terminal that cannot address the cursor (TERM=dumb,
 * hardcopy) is refused with one line: a full-screen program cannot be
 * driven on it, and the command-line subcommands are the way to go there.
 *
 * The loop poll()s the keyboard and the worker's wake pipe.  Only this
 * thread calls curses.  ncurses' own SIGWINCH handling turns a resize into
 * KEY_RESIZE, which the loop reads like a key; a timeout on poll() makes
 * sure a resize that arrives outside poll() is seen promptly.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <libgen.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <term.h>
#include <time.h>
#include <unistd.h>

#include "../cli/cli.h"
#include "browser.h"
#include "crucible/stats.h"
#include "scan.h"
#include "sessions.h"
#include "tui.h"
#include "worker.h"

static struct app *the_app; /* for the out-of-memory hook only */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void restore_terminal(void)
{
	if (the_app && the_app->screen)
		endwin();
}

void app_message(struct app *a, enum cr_color_role role, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->status, sizeof a->status, fmt, ap);
	va_end(ap);
	a->status_role = role;
}

void app_note(struct app *a, enum cr_color_role role, const char *fmt, ...)
{
	if (a->status[0] && (a->status_role == CR_ROLE_WARNING || a->status_role == CR_ROLE_ERROR))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->status, sizeof a->status, fmt, ap);
	va_end(ap);
	a->status_role = role;
}

void app_push(struct app *a, struct view *v)
{
	if (!v)
		return;
	if (a->nviews == (int)(sizeof a->stack / sizeof a->stack[0])) {
		if (v->ops->destroy)
			v->ops->destroy(v);
		return;
	}
	a->stack[a->nviews++] = v;
}

static void app_pop(struct app *a)
{
	if (a->nviews <= 1)
		return;
	struct view *v = a->stack[--a->nviews];
	if (v->ops->destroy)
		v->ops->destroy(v);
}

static const char *key_hints(const struct app *a)
{
	const struct view *v = a->stack[a->nviews - 1];
	if (v->ops->ctx == CTX_BROWSER)
		return "? help  / search  \\ filter  s sort  f flat  Tab panel  H heat map  m merge  q quit";
	if (v->ops->ctx == CTX_SESSIONS)
		return "? help  Enter open  F fork  R rename  D delete  C mark/compare  X re-run  q quit";
	return "? help  q/Esc back";
}

void app_draw_frame(struct app *a, const char *title)
{
	fill_row(0, 0, a->cols, CR_ROLE_TITLE);
	put_text(0, 0, a->cols, CR_ROLE_TITLE, title, 0);
	int y = a->rows - 1;
	if (y <= 0)
		return;
	char right[256] = "";
	if (a->worker)
		worker_status_line(a->worker, right, sizeof right);
	int rw = text_width(right);
	if (rw > a->cols / 2)
		rw = a->cols / 2;
	int lw = a->cols - rw - (rw ? 1 : 0);
	if (a->status[0])
		put_text(y, 0, lw, a->status_role, a->status, 0);
	else
		put_text(y, 0, lw, CR_ROLE_STATUS, key_hints(a), 0);
	if (rw) {
		put_text(y, lw, 1, CR_ROLE_STATUS, "", 0);
		put_text(y, lw + 1, rw, CR_ROLE_STATUS, right, 1);
	}
}

static void draw_all(struct app *a)
{
	getmaxyx(stdscr, a->rows, a->cols);

	erase();
	if (a->rows < 6 || a->cols < 40) {
		mvaddstr(0, 0, "crucible: window too small");
	} else {
		struct view *v = a->stack[a->nviews - 1];
		v->ops->draw(a, v);
		if (prompt_active(a))
			prompt_draw(a);
	}
	wnoutrefresh(stdscr);
	doupdate();
}

static int quit_requested(struct app *a);

static void on_quit_confirmed(struct app *a, const char *text, void *ctx)
{
	(void)ctx;
	if (text) {
		worker_cancel(a->worker);
		a->quit = 1;
	}
}

static int quit_requested(struct app *a)
{
	if (a->nviews > 1) {
		app_pop(a);
		return V_REDRAW;
	}
	if (a->worker && worker_busy(a->worker) == WORK_MERGE) {
		confirm_start(a, "A merge is running. Cancel it and quit?", on_quit_confirmed, NULL);
		return V_REDRAW;
	}
	a->quit = 1;
	return 0;
}

/* One key, already known not to belong to a prompt. */
static int dispatch_key(struct app *a, int key)
{
	struct view *v = a->stack[a->nviews - 1];
	enum tui_action act = key_lookup(v->ops->ctx, key);
	if (v->ops->ctx == CTX_BROWSER) {
		/* The panel's keys win while it has the focus. */
		struct browser *b = (struct browser *)v;
		enum tui_action pa = b->panel_focus ? key_lookup(CTX_PANEL, key) : ACT_NONE;
		if (pa != ACT_NONE)
			act = pa;
	}
	if (act == ACT_NONE && v->ops->uses_list)
		act = key_lookup(CTX_LIST, key);
	if (act == ACT_NONE)
		act = key_lookup(CTX_GLOBAL, key);
	if (act == ACT_NONE)
		return 0;
	int r = v->ops->action(a, v, act, key);
	if (r & V_HANDLED)
		return r;
	switch (act) {
	case ACT_HELP:
		app_push(a, help_view_new(a, v->ops->ctx));
		return V_REDRAW;
	case ACT_QUIT:
		return quit_requested(a);
	case ACT_BACK:
		if (a->nviews > 1)
			app_pop(a);
		a->status[0] = '\0';
		return V_REDRAW;
	case ACT_REDRAW:
		clearok(curscr, TRUE);
		return V_REDRAW;
	default:
		return r;
	}
}

static int handle_input(struct app *a)
{
	int flags = 0;
	wint_t ch;
	int rc;
	while ((rc = wget_wch(stdscr, &ch)) != ERR) {
		int is_key = rc == KEY_CODE_YES;
		if (is_key && ch == KEY_RESIZE) {
			flags |= V_REDRAW;
			continue;
		}
		if (is_key && ch == KEY_MOUSE) {
			MEVENT ev;
			if (getmouse(&ev) == OK && !prompt_active(a)) {
				struct view *v = a->stack[a->nviews - 1];
				if (v->ops->mouse)
					flags |= v->ops->mouse(a, v, &ev);
			}
			continue;
		}
		if (prompt_active(a)) {
			flags |= prompt_key(a, is_key, ch);
			continue;
		}
		/* Any key clears a transient message. */
		a->status[0] = '\0';
		flags |= V_REDRAW;
		double t0 = now_ms();
		a->change_pending = 0;
		flags |= dispatch_key(a, (int)ch);
		if (a->change_pending) {
			/* Time the whole path of a parameter change: event, plan, decisions, drawing. */
			draw_all(a);
			a->last_redraw_ms = now_ms() - t0;
			a->change_pending = 0;
			if (a->show_timing) {
				size_t l = strlen(a->status);
				snprintf(a->status + l, sizeof a->status - l,
					 "  [event %.1f + recipe %.1f + plan %.1f + decide %.1f ms; key to screen %.1f ms]",
					 a->last_event_ms, a->t_recipe, a->t_plan, a->t_decide, a->last_redraw_ms);
			}
		}
		if (a->quit)
			break;
	}
	return flags;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: crucible [--base BASE PARENT...] [--session ID] [options]\n"
		"  --base BASE        the base model; PARENT... are the models merged into it\n"
		"  --session ID       reopen a saved session\n"
		"  --theme NAME|PATH  colour theme (default, light, solarized-dark, mono, or a file)\n"
		"  --ascii            ASCII glyphs only (also chosen when the locale is not UTF-8)\n"
		"  --db PATH          session database (default $XDG_DATA_HOME/crucible/sessions.db)\n"
		"  --no-scan          no statistics scan (rel stays unknown; aoe decisions that need it stay pending)\n"
		"With no models, the sessions screen opens.  Press ? in the workbench for the keys.\n"
		"The workbench needs a terminal that can move the cursor; with TERM=dumb use the\n"
		"subcommands (crucible --help).\n");
}

static int parse_args(struct app *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "base", required_argument, NULL, 'b' },  { "session", required_argument, NULL, 's' },
		{ "theme", required_argument, NULL, 't' }, { "ascii", no_argument, NULL, 'a' },
		{ "db", required_argument, NULL, 'd' },	   { "help", no_argument, NULL, 'h' },
		{ "no-scan", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			a->opt.base = optarg;
			break;
		case 's': {
			char *end;
			a->opt.session_id = strtol(optarg, &end, 10);
			if (*end || a->opt.session_id <= 0) {
				cli_error("--session: '%s' is not a session number", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 't':
			a->opt.theme = optarg;
			break;
		case 'a':
			a->opt.ascii = 1;
			break;
		case 'd':
			a->opt.db = optarg;
			break;
		case 'n':
			a->opt.no_scan = 1;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case ':':
			cli_error("option '%s' needs a value", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			cli_error("unknown option '%s' (try 'crucible --help')", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	a->opt.parents = (const char **)argv + optind;
	a->opt.nparents = argc - optind;
	if (a->opt.nparents > 8) {
		cli_error("at most 8 parents can be merged (got %d)", a->opt.nparents);
		return EXIT_USAGE;
	}
	if (a->opt.nparents && !a->opt.base) {
		cli_error("models given without --base (usage: crucible --base BASE PARENT...)");
		return EXIT_USAGE;
	}
	if (a->opt.base && a->opt.session_id) {
		cli_error("--base and --session exclude each other");
		return EXIT_USAGE;
	}
	return 0;
}

static void load_theme(struct app *a)
{
	cr_theme_init(&a->theme);
	const char *want = a->opt.theme ? a->opt.theme : a->cfg.theme;
	if (!want)
		return;
	char user_dir[PATH_MAX] = "", exe_dir[PATH_MAX] = "";
	const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	if (x && *x)
		snprintf(user_dir, sizeof user_dir, "%s/crucible/themes", x);
	else if (home)
		snprintf(user_dir, sizeof user_dir, "%s/.config/crucible/themes", home);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(exe_dir, sizeof exe_dir, "%s/themes", dirname(exe)); /* an uninstalled build */
	}
	const char *dirs[] = { user_dir, CRUCIBLE_DATADIR "/themes", exe_dir, NULL };
	char path[PATH_MAX];
	cr_error err = { 0 };
	if (cr_theme_find(want, dirs, path, sizeof path, &err) < 0 || cr_theme_load(&a->theme, path, &err) < 0) {
		app_message(a, CR_ROLE_WARNING, "%s; using the default colours", err.msg);
		return;
	}
	if (a->theme.nwarnings)
		app_message(a, CR_ROLE_WARNING, "theme: %s%s", a->theme.warnings[0],
			    a->theme.nwarnings > 1 ? " (and more)" : "");
}

static char *model_label(const char *path)
{
	char *copy = cr_xstrdup(path);
	size_t l = strlen(copy);
	while (l > 1 && copy[l - 1] == '/')
		copy[--l] = '\0';
	char *name = cr_xstrdup(basename(copy));
	free(copy);
	return name;
}

/*
 * Only the base is opened here: its catalog is the first screen.  The
 * parents are opened by the plan on the worker thread, so the screen does
 * not wait for them; a parent that is not there at all is still refused now.
 */
static int open_models(struct app *a, const char *base, const char *const *parents, int nparents, cr_error *err)
{
	for (int m = 0; m < nparents; m++) {
		struct stat st;
		if (stat(parents[m], &st) < 0)
			return cr_fail(err, CR_E_IO, "%s: %s", parents[m], strerror(errno));
	}
	double t0 = now_ms();
	if (cr_ckpt_open(base, &a->ckpt[0], err) < 0)
		return -1;
	a->catalog_ms = now_ms() - t0;
	a->nmodels = nparents + 1;
	a->model_name[0] = model_label(base);
	for (int m = 1; m < a->nmodels; m++)
		a->model_name[m] = model_label(parents[m - 1]);
	return 0;
}

static void close_models(struct app *a)
{
	for (int m = 0; m < a->nmodels; m++) {
		if (a->ckpt[m])
			cr_ckpt_close(a->ckpt[m]);
		a->ckpt[m] = NULL;
		free(a->model_name[m]);
		a->model_name[m] = NULL;
	}
	a->nmodels = 0;
}

static const char *db_path(const struct app *a)
{
	return a->opt.db ? a->opt.db : a->cfg.database;
}

/* A session's models and workbench: session id, or a new one for base + parents. */
static int open_workbench(struct app *a, int64_t id, const char *base, const char *const *parents, int nparents,
			  cr_error *err)
{
	a->have_wb = 1;
	if (id) {
		if (wb_load(&a->wb, db_path(a), id, err) < 0)
			return -1;
		return open_models(a, a->wb.model_paths[0], (const char *const *)a->wb.model_paths + 1, a->wb.nmodels - 1,
				   err);
	}
	if (open_models(a, base, parents, nparents, err) < 0)
		return -1;
	return wb_create(&a->wb, db_path(a), base, parents, nparents, err);
}

/* The browser on top of an opened workbench, and the worker's plan and scan. */
static void start_browser(struct app *a)
{
	a->browser = browser_new(a);
	a->stack[a->nviews++] = browser_view(a->browser);
	/* The recipe now; the plan and the statistics come from the worker. */
	wb_refresh_recipe_only(&a->wb);
	if (scan_start(a) < 0)
		app_message(a, CR_ROLE_ERROR, "%s", a->wb.error[0] ? a->wb.error : "cannot start the worker thread");
}

static void close_workbench(struct app *a)
{
	/* Joining the worker cancels a scan; a merge is never running here (callers check). */
	worker_free(a->worker);
	a->worker = worker_new();
	a->wake_fd = worker_wake_fd(a->worker);
	if (a->browser) {
		cr_stats_free(a->browser->stats);
		a->browser->stats = NULL;
	}
	browser_free(a->browser);
	a->browser = NULL;
	if (a->have_wb)
		wb_free(&a->wb);
	a->have_wb = 0;
	close_models(a);
}

void app_open_session(struct app *a, int64_t id)
{
	if (worker_busy(a->worker) == WORK_MERGE) {
		app_message(a, CR_ROLE_WARNING, "a merge is running; wait for it or cancel it (x) first");
		return;
	}
	a->open_request = id;
}

/* Runs from the loop, outside any view's handler, so every view can go. */
static void do_open_request(struct app *a)
{
	int64_t id = a->open_request;
	a->open_request = 0;
	while (a->nviews > 0) {
		struct view *v = a->stack[--a->nviews];
		if (v->ops->destroy)
			v->ops->destroy(v);
	}
	prompt_free(a);
	close_workbench(a);
	cr_error err = { 0 };
	if (open_workbench(a, id, NULL, NULL, 0, &err) < 0) {
		close_workbench(a);
		cr_error e2 = { 0 };
		struct view *v = sessions_view_new(a, db_path(a), &e2);
		if (v)
			a->stack[a->nviews++] = v;
		else
			a->quit = 1;
		app_message(a, CR_ROLE_ERROR, "%s", err.msg);
		return;
	}
	start_browser(a);
	app_message(a, CR_ROLE_OK, "session %lld \"%s\" opened", (long long)id, a->wb.session_name);
}

/* Check the terminal before handing it to curses, so the refusal is one clear line. */
static int terminal_usable(void)
{
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		cli_error("the workbench needs a terminal on stdin and stdout; for scripts use the subcommands "
			  "(crucible --help)");
		return 0;
	}
	const char *term = getenv("TERM");
	if (!term || !*term) {
		cli_error("TERM is not set; set it to your terminal type (for example TERM=xterm-256color)");
		return 0;
	}
	int errret = 0;
	if (setupterm((char *)term, STDOUT_FILENO, &errret) != OK) {
		if (errret == -1)
			cli_error("no terminfo database found for TERM='%s'", term);
		else
			cli_error("unknown terminal type TERM='%s' (try TERM=xterm-256color)", term);
		return 0;
	}
	char *cup = tigetstr((char *)"cup");
	int hardcopy = tigetflag((char *)"hc") > 0;
	del_curterm(cur_term);
	if (!cup || cup == (char *)-1 || hardcopy) {
		cli_error("terminal '%s' cannot move the cursor, so the full-screen workbench cannot run on it; "
			  "use a terminal such as xterm, or the subcommands inspect/diff/merge/sessions",
			  term);
		return 0;
	}
	return 1;
}

static int start_screen(struct app *a)
{
	set_escdelay(25);
	a->screen = newterm(NULL, stdout, stdin);
	if (!a->screen) {
		cli_error("cannot start the terminal '%s'", getenv("TERM"));
		return -1;
	}
	set_term(a->screen);
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);
	mousemask(ALL_MOUSE_EVENTS, NULL);
	mouseinterval(0);
	colors_init(&a->theme);
	getmaxyx(stdscr, a->rows, a->cols);
	return 0;
}

static void run_loop(struct app *a)
{
	draw_all(a);
	if (a->show_timing) {
		app_note(a, CR_ROLE_DIM, "first screen %.0f ms after start (catalog %.0f ms)", now_ms() - a->start_ms,
			  a->catalog_ms);
		draw_all(a);
	}
	while (!a->quit) {
		struct pollfd pf[2] = { { STDIN_FILENO, POLLIN, 0 }, { a->wake_fd, POLLIN, 0 } };
		int n = poll(pf, a->wake_fd >= 0 ? 2 : 1, 500);
		int flags = 0;
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (pf[1].revents & POLLIN))
			flags |= worker_drain(a->worker, a);
		/* Read keys even on a timeout or EINTR: that is where KEY_RESIZE shows up. */
		flags |= handle_input(a);
		if (flags & V_QUIT)
			a->quit = 1;
		if (a->open_request && !a->quit) {
			do_open_request(a);
			flags |= V_REDRAW;
		}
		if (!a->quit && (flags & V_REDRAW))
			draw_all(a);
	}
}

static void app_free(struct app *a)
{
	while (a->nviews > 1)
		app_pop(a);
	prompt_free(a);
	while (a->nviews > 0) {
		struct view *v = a->stack[--a->nviews];
		if (v->ops->destroy)
			v->ops->destroy(v);
	}
	worker_free(a->worker);
	a->worker = NULL;
	if (a->browser) {
		cr_stats_free(a->browser->stats);
		a->browser->stats = NULL;
	}
	browser_free(a->browser);
	if (a->have_wb)
		wb_free(&a->wb);
	close_models(a);
	cr_theme_free(&a->theme);
	cr_config_free(&a->cfg);
}

int tui_main(int argc, char **argv)
{
	struct app app;
	memset(&app, 0, sizeof app);
	struct app *a = &app;
	a->wake_fd = -1;
	a->start_ms = now_ms();
	setlocale(LC_ALL, "");
	int rc = parse_args(a, argc, argv);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	cr_config_init(&a->cfg);
	char cfgpath[PATH_MAX];
	cr_error err = { 0 };
	if (cr_config_default_path(cfgpath, sizeof cfgpath) == 0 && cr_config_load(&a->cfg, cfgpath, &err) < 0)
		app_message(a, CR_ROLE_WARNING, "%s", err.msg);
	else if (a->cfg.nwarnings)
		app_message(a, CR_ROLE_WARNING, "config: %s", a->cfg.warnings[0]);
	const char *cs = nl_langinfo(CODESET);
	glyphs_choose(a->opt.ascii || a->cfg.ascii || !cs || strcmp(cs, "UTF-8") != 0);
	rc = EXIT_FAIL;
	a->show_timing = getenv("CRUCIBLE_TUI_TIMING") != NULL;
	if (!terminal_usable())
		goto out;
	/* Models and session before the screen, so a bad path is one line on stderr. */
	if ((a->opt.base || a->opt.session_id) &&
	    open_workbench(a, a->opt.session_id, a->opt.base, a->opt.parents, a->opt.nparents, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	struct view *sessions = NULL;
	if (!a->opt.base && !a->opt.session_id && !(sessions = sessions_view_new(a, db_path(a), &err))) {
		cli_error("%s", err.msg);
		goto out;
	}
	char msg[sizeof a->status];
	memcpy(msg, a->status, sizeof msg);
	load_theme(a);
	if (!a->status[0])
		memcpy(a->status, msg, sizeof msg);
	if (start_screen(a) < 0) {
		if (sessions)
			sessions->ops->destroy(sessions);
		goto out;
	}
	the_app = a;
	cr_oom_hook = restore_terminal;
	a->worker = worker_new();
	a->wake_fd = worker_wake_fd(a->worker);
	if (sessions)
		a->stack[a->nviews++] = sessions;
	else
		start_browser(a);
	run_loop(a);
	rc = EXIT_OK;
	endwin();
out:
	if (a->screen)
		delscreen(a->screen);
	app_free(a);
	the_app = NULL;
	return rc;
}
