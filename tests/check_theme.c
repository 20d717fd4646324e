/* Theme files and the config file: parsing, warnings with file and line, the shipped themes. */
#include "config.h"

#include <unistd.h>

#include "crucible/config_file.h"
#include "crucible/theme.h"
#include "testutil.h"

static const char *srcdir(void)
{
	const char *s = getenv("SRCDIR");
	return s ? s : ".";
}

START_TEST(parse_sets_roles)
{
	struct cr_theme t;
	cr_theme_init(&t);
	cr_theme_parse(&t,
		       "# comment\n"
		       "\n"
		       "color cursor  bright-red 17 bold underline\n"
		       "color heat-4 default  white   # trailing comment\n",
		       "x.theme");
	ck_assert_uint_eq(t.nwarnings, 0);
	ck_assert_int_eq(t.role[CR_ROLE_CURSOR].fg, 9);
	ck_assert_int_eq(t.role[CR_ROLE_CURSOR].bg, 17);
	ck_assert_uint_eq(t.role[CR_ROLE_CURSOR].attrs, CR_ATTR_BOLD | CR_ATTR_UNDERLINE);
	ck_assert_int_eq(t.role[CR_ROLE_HEAT_4].fg, -1);
	ck_assert_int_eq(t.role[CR_ROLE_HEAT_4].bg, 7);
	ck_assert_uint_eq(t.role[CR_ROLE_HEAT_4].attrs, 0);
	cr_theme_free(&t);
}
END_TEST

START_TEST(bad_lines_warn_with_file_and_line)
{
	struct cr_theme t;
	cr_theme_init(&t);
	struct cr_theme_entry before = t.role[CR_ROLE_TITLE];
	cr_theme_parse(&t,
		       "color title red blue\n"	     /* 1: good */
		       "colour title red blue\n"     /* 2: unknown command */
		       "color no-such-role red blue\n" /* 3 */
		       "color title purple blue\n"   /* 4: unknown colour */
		       "color title red 256\n"	     /* 5: out of range */
		       "color title red blue shiny\n" /* 6: unknown attribute */
		       "color title red\n",	     /* 7: too few words */
		       "my.theme");
	ck_assert_uint_eq(t.nwarnings, 6);
	ck_assert_str_eq(t.warnings[0], "my.theme:2: unknown command 'colour' (expected 'color ROLE FG BG [ATTR...]')");
	ck_assert_ptr_nonnull(strstr(t.warnings[1], "my.theme:3: unknown colour role 'no-such-role'"));
	ck_assert_ptr_nonnull(strstr(t.warnings[2], "my.theme:4: unknown colour 'purple'"));
	ck_assert_ptr_nonnull(strstr(t.warnings[3], "my.theme:5: unknown colour '256'"));
	ck_assert_ptr_nonnull(strstr(t.warnings[4], "my.theme:6: unknown attribute 'shiny'"));
	ck_assert_ptr_nonnull(strstr(t.warnings[5], "my.theme:7:"));
	/* Line 1 applied; the bad lines changed nothing. */
	ck_assert_int_eq(t.role[CR_ROLE_TITLE].fg, 1);
	ck_assert_int_eq(t.role[CR_ROLE_TITLE].bg, 4);
	ck_assert_int_ne(before.fg, 1);
	cr_theme_free(&t);
}
END_TEST

/* themes/default must say exactly what the built-in table says. */
START_TEST(default_file_matches_builtin)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/themes/default", srcdir());
	struct cr_theme builtin, file;
	cr_theme_init(&builtin);
	cr_theme_init(&file);
	/* Start the file's theme from something else, so every role must be set by the file. */
	for (int r = 0; r < CR_ROLE__COUNT; r++)
		file.role[r] = (struct cr_theme_entry){ 100, 100, CR_ATTR_BLINK };
	cr_error err = { 0 };
	ck_assert_msg(cr_theme_load(&file, path, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(file.nwarnings, 0);
	for (int r = 0; r < CR_ROLE__COUNT; r++) {
		ck_assert_msg(file.role[r].fg == builtin.role[r].fg && file.role[r].bg == builtin.role[r].bg &&
				      file.role[r].attrs == builtin.role[r].attrs,
			      "role %s differs between themes/default and the built-in table", cr_role_name(r));
	}
	cr_theme_free(&file);
	cr_theme_free(&builtin);
}
END_TEST

/* Every shipped theme parses cleanly and sets every role. */
START_TEST(shipped_themes_are_complete)
{
	static const char *const names[] = { "default", "light", "solarized-dark", "mono" };
	for (size_t i = 0; i < 4; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/themes/%s", srcdir(), names[i]);
		struct cr_theme t;
		cr_theme_init(&t);
		for (int r = 0; r < CR_ROLE__COUNT; r++)
			t.role[r] = (struct cr_theme_entry){ 100, 100, CR_ATTR_BLINK };
		cr_error err = { 0 };
		ck_assert_msg(cr_theme_load(&t, path, &err) == 0, "%s", err.msg);
		ck_assert_msg(t.nwarnings == 0, "%s: %s", path, t.nwarnings ? t.warnings[0] : "");
		for (int r = 0; r < CR_ROLE__COUNT; r++)
			ck_assert_msg(t.role[r].fg != 100, "%s does not set role %s", names[i], cr_role_name(r));
		if (strcmp(names[i], "mono") == 0)
			for (int r = 0; r < CR_ROLE__COUNT; r++)
				ck_assert_msg(t.role[r].fg == -1 && t.role[r].bg == -1, "mono uses a colour for %s",
					      cr_role_name(r));
		cr_theme_free(&t);
	}
}
END_TEST

START_TEST(find_by_name_and_path)
{
	char dir[4096], path[4096];
	snprintf(dir, sizeof dir, "%s/themes", srcdir());
	const char *dirs[] = { "/nonexistent/crucible", dir, NULL };
	cr_error err = { 0 };
	ck_assert_int_eq(cr_theme_find("light", dirs, path, sizeof path, &err), 0);
	ck_assert_ptr_nonnull(strstr(path, "/themes/light"));
	ck_assert_int_eq(cr_theme_find("no-such-theme", dirs, path, sizeof path, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "theme 'no-such-theme' not found (looked in /nonexistent/crucible, "));
	ck_assert_int_eq(cr_theme_find("/nonexistent/x.theme", dirs, path, sizeof path, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.theme: no such theme file"));
	ck_assert_int_eq(cr_theme_load(NULL, "/nonexistent/x.theme", &err), -1);
}
END_TEST

START_TEST(colors_and_attrs)
{
	ck_assert_int_eq(cr_color_parse("default"), -1);
	ck_assert_int_eq(cr_color_parse("black"), 0);
	ck_assert_int_eq(cr_color_parse("white"), 7);
	ck_assert_int_eq(cr_color_parse("bright-black"), 8);
	ck_assert_int_eq(cr_color_parse("bright-white"), 15);
	ck_assert_int_eq(cr_color_parse("255"), 255);
	ck_assert_int_eq(cr_color_parse("256"), -2);
	ck_assert_int_eq(cr_color_parse("12x"), -2);
	ck_assert_int_eq(cr_color_parse("bright-"), -2);
	ck_assert_int_eq(cr_attr_parse("normal"), 0);
	ck_assert_int_eq(cr_attr_parse("reverse"), (int)CR_ATTR_REVERSE);
	ck_assert_int_eq(cr_attr_parse("Bold"), -1);
	ck_assert_int_eq(cr_role_parse("cursor"), CR_ROLE_CURSOR);
	ck_assert_int_eq(cr_role_parse("cursor "), CR_ROLE_NONE);
	for (int r = 0; r < CR_ROLE__COUNT; r++)
		ck_assert_int_eq(cr_role_parse(cr_role_name(r)), r);
}
END_TEST

START_TEST(config_file)
{
	struct cr_config c;
	cr_config_init(&c);
	ck_assert(c.lambda_step == 0.05 && c.delta_step == 0.01 && !c.theme && !c.database);
	setenv("HOME", "/home/tester", 1);
	cr_config_parse(&c,
			"theme = solarized-dark\n"
			"database ~/m.db\n"
			"lambda-step = 0.1   # comment\n"
			"delta-step = 2\n"   /* 4: out of range */
			"colour = red\n"     /* 5: unknown key */
			"ascii = yes\n"
			"theme\n",	     /* 7: no value */
			"cfg");
	ck_assert_str_eq(c.theme, "solarized-dark");
	ck_assert_str_eq(c.database, "/home/tester/m.db");
	ck_assert(c.lambda_step == 0.1);
	ck_assert(c.delta_step == 0.01);
	ck_assert_int_eq(c.ascii, 1);
	ck_assert_uint_eq(c.nwarnings, 3);
	ck_assert_str_eq(c.warnings[0], "cfg:4: delta-step: '2' is not a number in (0, 1]");
	ck_assert_ptr_nonnull(strstr(c.warnings[1], "cfg:5: unknown setting 'colour'"));
	ck_assert_str_eq(c.warnings[2], "cfg:7: 'theme' needs a value");
	cr_config_free(&c);

	/* A missing file is fine; the default path follows XDG_CONFIG_HOME. */
	cr_config_init(&c);
	cr_error err = { 0 };
	ck_assert_int_eq(cr_config_load(&c, "/nonexistent/crucible/config", &err), 0);
	ck_assert_ptr_null(c.path);
	cr_config_free(&c);
	char p[256];
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	ck_assert_int_eq(cr_config_default_path(p, sizeof p), 0);
	ck_assert_str_eq(p, "/xdg/crucible/config");
	unsetenv("XDG_CONFIG_HOME");
	ck_assert_int_eq(cr_config_default_path(p, sizeof p), 0);
	ck_assert_str_eq(p, "/home/tester/.config/crucible/config");
}
END_TEST

/* man/crucible-theme.5 describes every role. */
START_TEST(man_page_lists_every_role)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/man/crucible-theme.5", srcdir());
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: cannot open", path);
	static char man[1 << 16];
	size_t n = fread(man, 1, sizeof man - 1, f);
	fclose(f);
	man[n] = '\0';
	for (int r = 0; r < CR_ROLE__COUNT; r++) {
		char want[128], *w = want;
		w += sprintf(w, ".B ");
		for (const char *c = cr_role_name(r); *c; c++) {
			if (*c == '-')
				*w++ = '\\';
			*w++ = *c;
		}
		*w++ = '\n';
		*w = '\0';
		ck_assert_msg(strstr(man, want) != NULL, "man/crucible-theme.5 does not list role %s", cr_role_name(r));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("theme");
	TCase *tc = tcase_create("theme");
	tcase_add_test(tc, parse_sets_roles);
	tcase_add_test(tc, bad_lines_warn_with_file_and_line);
	tcase_add_test(tc, default_file_matches_builtin);
	tcase_add_test(tc, shipped_themes_are_complete);
	tcase_add_test(tc, find_by_name_and_path);
	tcase_add_test(tc, colors_and_attrs);
	tcase_add_test(tc, config_file);
	tcase_add_test(tc, man_page_lists_every_role);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
