// See include/narrow_convolution.h.
#include "narrow_convolution.h"
#include <string.h>

void narrow_convolution_reference(const float *in, int blocks, int block, int height, int width,
                                  const float *weight, int outs, int kernel, int offset_y, int offset_x,
                                  float *out, int out_height, int out_width,
                                  ptrdiff_t out_plane, ptrdiff_t out_row, ptrdiff_t out_column) {
    for (int o = 0; o < outs; o++) {
        for (int i = 0; i < out_height; i++) {
            for (int j = 0; j < out_width; j++) {
                float sum = 0;
                for (int cb = 0; cb < blocks; cb++) {
                    for (int a = 0; a < kernel; a++) {
                        const int y = i + offset_y + a;
                        if (y < 0 || y >= height) continue;
                        for (int b = 0; b < kernel; b++) {
                            const int x = j + offset_x + b;
                            if (x < 0 || x >= width) continue;
                            const float *pixel = in + (((ptrdiff_t)cb * height + y) * width + x) * block;
                            const float *w = weight + (((ptrdiff_t)cb * kernel + a) * kernel + b) * outs * block;
                            // Weights of one tap: [block/8][outs][8], so that a vector kernel reads 8 at a time.
                            for (int l = 0; l < block; l++) sum += pixel[l] * w[(l / 8) * outs * 8 + o * 8 + l % 8];
                        }
                    }
                }
                out[o * out_plane + i * out_row + j * out_column] = sum;
            }
        }
    }
}

static void block_channels_plain(const float *in, int channels, int height, int width, int pad, float *out) {
    const int pitch = width + 2 * pad, rows = height + 2 * pad;
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < pitch; x++) {
                const int iy = y - pad, ix = x - pad, inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
                out[(((ptrdiff_t)(c / 8) * rows + y) * pitch + x) * 8 + c % 8] = inside ? in[((ptrdiff_t)c * height + iy) * width + ix] : 0;
            }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define VECTOR_KERNEL 1

int narrow_convolution_vectorized(void) {
    // Threads may race to fill it in; they all store the same value.
    static int supported = -1;
    int known = __atomic_load_n(&supported, __ATOMIC_RELAXED);
    if (known < 0) {
        known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&supported, known, __ATOMIC_RELAXED);
    }
    return known;
}

/// The four lane sums of a, b, c, d.
__attribute__((target("avx2,fma"))) static inline __m128 sum_lanes4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d), abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Four neighbouring output pixels of one row × `OUTS` output channels, with every tap column inside the image
// and the tap rows a_begin..<a_end (those inside it): per (block, tap) 4 input vectors and OUTS weight vectors
// feed 4·OUTS FMAs into accumulators that stay in registers (4·3 = 12 of AVX2's 16, plus 3 weights and 1 input).
#define DEFINE_TILE(OUTS, BLOCK)                                                                                          \
__attribute__((target("avx2,fma"))) static void tile4_##OUTS##_##BLOCK(                                                     \
        const float *in, int blocks, ptrdiff_t block_size, int width, const float *weight, int kernel,           \
        int y, int a_begin, int a_end, float *out, ptrdiff_t out_plane, ptrdiff_t out_column) {                   \
    const int block = BLOCK;                                                                                      \
    __m256 acc[OUTS][4];                                                                                           \
    for (int o = 0; o < OUTS; o++) for (int p = 0; p < 4; p++) acc[o][p] = _mm256_setzero_ps();                   \
    for (int cb = 0; cb < blocks; cb++) {                                                                         \
        for (int a = a_begin; a < a_end; a++) {                                                                   \
            const float *row = in + cb * block_size + (ptrdiff_t)(y + a) * width * block;                         \
            const float *w = weight + ((ptrdiff_t)cb * kernel + a) * kernel * OUTS * block;                       \
            for (int b = 0; b < kernel; b++) {                                                                    \
                for (int part = 0; part < block; part += 8, w += OUTS * 8) {                                      \
                    __m256 wo[OUTS];                                                                              \
                    for (int o = 0; o < OUTS; o++) wo[o] = _mm256_loadu_ps(w + o * 8);                            \
                    for (int p = 0; p < 4; p++) {                                                                 \
                        const __m256 value = _mm256_loadu_ps(row + (b + p) * block + part);                       \
                        for (int o = 0; o < OUTS; o++) acc[o][p] = _mm256_fmadd_ps(value, wo[o], acc[o][p]);      \
                    }                                                                                             \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }                                                                                                             \
    for (int o = 0; o < OUTS; o++) {                                                                              \
        float sums[4];                                                                                            \
        _mm_storeu_ps(sums, sum_lanes4(acc[o][0], acc[o][1], acc[o][2], acc[o][3]));                              \
        for (int p = 0; p < 4; p++) out[o * out_plane + p * out_column] = sums[p];                                \
    }                                                                                                             \
}
DEFINE_TILE(1, 8) DEFINE_TILE(2, 8) DEFINE_TILE(3, 8) DEFINE_TILE(1, 16) DEFINE_TILE(2, 16) DEFINE_TILE(3, 16)

typedef void (*tile_function)(const float *, int, ptrdiff_t, int, const float *, int, int, int, int, float *, ptrdiff_t, ptrdiff_t);
static const tile_function tiles[2][3] = {{tile4_1_8, tile4_2_8, tile4_3_8}, {tile4_1_16, tile4_2_16, tile4_3_16}};

/// One output pixel (all output channels, at most 3), skipping taps outside the image: the image's border.
__attribute__((target("avx2,fma"))) static void edge_pixel(
        const float *in, int blocks, int block, int height, int width, const float *weight, int outs, int kernel,
        int y0, int x0, float *out, ptrdiff_t out_plane) {
    __m256 acc[3] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const ptrdiff_t block_size = (ptrdiff_t)height * width * block;
    for (int cb = 0; cb < blocks; cb++) {
        for (int a = 0; a < kernel; a++) {
            const int y = y0 + a;
            if (y < 0 || y >= height) continue;
            for (int b = 0; b < kernel; b++) {
                const int x = x0 + b;
                if (x < 0 || x >= width) continue;
                const float *pixel = in + cb * block_size + ((ptrdiff_t)y * width + x) * block;
                const float *w = weight + (((ptrdiff_t)cb * kernel + a) * kernel + b) * outs * block;
                for (int part = 0; part < block; part += 8, w += outs * 8) {
                    const __m256 value = _mm256_loadu_ps(pixel + part);
                    for (int o = 0; o < outs; o++) acc[o] = _mm256_fmadd_ps(value, _mm256_loadu_ps(w + o * 8), acc[o]);
                }
            }
        }
    }
    float sums[4];
    _mm_storeu_ps(sums, sum_lanes4(acc[0], acc[1], acc[2], _mm256_setzero_ps()));
    for (int o = 0; o < outs; o++) out[o * out_plane] = sums[o];
}

/// 8×8 transposes: 8 channels × 8 positions of a row in, 8 positions × 8 channels out.
__attribute__((target("avx2,fma"))) static void block_channels_avx2(const float *in, int channels, int height, int width,
                                                                   int pad, float *out) {
    const int pitch = width + 2 * pad, rows = height + 2 * pad;
    const ptrdiff_t plane = (ptrdiff_t)height * width;
    for (int c0 = 0; c0 < channels; c0 += 8) {
        float *block = out + (ptrdiff_t)c0 * rows * pitch;
        // The zero border: whole rows above and below, `pad` pixels left and right of each row.
        memset(block, 0, sizeof(float) * 8 * pad * pitch);
        memset(block + (ptrdiff_t)(pad + height) * pitch * 8, 0, sizeof(float) * 8 * pad * pitch);
        for (int y = 0; y < height; y++) {
            float *to = block + ((ptrdiff_t)(y + pad) * pitch + pad) * 8;
            memset(to - pad * 8, 0, sizeof(float) * 8 * pad);
            memset(to + width * 8, 0, sizeof(float) * 8 * pad);
            const float *from = in + (ptrdiff_t)c0 * plane + (ptrdiff_t)y * width;
            int p0 = 0;
            for (; p0 + 8 <= width; p0 += 8) {
                __m256 r[8], t[8];
                for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(from + l * plane + p0);
                for (int l = 0; l < 8; l += 2) { t[l] = _mm256_unpacklo_ps(r[l], r[l + 1]); t[l + 1] = _mm256_unpackhi_ps(r[l], r[l + 1]); }
                for (int l = 0; l < 8; l += 4) {
                    r[l] = _mm256_shuffle_ps(t[l], t[l + 2], 0x44); r[l + 1] = _mm256_shuffle_ps(t[l], t[l + 2], 0xEE);
                    r[l + 2] = _mm256_shuffle_ps(t[l + 1], t[l + 3], 0x44); r[l + 3] = _mm256_shuffle_ps(t[l + 1], t[l + 3], 0xEE);
                }
                // r[q] holds channels 0–3 of positions q (low half) and q + 4 (high half); r[q + 4] channels 4–7.
                for (int q = 0; q < 4; q++) {
                    _mm256_storeu_ps(to + (ptrdiff_t)(p0 + q) * 8, _mm256_permute2f128_ps(r[q], r[q + 4], 0x20));
                    _mm256_storeu_ps(to + (ptrdiff_t)(p0 + q + 4) * 8, _mm256_permute2f128_ps(r[q], r[q + 4], 0x31));
                }
            }
            for (; p0 < width; p0++)
                for (int l = 0; l < 8; l++) to[(ptrdiff_t)p0 * 8 + l] = from[l * plane + p0];
        }
    }
}
#else
int narrow_convolution_vectorized(void) { return 0; }
#endif

void narrow_convolution_block_channels(const float *in, int channels, int height, int width, int pad, float *out) {
#ifdef VECTOR_KERNEL
    if (channels % 8 == 0 && narrow_convolution_vectorized()) { block_channels_avx2(in, channels, height, width, pad, out); return; }
#endif
    block_channels_plain(in, channels, height, width, pad, out);
}

void narrow_convolution(const float *in, int blocks, int block, int height, int width,
                        const float *weight, int outs, int kernel, int offset_y, int offset_x,
                        float *out, int out_height, int out_width,
                        ptrdiff_t out_plane, ptrdiff_t out_row, ptrdiff_t out_column) {
#ifdef VECTOR_KERNEL
    if (outs <= 3 && (block == 8 || block == 16) && narrow_convolution_vectorized()) {
        // Columns whose every tap lies inside the image: j_lo..<j_hi. They go four at a time; the last group of
        // a row may overlap the one before (recomputing identical values), so only the columns next to the left
        // and right edges take the one-pixel path.
        int j_lo = -offset_x, j_hi = width - kernel + 1 - offset_x;
        if (j_lo < 0) j_lo = 0;
        if (j_hi > out_width) j_hi = out_width;
        const ptrdiff_t block_size = (ptrdiff_t)height * width * block;
        const int tiled = j_hi - j_lo >= 4;
        const tile_function tile = tiles[block == 16][outs - 1];
        for (int i = 0; i < out_height; i++) {
            float *out_row_start = out + i * out_row;
            const int y = i + offset_y;
            int a_begin = -y, a_end = height - y;  // tap rows inside the image
            if (a_begin < 0) a_begin = 0;
            if (a_end > kernel) a_end = kernel;
            for (int j = 0; j < out_width; j++) {
                if (tiled && j == j_lo) {
                    for (int j0 = j_lo;; j0 += 4) {
                        if (j0 + 4 > j_hi) j0 = j_hi - 4;
                        const float *at = in + (ptrdiff_t)(j0 + offset_x) * block;  // column; the tile adds the row
                        float *to = out_row_start + j0 * out_column;
                        tile(at, blocks, block_size, width, weight, kernel, y, a_begin, a_end, to, out_plane, out_column);
                        if (j0 + 4 >= j_hi) break;
                    }
                    j = j_hi - 1;
                    continue;
                }
                edge_pixel(in, blocks, block, height, width, weight, outs, kernel, y, j + offset_x,
                           out_row_start + j * out_column, out_plane);
            }
        }
        return;
    }
#endif
    narrow_convolution_reference(in, blocks, block, height, width, weight, outs, kernel, offset_y, offset_x,
                                 out, out_height, out_width, out_plane, out_row, out_column);
}
