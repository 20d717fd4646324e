/*
 * Counter-based RNG keys (see crucible/rng.h).  Called by the method
 * kernels once per tensor and parent.
 */
#include "config.h"

#include "crucible/rng.h"

uint64_t cr_rng_key(uint64_t seed, const char *tensor, uint32_t stream)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name, then mixed with seed and stream */
	for (const unsigned char *p = (const unsigned char *)tensor; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	h = cr_rng_mix(h ^ cr_rng_mix(seed + 0x632be59bd9b4e019ull));
	return cr_rng_mix(h + (uint64_t)stream * 0x9e3779b97f4a7c15ull);
}
