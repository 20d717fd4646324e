/*
 * cr_plan_refresh (grouped: one tensor resolved per class/layer/filter
 * group, the workbench's λ change) must give exactly what a plan built from
 * the new recipe gives (every tensor resolved on its own), parameter for
 * parameter, on real fixture families and recipes that use classes,
 * filters, gradients and top-level values.
 */
#include "config.h"

#include "crucible/plan.h"
#include "testutil.h"

static struct cr_recipe *parse(const char *text)
{
	struct cr_recipe *r = NULL;
	cr_error err = { 0 };
	ck_assert_msg(cr_recipe_parse(text, strlen(text), "test", &r, NULL, NULL, &err) == 0, "%s", err.msg);
	return r;
}

/* Refresh a plan of `first` with `second`; compare with a plan built from `second`. */
static void compare(const char *first, const char *second, int expect_same_as_first)
{
	struct cr_recipe *r1 = parse(first), *r2 = parse(second);
	struct cr_plan *a = NULL, *b = NULL;
	cr_error err = { 0 };
	ck_assert_msg(cr_plan_build(r1, &a, NULL, NULL, &err) == 0, "%s", err.msg);
	ck_assert_msg(cr_plan_build(r2, &b, NULL, NULL, &err) == 0, "%s", err.msg);
	ck_assert_msg(cr_plan_refresh(a, r2, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(a->ntensors, b->ntensors);
	size_t differ_from_build = 0;
	for (size_t i = 0; i < a->ntensors; i++) {
		const struct cr_plan_tensor *x = &a->t[i], *y = &b->t[i];
		for (int q = 0; q < CR_P__COUNT; q++)
			ck_assert_msg(memcmp(&x->g[q], &y->g[q], sizeof(double)) == 0, "%s: %s: %g vs %g", x->name,
				      cr_param_info(q)->name, x->g[q], y->g[q]);
		for (size_t k = 0; k < (size_t)x->ninputs * CR_P__COUNT; k++)
			ck_assert_msg(memcmp(&x->p[k], &y->p[k], sizeof(double)) == 0, "%s: input %zu %s: %g vs %g",
				      x->name, k / CR_P__COUNT, cr_param_info((int)(k % CR_P__COUNT))->name, x->p[k], y->p[k]);
		int dx, dy;
		ck_assert_int_eq(cr_plan_decide(a, i, NULL, &dx), cr_plan_decide(b, i, NULL, &dy));
		ck_assert_int_eq(dx, dy);
	}
	/* The refresh must actually have changed something (else the test could pass vacuously). */
	struct cr_plan *c = NULL;
	ck_assert(cr_plan_build(r1, &c, NULL, NULL, &err) == 0);
	for (size_t i = 0; i < c->ntensors; i++)
		differ_from_build += memcmp(c->t[i].p, a->t[i].p, (size_t)c->t[i].ninputs * CR_P__COUNT * sizeof(double)) != 0 ||
				     memcmp(c->t[i].g, a->t[i].g, sizeof c->t[i].g) != 0;
	if (expect_same_as_first)
		ck_assert_uint_eq(differ_from_build, 0);
	else
		ck_assert_uint_gt(differ_from_build, 0);
	cr_plan_free(a);
	cr_plan_free(b);
	cr_plan_free(c);
	cr_recipe_free(r1);
	cr_recipe_free(r2);
}

static char *recipe(const char *fmt, const char *dir)
{
	static char buf[4][8192];
	static int k;
	char *b = buf[k++ & 3];
	const char *root = fixture(dir);
	snprintf(b, 8192, fmt, root, root, root, root);
	return b;
}

START_TEST(aoe_classes_filters_layers)
{
	const char *start = recipe("merge_method: aoe\nbase_model: %s/v3-base\nmodels:\n"
				   "  - model: %s/v3-base\n    parameters: {weight: 1}\n"
				   "  - model: %s/r1\n    parameters: {weight: 0}\n"
				   "  - model: %s/r1-0528\n    parameters: {weight: 0}\n",
				   "models/dsv3");
	const char *tuned = recipe(
		"merge_method: aoe\nbase_model: %s/v3-base\nmodels:\n"
		"  - model: %s/v3-base\n    parameters:\n      weight:\n        - {class: routed_expert, value: 0}\n"
		"        - {filter: layers.2., value: 0.25}\n        - {value: 1}\n"
		"  - model: %s/r1\n    parameters:\n      weight:\n        - {class: routed_expert, value: 1}\n"
		"        - {filter: layers.3., value: [0, 0.5, 1]}\n        - {value: 0}\n"
		"  - model: %s/r1-0528\n    parameters:\n      weight:\n        - {filter: shared_experts, value: 0.3}\n"
		"        - {value: 0}\n"
		"parameters:\n  delta:\n    - {class: attn, value: 0.02}\n    - {value: 0.05}\n  normalize: false\n",
		"models/dsv3");
	compare(start, tuned, 0);
	compare(tuned, start, 0);
	compare(start, start, 1);
	/* A base that is not among the models: it gets what the others leave of 1. */
	const char *nobase1 = recipe("merge_method: aoe\nbase_model: %s/v3-base\nmodels:\n"
				     "  - model: %s/r1\n    parameters: {weight: 0.25}\n"
				     "  - model: %s/r1-0528\n    parameters: {weight: 0.25}\n",
				     "models/dsv3");
	const char *nobase2 = recipe("merge_method: aoe\nbase_model: %s/v3-base\nmodels:\n"
				     "  - model: %s/r1\n    parameters:\n      weight:\n"
				     "        - {class: routed_expert, value: 1}\n        - {value: 0.1}\n"
				     "  - model: %s/r1-0528\n    parameters: {weight: [0, 0.5]}\n",
				     "models/dsv3");
	compare(nobase1, nobase2, 0);
}
END_TEST

START_TEST(ties_gradients)
{
	const char *a = recipe("merge_method: ties\nbase_model: %s/base\nmodels:\n"
			       "  - model: %s/instruct\n    parameters: {weight: 0.5, density: 0.5}\n"
			       "  - model: %s/code\n    parameters: {weight: 0.5, density: 0.5}\n",
			       "models/mixtral");
	const char *b = recipe("merge_method: ties\nbase_model: %s/base\nmodels:\n"
			       "  - model: %s/instruct\n    parameters:\n      weight: [0.1, 0.9]\n"
			       "      density:\n        - {filter: experts.1., value: 0.2}\n        - {value: 0.7}\n"
			       "  - model: %s/code\n    parameters: {weight: 0.5}\n"
			       "parameters:\n  density: 0.9\n  lambda: [1, 0.5]\n",
			       "models/mixtral");
	compare(a, b, 0);
}
END_TEST

/* More distinct filters than the grouping tracks: every tensor is resolved. */
START_TEST(many_filters)
{
	static char tuned[16384];
	const char *root = fixture("models/dsv3");
	int n = snprintf(tuned, sizeof tuned,
			 "merge_method: aoe\nbase_model: %s/v3-base\nmodels:\n  - model: %s/r1\n    parameters:\n"
			 "      weight:\n",
			 root, root);
	for (int f = 0; f < 70; f++) /* "layers.3.mlp.experts.N." and the like: some match, most don't */
		n += snprintf(tuned + n, sizeof tuned - (size_t)n, "        - {filter: experts.%d., value: %g}\n", f,
			      0.01 * f);
	snprintf(tuned + n, sizeof tuned - (size_t)n, "        - {value: 0.5}\n");
	const char *start = recipe("merge_method: aoe\nbase_model: %s/v3-base\nmodels:\n"
				   "  - model: %s/r1\n    parameters: {weight: 0.5}\n",
				   "models/dsv3");
	compare(start, tuned, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plan_refresh");
	TCase *tc = tcase_create("plan_refresh");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, aoe_classes_filters_layers);
	tcase_add_test(tc, ties_gradients);
	tcase_add_test(tc, many_filters);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
