/*
 * Tensor classification by name (see crucible/classify.h).  The rules are
 * substring tests on the part of the name after "layers.N.", checked from
 * the most specific to the least; they are shared by every layout because
 * the layouts differ in their words, not in their structure.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crucible/classify.h"

static const char *const class_names[] = {
#define X(id, name, desc) name,
	CR_CLASSES(X)
#undef X
};
static const char *const class_descs[] = {
#define X(id, name, desc) desc,
	CR_CLASSES(X)
#undef X
};

const char *cr_class_name(enum cr_class c)
{
	return (unsigned)c < CR_CLASS__COUNT ? class_names[c] : "?";
}

const char *cr_class_desc(enum cr_class c)
{
	return (unsigned)c < CR_CLASS__COUNT ? class_descs[c] : "?";
}

enum cr_class cr_class_parse(const char *name)
{
	for (int i = 0; i < CR_CLASS__COUNT; i++)
		if (strcmp(class_names[i], name) == 0)
			return (enum cr_class)i;
	return CR_CLASS_NONE;
}

/* Parse the decimal number right after `key` in name; -1 when absent. */
static int number_after(const char *name, const char *key, const char **rest)
{
	const char *p = strstr(name, key);
	if (!p)
		return -1;
	p += strlen(key);
	if (*p < '0' || *p > '9')
		return -1;
	long v = 0;
	while (*p >= '0' && *p <= '9' && v < 1000000)
		v = v * 10 + (*p++ - '0');
	if (rest)
		*rest = p;
	return (int)v;
}

static int has(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

static enum cr_class classify_in_layer(const char *r)
{
	if (has(r, "shared_expert_gate"))
		return CR_CLASS_ROUTER;
	if (has(r, "shared_expert"))
		return CR_CLASS_SHARED_EXPERT;
	if (has(r, "experts."))
		return CR_CLASS_ROUTED_EXPERT;
	if (has(r, "mlp.gate.") || has(r, "block_sparse_moe.gate") || has(r, "mlp.router") ||
	    has(r, "e_score_correction_bias"))
		return CR_CLASS_ROUTER;
	if (has(r, "norm"))
		return CR_CLASS_NORM;
	if (has(r, "self_attn") || has(r, "attention") || has(r, "attn"))
		return CR_CLASS_ATTN;
	if (has(r, "mlp") || has(r, "feed_forward") || has(r, "ffn"))
		return CR_CLASS_DENSE_MLP;
	return CR_CLASS_OTHER;
}

struct cr_class_info cr_classify(const char *name, int num_layers)
{
	struct cr_class_info ci = { CR_CLASS_OTHER, -1, -1 };
	const char *rest = NULL;

	ci.layer = number_after(name, "layers.", &rest);
	if (ci.layer < 0)
		ci.layer = number_after(name, "h.", &rest); /* GPT-2 style */
	if (ci.layer >= 0 && rest && *rest == '.') {
		rest++;
		if (num_layers > 0 && ci.layer >= num_layers &&
		    (has(rest, "eh_proj") || has(rest, "enorm") || has(rest, "hnorm") ||
		     has(rest, "embed_tokens") || has(rest, "shared_head"))) {
			ci.cls = CR_CLASS_MTP;
			return ci;
		}
		ci.cls = classify_in_layer(rest);
		if (ci.cls == CR_CLASS_ROUTED_EXPERT)
			ci.expert = number_after(rest, "experts.", NULL);
		return ci;
	}
	ci.layer = -1;
	if (has(name, "embed_tokens") || has(name, "wte") || has(name, "word_embeddings") ||
	    has(name, "tok_embeddings"))
		ci.cls = CR_CLASS_EMBED;
	else if (has(name, "lm_head") || strcmp(name, "output.weight") == 0)
		ci.cls = CR_CLASS_HEAD;
	else if (has(name, "norm"))
		ci.cls = CR_CLASS_NORM;
	return ci;
}
