/*
 * DeepSeek-V3 block FP8: an F8_E4M3 weight W[rows, cols] with an F32
 * companion `W_scale_inv` of shape [ceil(rows/128), ceil(cols/128)], where
 * value[i,j] = e4m3(q[i,j]) * scale_inv[i/128, j/128].  Edge blocks may be
 * partial.  Work is done in stripes of up to 128 rows so that a tensor can
 * be streamed: a stripe holds whole blocks.
 */
#ifndef CRUCIBLE_FP8_H
#define CRUCIBLE_FP8_H

#include <stddef.h>
#include <stdint.h>

#define CR_FP8_BLOCK 128
#define CR_FP8_MAX 448.0f

/* Scale grid size for a [rows, cols] weight. */
static inline size_t cr_fp8_scale_dim(size_t n)
{
	return (n + CR_FP8_BLOCK - 1) / CR_FP8_BLOCK;
}

/* Dequantize `n` elements of a weight with `cols` columns, starting at flat
 * element index `first`; `scale_inv` is the full scale grid. */
void cr_fp8_dequant_range(const uint8_t *q, const float *scale_inv, size_t cols,
			  size_t first, size_t n, float *out);

/* Quantize one stripe of nr <= 128 rows ([nr, cols] f32, row-major) into q
 * and one row of ceil(cols/128) scales: scale = amax/448 per block, then
 * q = e4m3(w / scale) with ties to even.  A block of zeros gets scale 1. */
void cr_fp8_quant_stripe(const float *w, size_t nr, size_t cols, uint8_t *q,
			 float *scale_row);

#endif
