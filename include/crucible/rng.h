/*
 * Counter-based random numbers for DARE and DELLA.
 *
 * A draw is a pure function of (seed, tensor name, stream, element index):
 * no state advances, so any chunking or thread count gives the same masks.
 * The mixer is two rounds of the SplitMix64 finalizer over a key folded
 * from the inputs; quality is ample for Bernoulli masks.  `stream` keeps the
 * masks of different parents of one tensor independent.
 */
#ifndef CRUCIBLE_RNG_H
#define CRUCIBLE_RNG_H

#include <stdint.h>

/* The per-(tensor, stream) key; compute once per tensor. */
uint64_t cr_rng_key(uint64_t seed, const char *tensor, uint32_t stream);

static inline uint64_t cr_rng_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 bits for element `index` under `key`. */
static inline double cr_rng_uniform(uint64_t key, uint64_t index)
{
	uint64_t z = cr_rng_mix(key + (index + 1) * 0x9e3779b97f4a7c15ull);
	z = cr_rng_mix(z ^ key);
	return (double)(z >> 11) * 0x1.0p-53;
}

#endif
