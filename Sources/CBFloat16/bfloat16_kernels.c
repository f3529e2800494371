// See include/bfloat16_kernels.h.
#include "bfloat16_kernels.h"
#include <string.h>

static inline float widen1(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t round1(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

void bf16_leaky_relu_gradient_reference(const uint16_t *dy, const uint16_t *sign, uint16_t *dx, size_t count, float slope) {
    for (size_t i = 0; i < count; i++) dx[i] = (int16_t)sign[i] > 0 ? dy[i] : round1(widen1(dy[i]) * slope);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

static int has_avx512(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("avx512f");
    return known;
}

__attribute__((target("avx512f"))) static void leaky_relu_gradient_avx512(const uint16_t *dy, const uint16_t *sign,
                                                                          uint16_t *dx, size_t count, float slope) {
    const __m512 a = _mm512_set1_ps(slope);
    const __m512i half = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1), zero = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512i d = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(dy + i)));
        const __m512i s = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(sign + i)));
        // dy·slope in float32, then rounded to nearest even: bits + 0x7FFF + (bit 16), top half.
        const __m512i scaled = _mm512_castps_si512(_mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(d, 16)), a));
        const __m512i rounded = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(scaled, half), _mm512_and_si512(_mm512_srli_epi32(scaled, 16), one)), 16);
        const __m512i out = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(s, zero), rounded, d);
        _mm256_storeu_si256((__m256i *)(dx + i), _mm512_cvtepi32_epi16(out));
    }
    bf16_leaky_relu_gradient_reference(dy + i, sign + i, dx + i, count - i, slope);
}

__attribute__((target("avx512f"))) static void widen_avx512(const uint16_t *src, float *dst, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < count; i++) dst[i] = widen1(src[i]);
}
#else
static int has_avx512(void) { return 0; }
static void leaky_relu_gradient_avx512(const uint16_t *dy, const uint16_t *sign, uint16_t *dx, size_t count, float slope) {
    bf16_leaky_relu_gradient_reference(dy, sign, dx, count, slope);
}
static void widen_avx512(const uint16_t *src, float *dst, size_t count) { for (size_t i = 0; i < count; i++) dst[i] = widen1(src[i]); }
#endif

void bf16_leaky_relu_gradient(const uint16_t *dy, const uint16_t *sign, uint16_t *dx, size_t count, float slope) {
    if (has_avx512()) leaky_relu_gradient_avx512(dy, sign, dx, count, slope);   // the vector kernel, where the CPU has it
    else bf16_leaky_relu_gradient_reference(dy, sign, dx, count, slope);         // else the plain loop
}

void bf16_widen(const uint16_t *src, float *dst, size_t count) {
    if (has_avx512()) { widen_avx512(src, dst, count); return; }
    for (size_t i = 0; i < count; i++) dst[i] = widen1(src[i]);
}
