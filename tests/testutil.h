/* Helpers shared by the Check unit tests. */
#ifndef CRUCIBLE_TESTUTIL_H
#define CRUCIBLE_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Path under the shared fixtures; the result is a static buffer per call site use. */
static inline const char *fixture(const char *rel)
{
	static char buf[8][4096];
	static int k;
	const char *root = getenv("FIXTURES");
	if (!root)
		root = "../shared/fixtures";
	char *b = buf[k++ & 7];
	snprintf(b, 4096, "%s/%s", root, rel);
	return b;
}

/* An E4M3 ("fn") decoder written from the README's definition, independent of
 * the library's: bias 7, subnormals m/8 * 2^-6, 0x7F/0xFF NaN. */
static inline double ref_e4m3(unsigned b)
{
	int s = (b & 0x80) ? -1 : 1, e = (b >> 3) & 15, m = b & 7;
	if (e == 15 && m == 7)
		return NAN;
	if (e == 0)
		return s * ldexp(m / 8.0, -6);
	return s * ldexp(1.0 + m / 8.0, e - 7);
}

static inline int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

#endif
