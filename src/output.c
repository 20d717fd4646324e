/*
 * Output folder files (see crucible/output.h).  Everything written here is
 * fsynced before the engine renames OUT.partial to OUT.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crucible/checkpoint.h"
#include "crucible/output.h"

#define MAX_SUPPORT_FILE (512u << 20)

/* Create path as a new file: whatever was there (a symbolic or hard link to a
 * file outside the output folder, a stale file) is unlinked, never written through. */
static int create_fresh(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return -1;
	return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

int cr_out_write_file(const char *path, const char *text, size_t len, cr_error *err)
{
	int fd = create_fresh(path);
	if (fd < 0)
		return cr_fail(err, CR_E_IO, "%s: cannot create: %s", path, strerror(errno));
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			close(fd);
			return cr_fail(err, CR_E_IO, "%s: write failed: %s", path, strerror(e));
		}
		done += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		return cr_fail(err, CR_E_IO, "%s: fsync failed: %s", path, strerror(errno));
	return 0;
}

int cr_out_fsync_dir(const char *dir, cr_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cr_fail(err, CR_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
	int rc = fsync(fd);
	close(fd);
	if (rc < 0 && errno != EINVAL)
		return cr_fail(err, CR_E_IO, "%s: fsync failed: %s", dir, strerror(errno));
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

int cr_out_rmrf(const char *path, cr_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return 0;
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return cr_fail(err, CR_E_IO, "%s: cannot remove: %s", path, strerror(errno));
	return 0;
}

static int write_json(const char *dir, const char *name, json_t *j, cr_error *err)
{
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return cr_fail(err, CR_E_NOMEM, "%s/%s: cannot format JSON", dir, name);
	size_t n = strlen(dir) + strlen(name) + 2;
	char *path = cr_xmalloc(n);
	snprintf(path, n, "%s/%s", dir, name);
	size_t len = strlen(text);
	text = cr_xrealloc(text, len + 2);
	text[len++] = '\n';
	int rc = cr_out_write_file(path, text, len, err);
	free(text);
	free(path);
	return rc;
}

int cr_out_write_index(const char *dir, const char *const *names, const char *const *files, size_t n,
		       uint64_t total, cr_error *err)
{
	json_t *root = json_object(), *meta = json_object(), *map = json_object();
	json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
	json_object_set_new(root, "metadata", meta);
	for (size_t i = 0; i < n; i++)
		json_object_set_new(map, names[i], json_string(files[i]));
	json_object_set_new(root, "weight_map", map);
	int rc = write_json(dir, "model.safetensors.index.json", root, err);
	json_decref(root);
	return rc;
}

int cr_out_write_config(const char *dir, const char *base_config, const char *torch_dtype, int fp8, int layers,
			cr_error *err)
{
	json_t *root = NULL;
	if (base_config) {
		json_error_t je;
		root = json_loads(base_config, 0, &je);
		if (!root || !json_is_object(root)) {
			json_decref(root);
			return cr_fail(err, CR_E_FORMAT, "base config.json: not a JSON object");
		}
	} else {
		root = json_object();
	}
	if (torch_dtype)
		json_object_set_new(root, "torch_dtype", json_string(torch_dtype));
	if (!fp8)
		json_object_del(root, "quantization_config");
	if (layers >= 0)
		json_object_set_new(root, "num_hidden_layers", json_integer(layers));
	int rc = write_json(dir, "config.json", root, err);
	json_decref(root);
	return rc;
}

/* Files of a checkpoint folder that are weights or that the engine writes itself. */
static int skip_support(const char *name)
{
	static const char *const suffixes[] = { ".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack",
						".h5", ".ckpt", ".index.json", ".partial" };
	if (name[0] == '.' || strcmp(name, "config.json") == 0 || strcmp(name, "README.md") == 0)
		return 1;
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
		size_t k = strlen(suffixes[i]);
		if (n >= k && strcmp(name + n - k, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

static int copy_file(const char *from, const char *to, cr_error *err)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return cr_fail(err, CR_E_IO, "%s: cannot open: %s", from, strerror(errno));
	int out = create_fresh(to);
	if (out < 0) {
		close(in);
		return cr_fail(err, CR_E_IO, "%s: cannot create: %s", to, strerror(errno));
	}
	char buf[1 << 16];
	int rc = 0;
	for (;;) {
		ssize_t r = read(in, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = cr_fail(err, CR_E_IO, "%s: read failed: %s", from, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		for (ssize_t d = 0; d < r;) {
			ssize_t w = write(out, buf + d, (size_t)(r - d));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = cr_fail(err, CR_E_IO, "%s: write failed: %s", to, strerror(errno));
				break;
			}
			d += w;
		}
		if (rc)
			break;
	}
	if (rc == 0 && fsync(out) < 0)
		rc = cr_fail(err, CR_E_IO, "%s: fsync failed: %s", to, strerror(errno));
	close(in);
	close(out);
	return rc;
}

int cr_out_copy_support(const char *dir, const char *base_dir, cr_error *err)
{
	DIR *d = opendir(base_dir);
	if (!d)
		return cr_fail(err, CR_E_IO, "%s: cannot list: %s", base_dir, strerror(errno));
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d))) {
		if (skip_support(e->d_name))
			continue;
		size_t n1 = strlen(base_dir) + strlen(e->d_name) + 2, n2 = strlen(dir) + strlen(e->d_name) + 2;
		char *from = cr_xmalloc(n1), *to = cr_xmalloc(n2);
		snprintf(from, n1, "%s/%s", base_dir, e->d_name);
		snprintf(to, n2, "%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(from, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= MAX_SUPPORT_FILE) {
			/* the same rule as for the weights: no reading through links out of the folder */
			if (!cr_path_inside(base_dir, from))
				rc = cr_fail(err, CR_E_FORMAT, "%s: symbolic link to a file outside the checkpoint folder %s",
					     from, base_dir);
			else
				rc = copy_file(from, to, err);
		}
		free(from);
		free(to);
	}
	closedir(d);
	return rc;
}

int cr_out_write_card(const char *dir, const char *name, const char *method, const char *const *parents,
		      size_t nparents, const char *recipe_yaml, cr_error *err)
{
	size_t cap = 4096 + (recipe_yaml ? strlen(recipe_yaml) : 0);
	for (size_t i = 0; i < nparents; i++)
		cap += strlen(parents[i]) + 16;
	char *text = cr_xmalloc(cap);
	size_t k = 0;
	k += (size_t)snprintf(text + k, cap - k, "---\ntags:\n- merge\n- crucible\n---\n# %s\n\n", name);
	k += (size_t)snprintf(text + k, cap - k, "This model was merged with crucible using the `%s` method.\n\n",
			      method);
	k += (size_t)snprintf(text + k, cap - k, "## Models\n\n");
	for (size_t i = 0; i < nparents; i++)
		k += (size_t)snprintf(text + k, cap - k, "- `%s`%s\n", parents[i], i == 0 ? "" : "");
	k += (size_t)snprintf(text + k, cap - k, "\n## Recipe\n\n```yaml\n%s%s```\n", recipe_yaml ? recipe_yaml : "",
			      recipe_yaml && *recipe_yaml && recipe_yaml[strlen(recipe_yaml) - 1] != '\n' ? "\n" : "");
	size_t n = strlen(dir) + 16;
	char *path = cr_xmalloc(n);
	snprintf(path, n, "%s/README.md", dir);
	int rc = cr_out_write_file(path, text, k < cap ? k : cap - 1, err);
	free(path);
	free(text);
	return rc;
}
