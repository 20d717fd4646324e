/*
 * Checkpoint catalog (see crucible/checkpoint.h).
 *
 * Owns the open shards and the list of logical tensors.  Invariants after a
 * successful open: every tensor named by the index exists in its shard; no
 * index entry points outside the folder; every block-FP8 weight's scale has
 * the grid shape its weight implies; every file read from the folder
 * resolves inside it (cr_path_inside).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crucible/checkpoint.h"
#include "crucible/fp8.h"
#include "crucible/textfile.h"

#define SCALE_SUFFIX "_scale_inv"
/* Size limits (README "Limits"): an index is parsed whole by jansson, so it
 * gets the same bound as a shard header; DeepSeek-V3's is about 9 MB. */
#define MAX_INDEX_BYTES CR_ST_MAX_HEADER
#define MAX_CONFIG_BYTES (16u << 20)

int cr_natural_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			const char *x = a, *y = b;
			while (*x == '0')
				x++;
			while (*y == '0')
				y++;
			size_t lx = 0, ly = 0;
			while (x[lx] >= '0' && x[lx] <= '9')
				lx++;
			while (y[ly] >= '0' && y[ly] <= '9')
				ly++;
			if (lx != ly)
				return lx < ly ? -1 : 1;
			int c = strncmp(x, y, lx);
			if (c)
				return c;
			a = x + lx;
			b = y + ly;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return *a ? 1 : *b ? -1 : 0;
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = cr_xmalloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static int path_under(const char *root, const char *real)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return 1;
	return strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

int cr_path_inside(const char *dir, const char *file)
{
	char *rf = realpath(file, NULL);
	if (!rf)
		return 1; /* missing or dangling: opening it reports that */
	char *rd = realpath(dir, NULL);
	int ok = rd && path_under(rd, rf);
	if (rd && !ok) {
		/* Hugging Face cache: .../snapshots/REV links every file to ../../blobs/HASH */
		char *rev = strrchr(rd, '/');
		if (rev && rev != rd) {
			*rev = '\0';
			char *snap = strrchr(rd, '/');
			if (snap && strcmp(snap + 1, "snapshots") == 0) {
				strcpy(snap + 1, "blobs");
				ok = path_under(rd, rf);
			}
		}
	}
	free(rd);
	free(rf);
	return ok;
}

/* Refuse a file of the folder that is a symbolic link to somewhere else. */
static int check_inside(const char *dir, const char *file, cr_error *err)
{
	if (cr_path_inside(dir, file))
		return 0;
	return cr_fail(err, CR_E_FORMAT,
		       "%s: symbolic link to a file outside the checkpoint folder %s (only links within it are followed)",
		       file, dir);
}

static uint64_t hash_name(const char *s)
{
	return cr_fnv1a(s, strlen(s), CR_FNV_INIT);
}

static void index_build(struct cr_ckpt *c)
{
	size_t cap = 16;
	while (cap < c->ntensors * 2)
		cap <<= 1;
	c->hcap = cap;
	c->hslot = cr_xmalloc(cap * sizeof *c->hslot);
	memset(c->hslot, 0xff, cap * sizeof *c->hslot);
	for (size_t i = 0; i < c->ntensors; i++) {
		size_t h = hash_name(c->tensors[i].name) & (cap - 1);
		while (c->hslot[h] >= 0)
			h = (h + 1) & (cap - 1);
		c->hslot[h] = (int32_t)i;
	}
}

const struct cr_tensor *cr_ckpt_find(const struct cr_ckpt *c, const char *name)
{
	if (!c->hcap)
		return NULL;
	size_t h = hash_name(name) & (c->hcap - 1);
	while (c->hslot[h] >= 0) {
		const struct cr_tensor *t = &c->tensors[c->hslot[h]];
		if (strcmp(t->name, name) == 0)
			return t;
		h = (h + 1) & (c->hcap - 1);
	}
	return NULL;
}

void cr_ckpt_close(struct cr_ckpt *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nshards; i++)
		cr_st_close(c->shards[i]);
	free(c->shards);
	free(c->tensors);
	free(c->hslot);
	free(c->config_text);
	free(c->model_type);
	free(c->arch);
	free(c->path);
	free(c->dir);
	free(c);
}

static int load_config(struct cr_ckpt *c, cr_error *err)
{
	char *p = path_join(c->dir, "config.json");
	struct stat st;
	if (stat(p, &st) < 0) {
		free(p);
		return 0; /* a bare file has no config: fine */
	}
	if (check_inside(c->dir, p, err) < 0) {
		free(p);
		return -1;
	}
	c->config_text = cr_read_text_file(p, MAX_CONFIG_BYTES, err);
	if (!c->config_text) {
		free(p);
		return -1;
	}
	json_error_t je;
	json_t *cfg = json_loads(c->config_text, 0, &je);
	if (!cfg || !json_is_object(cfg)) {
		cr_fail(err, CR_E_FORMAT, "%s: not a JSON object: %s (line %d)", p, cfg ? "wrong type" : je.text,
			je.line);
		json_decref(cfg);
		free(p);
		return -1;
	}
	free(p);
	json_t *v = json_object_get(cfg, "model_type");
	if (json_is_string(v))
		c->model_type = cr_xstrdup(json_string_value(v));
	v = json_array_get(json_object_get(cfg, "architectures"), 0);
	if (json_is_string(v))
		c->arch = cr_xstrdup(json_string_value(v));
	v = json_object_get(cfg, "num_hidden_layers");
	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 100000)
		c->num_layers = (int)json_integer_value(v);
	static const char *const expert_keys[] = { "n_routed_experts", "num_local_experts", "num_experts" };
	for (size_t i = 0; i < 3; i++) {
		v = json_object_get(cfg, expert_keys[i]);
		if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 1000000) {
			c->num_experts = (int)json_integer_value(v);
			break;
		}
	}
	json_decref(cfg);
	return 0;
}

/* A shard name from an index must stay inside the folder. */
static int shard_name_ok(const char *name)
{
	if (name[0] == '\0' || name[0] == '/')
		return 0;
	const char *p = name;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if ((n == 2 && strncmp(p, "..", 2) == 0) || n == 0)
			return 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return 1;
}

static int add_shard(struct cr_ckpt *c, const char *file, size_t *cap, cr_error *err)
{
	struct cr_st_file *f;
	if (cr_st_open(file, &f, err) < 0)
		return -1;
	if (c->nshards == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		c->shards = cr_xrealloc(c->shards, *cap * sizeof *c->shards);
	}
	c->shards[c->nshards++] = f;
	return 0;
}

struct entry {
	const char *name;
	int shard;
	const struct cr_st_tensor *st;
};

static int cmp_entry_name(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static const struct entry *find_entry(const struct entry *v, size_t n, const char *name)
{
	struct entry key = { name, 0, NULL };
	return bsearch(&key, v, n, sizeof *v, cmp_entry_name);
}

static int cmp_tensor_natural(const void *a, const void *b)
{
	return cr_natural_cmp(((const struct cr_tensor *)a)->name, ((const struct cr_tensor *)b)->name);
}

static int cmp_st_name(const void *a, const void *b)
{
	return strcmp((*(const struct cr_st_tensor *const *)a)->name, (*(const struct cr_st_tensor *const *)b)->name);
}

/* Tensors of one shard sorted by name, for lookups while reading an index. */
struct shard_names {
	size_t n;
	const struct cr_st_tensor **v;
};

static const struct cr_st_tensor *shard_lookup(const struct shard_names *s, const char *name)
{
	struct cr_st_tensor key = { .name = (char *)name };
	const struct cr_st_tensor *kp = &key;
	const struct cr_st_tensor **hit = bsearch(&kp, s->v, s->n, sizeof *s->v, cmp_st_name);
	return hit ? *hit : NULL;
}

static int open_index(struct cr_ckpt *c, const char *idx, struct entry **entries, size_t *nent, cr_error *err)
{
	json_error_t je;
	size_t cap = 0;
	int rc = -1;
	struct shard_names *sn = NULL;
	json_t *shard_of = json_object(); /* shard file name -> index in c->shards */

	char *text = check_inside(c->dir, idx, err) < 0 ? NULL : cr_read_text_file(idx, MAX_INDEX_BYTES, err);
	if (!text) {
		json_decref(shard_of);
		return -1;
	}
	json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!root) {
		json_decref(shard_of);
		return cr_fail(err, CR_E_FORMAT, "%s: index is not valid JSON: %s (line %d)", idx, je.text, je.line);
	}
	json_t *wm = json_object_get(root, "weight_map");
	if (!json_is_object(wm)) {
		cr_fail(err, CR_E_FORMAT, "%s: index has no \"weight_map\" object", idx);
		goto out;
	}
	/* Collect each distinct shard once, in first-seen order, checking names. */
	const char *name;
	json_t *v;
	size_t nfiles = 0;
	const char **files = cr_xcalloc(json_object_size(wm) + 1, sizeof *files);
	json_object_foreach(wm, name, v)
	{
		if (!json_is_string(v)) {
			cr_fail(err, CR_E_FORMAT, "%s: weight_map entry for '%s' is not a string", idx, name);
			goto out_files;
		}
		const char *sh = json_string_value(v);
		if (json_object_get(shard_of, sh))
			continue;
		if (!shard_name_ok(sh)) {
			cr_fail(err, CR_E_FORMAT, "%s: weight_map entry for '%s' points outside the checkpoint folder (\"%s\")",
				idx, name, sh);
			goto out_files;
		}
		json_object_set_new(shard_of, sh, json_integer((json_int_t)nfiles));
		files[nfiles++] = sh;
	}
	/* Headers are independent: parse them in parallel (most of the open time
	 * of a 163-shard checkpoint is JSON parsing). */
	c->shards = cr_xcalloc(nfiles + 1, sizeof *c->shards);
	cr_error *errs = cr_xcalloc(nfiles + 1, sizeof *errs);
	int *missing = cr_xcalloc(nfiles + 1, sizeof *missing);
#pragma omp parallel for schedule(dynamic, 4)
	for (size_t k = 0; k < nfiles; k++) {
		char *file = path_join(c->dir, files[k]);
		struct stat st;
		if (stat(file, &st) < 0)
			missing[k] = 1;
		else if (check_inside(c->dir, file, &errs[k]) < 0 || cr_st_open(file, &c->shards[k], &errs[k]) < 0)
			c->shards[k] = NULL;
		free(file);
	}
	c->nshards = nfiles;
	for (size_t k = 0; k < nfiles && rc == -1; k++) {
		if (missing[k]) {
			cr_fail(err, CR_E_IO, "%s: shard \"%s\" named in the index does not exist", idx, files[k]);
			rc = -2;
		} else if (!c->shards[k]) {
			if (err)
				*err = errs[k];
			rc = -2;
		}
	}
	free(errs);
	free(missing);
	if (rc == -2) {
		rc = -1;
		/* close what opened; cr_ckpt_close skips NULL shards */
		goto out_files;
	}
	(void)cap;
	sn = cr_xcalloc(c->nshards + 1, sizeof *sn);
	for (size_t k = 0; k < c->nshards; k++) {
		const struct cr_st_file *f = c->shards[k];
		sn[k].n = f->ntensors;
		sn[k].v = cr_xmalloc((f->ntensors + 1) * sizeof *sn[k].v);
		for (size_t i = 0; i < f->ntensors; i++)
			sn[k].v[i] = &f->tensors[i];
		qsort(sn[k].v, sn[k].n, sizeof *sn[k].v, cmp_st_name);
	}
	*entries = cr_xcalloc(json_object_size(wm) + 1, sizeof **entries);
	*nent = 0;
	json_object_foreach(wm, name, v)
	{
		const char *sh = json_string_value(v);
		size_t k = (size_t)json_integer_value(json_object_get(shard_of, sh));
		const struct cr_st_tensor *st = shard_lookup(&sn[k], name);
		if (!st) {
			cr_fail(err, CR_E_FORMAT, "%s: tensor '%s' is named in the index but missing from shard \"%s\"", idx,
				name, sh);
			goto out_files;
		}
		(*entries)[*nent].name = st->name;
		(*entries)[*nent].shard = (int)k;
		(*entries)[*nent].st = st;
		(*nent)++;
	}
	rc = 0;
out_files:
	free(files);
out:
	if (sn)
		for (size_t k = 0; k < c->nshards; k++)
			free(sn[k].v);
	free(sn);
	json_decref(shard_of);
	json_decref(root);
	return rc;
}

/* Fold each FP8 weight's `_scale_inv` into it and build the catalog. */
static int build_catalog(struct cr_ckpt *c, struct entry *e, size_t n, cr_error *err)
{
	qsort(e, n, sizeof *e, cmp_entry_name);
	for (size_t i = 1; i < n; i++)
		if (strcmp(e[i].name, e[i - 1].name) == 0)
			return cr_fail(err, CR_E_FORMAT, "%s: tensor '%s' appears in two shards", c->path, e[i].name);
	c->tensors = cr_xcalloc(n + 1, sizeof *c->tensors);
	size_t sfx = strlen(SCALE_SUFFIX);
	char *buf = NULL;
	size_t bufcap = 0;
	for (size_t i = 0; i < n; i++) {
		const char *nm = e[i].name;
		size_t len = strlen(nm);
		if (len > sfx && strcmp(nm + len - sfx, SCALE_SUFFIX) == 0) {
			if (bufcap < len + 1) {
				bufcap = len + 1;
				buf = cr_xrealloc(buf, bufcap);
			}
			memcpy(buf, nm, len - sfx);
			buf[len - sfx] = '\0';
			const struct entry *w = find_entry(e, n, buf);
			if (w && (w->st->dtype == CR_DT_F8_E4M3 || w->st->dtype == CR_DT_F8_E5M2)) {
				c->nscales++;
				continue; /* folded into its weight below */
			}
		}
		struct cr_tensor *t = &c->tensors[c->ntensors++];
		t->name = nm;
		t->dtype = e[i].st->dtype;
		t->ndim = e[i].st->ndim;
		t->shape = e[i].st->shape;
		t->nelem = e[i].st->nelem;
		t->nbytes = cr_st_tensor_nbytes(e[i].st);
		t->shard = e[i].shard;
		t->st = e[i].st;
		t->scale_shard = -1;
		struct cr_class_info ci = cr_classify(nm, c->num_layers);
		t->cls = ci.cls;
		t->layer = ci.layer;
		t->expert = ci.expert;
		if (t->dtype == CR_DT_F8_E4M3 || t->dtype == CR_DT_F8_E5M2) {
			if (bufcap < len + sfx + 1) {
				bufcap = len + sfx + 1;
				buf = cr_xrealloc(buf, bufcap);
			}
			memcpy(buf, nm, len);
			memcpy(buf + len, SCALE_SUFFIX, sfx + 1);
			const struct entry *s = find_entry(e, n, buf);
			if (s) {
				const struct cr_st_tensor *ss = s->st;
				if (t->ndim != 2 || ss->dtype != CR_DT_F32 || ss->ndim != 2 ||
				    ss->shape[0] != cr_fp8_scale_dim(t->shape[0]) ||
				    ss->shape[1] != cr_fp8_scale_dim(t->shape[1])) {
					free(buf);
					return cr_fail(err, CR_E_FORMAT,
						       "%s: tensor '%s': scale '%s' must be F32 of shape [ceil(rows/128), ceil(cols/128)]",
						       c->path, nm, ss->name);
				}
				t->scale_shard = s->shard;
				t->scale = ss;
			}
		}
	}
	free(buf);
	qsort(c->tensors, c->ntensors, sizeof *c->tensors, cmp_tensor_natural);
	index_build(c);
	return 0;
}

int cr_ckpt_open(const char *path, struct cr_ckpt **out, cr_error *err)
{
	struct cr_ckpt *c = cr_xcalloc(1, sizeof *c);
	struct entry *entries = NULL;
	size_t nent = 0, cap = 0;
	struct stat st;
	int rc = -1;

	*out = NULL;
	c->path = cr_xstrdup(path);
	if (stat(path, &st) < 0) {
		cr_fail(err, CR_E_IO, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (S_ISDIR(st.st_mode)) {
		c->dir = cr_xstrdup(path);
	} else {
		const char *slash = strrchr(path, '/');
		c->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : cr_xstrdup(".");
		c->is_file = 1;
	}
	if (load_config(c, err) < 0)
		goto done;
	if (c->is_file) {
		if (add_shard(c, path, &cap, err) < 0)
			goto done;
	} else {
		char *idx = path_join(c->dir, "model.safetensors.index.json");
		char *single = path_join(c->dir, "model.safetensors");
		int r;
		if (stat(idx, &st) == 0)
			r = open_index(c, idx, &entries, &nent, err);
		else if (stat(single, &st) == 0)
			r = check_inside(c->dir, single, err) < 0 ? -1 : add_shard(c, single, &cap, err);
		else
			r = cr_fail(err, CR_E_NOTFOUND,
				    "%s: not a checkpoint (no model.safetensors or model.safetensors.index.json)", path);
		free(idx);
		free(single);
		if (r < 0)
			goto done;
	}
	if (!entries) {
		const struct cr_st_file *f = c->shards[0];
		entries = cr_xcalloc(f->ntensors + 1, sizeof *entries);
		for (size_t i = 0; i < f->ntensors; i++)
			entries[nent++] = (struct entry){ f->tensors[i].name, 0, &f->tensors[i] };
	}
	if (build_catalog(c, entries, nent, err) < 0)
		goto done;
	rc = 0;
done:
	free(entries);
	if (rc == 0)
		*out = c;
	else
		cr_ckpt_close(c);
	return rc;
}

void cr_ckpt_summarize(const struct cr_ckpt *c, struct cr_ckpt_summary *s)
{
	memset(s, 0, sizeof *s);
	int maxlayer = -1, maxexp = -1;
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		uint64_t b = t->nbytes + (t->scale ? cr_st_tensor_nbytes(t->scale) : 0);
		s->params += t->nelem;
		s->bytes += b;
		s->dtype_bytes[t->dtype] += t->nbytes;
		s->dtype_count[t->dtype]++;
		if (t->scale) {
			s->dtype_bytes[t->scale->dtype] += cr_st_tensor_nbytes(t->scale);
			s->dtype_count[t->scale->dtype]++;
		}
		s->class_params[t->cls] += t->nelem;
		if (t->layer > maxlayer)
			maxlayer = t->layer;
		if (t->expert > maxexp)
			maxexp = t->expert;
	}
	s->layers = c->num_layers ? c->num_layers : maxlayer + 1;
	s->experts = c->num_experts ? c->num_experts : maxexp + 1;
}

int cr_tensor_read_raw(const struct cr_ckpt *c, const struct cr_tensor *t, uint64_t off, void *buf, size_t len,
		       cr_error *err)
{
	return cr_st_pread(c->shards[t->shard], t->st, off, buf, len, err);
}

size_t cr_tensor_scale_count(const struct cr_tensor *t)
{
	return t->scale ? (size_t)t->scale->nelem : 0;
}

int cr_tensor_cols(const struct cr_tensor *t, uint64_t *cols)
{
	*cols = t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
	return 0;
}

int cr_tensor_read_scales(const struct cr_ckpt *c, const struct cr_tensor *t, float *grid, cr_error *err)
{
	if (!t->scale)
		return 0;
	return cr_st_pread(c->shards[t->scale_shard], t->scale, 0, grid, (size_t)cr_st_tensor_nbytes(t->scale), err);
}

int cr_tensor_read_f32(const struct cr_ckpt *c, const struct cr_tensor *t, const float *grid, uint64_t first,
		       size_t n, void *raw, float *out, cr_error *err)
{
	if (!cr_dtype_has_math(t->dtype))
		return cr_fail(err, CR_E_UNSUPPORTED, "%s: tensor '%s': dtype %s has no arithmetic support", c->path,
			       t->name, cr_dtype_name(t->dtype));
	size_t esz = cr_dtype_bits(t->dtype) / 8;
	if (first > t->nelem || n > t->nelem - first)
		return cr_fail(err, CR_E_USAGE, "%s: tensor '%s': element range outside the tensor", c->path, t->name);
	if (cr_tensor_read_raw(c, t, first * esz, raw, n * esz, err) < 0)
		return -1;
	if (t->scale && grid)
		cr_fp8_dequant_range(raw, grid, (size_t)t->shape[1], (size_t)first, n, out);
	else
		cr_convert_to_f32(t->dtype, raw, out, n);
	return 0;
}
