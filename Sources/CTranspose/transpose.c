// See include/transpose.h.
#include "transpose.h"

void transpose_floats_reference(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols, const float *bias) {
    for (ptrdiff_t j = 0; j < cols; j++) {
        const float b = bias ? bias[j] : 0;
        for (ptrdiff_t i = 0; i < rows; i++) dst[j * rows + i] = src[i * cols + j] + b;
    }
}

// Blocks of 32×32 keep a block's source lines in L1 while its columns are read.
#define TILE 32

static void transpose_block_plain(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols, const float *bias,
                                  ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1) {
    for (ptrdiff_t j = j0; j < j1; j++) {
        const float b = bias ? bias[j] : 0;
        for (ptrdiff_t i = i0; i < i1; i++) dst[j * rows + i] = src[i * cols + j] + b;
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

static int avx2_supported(void) {
    // Threads may race to fill it in; they all store the same value.
    static int supported = -1;
    int known = __atomic_load_n(&supported, __ATOMIC_RELAXED);
    if (known < 0) {
        known = __builtin_cpu_supports("avx2");
        __atomic_store_n(&supported, known, __ATOMIC_RELAXED);
    }
    return known;
}

/// Rows i..i+8, columns j..j+8 of src to rows j..j+8, columns i..i+8 of dst.
__attribute__((target("avx2"))) static inline void transpose8x8(const float *src, ptrdiff_t cols, float *dst, ptrdiff_t rows,
                                                                 const float *bias) {
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + cols), r2 = _mm256_loadu_ps(src + 2 * cols),
                 r3 = _mm256_loadu_ps(src + 3 * cols), r4 = _mm256_loadu_ps(src + 4 * cols), r5 = _mm256_loadu_ps(src + 5 * cols),
                 r6 = _mm256_loadu_ps(src + 6 * cols), r7 = _mm256_loadu_ps(src + 7 * cols);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
                 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
                 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 c[8] = {
        _mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
        _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
        _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
        _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31),
    };
    for (int k = 0; k < 8; k++) {
        if (bias) c[k] = _mm256_add_ps(c[k], _mm256_set1_ps(bias[k]));
        _mm256_storeu_ps(dst + k * rows, c[k]);
    }
}

__attribute__((target("avx2"))) static void transpose_avx2(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols,
                                                           const float *bias) {
    const ptrdiff_t rows8 = rows & ~(ptrdiff_t)7, cols8 = cols & ~(ptrdiff_t)7;
    for (ptrdiff_t j0 = 0; j0 < cols8; j0 += TILE) {
        const ptrdiff_t j1 = j0 + TILE < cols8 ? j0 + TILE : cols8;
        for (ptrdiff_t i0 = 0; i0 < rows8; i0 += TILE) {
            const ptrdiff_t i1 = i0 + TILE < rows8 ? i0 + TILE : rows8;
            for (ptrdiff_t j = j0; j < j1; j += 8)
                for (ptrdiff_t i = i0; i < i1; i += 8)
                    transpose8x8(src + i * cols + j, cols, dst + j * rows + i, rows, bias ? bias + j : 0);
        }
    }
    // The ragged edges: the last rows % 8 rows, then the last cols % 8 columns.
    transpose_block_plain(src, dst, rows, cols, bias, rows8, rows, 0, cols8);
    transpose_block_plain(src, dst, rows, cols, bias, 0, rows, cols8, cols);
}
#endif

void transpose_floats(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols, const float *bias) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (avx2_supported()) {
        transpose_avx2(src, dst, rows, cols, bias);
        return;
    }
#endif
    for (ptrdiff_t j0 = 0; j0 < cols; j0 += TILE)
        for (ptrdiff_t i0 = 0; i0 < rows; i0 += TILE)
            transpose_block_plain(src, dst, rows, cols, bias, i0, i0 + TILE < rows ? i0 + TILE : rows,
                                  j0, j0 + TILE < cols ? j0 + TILE : cols);
}
