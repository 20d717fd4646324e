/*
 * The method and parameter tables (see crucible/methods.h).  Lookups only;
 * the kernels live with the engine.
 */
#include "config.h"

#include <string.h>

#include "crucible/methods.h"

static const struct cr_param_info params[CR_P__COUNT] = {
#define X(id, name, def, per_model, is_bool, desc) { name, def, per_model, is_bool, desc },
	CR_PARAMS(X)
#undef X
};

static const struct cr_method_info methods[CR_M__COUNT] = {
#define X(id, name, needs_base, ps, def_norm, desc) { name, needs_base, ps, def_norm, desc },
	CR_METHODS(X)
#undef X
};

const struct cr_param_info *cr_param_info(enum cr_param_id p)
{
	return (unsigned)p < CR_P__COUNT ? &params[p] : NULL;
}

const struct cr_method_info *cr_method_info(enum cr_method_id m)
{
	return (unsigned)m < CR_M__COUNT ? &methods[m] : NULL;
}

enum cr_param_id cr_param_parse(const char *name)
{
	for (int i = 0; i < CR_P__COUNT; i++)
		if (strcmp(params[i].name, name) == 0)
			return (enum cr_param_id)i;
	return CR_P_NONE;
}

enum cr_method_id cr_method_parse(const char *name)
{
	for (int i = 0; i < CR_M__COUNT; i++)
		if (strcmp(methods[i].name, name) == 0)
			return (enum cr_method_id)i;
	return CR_M_NONE;
}

int cr_method_uses(enum cr_method_id m, enum cr_param_id p)
{
	return (unsigned)m < CR_M__COUNT && (unsigned)p < CR_P__COUNT && (methods[m].params & (1u << p));
}

double cr_param_default(enum cr_method_id m, enum cr_param_id p)
{
	if (p == CR_P_NORMALIZE && (unsigned)m < CR_M__COUNT)
		return methods[m].default_normalize;
	return (unsigned)p < CR_P__COUNT ? params[p].def : 0.0;
}
