/* dtype conversions and block FP8, against definitions written here. */
#include "testutil.h"

#include <stdint.h>
#include <string.h>

#include "crucible/checkpoint.h"
#include "crucible/dtype.h"
#include "crucible/fp8.h"

static float f_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

START_TEST(bf16_round_nearest_even)
{
	/* 1 + 2^-8 is halfway between bf16 1.0 and 1+2^-7: ties to even -> 1.0 */
	ck_assert_uint_eq(cr_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
	/* 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even) */
	ck_assert_uint_eq(cr_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
	ck_assert_uint_eq(cr_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
	ck_assert_uint_eq(cr_f32_to_bf16(INFINITY), 0x7f80);
	ck_assert_uint_eq(cr_f32_to_bf16(-INFINITY), 0xff80);
	ck_assert(isnan(cr_bf16_to_f32(cr_f32_to_bf16(NAN))));
	/* a NaN whose payload sits in the low bits must not become Inf */
	ck_assert(isnan(cr_bf16_to_f32(cr_f32_to_bf16(f_from_bits(0x7f800001u)))));
	/* the largest finite float rounds up to Inf, as IEEE says */
	ck_assert_uint_eq(cr_f32_to_bf16(f_from_bits(0x7f7fffffu)), 0x7f80);
	for (uint32_t h = 0; h < 65536; h++) {
		float f = cr_bf16_to_f32((uint16_t)h);
		if (!isnan(f))
			ck_assert_uint_eq(cr_f32_to_bf16(f), h);
	}
}
END_TEST

START_TEST(f16_round_trip_and_rounding)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = cr_f16_to_f32((uint16_t)h);
		unsigned e = (h >> 10) & 31, m = h & 1023;
		double ref = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, (int)e - 25);
		if (h & 0x8000)
			ref = -ref;
		if (isnan(ref)) {
			ck_assert(isnan(f));
			continue;
		}
		ck_assert_msg((double)f == ref, "f16 %04x decodes to %g, want %g", h, f, ref);
		ck_assert_uint_eq(cr_f32_to_f16(f), h);
	}
	/* ties to even: 1 + 2^-11 -> 1.0; 1 + 3*2^-11 -> 1 + 2^-9 */
	ck_assert_uint_eq(cr_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
	ck_assert_uint_eq(cr_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
	ck_assert_uint_eq(cr_f32_to_f16(65519.0f), 0x7bff);
	ck_assert_uint_eq(cr_f32_to_f16(65520.0f), 0x7c00);
	ck_assert_uint_eq(cr_f32_to_f16(0x1p-25f), 0x0000); /* tie to even zero */
	ck_assert_uint_eq(cr_f32_to_f16(0x1p-25f * 3), 0x0002);
	ck_assert(isnan(cr_f16_to_f32(cr_f32_to_f16(NAN))));
}
END_TEST

START_TEST(e4m3_matches_definition)
{
	for (unsigned b = 0; b < 256; b++) {
		double ref = ref_e4m3(b);
		float f = cr_e4m3_to_f32((uint8_t)b);
		if (isnan(ref)) {
			ck_assert(isnan(f));
			continue;
		}
		ck_assert_msg((double)f == ref, "e4m3 %02x: %g want %g", b, f, ref);
		if (b != 0x80) /* -0 encodes back to 0x80 too, but check the rest */
			ck_assert_uint_eq(cr_f32_to_e4m3(f), b);
	}
	ck_assert_float_eq(cr_e4m3_to_f32(0x7e), 448.0f);
	ck_assert_uint_eq(cr_f32_to_e4m3(448.0f), 0x7e);
	ck_assert_uint_eq(cr_f32_to_e4m3(1000.0f), 0x7e); /* saturates, no Inf */
	ck_assert_uint_eq(cr_f32_to_e4m3(-1000.0f), 0xfe);
	ck_assert_uint_eq(cr_f32_to_e4m3(NAN) & 0x7f, 0x7f);
	ck_assert_uint_eq(cr_f32_to_e4m3(INFINITY) & 0x7f, 0x7f);
	/* ties to even between neighbours, normal and subnormal */
	ck_assert_uint_eq(cr_f32_to_e4m3(1.0625f), 0x38);  /* 1 | 1.125 -> 1 */
	ck_assert_uint_eq(cr_f32_to_e4m3(1.1875f), 0x3a);  /* 1.125 | 1.25 -> 1.25 */
	ck_assert_uint_eq(cr_f32_to_e4m3(0x1p-10f), 0x00); /* 0 | 2^-9 -> 0 */
	ck_assert_uint_eq(cr_f32_to_e4m3(3 * 0x1p-10f), 0x02);
	ck_assert_uint_eq(cr_f32_to_e4m3(15 * 0x1p-10f), 0x08); /* rounds up into the normals */
	/* every midpoint of consecutive positive codes rounds to the even code */
	for (unsigned b = 0; b < 0x7e; b++) {
		float mid = (float)((ref_e4m3(b) + ref_e4m3(b + 1)) / 2);
		unsigned want = (b & 1) ? b + 1 : b;
		ck_assert_msg(cr_f32_to_e4m3(mid) == want, "midpoint after %02x", b);
	}
}
END_TEST

START_TEST(e5m2_round_trip)
{
	for (unsigned b = 0; b < 256; b++) {
		float f = cr_e5m2_to_f32((uint8_t)b);
		if (isnan(f))
			continue;
		ck_assert_uint_eq(cr_f32_to_e5m2(f), b);
	}
	ck_assert_float_eq(cr_e5m2_to_f32(0x7b), 57344.0f);
	ck_assert(isinf(cr_e5m2_to_f32(0x7c)));
	ck_assert_uint_eq(cr_f32_to_e5m2(1.0f + 0x1p-3f), 0x3c); /* tie -> even */
}
END_TEST

START_TEST(vector_conversions_agree_with_scalar)
{
	enum cr_dtype dts[] = { CR_DT_F32, CR_DT_BF16, CR_DT_F16, CR_DT_F64, CR_DT_F8_E4M3, CR_DT_F8_E5M2 };
	float src[1000], back[1000];
	unsigned char buf[8000];
	for (int i = 0; i < 1000; i++)
		src[i] = (float)sin(i * 0.37) * (float)(1 << (i % 9));
	src[7] = NAN;
	src[8] = INFINITY;
	for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
		ck_assert_int_eq(cr_convert_from_f32(dts[k], src, buf, 1000), 0);
		ck_assert_int_eq(cr_convert_to_f32(dts[k], buf, back, 1000), 0);
		ck_assert(isnan(back[7]));
		if (dts[k] != CR_DT_F8_E4M3)
			ck_assert(isinf(back[8]));
	}
	/* bf16 vector path equals the scalar one */
	uint16_t h[1000];
	cr_convert_from_f32(CR_DT_BF16, src, h, 1000);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_eq(h[i], cr_f32_to_bf16(src[i]));
	ck_assert_int_eq(cr_convert_to_f32(CR_DT_I32, buf, back, 1), -1);
	ck_assert(!cr_dtype_has_math(CR_DT_F8_E8M0));
}
END_TEST

/* The vectorized E4M3 decode (bit placement, no table) against the
 * reference decoder for every code, times scales from subnormal to huge: the
 * result must be the f32 product e4m3(q) * s rounded once, bit for bit. */
START_TEST(e4m3_vector_decode_every_code_and_scale)
{
	const float scales[] = { 1.0f, 0.5f, 3.0e-3f, 1e-40f /* subnormal */, 100.0f, 127.99f, 128.0f, 255.0f,
				 256.0f, 0x1p100f, -2.5f, 0x1p-126f };
	uint8_t q[256];
	float out[256];
	for (int i = 0; i < 256; i++)
		q[i] = (uint8_t)i;
	/* plain conversion */
	ck_assert_int_eq(cr_convert_to_f32(CR_DT_F8_E4M3, q, out, 256), 0);
	for (int i = 0; i < 256; i++) {
		double want = ref_e4m3((unsigned)i);
		if (isnan(want))
			ck_assert_msg(isnan(out[i]), "code %d", i);
		else
			ck_assert_msg(out[i] == (float)want && !signbit(out[i]) == !signbit(want), "code %d: %a", i,
				      (double)out[i]);
	}
	/* block dequantization: one row of 256 columns, two 128-column blocks */
	for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
		float grid[2] = { scales[k], -scales[k] };
		cr_fp8_dequant_range(q, grid, 256, 0, 256, out);
		for (int i = 0; i < 256; i++) {
			double v = ref_e4m3((unsigned)i);
			float s = grid[i / 128];
			float want = (float)v * s; /* exact operand, one f32 rounding */
			if (isnan(v))
				ck_assert_msg(isnan(out[i]), "scale %a code %d", (double)s, i);
			else
				ck_assert_msg(memcmp(&out[i], &want, 4) == 0, "scale %a code %d: %a, want %a", (double)s,
					      i, (double)out[i], (double)want);
		}
	}
}
END_TEST

START_TEST(dtype_table)
{
	ck_assert_int_eq(cr_dtype_parse("F8_E4M3"), CR_DT_F8_E4M3);
	ck_assert_int_eq(cr_dtype_parse("F8_E8M0"), CR_DT_F8_E8M0);
	ck_assert_int_eq(cr_dtype_parse("F6_E3M2"), CR_DT_F6_E3M2);
	ck_assert_int_eq(cr_dtype_parse("C64"), CR_DT_C64);
	ck_assert_int_eq(cr_dtype_parse("F8_E4M3FNUZ"), CR_DT_F8_E4M3FNUZ);
	ck_assert_int_eq(cr_dtype_parse("Q4"), CR_DT_NONE);
	ck_assert_uint_eq(cr_dtype_bits(CR_DT_F4), 4);
	ck_assert_uint_eq(cr_dtype_bits(CR_DT_C64), 64);
	ck_assert_int_eq(cr_dtype_parse_torch("bfloat16"), CR_DT_BF16);
	ck_assert_int_eq(cr_dtype_parse_torch("float8_e4m3fn"), CR_DT_F8_E4M3);
	int ok;
	ck_assert_uint_eq(cr_dtype_nbytes(CR_DT_F4, 3, &ok), 2);
	cr_dtype_nbytes(CR_DT_F64, UINT64_MAX / 2, &ok);
	ck_assert_int_eq(ok, 0);
}
END_TEST

/* Dequantize every FP8 weight of the dsv3 base through the library, in odd
 * chunks, and compare with the README's formula evaluated here. */
START_TEST(fp8_dequant_matches_fixture_formula)
{
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(fixture("models/dsv3/v3-base"), &c, &err) == 0, "%s", err.msg);
	int nfp8 = 0, partial = 0;
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		if (t->dtype != CR_DT_F8_E4M3)
			continue;
		ck_assert_msg(t->scale != NULL, "%s has no scale", t->name);
		nfp8++;
		size_t rows = t->shape[0], cols = t->shape[1];
		if (rows % 128 || cols % 128)
			partial++;
		size_t scols = (cols + 127) / 128;
		uint8_t *q = malloc(t->nelem);
		float *grid = malloc(cr_tensor_scale_count(t) * 4), *out = malloc(t->nelem * 4);
		ck_assert_int_eq(cr_tensor_read_raw(c, t, 0, q, t->nelem, &err), 0);
		ck_assert_int_eq(cr_tensor_read_scales(c, t, grid, &err), 0);
		/* read in chunks of 1000 elements: chunk edges cross rows and blocks */
		for (uint64_t first = 0; first < t->nelem; first += 1000) {
			size_t n = t->nelem - first < 1000 ? (size_t)(t->nelem - first) : 1000;
			ck_assert_int_eq(cr_tensor_read_f32(c, t, grid, first, n, q + first /* scratch */, out + first, &err), 0);
		}
		/* read_f32 used q as scratch with the same bytes: re-read to be safe */
		ck_assert_int_eq(cr_tensor_read_raw(c, t, 0, q, t->nelem, &err), 0);
		size_t bad = 0, first_bad = 0;
		for (size_t r = 0; r < rows; r++)
			for (size_t k = 0; k < cols; k++) {
				double want = ref_e4m3(q[r * cols + k]) * grid[(r / 128) * scols + k / 128];
				if ((double)out[r * cols + k] != (float)want && bad++ == 0)
					first_bad = r * cols + k;
			}
		ck_assert_msg(bad == 0, "%s: %zu elements differ, first at %zu", t->name, bad, first_bad);
		free(q);
		free(grid);
		free(out);
	}
	ck_assert_int_gt(nfp8, 100);
	ck_assert_int_gt(partial, 10);
	cr_ckpt_close(c);
}
END_TEST

/* Requantizing the dequantized fixture weights with amax/448 per 128x128
 * block must give back weights within the FP8 rounding bound, with fresh
 * scales equal to the block amax / 448 computed here. */
START_TEST(fp8_quant_round_trip_on_fixture)
{
	struct cr_ckpt *c;
	cr_error err;
	ck_assert_msg(cr_ckpt_open(fixture("models/dsv3/r1"), &c, &err) == 0, "%s", err.msg);
	size_t same_bytes = 0, total = 0;
	for (size_t i = 0; i < c->ntensors; i++) {
		const struct cr_tensor *t = &c->tensors[i];
		if (!t->scale)
			continue;
		size_t rows = t->shape[0], cols = t->shape[1], scols = (cols + 127) / 128;
		uint8_t *q = malloc(t->nelem), *q2 = malloc(t->nelem);
		float *grid = malloc(cr_tensor_scale_count(t) * 4), *w = malloc(t->nelem * 4);
		float *grid2 = malloc(cr_tensor_scale_count(t) * 4);
		ck_assert_int_eq(cr_tensor_read_scales(c, t, grid, &err), 0);
		ck_assert_int_eq(cr_tensor_read_f32(c, t, grid, 0, t->nelem, q, w, &err), 0);
		ck_assert_int_eq(cr_tensor_read_raw(c, t, 0, q, t->nelem, &err), 0);
		for (size_t r0 = 0; r0 < rows; r0 += 128) {
			size_t nr = rows - r0 < 128 ? rows - r0 : 128;
			cr_fp8_quant_stripe(w + r0 * cols, nr, cols, q2 + r0 * cols, grid2 + (r0 / 128) * scols);
		}
		for (size_t r = 0; r < rows; r += 128)
			for (size_t b = 0; b < scols; b++) {
				double amax = 0;
				for (size_t rr = r; rr < rows && rr < r + 128; rr++)
					for (size_t k = b * 128; k < cols && k < b * 128 + 128; k++)
						amax = fmax(amax, fabs(w[rr * cols + k]));
				{
					ck_assert_float_eq_tol(grid2[(r / 128) * scols + b], (float)(amax / 448.0),
							       1e-6 * amax);
					/* and the fresh scale is the stored one, bit for bit */
					ck_assert_msg(grid2[(r / 128) * scols + b] == grid[(r / 128) * scols + b],
						      "%s: scale block %zu,%zu differs", t->name, r / 128, b);
				}
			}
		for (size_t e = 0; e < t->nelem; e++) {
			size_t r = e / cols, k = e % cols;
			double s = grid2[(r / 128) * scols + k / 128];
			double v = ref_e4m3(q2[e]) * s;
			/* e4m3 has 3 mantissa bits: relative error <= 2^-4, plus a subnormal step */
			if (!(fabs(v - w[e]) <= fabs(w[e]) * 0x1p-4 + s * 0x1p-10))
				ck_abort_msg("%s[%zu]: %g is not within the FP8 bound of %g", t->name, e, v, w[e]);
			same_bytes += q2[e] == q[e];
			total++;
		}
		free(q);
		free(q2);
		free(grid);
		free(grid2);
		free(w);
	}
	/* the fixture was quantized with the same rule outside this codebase:
	 * requantizing its dequantized values must give back its exact bytes */
	ck_assert_msg(same_bytes == total, "only %zu of %zu bytes reproduced", same_bytes, total);
	cr_ckpt_close(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dtype");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, bf16_round_nearest_even);
	tcase_add_test(tc, f16_round_trip_and_rounding);
	tcase_add_test(tc, e4m3_matches_definition);
	tcase_add_test(tc, e5m2_round_trip);
	tcase_add_test(tc, vector_conversions_agree_with_scalar);
	tcase_add_test(tc, e4m3_vector_decode_every_code_and_scale);
	tcase_add_test(tc, dtype_table);
	tcase_add_test(tc, fp8_dequant_matches_fixture_formula);
	tcase_add_test(tc, fp8_quant_round_trip_on_fixture);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
