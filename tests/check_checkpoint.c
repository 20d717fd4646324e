/* Checkpoint catalog and tensor classes on every fixture family. */
#include "testutil.h"

#include "crucible/checkpoint.h"

static struct cr_ckpt *open_ck(const char *rel)
{
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(fixture(rel), &c, &err) == 0, "%s", err.msg);
	return c;
}

static void expect_class(const struct cr_ckpt *c, const char *name, enum cr_class cls, int layer, int expert)
{
	const struct cr_tensor *t = cr_ckpt_find(c, name);
	ck_assert_msg(t != NULL, "%s missing", name);
	ck_assert_msg(t->cls == cls, "%s: class %s, want %s", name, cr_class_name(t->cls), cr_class_name(cls));
	ck_assert_msg(t->layer == layer, "%s: layer %d, want %d", name, t->layer, layer);
	ck_assert_msg(t->expert == expert, "%s: expert %d, want %d", name, t->expert, expert);
}

START_TEST(dsv3_catalog)
{
	struct cr_ckpt *c = open_ck("models/dsv3/v3-base");
	ck_assert_str_eq(c->model_type, "deepseek_v3");
	ck_assert_int_eq(c->num_layers, 4);
	ck_assert_int_eq(c->num_experts, 8);
	ck_assert_uint_eq(c->nshards, 5);
	/* 304 stored tensors, every FP8 weight's scale folded into it */
	ck_assert_uint_eq(c->ntensors + c->nscales, 304);
	size_t fp8 = 0, cross = 0;
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		if (t->dtype == CR_DT_F8_E4M3) {
			ck_assert_msg(t->scale != NULL, "%s without scale", t->name);
			fp8++;
			cross += t->scale_shard != t->shard;
		}
		ck_assert_msg(strstr(t->name, "_scale_inv") == NULL, "%s listed on its own", t->name);
		if (i > 0)
			ck_assert(cr_natural_cmp(c->tensors[i - 1].name, t->name) < 0);
	}
	ck_assert_uint_eq(fp8, c->nscales);
	ck_assert_msg(cross > 0, "fixture has weights whose scale sits in another shard");
	expect_class(c, "model.embed_tokens.weight", CR_CLASS_EMBED, -1, -1);
	expect_class(c, "lm_head.weight", CR_CLASS_HEAD, -1, -1);
	expect_class(c, "model.norm.weight", CR_CLASS_NORM, -1, -1);
	expect_class(c, "model.layers.0.mlp.down_proj.weight", CR_CLASS_DENSE_MLP, 0, -1);
	expect_class(c, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", CR_CLASS_ATTN, 0, -1);
	expect_class(c, "model.layers.0.self_attn.q_a_layernorm.weight", CR_CLASS_NORM, 0, -1);
	expect_class(c, "model.layers.0.input_layernorm.weight", CR_CLASS_NORM, 0, -1);
	expect_class(c, "model.layers.1.mlp.experts.7.up_proj.weight", CR_CLASS_ROUTED_EXPERT, 1, 7);
	expect_class(c, "model.layers.3.mlp.shared_experts.down_proj.weight", CR_CLASS_SHARED_EXPERT, 3, -1);
	expect_class(c, "model.layers.2.mlp.gate.weight", CR_CLASS_ROUTER, 2, -1);
	expect_class(c, "model.layers.2.mlp.gate.e_score_correction_bias", CR_CLASS_ROUTER, 2, -1);
	expect_class(c, "model.layers.4.eh_proj.weight", CR_CLASS_MTP, 4, -1);
	expect_class(c, "model.layers.4.enorm.weight", CR_CLASS_MTP, 4, -1);
	expect_class(c, "model.layers.4.shared_head.head.weight", CR_CLASS_MTP, 4, -1);
	expect_class(c, "model.layers.4.embed_tokens.weight", CR_CLASS_MTP, 4, -1);
	expect_class(c, "model.layers.4.mlp.experts.2.gate_proj.weight", CR_CLASS_ROUTED_EXPERT, 4, 2);
	const struct cr_tensor *t = cr_ckpt_find(c, "model.layers.0.mlp.down_proj.weight");
	ck_assert_uint_eq(t->shape[0], 320);
	ck_assert_uint_eq(t->shape[1], 448);
	ck_assert_uint_eq(t->scale->shape[0], 3);
	ck_assert_uint_eq(t->scale->shape[1], 4);
	ck_assert_ptr_null(cr_ckpt_find(c, "model.layers.0.mlp.down_proj.weight_scale_inv"));
	struct cr_ckpt_summary s;
	cr_ckpt_summarize(c, &s);
	ck_assert_int_eq(s.layers, 4);
	ck_assert_int_eq(s.experts, 8);
	cr_ckpt_close(c);
}
END_TEST

START_TEST(mixtral_classes)
{
	struct cr_ckpt *c = open_ck("models/mixtral/base");
	ck_assert_int_eq(c->num_experts, 4);
	expect_class(c, "model.layers.1.block_sparse_moe.experts.3.w2.weight", CR_CLASS_ROUTED_EXPERT, 1, 3);
	expect_class(c, "model.layers.0.block_sparse_moe.gate.weight", CR_CLASS_ROUTER, 0, -1);
	expect_class(c, "model.layers.0.self_attn.k_proj.weight", CR_CLASS_ATTN, 0, -1);
	expect_class(c, "model.layers.0.post_attention_layernorm.weight", CR_CLASS_NORM, 0, -1);
	expect_class(c, "lm_head.weight", CR_CLASS_HEAD, -1, -1);
	size_t routed = 0;
	for (size_t i = 0; i < c->ntensors; i++)
		routed += c->tensors[i].cls == CR_CLASS_ROUTED_EXPERT;
	ck_assert_uint_eq(routed, 2 * 4 * 3);
	cr_ckpt_close(c);
}
END_TEST

START_TEST(qwen2moe_classes)
{
	struct cr_ckpt *c = open_ck("models/qwen2moe/base");
	expect_class(c, "model.layers.0.mlp.shared_expert.up_proj.weight", CR_CLASS_SHARED_EXPERT, 0, -1);
	expect_class(c, "model.layers.0.mlp.shared_expert_gate.weight", CR_CLASS_ROUTER, 0, -1);
	expect_class(c, "model.layers.0.mlp.gate.weight", CR_CLASS_ROUTER, 0, -1);
	expect_class(c, "model.layers.1.mlp.experts.2.down_proj.weight", CR_CLASS_ROUTED_EXPERT, 1, 2);
	expect_class(c, "model.layers.0.self_attn.q_proj.bias", CR_CLASS_ATTN, 0, -1);
	cr_ckpt_close(c);
}
END_TEST

START_TEST(llama_classes_and_shards)
{
	struct cr_ckpt *c = open_ck("models/llama/chat");
	ck_assert_uint_eq(c->nshards, 2);
	ck_assert_int_eq(c->tensors[0].dtype, CR_DT_F32);
	expect_class(c, "model.layers.2.mlp.gate_proj.weight", CR_CLASS_DENSE_MLP, 2, -1);
	expect_class(c, "model.layers.2.self_attn.o_proj.weight", CR_CLASS_ATTN, 2, -1);
	expect_class(c, "model.embed_tokens.weight", CR_CLASS_EMBED, -1, -1);
	for (size_t i = 0; i < c->ntensors; i++)
		ck_assert_int_ne(c->tensors[i].cls, CR_CLASS_OTHER);
	cr_ckpt_close(c);
	c = open_ck("models/llama/math");
	ck_assert_int_eq(c->tensors[0].dtype, CR_DT_F16);
	cr_ckpt_close(c);
}
END_TEST

/* Layouts without a fixture family: classes from names alone. */
START_TEST(names_of_other_layouts)
{
	struct {
		const char *name;
		int nl;
		enum cr_class cls;
		int layer, expert;
	} cases[] = {
		/* OLMoE */
		{ "model.layers.15.mlp.experts.63.down_proj.weight", 16, CR_CLASS_ROUTED_EXPERT, 15, 63 },
		{ "model.layers.0.mlp.gate.weight", 16, CR_CLASS_ROUTER, 0, -1 },
		{ "model.layers.0.self_attn.q_norm.weight", 16, CR_CLASS_NORM, 0, -1 },
		/* DeepSeek-V2 */
		{ "model.layers.26.mlp.shared_experts.gate_proj.weight", 27, CR_CLASS_SHARED_EXPERT, 26, -1 },
		{ "model.layers.3.self_attn.kv_b_proj.weight", 27, CR_CLASS_ATTN, 3, -1 },
		/* Qwen3-MoE */
		{ "model.layers.47.mlp.experts.127.up_proj.weight", 48, CR_CLASS_ROUTED_EXPERT, 47, 127 },
		/* DeepSeek-V3 MTP layer 61 */
		{ "model.layers.61.hnorm.weight", 61, CR_CLASS_MTP, 61, -1 },
		{ "model.layers.61.mlp.experts.5.w1.weight", 61, CR_CLASS_ROUTED_EXPERT, 61, 5 },
		/* dense Llama/Mistral/Qwen2 */
		{ "model.layers.10.mlp.up_proj.weight", 32, CR_CLASS_DENSE_MLP, 10, -1 },
		{ "model.layers.1.self_attn.v_proj.bias", 32, CR_CLASS_ATTN, 1, -1 },
		{ "model.norm.weight", 32, CR_CLASS_NORM, -1, -1 },
		{ "something.unknown", 32, CR_CLASS_OTHER, -1, -1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cr_class_info ci = cr_classify(cases[i].name, cases[i].nl);
		ck_assert_msg(ci.cls == cases[i].cls, "%s: %s", cases[i].name, cr_class_name(ci.cls));
		ck_assert_int_eq(ci.layer, cases[i].layer);
		ck_assert_int_eq(ci.expert, cases[i].expert);
	}
	ck_assert_int_eq(cr_class_parse("routed_expert"), CR_CLASS_ROUTED_EXPERT);
	ck_assert_int_eq(cr_class_parse("nope"), CR_CLASS_NONE);
}
END_TEST

START_TEST(natural_order)
{
	ck_assert_int_lt(cr_natural_cmp("layers.2.x", "layers.10.x"), 0);
	ck_assert_int_gt(cr_natural_cmp("layers.10.x", "layers.9.x"), 0);
	ck_assert_int_eq(cr_natural_cmp("a.01", "a.1"), 0);
	ck_assert_int_lt(cr_natural_cmp("a", "ab"), 0);
}
END_TEST

START_TEST(single_file_and_missing)
{
	struct cr_ckpt *c = open_ck("models/mixtral/code/model.safetensors");
	ck_assert(c->is_file);
	ck_assert_ptr_nonnull(c->config_text);
	cr_ckpt_close(c);
	cr_error err;
	ck_assert_int_eq(cr_ckpt_open(fixture("models"), &c, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a checkpoint"));
	ck_assert_int_eq(cr_ckpt_open(fixture("no/such/thing"), &c, &err), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("checkpoint");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, dsv3_catalog);
	tcase_add_test(tc, mixtral_classes);
	tcase_add_test(tc, qwen2moe_classes);
	tcase_add_test(tc, llama_classes_and_shards);
	tcase_add_test(tc, natural_order);
	tcase_add_test(tc, names_of_other_layouts);
	tcase_add_test(tc, single_file_and_missing);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
