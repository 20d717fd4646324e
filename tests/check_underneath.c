/*
 * Parent files changing underneath an open checkpoint: truncated shards give
 * a one-line error naming the file and tensor (never SIGBUS: a mapping would
 * fault here and Check would report the signal), and a shard replaced by
 * rename keeps reading the file that was opened.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crucible/checkpoint.h"

/* Copy every regular file of src into a fresh temporary folder. */
static char *copy_fixture(const char *rel)
{
	char tmpl[] = "/tmp/crucible-underneath-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	const char *src = fixture(rel);
	DIR *d = opendir(src);
	ck_assert_msg(d != NULL, "cannot open %s", src);
	struct dirent *e;
	char from[4096], to[4096], buf[65536];
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(from, sizeof from, "%s/%s", src, e->d_name);
		snprintf(to, sizeof to, "%s/%s", tmpl, e->d_name);
		int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		ck_assert(in >= 0 && out >= 0);
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0)
			ck_assert(write(out, buf, (size_t)n) == n);
		close(in);
		close(out);
	}
	closedir(d);
	return strdup(tmpl);
}

static void remove_tree(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4096];
	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

/* The tensor whose data ends last in shard k. */
static const struct cr_tensor *last_in_shard(const struct cr_ckpt *c, int k)
{
	const struct cr_tensor *best = NULL;
	for (size_t i = 0; i < c->ntensors; i++)
		if (c->tensors[i].shard == k && (!best || c->tensors[i].st->end > best->st->end))
			best = &c->tensors[i];
	return best;
}

START_TEST(truncated_shard_gives_an_error_naming_file_and_tensor)
{
	char *dir = copy_fixture("models/dsv3/v3-base");
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(dir, &c, &err) == 0, "%s", err.msg);
	ck_assert_uint_gt(c->nshards, 1);
	int checked = 0;
	for (int k = 0; k < (int)c->nshards; k++) {
		const struct cr_st_file *f = c->shards[k];
		const struct cr_tensor *t = last_in_shard(c, k);
		if (!t || t->nbytes < 2)
			continue;
		unsigned char *buf = malloc(t->nbytes);
		ck_assert_msg(cr_tensor_read_raw(c, t, 0, buf, t->nbytes, &err) == 0, "%s", err.msg);
		/* cut the file in the middle of its last tensor */
		ck_assert_int_eq(truncate(f->path, (off_t)(f->data_start + t->st->begin + t->nbytes / 2)), 0);
		memset(&err, 0, sizeof err);
		ck_assert_int_eq(cr_tensor_read_raw(c, t, 0, buf, t->nbytes, &err), -1);
		ck_assert_int_eq(err.code, CR_E_IO);
		ck_assert_msg(strstr(err.msg, f->path) && strstr(err.msg, t->name), "message: %s", err.msg);
		ck_assert_msg(strchr(err.msg, '\n') == NULL, "message is not one line: %s", err.msg);
		/* the half still on disk reads fine: only what is missing fails */
		ck_assert_msg(cr_tensor_read_raw(c, t, 0, buf, t->nbytes / 2, &err) == 0, "%s", err.msg);
		if (cr_dtype_has_math(t->dtype)) {
			size_t esz = cr_dtype_bits(t->dtype) / 8;
			float *out = malloc(t->nelem * sizeof *out);
			float *grid = t->scale ? malloc(cr_tensor_scale_count(t) * sizeof *grid) : NULL;
			if (grid && cr_tensor_read_scales(c, t, grid, &err) < 0) {
				/* the scale lived in this shard's truncated part: also an error naming it */
				ck_assert_msg(strstr(err.msg, f->path) != NULL, "message: %s", err.msg);
			} else {
				unsigned char *raw = malloc(t->nelem * esz);
				ck_assert_int_eq(cr_tensor_read_f32(c, t, grid, 0, (size_t)t->nelem, raw, out, &err), -1);
				ck_assert_msg(strstr(err.msg, f->path) && strstr(err.msg, t->name), "message: %s",
					      err.msg);
				free(raw);
			}
			free(grid);
			free(out);
		}
		/* an empty file: every tensor of the shard fails, with the file named */
		ck_assert_int_eq(truncate(f->path, 0), 0);
		for (size_t i = 0; i < c->ntensors; i++) {
			const struct cr_tensor *u = &c->tensors[i];
			if (u->shard != k || u->nbytes == 0)
				continue;
			unsigned char *b = malloc(u->nbytes);
			ck_assert_int_eq(cr_tensor_read_raw(c, u, 0, b, u->nbytes, &err), -1);
			ck_assert_msg(strstr(err.msg, f->path) && strstr(err.msg, u->name), "message: %s", err.msg);
			free(b);
		}
		free(buf);
		checked++;
	}
	ck_assert_int_eq(checked, (int)c->nshards);
	cr_ckpt_close(c);
	/* and opening the damaged folder again is refused with the file named */
	ck_assert_int_eq(cr_ckpt_open(dir, &c, &err), -1);
	ck_assert_msg(strstr(err.msg, ".safetensors") != NULL, "message: %s", err.msg);
	remove_tree(dir);
}
END_TEST

START_TEST(replaced_shard_keeps_reading_the_opened_file)
{
	char *dir = copy_fixture("models/llama/base");
	char path[4096], tmp[4096];
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	snprintf(tmp, sizeof tmp, "%s/model.safetensors.new", dir);
	struct cr_ckpt *c, *c2;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(dir, &c, &err) == 0, "%s", err.msg);
	const struct cr_tensor *t = last_in_shard(c, 0);
	unsigned char *before = malloc(t->nbytes), *after = malloc(t->nbytes);
	ck_assert_int_eq(cr_tensor_read_raw(c, t, 0, before, t->nbytes, &err), 0);

	/* write a copy with every data byte flipped and rename it over the shard */
	const struct cr_st_file *f = c->shards[0];
	int in = open(path, O_RDONLY), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert(in >= 0 && out >= 0);
	unsigned char buf[65536];
	ssize_t n;
	off_t pos = 0;
	while ((n = read(in, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if ((uint64_t)(pos + i) >= f->data_start)
				buf[i] ^= 0xff;
		ck_assert(write(out, buf, (size_t)n) == n);
		pos += n;
	}
	close(in);
	close(out);
	ck_assert_int_eq(rename(tmp, path), 0);

	/* the open checkpoint still reads the file it validated */
	ck_assert_msg(cr_tensor_read_raw(c, t, 0, after, t->nbytes, &err) == 0, "%s", err.msg);
	ck_assert(memcmp(before, after, t->nbytes) == 0);
	/* a fresh open sees the new file, with a different identity */
	ck_assert_msg(cr_ckpt_open(dir, &c2, &err) == 0, "%s", err.msg);
	const struct cr_tensor *t2 = cr_ckpt_find(c2, t->name);
	ck_assert_ptr_nonnull(t2);
	ck_assert_int_eq(cr_tensor_read_raw(c2, t2, 0, after, t2->nbytes, &err), 0);
	for (size_t i = 0; i < t->nbytes; i++)
		ck_assert_uint_eq(after[i], before[i] ^ 0xff);
	ck_assert_uint_eq(c2->shards[0]->header_hash, f->header_hash); /* same header ... */
	ck_assert_uint_eq(c2->shards[0]->file_size, f->file_size);     /* ... and size */
	cr_ckpt_close(c2);
	free(before);
	free(after);
	cr_ckpt_close(c);
	remove_tree(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("underneath");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, truncated_shard_gives_an_error_naming_file_and_tensor);
	tcase_add_test(tc, replaced_shard_keeps_reading_the_opened_file);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
