/*
 * Block FP8 quantization (see crucible/fp8.h).  Dequantization is a table
 * lookup times the block's scale; quantization needs a block's amax before
 * it can write any element of it, hence the 128-row stripes.
 */
#include "config.h"

#include <math.h>

#include "crucible/dtype.h"
#include "crucible/fp8.h"

const float *cr_e4m3_table(void);

void cr_fp8_dequant_range(const uint8_t *q, const float *scale_inv, size_t cols,
			  size_t first, size_t n, float *out)
{
	const float *lut = cr_e4m3_table();
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
			for (size_t j = k; j < blk_end; j++)
				o[j] = lut[qs[j]] * s;
			k = blk_end;
		}
		done += run;
	}
}

void cr_fp8_quant_stripe(const float *w, size_t nr, size_t cols, uint8_t *q,
			 float *scale_row)
{
	size_t scols = cr_fp8_scale_dim(cols);

	for (size_t b = 0; b < scols; b++) {
		size_t c0 = b * CR_FP8_BLOCK;
		size_t c1 = c0 + CR_FP8_BLOCK < cols ? c0 + CR_FP8_BLOCK : cols;
		float amax = 0.0f;
		for (size_t r = 0; r < nr; r++)
			for (size_t c = c0; c < c1; c++) {
				float a = fabsf(w[r * cols + c]);
				amax = a > amax ? a : amax;
			}
		float scale = amax > 0.0f && isfinite(amax) ? amax / CR_FP8_MAX : 1.0f;
		scale_row[b] = scale;
		for (size_t r = 0; r < nr; r++)
			for (size_t c = c0; c < c1; c++)
				q[r * cols + c] = cr_f32_to_e4m3(w[r * cols + c] / scale);
	}
}
