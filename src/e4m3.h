/*
 * E4M3 decoding for the hot loops (FP8 dequantization in merges and scans).
 *
 * By bit placement, without a table: the sign and the 7 low bits go where an
 * f32 keeps them, which reads as the E4M3 value times 2^-120 (exact,
 * subnormals included); 0x7F/0xFF are NaN.  Multiplying by the block scale
 * times 2^120 (exact while |scale| < 2^8) is then the one rounding, so the
 * result is bit for bit e4m3(q) * scale, as a table lookup would give, and
 * the loop vectorizes.
 */
#ifndef CRUCIBLE_E4M3_H
#define CRUCIBLE_E4M3_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* out[j] = e4m3(q[j]) * s */
static inline __attribute__((always_inline)) void cr_e4m3_scale_run(const uint8_t *restrict q, float s, size_t n,
								    float *restrict out)
{
	int small = fabsf(s) < 0x1p7f;
	float s1 = small ? s * 0x1p120f : 0x1p120f, s2 = small ? 1.0f : s;
#pragma omp simd
	for (size_t j = 0; j < n; j++) {
		uint32_t b = q[j];
		uint32_t u = ((b & 0x7fu) << 20) | ((b & 0x80u) << 24);
		union {
			uint32_t u;
			float f;
		} v = { (b & 0x7fu) == 0x7fu ? 0x7fc00000u : u }; /* C reads the other member as its bits */
		out[j] = v.f * s1 * s2;
	}
}

/* Nonzero when one of the n codes is NaN (0x7F or 0xFF). */
static inline __attribute__((always_inline)) uint32_t cr_e4m3_any_nan(const uint8_t *restrict q, size_t n)
{
	uint8_t nan = 0;
#pragma omp simd reduction(| : nan)
	for (size_t j = 0; j < n; j++)
		nan |= (uint8_t)((q[j] & 0x7fu) + 1u); /* bit 7 set only for 0x7F */
	return nan >> 7;
}

#endif
