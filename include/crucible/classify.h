/*
 * Tensor classes: what a tensor is in the architecture, from its name and
 * the checkpoint's config.  One table; adding a class is one line.
 *
 * Known layouts: DeepSeek V2/V3 (MLA attention, mlp.experts.E,
 * mlp.shared_experts, mlp.gate with e_score_correction_bias, MTP layers at
 * index >= num_hidden_layers), Mixtral (block_sparse_moe.experts.E.w1/w2/w3),
 * Qwen2/3-MoE (mlp.experts.E, mlp.shared_expert, shared_expert_gate), OLMoE,
 * and dense Llama/Mistral/Qwen2.  In an MTP layer the decoder-block tensors
 * keep their usual class (an expert is still a routed expert, so λ set on
 * routed experts covers it, as mergekit's "mlp.experts." filter does); the
 * MTP-only tensors (eh_proj, enorm, hnorm, embed_tokens, shared_head) are
 * class mtp.
 */
#ifndef CRUCIBLE_CLASSIFY_H
#define CRUCIBLE_CLASSIFY_H

/* X(ID, "name", "description") */
#define CR_CLASSES(X)                                          \
	X(EMBED, "embed", "token embeddings")                  \
	X(ATTN, "attn", "attention projections")               \
	X(NORM, "norm", "normalization weights")               \
	X(ROUTER, "router", "MoE router (gate) and its bias")  \
	X(DENSE_MLP, "dense_mlp", "dense feed-forward")        \
	X(SHARED_EXPERT, "shared_expert", "shared experts")    \
	X(ROUTED_EXPERT, "routed_expert", "routed experts")    \
	X(HEAD, "head", "output head (lm_head)")               \
	X(MTP, "mtp", "multi-token prediction extras")         \
	X(OTHER, "other", "anything else")

enum cr_class {
#define X(id, name, desc) CR_CLASS_##id,
	CR_CLASSES(X)
#undef X
	CR_CLASS__COUNT,
	CR_CLASS_NONE = -1
};

const char *cr_class_name(enum cr_class c);
const char *cr_class_desc(enum cr_class c);
enum cr_class cr_class_parse(const char *name);

struct cr_class_info {
	enum cr_class cls;
	int layer;  /* -1 outside the decoder layers */
	int expert; /* -1 unless a routed expert */
};

/* num_layers: config's num_hidden_layers (0 when unknown). */
struct cr_class_info cr_classify(const char *name, int num_layers);

#endif
