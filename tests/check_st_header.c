/*
 * The hand-written safetensors header parser (src/st_header.c) against a
 * reference written here with jansson, the way the reader worked before:
 * nesting scan, json_loadb with JSON_REJECT_DUPLICATES, then the checks of
 * each tensor entry and of __metadata__.  Both must accept the same headers
 * and give the same fields (names, dtypes, shapes, offsets, metadata in
 * order).  Inputs: every .safetensors under the fixtures, a list of tricky
 * headers (each also marked with the answer it must get), and mutants of
 * small headers.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <ftw.h>
#include <stdint.h>

#include "st_header_ref.h"

static int ncompared, naccepted;

/* Compare the two on one header; expect: 'a' accept, 'r' reject, 0 either. */
static void same(const char *what, const char *hdr, size_t n, char expect)
{
	cr_error err;
	cr_error_clear(&err);
	char *want = ref_parse(hdr, n), *got = new_parse(hdr, n, &err);
	ck_assert_msg(strcmp(want, got) == 0, "%s: header %.*s\n reference: %.300s\n new parser: %.300s\n (%s)", what,
		      (int)(n < 300 ? n : 300), hdr, want, got, err.msg);
	int rejected = strcmp(got, "REJECT") == 0;
	if (rejected) {
		ck_assert_msg(strncmp(err.msg, "HDR: ", 5) == 0 && strchr(err.msg, '\n') == NULL,
			      "%s: message not one line naming the file: %s", what, err.msg);
	}
	if (expect)
		ck_assert_msg(rejected == (expect == 'r'), "%s: header %.*s should be %s (%s)", what,
			      (int)(n < 300 ? n : 300), hdr, expect == 'r' ? "rejected" : "accepted", err.msg);
	naccepted += !rejected;
	ncompared++;
	free(want);
	free(got);
}

/* ---- inputs ---- */

/* The header bytes of a .safetensors file, or NULL when its framing is bad. */
static char *read_header(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char len[8];
	char *h = NULL;
	if (!f)
		return NULL;
	if (fread(len, 1, 8, f) == 8) {
		uint64_t l = 0;
		for (int i = 7; i >= 0; i--)
			l = l << 8 | len[i];
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		if (l <= CR_ST_MAX_HEADER && size >= 8 && l <= (uint64_t)size - 8) {
			h = malloc(l + 1);
			fseek(f, 8, SEEK_SET);
			if (fread(h, 1, l, f) != l) {
				free(h);
				h = NULL;
			}
			*n = l;
		}
	}
	fclose(f);
	return h;
}

static int nfiles;

static int each_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	size_t l = strlen(path), n;
	if (type != FTW_F || l < 12 || strcmp(path + l - 12, ".safetensors") != 0)
		return 0;
	char *h = read_header(path, &n);
	if (h) {
		same(path, h, n, 0);
		nfiles++;
	}
	free(h);
	return 0;
}

START_TEST(every_fixture_header_parses_as_jansson_does)
{
	ck_assert_int_eq(nftw(fixture(""), each_file, 16, FTW_PHYS), 0);
	ck_assert_int_ge(nfiles, 40); /* the malformed, real and model fixtures */
	ck_assert_int_ge(naccepted, 20);
}
END_TEST

#define T(x) "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]" x "}"
static const struct {
	char expect;
	const char *hdr;
} tricky[] = {
	{ 'a', "{}" },
	{ 'a', " \t\r\n{ \t\r\n} \t\r\n" },
	{ 'a', "{" T("") "}" },
	{ 'a', "{\n  \"t\" :\t{ \"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 8 ] , \"dtype\" : \"F32\" }\r\n}   " },
	{ 'a', "{\"__metadata__\":null," T("") "}" },
	{ 'a', "{\"__metadata__\":{}," T("") "}" },
	{ 'a', "{\"__metadata__\":{\"format\":\"pt\",\"a\\u00e9\":\"\\ud83d\\ude00\"}," T("") "}" },
	{ 'a', "{" T("") ",\"__metadata__\":{\"k\":\"v\"}}" },
	/* escapes in names: the decoded bytes are the name */
	{ 'a', "{\"\\u0074\\\"\\\\\\/\\b\\f\\n\\r\\t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}" },
	{ 'a', "{\"\\uD834\\uDD1E clef\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}" },
	{ 'a', "{\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}" },
	{ 'a', "{\"\xf4\x8f\xbf\xbf\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}" }, /* U+10FFFF */
	{ 'a', "{\"\xef\xbf\xbf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },	  /* U+FFFF */
	{ 'a', "{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },		  /* empty name */
	/* same name twice, spelled differently */
	{ 'r', "{" T("") "," T("") "}" },
	{ 'r', "{" T("") ",\"\\u0074\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}" },
	{ 'r', "{\"__metadata__\":null,\"__metadata__\":null}" },
	{ 'r', "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}" },
	{ 'r', "{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}" },
	{ 'r', "{" T(",\"x\":1,\"x\":2") "}" },
	{ 'r', "{" T(",\"x\":{\"y\":{\"z\":1,\"z\":1}}") "}" },
	/* unknown keys in an entry: checked JSON, then ignored */
	{ 'a', "{" T(",\"x\":{\"y\":[1,2.5e-3,-0,true,false,null,\"s\",{}]},\"z\":[]") "}" },
	{ 'r', "{" T(",\"x\":01") "}" },
	{ 'r', "{" T(",\"x\":1.") "}" },
	{ 'r', "{" T(",\"x\":.5") "}" },
	{ 'r', "{" T(",\"x\":1e") "}" },
	{ 'r', "{" T(",\"x\":+1") "}" },
	{ 'r', "{" T(",\"x\":1e999") "}" },
	{ 'a', "{" T(",\"x\":1e-999") "}" },
	{ 'r', "{" T(",\"x\":9223372036854775808") "}" },
	{ 'a', "{" T(",\"x\":9223372036854775807") "}" },
	{ 'a', "{" T(",\"x\":-9223372036854775808") "}" },
	{ 'r', "{" T(",\"x\":-9223372036854775809") "}" },
	{ 'r', "{" T(",\"x\":tru") "}" },
	{ 'r', "{" T(",\"x\":nulls") "}" },
	{ 'r', "{" T(",\"x\":NaN") "}" },
	{ 'r', "{" T(",\"x\":[1,]") "}" },
	{ 'r', "{" T(",") "}" },
	{ 'r', "{" T("") ",}" },
	{ 'r', "{," T("") "}" },
	/* numbers in shape and offsets */
	{ 'a', "{\"t\":{\"dtype\":\"U8\",\"shape\":[-0],\"data_offsets\":[0,-0]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1e0],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{}}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":8,\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}" },
	{ 'r', "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}" },
	{ 'r', "{\"t\":[]}" },
	{ 'r', "{\"t\":null}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[9223372036854775807],\"data_offsets\":[0,9223372036854775807]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],\"data_offsets\":[0,0]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[18446744073709551615],\"data_offsets\":[0,0]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}" },
	{ 'a', "{\"t\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,0]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,3]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e400]}}" },
	/* metadata */
	{ 'r', "{\"__metadata__\":{\"a\":1}}" },
	{ 'r', "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}" },
	{ 'r', "{\"__metadata__\":[]}" },
	{ 'r', "{\"__metadata__\":\"x\"}" },
	{ 'r', "{\"__metadata__\":true}" },
	{ 'r', "{\"__metadata__\":nul}" },
	{ 'a', "{\"__metadata__\":{\"\":\"\",\"nl\":\"a\\nb\"}}" },
	/* strings: control characters, escapes, surrogates, UTF-8 */
	{ 'r', "{\"a\tb\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"a\\x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"a\\u12\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"a\\u12G4\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\\u0000\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"__metadata__\":{\"k\":\"\\u0000\"}}" },
	{ 'r', "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\\udc00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\\ud800\\u0041\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\\ud800\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\\ud800x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\xc0\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },	     /* overlong / */
	{ 'r', "{\"\xe0\x80\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" }, /* overlong */
	{ 'r', "{\"\xf0\x80\x80\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" }, /* UTF-8 surrogate */
	{ 'r', "{\"\xf4\x90\x80\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" }, /* > U+10FFFF */
	{ 'r', "{\"\xf8\x88\x80\x80\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\xc3\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"\xe2\x82\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}} \xc3\xa9" },
	{ 'r', "\xef\xbb\xbf{}" }, /* a byte order mark */
	/* structure */
	{ 'r', "" },
	{ 'r', "   " },
	{ 'r', "[]" },
	{ 'r', "[1,2]" },
	{ 'r', "\"x\"" },
	{ 'r', "null" },
	{ 'r', "{" },
	{ 'r', "{\"t\"" },
	{ 'r', "{\"t\":" },
	{ 'r', "{\"t\" {}}" },
	{ 'r', "{} {}" },
	{ 'r', "{}x" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]]}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1}}}" },
	{ 'r', "{'t':{}}" },
	{ 'r', "{t:{}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\" \"shape\":[1],\"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1] ,, \"data_offsets\":[0,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0\f,1]}}" },
	{ 'r', "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\v" },
};

START_TEST(tricky_headers_parse_as_jansson_does)
{
	for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
		char what[64];
		snprintf(what, sizeof what, "tricky[%zu]", i);
		same(what, tricky[i].hdr, strlen(tricky[i].hdr), tricky[i].expect);
	}
	/* a NUL byte inside a name and after the object (strlen would stop there) */
	static const char nul_name[] = "{\"a\0b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
	same("NUL in a name", nul_name, sizeof nul_name - 1, 'r');
	static const char nul_after[] = "{}\0";
	same("NUL after", nul_after, sizeof nul_after - 1, 'r');
	/* jansson took these (it skips a NUL after a number or literal); they are not JSON */
	static const char nul_in_shape[] = "{\"t\":{\"dtype\":\"U8\",\"shape\":[1\0],\"data_offsets\":[0,1]}}";
	same("NUL after a number", nul_in_shape, sizeof nul_in_shape - 1, 'r');
	static const char nul_after_true[] = "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":true\0}}";
	same("NUL after a literal", nul_after_true, sizeof nul_after_true - 1, 'r');
}
END_TEST

/* Nesting: 64 levels are fine, 65 are not, in every place a value can be. */
START_TEST(nesting_limit_as_before)
{
	char buf[4096];
	for (int depth = 60; depth <= 70; depth++) {
		/* inside an unknown key of an entry: root, entry, then depth - 2 arrays */
		int n = snprintf(buf, sizeof buf, "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":");
		for (int i = 0; i < depth - 2; i++)
			buf[n++] = '[';
		for (int i = 0; i < depth - 2; i++)
			buf[n++] = ']';
		n += snprintf(buf + n, sizeof buf - (size_t)n, "}}");
		same("nesting", buf, (size_t)n, depth <= CR_ST_MAX_DEPTH ? 'a' : 'r');
		/* a top-level array */
		n = 0;
		for (int i = 0; i < depth; i++)
			buf[n++] = '[';
		for (int i = 0; i < depth; i++)
			buf[n++] = ']';
		same("nested arrays", buf, (size_t)n, 'r');
	}
	cr_error err;
	struct cr_st_file f = { 0 };
	memset(buf, '[', sizeof buf);
	ck_assert_int_eq(cr_st_header_parse("HDR", buf, sizeof buf, &f, &err), -1);
	ck_assert_msg(strstr(err.msg, "deeper") != NULL, "%s", err.msg);
	free(f.strings);
	free(f.dims);
}
END_TEST

/* xorshift64*: the same mutants every run */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

START_TEST(mutants_parse_as_jansson_does)
{
	static const char *const seeds[] = {
		"{\"__metadata__\":{\"format\":\"pt\"},\"a.weight\":{\"dtype\":\"BF16\",\"shape\":[2,3],"
		"\"data_offsets\":[0,12]},\"b\\u00e9\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[12,16]}}",
		"{\"t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":[1.5,-2,{\"y\":null}]}}",
		"{\"\\ud83d\\ude00\":{\"shape\":[1,1],\"dtype\":\"I64\",\"data_offsets\":[0,8]}}",
	};
	static const char *const tokens[] = { "\"", "\\", "\\u", "\\ud800", "\\udc00", "{", "}", "[", "]", ",", ":",
					      "-", "0", "9223372036854775808", "1e999", ".5", "e", "null", "true",
					      "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
					      "\xc3", "\xa9", "\xed\xa0\x80", "\xf4\x90\x80\x80", " ", "\n", "\x01" };
	char buf[1024];
	for (int k = 0; k < 30000; k++) {
		const char *s = seeds[next() % 3];
		size_t n = strlen(s);
		memcpy(buf, s, n);
		int edits = 1 + (int)(next() % 3);
		for (int e = 0; e < edits; e++) {
			size_t at = n ? next() % (n + 1) : 0;
			switch (next() % 4) {
			case 0: /* delete a byte */
				if (at < n) {
					memmove(buf + at, buf + at + 1, n - at - 1);
					n--;
				}
				break;
			case 1: /* overwrite a byte */
				if (at < n)
					buf[at] = (char)next();
				break;
			default: { /* insert a token */
				const char *t = tokens[next() % (sizeof tokens / sizeof tokens[0])];
				size_t tl = strlen(t);
				if (n + tl < sizeof buf) {
					memmove(buf + at + tl, buf + at, n - at);
					memcpy(buf + at, t, tl);
					n += tl;
				}
			}
			}
		}
		same("mutant", buf, n, 0);
	}
	/* the mutants reach both answers */
	ck_assert_int_gt(naccepted, 100);
	ck_assert_int_lt(naccepted, ncompared - 1000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("st_header");
	TCase *tc = tcase_create("differential");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_fixture_header_parses_as_jansson_does);
	tcase_add_test(tc, tricky_headers_parse_as_jansson_does);
	tcase_add_test(tc, nesting_limit_as_before);
	tcase_add_test(tc, mutants_parse_as_jansson_does);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
