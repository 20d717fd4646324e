/*
 * `crucible inspect PATH`: summary, tensor list, or JSON of a checkpoint.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "crucible/checkpoint.h"
#include "crucible/format.h"

static void inspect_usage(FILE *out)
{
	fprintf(out, "usage: crucible inspect [--tensors] [--json] PATH\n"
		     "  PATH        a checkpoint folder or a .safetensors file\n"
		     "  --tensors   list every tensor: name, class, layer, dtype, shape, size\n"
		     "  --json      print the summary (and tensors) as JSON\n"
		     "Exit status: 0 valid, 1 invalid (reason on stderr), 2 usage error.\n");
}

static json_t *shape_json(const struct cr_tensor *t)
{
	json_t *a = json_array();
	for (int d = 0; d < t->ndim; d++)
		json_array_append_new(a, json_integer((json_int_t)t->shape[d]));
	return a;
}

static void print_json(const struct cr_ckpt *c, const struct cr_ckpt_summary *s, int tensors)
{
	json_t *o = json_object();
	json_object_set_new(o, "path", json_string(c->path));
	json_object_set_new(o, "architecture", c->arch ? json_string(c->arch) : json_null());
	json_object_set_new(o, "model_type", c->model_type ? json_string(c->model_type) : json_null());
	json_object_set_new(o, "layers", json_integer(s->layers));
	json_object_set_new(o, "experts", json_integer(s->experts));
	json_object_set_new(o, "tensors", json_integer((json_int_t)c->ntensors));
	json_object_set_new(o, "scale_tensors", json_integer((json_int_t)c->nscales));
	json_object_set_new(o, "parameters", json_integer((json_int_t)s->params));
	json_object_set_new(o, "bytes", json_integer((json_int_t)s->bytes));
	json_object_set_new(o, "shards", json_integer((json_int_t)c->nshards));
	json_t *bd = json_object();
	for (int d = 0; d < CR_DT__COUNT; d++)
		if (s->dtype_count[d])
			json_object_set_new(bd, cr_dtype_name(d), json_integer((json_int_t)s->dtype_bytes[d]));
	json_object_set_new(o, "bytes_by_dtype", bd);
	json_t *pc = json_object();
	for (int k = 0; k < CR_CLASS__COUNT; k++)
		if (s->class_params[k])
			json_object_set_new(pc, cr_class_name(k), json_integer((json_int_t)s->class_params[k]));
	json_object_set_new(o, "parameters_by_class", pc);
	if (tensors) {
		json_t *arr = json_array();
		for (size_t i = 0; i < c->ntensors; i++) {
			const struct cr_tensor *t = &c->tensors[i];
			json_t *e = json_object();
			json_object_set_new(e, "name", json_string(t->name));
			json_object_set_new(e, "class", json_string(cr_class_name(t->cls)));
			json_object_set_new(e, "layer", t->layer >= 0 ? json_integer(t->layer) : json_null());
			json_object_set_new(e, "expert", t->expert >= 0 ? json_integer(t->expert) : json_null());
			json_object_set_new(e, "dtype", json_string(cr_dtype_name(t->dtype)));
			json_object_set_new(e, "shape", shape_json(t));
			json_object_set_new(e, "bytes", json_integer((json_int_t)t->nbytes));
			json_object_set_new(e, "block_scale", json_boolean(t->scale != NULL));
			json_object_set_new(e, "shard", json_string(c->shards[t->shard]->path));
			json_array_append_new(arr, e);
		}
		json_object_set_new(o, "tensor_list", arr);
	}
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
}

static void print_text(const struct cr_ckpt *c, const struct cr_ckpt_summary *s, int tensors)
{
	char b1[64], b2[64];
	printf("%s\n", c->path);
	printf("  architecture  %s (%s)\n", c->arch ? c->arch : "unknown", c->model_type ? c->model_type : "-");
	printf("  layers        %d\n", s->layers);
	printf("  experts       %d\n", s->experts);
	printf("  tensors       %zu (+%zu FP8 scales folded into their weights)\n", c->ntensors, c->nscales);
	printf("  parameters    %s (%llu)\n", cr_fmt_count(s->params, b1, sizeof b1), (unsigned long long)s->params);
	printf("  size          %s\n", cr_fmt_bytes(s->bytes, b2, sizeof b2));
	printf("  shards        %zu\n", c->nshards);
	printf("  by dtype\n");
	for (int d = CR_DT__COUNT - 1; d >= 0; d--)
		if (s->dtype_count[d])
			printf("    %-12s %8llu tensors  %12s\n", cr_dtype_name(d), (unsigned long long)s->dtype_count[d],
			       cr_fmt_bytes(s->dtype_bytes[d], b1, sizeof b1));
	printf("  parameters by class\n");
	for (int k = 0; k < CR_CLASS__COUNT; k++)
		if (s->class_params[k])
			printf("    %-14s %12s\n", cr_class_name(k), cr_fmt_count(s->class_params[k], b1, sizeof b1));
	if (!tensors)
		return;
	printf("\n%-64s %-14s %5s %-8s %-16s %10s\n", "NAME", "CLASS", "LAYER", "DTYPE", "SHAPE", "SIZE");
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		char layer[16] = "-";
		if (t->layer >= 0)
			snprintf(layer, sizeof layer, "%d", t->layer);
		printf("%-64s %-14s %5s %-8s %-16s %10s\n", t->name, cr_class_name(t->cls), layer,
		       t->scale ? "F8+scale" : cr_dtype_name(t->dtype), cr_fmt_shape(t->shape, t->ndim, b1, sizeof b1),
		       cr_fmt_bytes(t->nbytes, b2, sizeof b2));
	}
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = { { "tensors", no_argument, NULL, 't' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	int tensors = 0, json = 0, ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "tjh", opts, NULL)) != -1) {
		switch (ch) {
		case 't': tensors = 1; break;
		case 'j': json = 1; break;
		case 'h': inspect_usage(stdout); return EXIT_OK;
		default: inspect_usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		inspect_usage(stderr);
		return EXIT_USAGE;
	}
	struct cr_ckpt *c;
	cr_error err;
	if (cr_ckpt_open(argv[optind], &c, &err) < 0) {
		cli_error("%s", err.msg);
		return EXIT_FAIL;
	}
	struct cr_ckpt_summary s;
	cr_ckpt_summarize(c, &s);
	if (json)
		print_json(c, &s, tensors);
	else
		print_text(c, &s, tensors);
	cr_ckpt_close(c);
	return EXIT_OK;
}
