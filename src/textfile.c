/*
 * Reading small text files and walking their lines (see crucible/textfile.h).
 */
#include "config.h"

#include <stdarg.h>

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/textfile.h"

char *cr_read_text_file(const char *path, size_t limit, cr_error *err)
{
	/* O_NONBLOCK: a FIFO must not block the open; only regular files are read */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		cr_fail(err, errno == ENOENT ? CR_E_NOTFOUND : CR_E_IO, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		cr_fail(err, CR_E_FORMAT, "%s: not a regular file", path);
		return NULL;
	}
	if ((uint64_t)st.st_size > limit) {
		close(fd);
		cr_fail(err, CR_E_FORMAT, "%s: larger than %zu bytes", path, limit);
		return NULL;
	}
	size_t size = (size_t)st.st_size, n = 0;
	char *buf = cr_xmalloc(size + 1);
	while (n < size) {
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cr_fail(err, CR_E_IO, "%s: read error: %s", path, strerror(errno));
			close(fd);
			free(buf);
			return NULL;
		}
		if (r == 0)
			break; /* shrank meanwhile: take what is there */
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return buf;
}

void cr_each_line(const char *text, const char *file, cr_line_fn fn, void *ctx)
{
	char *copy = cr_xstrdup(text);
	int lineno = 0;
	/* Walk by hand: strtok on "\n" would merge blank lines and lose line numbers. */
	for (char *line = copy; line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		fn(ctx, line, file, lineno);
		line = nl ? nl + 1 : NULL;
	}
	free(copy);
}

void cr_add_line_warning(char ***list, size_t *n, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t len = strlen(file) + strlen(msg) + 32;
	char *w = cr_xmalloc(len);
	snprintf(w, len, "%s:%d: %s", file, line, msg);
	*list = cr_xrealloc(*list, (*n + 1) * sizeof **list);
	(*list)[(*n)++] = w;
}
