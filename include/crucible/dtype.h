/*
 * Element types of safetensors files and conversions to and from f32.
 *
 * The table lists the dtypes in the official reader's enum order, which is
 * also the order the writer sorts by (descending).  `math` says whether the
 * merge and statistics kernels can convert the type to f32; the others are
 * read, listed and copied, and an operation that needs values says clearly
 * that it does not support them.
 */
#ifndef CRUCIBLE_DTYPE_H
#define CRUCIBLE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* X(ID, "NAME", bits per element, is a float, math support) */
#define CR_DTYPES(X)                        \
	X(BOOL, "BOOL", 8, 0, 0)            \
	X(F4, "F4", 4, 1, 0)                \
	X(F6_E2M3, "F6_E2M3", 6, 1, 0)      \
	X(F6_E3M2, "F6_E3M2", 6, 1, 0)      \
	X(U8, "U8", 8, 0, 0)                \
	X(I8, "I8", 8, 0, 0)                \
	X(F8_E5M2, "F8_E5M2", 8, 1, 1)      \
	X(F8_E4M3, "F8_E4M3", 8, 1, 1)      \
	X(F8_E8M0, "F8_E8M0", 8, 1, 0)      \
	X(F8_E4M3FNUZ, "F8_E4M3FNUZ", 8, 1, 0) \
	X(F8_E5M2FNUZ, "F8_E5M2FNUZ", 8, 1, 0) \
	X(I16, "I16", 16, 0, 0)             \
	X(U16, "U16", 16, 0, 0)             \
	X(F16, "F16", 16, 1, 1)             \
	X(BF16, "BF16", 16, 1, 1)           \
	X(I32, "I32", 32, 0, 0)             \
	X(U32, "U32", 32, 0, 0)             \
	X(F32, "F32", 32, 1, 1)             \
	X(C64, "C64", 64, 0, 0)             \
	X(F64, "F64", 64, 1, 1)             \
	X(I64, "I64", 64, 0, 0)             \
	X(U64, "U64", 64, 0, 0)

enum cr_dtype {
#define X(id, name, bits, isf, math) CR_DT_##id,
	CR_DTYPES(X)
#undef X
	CR_DT__COUNT,
	CR_DT_NONE = -1
};

const char *cr_dtype_name(enum cr_dtype dt);
/* Parse a safetensors dtype name; CR_DT_NONE when unknown. */
enum cr_dtype cr_dtype_parse(const char *name);
/* Parse a torch/mergekit spelling ("bfloat16", "float8_e4m3fn", ...). */
enum cr_dtype cr_dtype_parse_torch(const char *name);
const char *cr_dtype_torch_name(enum cr_dtype dt);
unsigned cr_dtype_bits(enum cr_dtype dt);
int cr_dtype_is_float(enum cr_dtype dt);
/* 1 when values convert to and from f32 (the kernels' working type). */
int cr_dtype_has_math(enum cr_dtype dt);
/* Bytes for n elements, rounding sub-byte types up; 0 on overflow with *ok=0. */
uint64_t cr_dtype_nbytes(enum cr_dtype dt, uint64_t n, int *ok);

/* Scalar conversions.  BF16 and F16 round to nearest even; NaN and Inf are
 * kept (a NaN stays a quiet NaN).  E4M3 is the "fn" variant: max 448, no
 * infinities, 0x7F/0xFF are NaN; values beyond 448 saturate to +-448 and
 * infinities become NaN, as torch's cast does. */
float cr_bf16_to_f32(uint16_t h);
uint16_t cr_f32_to_bf16(float f);
float cr_f16_to_f32(uint16_t h);
uint16_t cr_f32_to_f16(float f);
float cr_e4m3_to_f32(uint8_t b);
uint8_t cr_f32_to_e4m3(float f);
float cr_e5m2_to_f32(uint8_t b);
uint8_t cr_f32_to_e5m2(float f);

/* dst[i] = e4m3(src[i] / scale): the block-FP8 requantization inner loop. */
void cr_e4m3_encode_scaled(const float *src, float scale, uint8_t *dst, size_t n);

/* Vector conversions of n elements.  Both return -1 for a dtype without math
 * support; callers check cr_dtype_has_math first to give a good message. */
int cr_convert_to_f32(enum cr_dtype dt, const void *src, float *dst, size_t n);
int cr_convert_from_f32(enum cr_dtype dt, const float *src, void *dst, size_t n);

#endif
