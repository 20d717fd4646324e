/*
 * dtype table and float conversions.
 *
 * The scalar converters are exact bit manipulations, so they behave the same
 * on every machine and keep NaN and Inf.  The vector converters are plain
 * loops over them that the compiler vectorizes; they are the hot path of
 * every scan and merge, so they avoid calls and branches that do not fold.
 */
#include "config.h"

/* The conversion loops are the hot path of every scan and merge: let GCC
 * vectorize them at -O2 and if-convert the selects (no FP trap is relied on). */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")

#include <math.h>
#include <string.h>

#include "crucible/dtype.h"
#include "e4m3.h"
#include "hot.h"

struct dtype_info {
	const char *name;
	unsigned bits;
	unsigned char is_float, math;
};

static const struct dtype_info dtypes[CR_DT__COUNT] = {
#define X(id, name, bits, isf, math) { name, bits, isf, math },
	CR_DTYPES(X)
#undef X
};

const char *cr_dtype_name(enum cr_dtype dt)
{
	if ((unsigned)dt >= CR_DT__COUNT)
		return "?";
	return dtypes[dt].name;
}

enum cr_dtype cr_dtype_parse(const char *name)
{
	for (int i = 0; i < CR_DT__COUNT; i++)
		if (strcmp(dtypes[i].name, name) == 0)
			return (enum cr_dtype)i;
	return CR_DT_NONE;
}

static const struct {
	const char *torch;
	enum cr_dtype dt;
} torch_names[] = {
	{ "float32", CR_DT_F32 },	  { "float", CR_DT_F32 },
	{ "fp32", CR_DT_F32 },		  { "bfloat16", CR_DT_BF16 },
	{ "bf16", CR_DT_BF16 },		  { "float16", CR_DT_F16 },
	{ "half", CR_DT_F16 },		  { "fp16", CR_DT_F16 },
	{ "float64", CR_DT_F64 },	  { "float8_e4m3fn", CR_DT_F8_E4M3 },
	{ "fp8", CR_DT_F8_E4M3 },	  { "float8_e5m2", CR_DT_F8_E5M2 },
};

enum cr_dtype cr_dtype_parse_torch(const char *name)
{
	for (size_t i = 0; i < sizeof torch_names / sizeof torch_names[0]; i++)
		if (strcmp(torch_names[i].torch, name) == 0)
			return torch_names[i].dt;
	return cr_dtype_parse(name);
}

const char *cr_dtype_torch_name(enum cr_dtype dt)
{
	switch (dt) {
	case CR_DT_F32: return "float32";
	case CR_DT_BF16: return "bfloat16";
	case CR_DT_F16: return "float16";
	case CR_DT_F64: return "float64";
	case CR_DT_F8_E4M3: return "float8_e4m3fn";
	case CR_DT_F8_E5M2: return "float8_e5m2";
	default: return cr_dtype_name(dt);
	}
}

unsigned cr_dtype_bits(enum cr_dtype dt)
{
	return (unsigned)dt < CR_DT__COUNT ? dtypes[dt].bits : 0;
}

int cr_dtype_is_float(enum cr_dtype dt)
{
	return (unsigned)dt < CR_DT__COUNT && dtypes[dt].is_float;
}

int cr_dtype_has_math(enum cr_dtype dt)
{
	return (unsigned)dt < CR_DT__COUNT && dtypes[dt].math;
}

uint64_t cr_dtype_nbytes(enum cr_dtype dt, uint64_t n, int *ok)
{
	uint64_t bits = cr_dtype_bits(dt);
	if (bits == 0 || (n != 0 && n > UINT64_MAX / bits)) {
		if (ok)
			*ok = 0;
		return 0;
	}
	if (ok)
		*ok = 1;
	return (n * bits + 7) / 8;
}

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float cr_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t cr_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

float cr_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
	if (exp == 0x1f) /* Inf or NaN */
		return bits_f32(sign | 0x7f800000u | (mant << 13));
	if (exp == 0) { /* zero or subnormal: mant * 2^-24 is exact */
		float v = (float)mant * 0x1p-24f;
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

/*
 * Round |f| to a small float with `mbits` mantissa bits and exponent bias
 * `bias`, ties to even.  Returns the unsigned code; the caller handles sign,
 * NaN and overflow.  Subnormals are a multiple of the smallest step, found
 * with nearbyintf (the default rounding mode is to nearest even); the scaling
 * by a power of two is exact.
 */
static inline uint32_t round_minifloat(float a, int mbits, int bias)
{
	float min_normal = ldexpf(1.0f, 1 - bias);
	if (a < min_normal)
		return (uint32_t)nearbyintf(ldexpf(a, bias - 1 + mbits));
	uint32_t u = f32_bits(a);
	int shift = 23 - mbits;
	u += ((1u << (shift - 1)) - 1u) + ((u >> shift) & 1u);
	u >>= shift; /* (f32 exponent << mbits) | mantissa */
	return u - ((uint32_t)(127 - bias) << mbits);
}

uint16_t cr_f32_to_f16(float f)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	float a = fabsf(f);
	if (isnan(f))
		return sign | 0x7e00u | (uint16_t)((u >> 13) & 0x3ffu);
	if (a >= 65520.0f) /* rounds to Inf, including Inf itself */
		return sign | 0x7c00u;
	return sign | (uint16_t)round_minifloat(a, 10, 15);
}

float cr_e4m3_to_f32(uint8_t b)
{
	uint32_t exp = (b >> 3) & 0xfu, mant = b & 7u;
	float v;
	if (exp == 0xf && mant == 7)
		return (b & 0x80) ? -NAN : NAN;
	if (exp == 0)
		v = (float)mant * 0x1p-9f;
	else
		v = bits_f32(((exp + 120u) << 23) | (mant << 20));
	return (b & 0x80) ? -v : v;
}

/*
 * E4M3 encoding without branches, so the requantization loop vectorizes.
 * Normals round to 3 mantissa bits on the f32 bit pattern (ties to even);
 * subnormals (below 2^-6) are |f| * 2^9 rounded to an integer by adding
 * 2^23, which the FPU rounds to nearest even; the code for 8 such steps is
 * the smallest normal, so the two ranges meet exactly.
 */
static inline uint32_t e4m3_encode(float f)
{
	uint32_t u = f32_bits(f);
	uint32_t sign = (u >> 24) & 0x80u;
	uint32_t a = u & 0x7fffffffu;
	uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u);
	uint32_t normal = (r >> 20) - (120u << 3);
	uint32_t sub = f32_bits(bits_f32(a) * 512.0f + 8388608.0f) - 0x4b000000u;
	uint32_t code = a < 0x3c800000u ? sub : normal;
	code = code > 0x7eu ? 0x7eu : code; /* beyond 448: saturate (no Inf) */
	code = a >= 0x7f800000u ? 0x7fu : code; /* NaN and Inf become NaN */
	return sign | code;
}

uint8_t cr_f32_to_e4m3(float f)
{
	return (uint8_t)e4m3_encode(f);
}

/* Codes are made 32 bits wide, then narrowed: GCC vectorizes the two
 * loops, but not one that mixes f32 loads with byte stores. */
CR_HOT
void cr_e4m3_encode_scaled(const float *restrict src, float scale, uint8_t *restrict dst, size_t n)
{
	uint32_t tmp[64];
	for (size_t i0 = 0; i0 < n; i0 += 64) {
		size_t m = n - i0 < 64 ? n - i0 : 64;
		for (size_t i = 0; i < m; i++)
			tmp[i] = e4m3_encode(src[i0 + i] / scale);
		for (size_t i = 0; i < m; i++)
			dst[i0 + i] = (uint8_t)tmp[i];
	}
}

float cr_e5m2_to_f32(uint8_t b)
{
	return cr_f16_to_f32((uint16_t)b << 8);
}

uint8_t cr_f32_to_e5m2(float f)
{
	uint8_t sign = (f32_bits(f) >> 24) & 0x80u;
	float a = fabsf(f);
	if (isnan(f))
		return sign | 0x7e;
	if (isinf(f))
		return sign | 0x7c;
	uint32_t code = round_minifloat(a, 2, 15);
	if (code > 0x7c)
		code = 0x7c;
	return sign | (uint8_t)code;
}

/* E5M2 decodes through a table (one load per element); E4M3, the format of
 * DeepSeek's weights, by bit placement (e4m3.h), which vectorizes. */
static float e5m2_table[256];
static void init_tables(void) __attribute__((constructor));
static void init_tables(void)
{
	for (int i = 0; i < 256; i++)
		e5m2_table[i] = cr_e5m2_to_f32((uint8_t)i);
}

CR_HOT
int cr_convert_to_f32(enum cr_dtype dt, const void *src, float *restrict dst, size_t n)
{
	switch (dt) {
	case CR_DT_F32:
		memcpy(dst, src, n * 4);
		return 0;
	case CR_DT_BF16: {
		const uint16_t *s = src;
		uint32_t *d = (uint32_t *)dst;
#pragma omp simd /* the merge engine's hottest loop: GCC -O2 leaves it scalar otherwise */
		for (size_t i = 0; i < n; i++)
			d[i] = (uint32_t)s[i] << 16;
		return 0;
	}
	case CR_DT_F16: {
		const uint16_t *s = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = cr_f16_to_f32(s[i]);
		return 0;
	}
	case CR_DT_F64: {
		const double *s = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = (float)s[i];
		return 0;
	}
	case CR_DT_F8_E4M3: {
		cr_e4m3_scale_run(src, 1.0f, n, dst);
		return 0;
	}
	case CR_DT_F8_E5M2: {
		const uint8_t *s = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = e5m2_table[s[i]];
		return 0;
	}
	default:
		return -1;
	}
}

CR_HOT
int cr_convert_from_f32(enum cr_dtype dt, const float *restrict src, void *dst, size_t n)
{
	switch (dt) {
	case CR_DT_F32:
		memcpy(dst, src, n * 4);
		return 0;
	case CR_DT_BF16: {
		const uint32_t *s = (const uint32_t *)src;
		uint16_t *d = dst;
#pragma omp simd
		for (size_t i = 0; i < n; i++) {
			uint32_t u = s[i];
			uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
			uint32_t q = (u >> 16) | 0x40u;
			d[i] = (uint16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? q : r);
		}
		return 0;
	}
	case CR_DT_F16: {
		uint16_t *d = dst;
		for (size_t i = 0; i < n; i++)
			d[i] = cr_f32_to_f16(src[i]);
		return 0;
	}
	case CR_DT_F64: {
		double *d = dst;
		for (size_t i = 0; i < n; i++)
			d[i] = src[i];
		return 0;
	}
	case CR_DT_F8_E4M3: {
		uint8_t *d = dst;
		cr_e4m3_encode_scaled(src, 1.0f, d, n);
		return 0;
	}
	case CR_DT_F8_E5M2: {
		uint8_t *d = dst;
		for (size_t i = 0; i < n; i++)
			d[i] = cr_f32_to_e5m2(src[i]);
		return 0;
	}
	default:
		return -1;
	}
}
