/*
 * Block FP8 quantization (see crucible/fp8.h).  Dequantization is the code's
 * value (e4m3.h) times the block's scale; quantization needs a block's amax before
 * it can write any element of it, hence the 128-row stripes.
 */
#include "config.h"

/* The conversion loops are the hot path of every scan and merge: let GCC
 * vectorize them at -O2 and if-convert the selects (no FP trap is relied on). */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")

#include <math.h>
#include <string.h>

#include "crucible/dtype.h"
#include "crucible/fp8.h"
#include "e4m3.h"
#include "hot.h"

CR_HOT
void cr_fp8_dequant_range(const uint8_t *q, const float *scale_inv, size_t cols,
			  size_t first, size_t n, float *out)
{
	size_t scols = cr_fp8_scale_dim(cols);
	size_t done = 0;

	while (done < n) {
		size_t idx = first + done;
		size_t r = idx / cols, c = idx % cols;
		size_t run = cols - c; /* to the end of this row */
		if (run > n - done)
			run = n - done;
		const float *srow = scale_inv + (r / CR_FP8_BLOCK) * scols;
		const uint8_t *qs = q + done;
		float *o = out + done;
		size_t k = 0;
		while (k < run) {
			size_t cc = c + k;
			size_t blk_end = (cc / CR_FP8_BLOCK + 1) * CR_FP8_BLOCK - c;
			if (blk_end > run)
				blk_end = run;
			float s = srow[cc / CR_FP8_BLOCK];
			cr_e4m3_scale_run(qs + k, s, blk_end - k, o + k);
			k = blk_end;
		}
		done += run;
	}
}

CR_HOT
void cr_fp8_quant_stripe(const float *w, size_t nr, size_t cols, uint8_t *q,
			 float *scale_row)
{
	size_t scols = cr_fp8_scale_dim(cols);

	for (size_t b = 0; b < scols; b++) {
		size_t c0 = b * CR_FP8_BLOCK;
		size_t c1 = c0 + CR_FP8_BLOCK < cols ? c0 + CR_FP8_BLOCK : cols;
		/* amax as the largest |x| bit pattern: integer max vectorizes where a
		 * float max does not, and orders finite floats the same way (a NaN
		 * or Inf makes amax non-finite, which gives the block scale 1) */
		uint32_t amax_bits = 0;
		for (size_t r = 0; r < nr; r++) {
			const float *row = w + r * cols;
			for (size_t c = c0; c < c1; c++) {
				uint32_t u;
				memcpy(&u, &row[c], 4);
				u &= 0x7fffffffu;
				amax_bits = u > amax_bits ? u : amax_bits;
			}
		}
		float amax;
		memcpy(&amax, &amax_bits, 4);
		float scale = amax > 0.0f && isfinite(amax) ? amax / CR_FP8_MAX : 1.0f;
		scale_row[b] = scale;
		for (size_t r = 0; r < nr; r++)
			cr_e4m3_encode_scaled(w + r * cols + c0, scale, q + r * cols + c0, c1 - c0);
	}
}
