/* Formatting helpers (see crucible/format.h). */
#include "config.h"

#include <stdio.h>

#include "crucible/format.h"

char *cr_fmt_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

char *cr_fmt_count(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "", "K", "M", "B", "T" };
	double v = (double)n;
	int u = 0;
	while (v >= 1000.0 && u < 4) {
		v /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu", (unsigned long long)n);
	else
		snprintf(buf, len, "%.2f%s", v, unit[u]);
	return buf;
}

char *cr_fmt_shape(const uint64_t *shape, int ndim, char *buf, size_t len)
{
	size_t pos = 0;
	pos += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < ndim && pos < len; i++)
		pos += (size_t)snprintf(buf + pos, len - pos, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
	if (pos < len)
		snprintf(buf + pos, len - pos, "]");
	return buf;
}
