/*
 * Checkpoint catalog (see crucible/checkpoint.h).
 *
 * Owns the open shards and the list of logical tensors.  Invariants after a
 * successful open: every tensor named by the index exists in its shard; no
 * index entry points outside the folder; every block-FP8 weight's scale has
 * the grid shape its weight implies; every file read from the folder
 * resolves inside it (cr_path_inside).
 *
 * Opening DeepSeek-V3 (163 shards, a 9 MB index) is mostly JSON parsing, so
 * it is spread over the threads: the folder's *.safetensors headers and the
 * index's pieces (index_split.h) are parsed at the same time, the shards are
 * matched with the index's names afterwards, and the catalog is built and
 * the index's trees freed by parallel loops.  Messages are the serial ones:
 * when several things are wrong, the one the old serial reader met first.
 */
#include "config.h"

#include <dirent.h>
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
#include "index_split.h"

#define SCALE_SUFFIX "_scale_inv"
/* Size limits (README "Limits"): an index is parsed by jansson (in pieces,
 * index_split.h) into a tree, so it gets the same bound as a shard header;
 * DeepSeek-V3's is about 9 MB. */
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

/* Opening hashes every name a few times (index, scales, catalog): eight
 * bytes at a time, with a final mix so the low bits (the slot) depend on all. */
static uint64_t hash_name(const char *s)
{
	size_t n = strlen(s);
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
	for (; n >= 8; n -= 8, s += 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

/* Put k in the first empty slot from h on (open addressing, linear probe);
 * safe from several threads at once.  Returns the slot. */
static size_t slot_put(int32_t *slot, size_t cap, size_t h, int32_t k)
{
	for (;; h = (h + 1) & (cap - 1)) {
		int32_t empty = -1;
		if (__atomic_load_n(&slot[h], __ATOMIC_RELAXED) < 0 &&
		    __atomic_compare_exchange_n(&slot[h], &empty, k, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return h;
	}
}

static void index_build(struct cr_ckpt *c)
{
	size_t cap = 16;
	while (cap < c->ntensors * 2)
		cap <<= 1;
	c->hcap = cap;
	c->hslot = cr_xmalloc(cap * sizeof *c->hslot);
	memset(c->hslot, 0xff, cap * sizeof *c->hslot);
#pragma omp parallel for schedule(static, 1024)
	for (size_t i = 0; i < c->ntensors; i++)
		slot_put(c->hslot, cap, hash_name(c->tensors[i].name) & (cap - 1), (int32_t)i);
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

/* Every tensor of every shard by name, for lookups while reading an index
 * (a name may be in two shards; the index says which one it means). */
struct name_table {
	size_t cap;
	int32_t *slot; /* index into the arrays below, -1 empty */
	const struct cr_st_tensor **st;
	int *shard;
};

static void name_table_build(struct name_table *nt, struct cr_st_file *const *shards, size_t nshards)
{
	size_t n = 0;
	size_t *first = cr_xmalloc((nshards + 1) * sizeof *first);
	for (size_t i = 0; i < nshards; i++) {
		first[i] = n;
		n += shards[i]->ntensors;
	}
	nt->cap = 16;
	while (nt->cap < n * 2)
		nt->cap <<= 1;
	nt->slot = cr_xmalloc(nt->cap * sizeof *nt->slot);
	memset(nt->slot, 0xff, nt->cap * sizeof *nt->slot);
	nt->st = cr_xmalloc((n + 1) * sizeof *nt->st);
	nt->shard = cr_xmalloc((n + 1) * sizeof *nt->shard);
#pragma omp parallel for schedule(dynamic, 4)
	for (size_t i = 0; i < nshards; i++)
		for (size_t j = 0; j < shards[i]->ntensors; j++) {
			size_t k = first[i] + j;
			nt->st[k] = &shards[i]->tensors[j];
			nt->shard[k] = (int)i;
			slot_put(nt->slot, nt->cap, hash_name(nt->st[k]->name) & (nt->cap - 1), (int32_t)k);
		}
	free(first);
}

static const struct cr_st_tensor *name_table_find(const struct name_table *nt, const char *name, int shard)
{
	size_t h = hash_name(name) & (nt->cap - 1);
	for (; nt->slot[h] >= 0; h = (h + 1) & (nt->cap - 1)) {
		int32_t k = nt->slot[h];
		if (nt->shard[k] == shard && strcmp(nt->st[k]->name, name) == 0)
			return nt->st[k];
	}
	return NULL;
}

static void name_table_free(struct name_table *nt)
{
	free(nt->slot);
	free(nt->st);
	free(nt->shard);
}

/* Open one file of the folder as a shard: exists, stays inside, valid. */
struct shard_open {
	struct cr_st_file *f;
	int missing;
	cr_error err;
};

static void shard_open(const char *dir, const char *name, struct shard_open *o)
{
	char *file = path_join(dir, name);
	struct stat st;
	if (stat(file, &st) < 0)
		o->missing = 1;
	else if (check_inside(dir, file, &o->err) < 0 || cr_st_open(file, &o->f, &o->err) < 0)
		o->f = NULL;
	free(file);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The folder's *.safetensors, sorted: the shards an index most likely names,
 * opened while the index is parsed. */
static char **folder_shards(const char *dir, size_t *n)
{
	char **v = NULL;
	size_t cap = 0;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l <= 12 || strcmp(e->d_name + l - 12, ".safetensors") != 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			v = cr_xrealloc(v, cap * sizeof *v);
		}
		v[(*n)++] = cr_xstrdup(e->d_name);
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof *v, cmp_str);
	return v;
}

/* A key repeated in two pieces of a split index (jansson saw each piece alone). */
static int repeated_key(json_t *const *maps, size_t nmaps)
{
	size_t n = 0, cap = 16;
	for (size_t k = 0; k < nmaps; k++)
		n += json_object_size(maps[k]);
	while (cap < n * 2)
		cap <<= 1;
	const char **slot = cr_xcalloc(cap, sizeof *slot);
	int dup = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : dup)
	for (size_t k = 0; k < nmaps; k++) {
		const char *name;
		json_t *v;
		json_object_foreach(maps[k], name, v)
		{
			size_t h = hash_name(name) & (cap - 1);
			for (;; h = (h + 1) & (cap - 1)) {
				const char *seen = NULL;
				if (__atomic_compare_exchange_n(&slot[h], &seen, name, 0, __ATOMIC_ACQ_REL,
								__ATOMIC_ACQUIRE))
					break;
				if (strcmp(seen, name) == 0) {
					dup = 1;
					break;
				}
			}
		}
	}
	free(slot);
	return dup;
}

/* Pieces the index's weight_map is parsed in (index_split.h): enough to
 * share the work among threads in even parts. */
#define INDEX_PIECES 8

static int open_index(struct cr_ckpt *c, const char *idx, struct entry **entries, size_t *nent, json_t ***trees,
		      size_t *ntrees, cr_error *err)
{
	json_error_t je;
	int rc = -1;
	struct name_table names = { 0 };
	json_t *shard_of = json_object(); /* shard file name -> index in c->shards */
	json_t *root = NULL, **maps = NULL;
	size_t nmaps = 0;
	const char **files = NULL;
	struct cr_index_split sp = { 0 };
	int split = 0;

	char *text = check_inside(c->dir, idx, err) < 0 ? NULL : cr_read_text_file(idx, MAX_INDEX_BYTES, err);
	if (!text) {
		json_decref(shard_of);
		return -1;
	}
	/* Parsing the index with jansson takes longer than all the shard headers:
	 * parse the folder's shards and the index's pieces at the same time on
	 * every thread, and match the shards with the index's names afterwards. */
	size_t nguess;
	char **guess = folder_shards(c->dir, &nguess);
	struct shard_open *pre = cr_xcalloc(nguess + 1, sizeof *pre);
	char *used = cr_xcalloc(nguess + 1, 1);
	json_t *outer = NULL, **parts = NULL;
#pragma omp parallel
#pragma omp single
	{
		for (size_t k = 0; k < nguess; k++) {
#pragma omp task firstprivate(k)
			shard_open(c->dir, guess[k], &pre[k]);
		}
		split = cr_index_split(text, strlen(text), INDEX_PIECES, &sp) == 0;
		if (split) {
			parts = cr_xcalloc(sp.npieces, sizeof *parts);
			for (size_t k = 0; k < sp.npieces; k++) {
#pragma omp task firstprivate(k)
				parts[k] = json_loadb(sp.piece[k], sp.piece_len[k], JSON_REJECT_DUPLICATES, NULL);
			}
#pragma omp task
			outer = json_loadb(sp.outer, sp.outer_len, JSON_REJECT_DUPLICATES, NULL);
		}
	}
	if (split) {
		/* valid pieces, none empty, in a valid document, no key twice: the whole is valid */
		json_t *wm0 = json_object_get(outer, "weight_map");
		int ok = json_is_object(outer) && json_is_object(wm0) && json_object_size(wm0) == 0;
		for (size_t k = 0; k < sp.npieces; k++)
			ok = ok && parts[k] && json_object_size(parts[k]) > 0;
		ok = ok && !repeated_key(parts, sp.npieces);
		if (ok) {
			root = outer;
			maps = parts;
			nmaps = sp.npieces;
		} else {
			json_decref(outer);
			for (size_t k = 0; k < sp.npieces; k++)
				json_decref(parts[k]);
			free(parts);
			split = 0;
		}
		cr_index_split_free(&sp);
	}
	if (!split) {
		/* not split, or something wrong: the whole document, for jansson's own message */
		root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
		free(text);
		text = NULL;
		if (!root) {
			cr_fail(err, CR_E_FORMAT, "%s: index is not valid JSON: %s (line %d)", idx, je.text, je.line);
			goto out;
		}
		json_t *wm = json_object_get(root, "weight_map");
		if (!json_is_object(wm)) {
			cr_fail(err, CR_E_FORMAT, "%s: index has no \"weight_map\" object", idx);
			goto out;
		}
		maps = cr_xmalloc(sizeof *maps);
		maps[0] = json_incref(wm);
		nmaps = 1;
	}
	free(text);
	text = NULL;
	/* Collect each distinct shard once, in first-seen order, checking names. */
	const char *name;
	json_t *v;
	size_t nfiles = 0, nnames = 0;
	for (size_t m = 0; m < nmaps; m++)
		nnames += json_object_size(maps[m]);
	files = cr_xcalloc(nnames + 1, sizeof *files);
	const char *last = NULL; /* the index lists a shard's tensors together */
	for (size_t m = 0; m < nmaps; m++)
		json_object_foreach(maps[m], name, v)
		{
			if (!json_is_string(v)) {
				cr_fail(err, CR_E_FORMAT, "%s: weight_map entry for '%s' is not a string", idx, name);
				goto out;
			}
			const char *sh = json_string_value(v);
			if ((last && strcmp(sh, last) == 0) || json_object_get(shard_of, sh))
				continue;
			if (!shard_name_ok(sh)) {
				cr_fail(err, CR_E_FORMAT,
					"%s: weight_map entry for '%s' points outside the checkpoint folder (\"%s\")", idx,
					name, sh);
				goto out;
			}
			json_object_set_new(shard_of, sh, json_integer((json_int_t)nfiles));
			files[nfiles++] = sh;
			last = sh;
		}
	/* Take the shards opened above; open the others (named by the index but
	 * not *.safetensors at the top of the folder) in parallel now. */
	c->shards = cr_xcalloc(nfiles + 1, sizeof *c->shards);
	struct shard_open *got = cr_xcalloc(nfiles + 1, sizeof *got);
	for (size_t k = 0; k < nfiles; k++) {
		char **hit = nguess ? bsearch(&files[k], guess, nguess, sizeof *guess, cmp_str) : NULL;
		if (hit) {
			got[k] = pre[hit - guess];
			used[hit - guess] = 1;
		} else {
			got[k].missing = -1; /* still to open */
		}
	}
#pragma omp parallel for schedule(dynamic, 1)
	for (size_t k = 0; k < nfiles; k++)
		if (got[k].missing == -1) {
			got[k].missing = 0;
			shard_open(c->dir, files[k], &got[k]);
		}
	for (size_t k = 0; k < nfiles; k++)
		c->shards[k] = got[k].f;
	c->nshards = nfiles;
	for (size_t k = 0; k < nfiles && rc == -1; k++) {
		if (got[k].missing) {
			cr_fail(err, CR_E_IO, "%s: shard \"%s\" named in the index does not exist", idx, files[k]);
			rc = -2;
		} else if (!got[k].f) {
			if (err)
				*err = got[k].err;
			rc = -2;
		}
	}
	free(got);
	if (rc == -2) {
		rc = -1;
		/* close what opened; cr_ckpt_close skips NULL shards */
		goto out;
	}
	name_table_build(&names, c->shards, c->nshards);
	/* each piece fills its own range of entries; the first error in index order wins */
	*entries = cr_xcalloc(nnames + 1, sizeof **entries);
	*nent = nnames;
	size_t *at = cr_xmalloc((nmaps + 1) * sizeof *at);
	const char **bad = cr_xcalloc(nmaps + 1, sizeof *bad), **bad_sh = cr_xcalloc(nmaps + 1, sizeof *bad_sh);
	for (size_t m = 0, o = 0; m < nmaps; m++) {
		at[m] = o;
		o += json_object_size(maps[m]);
	}
#pragma omp parallel for schedule(dynamic, 1)
	for (size_t m = 0; m < nmaps; m++) {
		const char *mname, *mlast = NULL;
		json_t *mv;
		size_t k = 0, i = at[m];
		json_object_foreach(maps[m], mname, mv)
		{
			const char *sh = json_string_value(mv);
			if (!mlast || strcmp(sh, mlast) != 0)
				k = (size_t)json_integer_value(json_object_get(shard_of, sh));
			mlast = sh;
			const struct cr_st_tensor *st = name_table_find(&names, mname, (int)k);
			if (!st) {
				bad[m] = mname;
				bad_sh[m] = sh;
				break;
			}
			(*entries)[i++] = (struct entry){ st->name, (int)k, st };
		}
	}
	rc = 0;
	for (size_t m = 0; m < nmaps && rc == 0; m++)
		if (bad[m]) {
			rc = cr_fail(err, CR_E_FORMAT,
				     "%s: tensor '%s' is named in the index but missing from shard \"%s\"", idx, bad[m],
				     bad_sh[m]);
			*nent = 0;
		}
	free(at);
	free(bad);
	free(bad_sh);
out:
	free(text);
	for (size_t i = 0; i < nguess; i++) {
		if (!used[i])
			cr_st_close(pre[i].f);
		free(guess[i]);
	}
	free(guess);
	free(pre);
	free(used);
	free(files);
	name_table_free(&names);
	json_decref(shard_of);
	/* the trees are freed by the caller while it builds the catalog */
	*trees = cr_xrealloc(maps, (nmaps + 1) * sizeof *maps);
	(*trees)[nmaps] = root;
	*ntrees = nmaps + 1;
	return rc;
}

/* A key whose byte order (memcmp, the shorter first when one is a prefix)
 * is cr_natural_cmp's order.  A run of digits becomes '0', the run's length
 * without leading zeros (4 bytes, big-endian) and those digits: against any
 * other byte a digit compares as '0' does (digits are contiguous, and the
 * other byte is not one), and two runs compare by length, then by digits.
 * At most 3.5 bytes per byte of the name. */
static size_t natural_key(const char *s, unsigned char *out)
{
	unsigned char *o = out;
	while (*s) {
		if (*s < '0' || *s > '9') {
			*o++ = (unsigned char)*s++;
			continue;
		}
		while (*s == '0')
			s++;
		size_t n = 0;
		while (s[n] >= '0' && s[n] <= '9')
			n++;
		*o++ = '0';
		*o++ = (unsigned char)(n >> 24);
		*o++ = (unsigned char)(n >> 16);
		*o++ = (unsigned char)(n >> 8);
		*o++ = (unsigned char)n;
		memcpy(o, s, n);
		o += n;
		s += n;
	}
	return (size_t)(o - out);
}

struct sort_rec {
	size_t key; /* offset of the key in the key buffer */
	size_t len;
	size_t i;
};

static int cmp_rec(const void *a, const void *b, void *arg)
{
	const struct sort_rec *x = a, *y = b;
	const unsigned char *keys = ((const unsigned char **)arg)[0];
	const struct cr_tensor *t = ((const struct cr_tensor **)arg)[1];
	int c = memcmp(keys + x->key, keys + y->key, x->len < y->len ? x->len : y->len);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return strcmp(t[x->i].name, t[y->i].name); /* names equal as numbers: "a.01" before "a.1" */
}

/* Natural name order, ties (equal numbers written differently) by strcmp:
 * the order qsort with cr_natural_cmp gave names already in strcmp order,
 * with each key built once instead of on every comparison.  Two halves are
 * sorted on two threads and merged. */
static void sort_natural(struct cr_tensor *t, size_t n)
{
	struct sort_rec *r = cr_xmalloc((n + 1) * sizeof *r), *m = cr_xmalloc((n + 1) * sizeof *m);
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		r[i].key = total; /* room for the longest key of this name */
		total += strlen(t[i].name) * 4 + 8;
	}
	unsigned char *keys = cr_xmalloc(total + 1);
#pragma omp parallel for schedule(static, 1024)
	for (size_t i = 0; i < n; i++) {
		r[i].len = natural_key(t[i].name, keys + r[i].key);
		r[i].i = i;
	}
	const void *arg[2] = { keys, t };
	size_t half = n / 2;
#pragma omp parallel sections num_threads(2)
	{
#pragma omp section
		qsort_r(r, half, sizeof *r, cmp_rec, arg);
#pragma omp section
		qsort_r(r + half, n - half, sizeof *r, cmp_rec, arg);
	}
	for (size_t a = 0, b = half, k = 0; k < n; k++)
		m[k] = b >= n || (a < half && cmp_rec(&r[a], &r[b], arg) <= 0) ? r[a++] : r[b++];
	struct cr_tensor *sorted = cr_xmalloc((n + 1) * sizeof *sorted);
	for (size_t i = 0; i < n; i++)
		sorted[i] = t[m[i].i];
	memcpy(t, sorted, n * sizeof *t);
	free(sorted);
	free(keys);
	free(m);
	free(r);
}

/* Stored tensors by name, for finding a weight's scale. */
struct entry_table {
	size_t cap;
	int32_t *slot;
};

static const struct entry *entry_find(const struct entry_table *et, const struct entry *e, const char *name)
{
	size_t h = hash_name(name) & (et->cap - 1);
	for (; et->slot[h] >= 0; h = (h + 1) & (et->cap - 1))
		if (strcmp(e[et->slot[h]].name, name) == 0)
			return &e[et->slot[h]];
	return NULL;
}

static int is_fp8(enum cr_dtype d)
{
	return d == CR_DT_F8_E4M3 || d == CR_DT_F8_E5M2;
}

/* name with its last `cut` bytes replaced by `add`, in buf (grown as needed) */
static const char *respell(char **buf, size_t *cap, const char *name, size_t len, size_t cut, const char *add)
{
	size_t n = len - cut, m = strlen(add);
	if (*cap < n + m + 1) {
		*cap = n + m + 1;
		*buf = cr_xrealloc(*buf, *cap);
	}
	memcpy(*buf, name, n);
	memcpy(*buf + n, add, m + 1);
	return *buf;
}

/* Of two names that break a rule, report the first in strcmp order (as the
 * old reader, which walked the names sorted, did). */
static void keep_first(const char **cur, const char *name)
{
	if (!*cur || strcmp(name, *cur) < 0)
		*cur = name;
}

/* Fold each FP8 weight's `_scale_inv` into it and build the catalog, the
 * loops shared among the threads. */
static int build_catalog(struct cr_ckpt *c, struct entry *e, size_t n, cr_error *err)
{
	const size_t sfx = strlen(SCALE_SUFFIX);
	struct entry_table et = { 16, NULL };
	while (et.cap < n * 2)
		et.cap <<= 1;
	et.slot = cr_xmalloc(et.cap * sizeof *et.slot);
	memset(et.slot, 0xff, et.cap * sizeof *et.slot);
	const char *dup = NULL, *bad_scale = NULL;
	unsigned char *folded = cr_xcalloc(n + 1, 1);
	size_t *pos = cr_xmalloc((n + 1) * sizeof *pos);
#pragma omp parallel
	{
		const char *my_dup = NULL;
#pragma omp for schedule(static, 1024)
		for (size_t i = 0; i < n; i++) {
			size_t h = slot_put(et.slot, et.cap, hash_name(e[i].name) & (et.cap - 1), (int32_t)i);
			/* the same name in an earlier slot of its chain: a duplicate */
			for (size_t g = hash_name(e[i].name) & (et.cap - 1); g != h; g = (g + 1) & (et.cap - 1)) {
				int32_t o = __atomic_load_n(&et.slot[g], __ATOMIC_RELAXED);
				if (o >= 0 && strcmp(e[o].name, e[i].name) == 0)
					keep_first(&my_dup, e[i].name);
			}
		}
		/* (the barrier above: the table is complete) */
		char *buf = NULL;
		size_t cap = 0;
#pragma omp for schedule(static, 1024)
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(e[i].name);
			if (len > sfx && memcmp(e[i].name + len - sfx, SCALE_SUFFIX, sfx) == 0) {
				const struct entry *w = entry_find(&et, e, respell(&buf, &cap, e[i].name, len, sfx, ""));
				folded[i] = w && is_fp8(w->st->dtype);
			}
		}
#pragma omp single
		{
			for (size_t i = 0, k = 0; i < n; i++) {
				pos[i] = k;
				k += !folded[i];
				c->nscales += folded[i];
			}
			c->ntensors = n - c->nscales;
			c->tensors = cr_xcalloc(c->ntensors + 1, sizeof *c->tensors);
		}
		const char *my_bad = NULL;
#pragma omp for schedule(static, 1024)
		for (size_t i = 0; i < n; i++) {
			if (folded[i])
				continue;
			const char *nm = e[i].name;
			struct cr_tensor *t = &c->tensors[pos[i]];
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
			if (!is_fp8(t->dtype))
				continue;
			const struct entry *s = entry_find(&et, e, respell(&buf, &cap, nm, strlen(nm), 0, SCALE_SUFFIX));
			if (!s)
				continue;
			const struct cr_st_tensor *ss = s->st;
			if (t->ndim != 2 || ss->dtype != CR_DT_F32 || ss->ndim != 2 ||
			    ss->shape[0] != cr_fp8_scale_dim(t->shape[0]) || ss->shape[1] != cr_fp8_scale_dim(t->shape[1]))
				keep_first(&my_bad, nm);
			t->scale_shard = s->shard;
			t->scale = ss;
		}
		free(buf);
#pragma omp critical
		{
			if (my_dup)
				keep_first(&dup, my_dup);
			if (my_bad)
				keep_first(&bad_scale, my_bad);
		}
	}
	free(folded);
	free(pos);
	int rc = 0;
	if (dup) {
		rc = cr_fail(err, CR_E_FORMAT, "%s: tensor '%s' appears in two shards", c->path, dup);
	} else if (bad_scale) {
		const char *nm = bad_scale;
		char *buf = NULL;
		size_t cap = 0;
		rc = cr_fail(err, CR_E_FORMAT, "%s: tensor '%s': scale '%s' must be F32 of shape [ceil(rows/128), ceil(cols/128)]",
			     c->path, nm, respell(&buf, &cap, nm, strlen(nm), 0, SCALE_SUFFIX));
		free(buf);
	}
	free(et.slot);
	if (rc < 0)
		return -1;
	sort_natural(c->tensors, c->ntensors);
	index_build(c);
	return 0;
}

int cr_ckpt_open(const char *path, struct cr_ckpt **out, cr_error *err)
{
	struct cr_ckpt *c = cr_xcalloc(1, sizeof *c);
	struct entry *entries = NULL;
	json_t **trees = NULL; /* the index's */
	size_t nent = 0, cap = 0, ntrees = 0;
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
			r = open_index(c, idx, &entries, &nent, &trees, &ntrees, err);
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
	int built = build_catalog(c, entries, nent, err);
	/* the index: its 92,000 keys take a while to free, a piece per thread */
#pragma omp parallel for schedule(dynamic, 1)
	for (size_t i = 0; i < ntrees; i++)
		json_decref(trees[i]);
	ntrees = 0;
	if (built < 0)
		goto done;
	rc = 0;
done:
	for (size_t i = 0; i < ntrees; i++)
		json_decref(trees[i]);
	free(trees);
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
