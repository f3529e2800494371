// See include/winograd_tiles.h. Each transform is written once, as a macro over the value type — a float for the
// reference, 8 or 16 floats (GCC/Clang vector extensions, unaligned) for the AVX2 and AVX-512 kernels, which take
// 16 channels at a time and 8 for the rest of a row. The operations and their order are the same in all three
// (and in the Swift loops of `Winograd.swift`), so all produce the same bits.
#include "winograd_tiles.h"

#define LOAD(T, p) (*(const T *)(p))
#define STORE(T, p, v) (*(T *)(p) = (v))

static inline const float *pixel(const winograd_plane *p, ptrdiff_t r, ptrdiff_t c, const float *zeros) {
    return r >= 0 && r < p->rows && c >= 0 && c < p->columns ? p->base + r * p->row_step + c * p->column_step : zeros;
}

// Bᵀ d over rows, then over columns, for channels c … c + lanes of one tile (LK unused).
#define INPUT_TILE(T, LK) do { \
    const T d10 = LOAD(T, p10 + c), d11 = LOAD(T, p11 + c), d12 = LOAD(T, p12 + c); \
    const T e00 = LOAD(T, p00 + c) - d10, e01 = LOAD(T, p01 + c) - d11, e02 = LOAD(T, p02 + c) - d12; \
    const T e20 = LOAD(T, p20 + c) - d10, e21 = LOAD(T, p21 + c) - d11, e22 = LOAD(T, p22 + c) - d12; \
    float *q = o + c; \
    STORE(T, q, e00 - e01); STORE(T, q + xs, e01); STORE(T, q + 2 * xs, e02 - e01); \
    STORE(T, q + 3 * xs, d10 - d11); STORE(T, q + 4 * xs, d11); STORE(T, q + 5 * xs, d12 - d11); \
    STORE(T, q + 6 * xs, e20 - e21); STORE(T, q + 7 * xs, e21); STORE(T, q + 8 * xs, e22 - e21); \
} while (0)

#define INPUT_TILES(NAME, ATTRIBUTES, WIDE, LANES, T, LK) \
ATTRIBUTES void NAME(const winograd_plane *pl, ptrdiff_t C, ptrdiff_t r0, ptrdiff_t q0, ptrdiff_t tiles_y, ptrdiff_t tiles_x, \
                     const float *zeros, float *out, ptrdiff_t first, ptrdiff_t ts, ptrdiff_t xs) { \
    for (ptrdiff_t ty = 0; ty < tiles_y; ty++) { \
        const ptrdiff_t r = r0 + 2 * ty; \
        for (ptrdiff_t tx = 0; tx < tiles_x; tx++) { \
            const ptrdiff_t k = q0 + 2 * tx; \
            const float *p00 = pixel(pl, r, k, zeros), *p01 = pixel(pl, r, k + 1, zeros), *p02 = pixel(pl, r, k + 2, zeros); \
            const float *p10 = pixel(pl, r + 1, k, zeros), *p11 = pixel(pl, r + 1, k + 1, zeros), *p12 = pixel(pl, r + 1, k + 2, zeros); \
            const float *p20 = pixel(pl, r + 2, k, zeros), *p21 = pixel(pl, r + 2, k + 1, zeros), *p22 = pixel(pl, r + 2, k + 2, zeros); \
            float *o = out + (first + ty * tiles_x + tx) * ts; \
            ptrdiff_t c = 0; \
            WIDE(INPUT_TILE) \
            for (; c < C; c += LANES) INPUT_TILE(T, LK); \
        } \
    } \
}

// Aᵀ m A, + bias, then LeakyReLU (v where v > 0, else v·slope).
#define OUTPUT_TILE(T, LK) do { \
    const float *s = t + c; \
    const T m0 = LOAD(T, s), m1 = LOAD(T, s + xs), m2 = LOAD(T, s + 2 * xs), m3 = LOAD(T, s + 3 * xs), m4 = LOAD(T, s + 4 * xs), \
            m5 = LOAD(T, s + 5 * xs), m6 = LOAD(T, s + 6 * xs), m7 = LOAD(T, s + 7 * xs), m8 = LOAD(T, s + 8 * xs); \
    const T r00 = m0 + m3, r01 = m1 + m4, r02 = m2 + m5, r10 = m3 + m6, r11 = m4 + m7, r12 = m5 + m8; \
    T y00 = r00 + r01, y01 = r01 + r02, y10 = r10 + r11, y11 = r11 + r12; \
    if (bias) { const T b = LOAD(T, bias + c); y00 += b; y01 += b; y10 += b; y11 += b; } \
    if (has_slope) { y00 = LK(T, y00); y01 = LK(T, y01); y10 = LK(T, y10); y11 = LK(T, y11); } \
    STORE(T, d0 + c, y00); \
    if (second_column) STORE(T, d0 + cs + c, y01); \
    if (second_row) { STORE(T, d0 + rs + c, y10); if (second_column) STORE(T, d0 + rs + cs + c, y11); } \
} while (0)

// On a float, the plain expression; on vectors a comparison gives a mask of lanes, and casts reinterpret bits.
#define LEAKY_SCALAR(T, y) ({ const T v_ = (y); v_ > 0 ? v_ : v_ * slope; })
#define LEAKY_VECTOR(T, y) ({ const T v_ = (y); __typeof__(v_ > 0) pos_ = v_ > 0; \
                              (T)(((__typeof__(pos_))v_ & pos_) | ((__typeof__(pos_))(v_ * slope) & ~pos_)); })

#define OUTPUT_TILES(NAME, ATTRIBUTES, WIDE, LANES, T, LK) \
ATTRIBUTES void NAME(const float *m, ptrdiff_t C, ptrdiff_t tiles_y, ptrdiff_t tiles_x, ptrdiff_t first, ptrdiff_t ts, \
                     ptrdiff_t xs, const float *bias, int has_slope, float slope, const winograd_plane *pl) { \
    const ptrdiff_t rs = pl->row_step, cs = pl->column_step; \
    for (ptrdiff_t ty = 0; ty < tiles_y; ty++) { \
        const ptrdiff_t r = 2 * ty; \
        const int second_row = r + 1 < pl->rows; \
        for (ptrdiff_t tx = 0; tx < tiles_x; tx++) { \
            const ptrdiff_t k = 2 * tx; \
            const int second_column = k + 1 < pl->columns; \
            const float *t = m + (first + ty * tiles_x + tx) * ts; \
            float *d0 = pl->base + r * rs + k * cs; \
            ptrdiff_t c = 0; \
            WIDE(OUTPUT_TILE) \
            for (; c < C; c += LANES) OUTPUT_TILE(T, LK); \
        } \
    } \
}

// G·g·Gᵀ of a 2×2 tile of dy (G = A for F(2×2, 2×2); LK unused).
#define GRADIENT_TILE(T, LK) do { \
    const T g00 = LOAD(T, p00 + c), g01 = LOAD(T, p01 + c), g10 = LOAD(T, p10 + c), g11 = LOAD(T, p11 + c); \
    const T h10 = g00 + g10, h11 = g01 + g11; \
    float *q = o + c; \
    STORE(T, q, g00); STORE(T, q + xs, g00 + g01); STORE(T, q + 2 * xs, g01); \
    STORE(T, q + 3 * xs, h10); STORE(T, q + 4 * xs, h10 + h11); STORE(T, q + 5 * xs, h11); \
    STORE(T, q + 6 * xs, g10); STORE(T, q + 7 * xs, g10 + g11); STORE(T, q + 8 * xs, g11); \
} while (0)

#define GRADIENT_TILES(NAME, ATTRIBUTES, WIDE, LANES, T, LK) \
ATTRIBUTES void NAME(const winograd_plane *pl, ptrdiff_t C, ptrdiff_t tiles_y, ptrdiff_t tiles_x, const float *zeros, \
                     float *out, ptrdiff_t first, ptrdiff_t ts, ptrdiff_t xs) { \
    for (ptrdiff_t ty = 0; ty < tiles_y; ty++) { \
        const ptrdiff_t r = 2 * ty; \
        for (ptrdiff_t tx = 0; tx < tiles_x; tx++) { \
            const ptrdiff_t k = 2 * tx; \
            const float *p00 = pixel(pl, r, k, zeros), *p01 = pixel(pl, r, k + 1, zeros); \
            const float *p10 = pixel(pl, r + 1, k, zeros), *p11 = pixel(pl, r + 1, k + 1, zeros); \
            float *o = out + (first + ty * tiles_x + tx) * ts; \
            ptrdiff_t c = 0; \
            WIDE(GRADIENT_TILE) \
            for (; c < C; c += LANES) GRADIENT_TILE(T, LK); \
        } \
    } \
}

#define NO_WIDE(BODY)
INPUT_TILES(input_tiles_reference, static, NO_WIDE, 1, float, LEAKY_SCALAR)
OUTPUT_TILES(output_tiles_reference, static, NO_WIDE, 1, float, LEAKY_SCALAR)
GRADIENT_TILES(gradient_tiles_reference, static, NO_WIDE, 1, float, LEAKY_SCALAR)

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define VECTOR_KERNELS 1

typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef float v16 __attribute__((vector_size(64), aligned(4)));

#define AVX512 __attribute__((target("avx512f"))) static
#define AVX2 __attribute__((target("avx2"))) static
#define WIDE16(BODY) for (; c + 16 <= C; c += 16) BODY(v16, LEAKY_VECTOR);

INPUT_TILES(input_tiles_avx512, AVX512, WIDE16, 8, v8, LEAKY_VECTOR)
INPUT_TILES(input_tiles_avx2, AVX2, NO_WIDE, 8, v8, LEAKY_VECTOR)
OUTPUT_TILES(output_tiles_avx512, AVX512, WIDE16, 8, v8, LEAKY_VECTOR)
OUTPUT_TILES(output_tiles_avx2, AVX2, NO_WIDE, 8, v8, LEAKY_VECTOR)
GRADIENT_TILES(gradient_tiles_avx512, AVX512, WIDE16, 8, v8, LEAKY_VECTOR)
GRADIENT_TILES(gradient_tiles_avx2, AVX2, NO_WIDE, 8, v8, LEAKY_VECTOR)

static int cap = 2;   // winograd_tiles_cap_isa

// 2 AVX-512 (F), 1 AVX2, -1 neither, 0 not yet known. Threads may race to fill it in; they all store the same value.
static int level(void) {
    static int known = 0;
    int l = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (l == 0) {
        l = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : -1;
        __atomic_store_n(&known, l, __ATOMIC_RELAXED);
    }
    const int c = __atomic_load_n(&cap, __ATOMIC_RELAXED);
    return l < c ? l : c;
}

int winograd_tiles_cap_isa(int level_cap) {
    __atomic_store_n(&cap, level_cap, __ATOMIC_RELAXED);
    return level();
}
#else
static int level(void) { return -1; }
int winograd_tiles_cap_isa(int level_cap) { return -1; }
#endif

void winograd_f2_input_tiles(winograd_plane plane, ptrdiff_t channels, ptrdiff_t origin_row, ptrdiff_t origin_column,
                             ptrdiff_t tiles_y, ptrdiff_t tiles_x, const float *zeros, float *out, ptrdiff_t first_tile,
                             ptrdiff_t tile_stride, ptrdiff_t xi_stride) {
#ifdef VECTOR_KERNELS
    switch (level()) {
    case 2: input_tiles_avx512(&plane, channels, origin_row, origin_column, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride); return;
    case 1: input_tiles_avx2(&plane, channels, origin_row, origin_column, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride); return;
    }
#endif
    input_tiles_reference(&plane, channels, origin_row, origin_column, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride);
}

void winograd_f2_output_tiles(const float *m, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x, ptrdiff_t first_tile,
                              ptrdiff_t tile_stride, ptrdiff_t xi_stride, const float *bias, int has_slope, float slope,
                              winograd_plane plane) {
#ifdef VECTOR_KERNELS
    switch (level()) {
    case 2: output_tiles_avx512(m, channels, tiles_y, tiles_x, first_tile, tile_stride, xi_stride, bias, has_slope, slope, &plane); return;
    case 1: output_tiles_avx2(m, channels, tiles_y, tiles_x, first_tile, tile_stride, xi_stride, bias, has_slope, slope, &plane); return;
    }
#endif
    output_tiles_reference(m, channels, tiles_y, tiles_x, first_tile, tile_stride, xi_stride, bias, has_slope, slope, &plane);
}

void winograd_f2_gradient_tiles(winograd_plane plane, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x,
                                const float *zeros, float *out, ptrdiff_t first_tile, ptrdiff_t tile_stride,
                                ptrdiff_t xi_stride) {
#ifdef VECTOR_KERNELS
    switch (level()) {
    case 2: gradient_tiles_avx512(&plane, channels, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride); return;
    case 1: gradient_tiles_avx2(&plane, channels, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride); return;
    }
#endif
    gradient_tiles_reference(&plane, channels, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride);
}

void winograd_f2_input_tiles_reference(winograd_plane plane, ptrdiff_t channels, ptrdiff_t origin_row, ptrdiff_t origin_column,
                                       ptrdiff_t tiles_y, ptrdiff_t tiles_x, const float *zeros, float *out,
                                       ptrdiff_t first_tile, ptrdiff_t tile_stride, ptrdiff_t xi_stride) {
    input_tiles_reference(&plane, channels, origin_row, origin_column, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride);
}

void winograd_f2_output_tiles_reference(const float *m, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x,
                                        ptrdiff_t first_tile, ptrdiff_t tile_stride, ptrdiff_t xi_stride, const float *bias,
                                        int has_slope, float slope, winograd_plane plane) {
    output_tiles_reference(m, channels, tiles_y, tiles_x, first_tile, tile_stride, xi_stride, bias, has_slope, slope, &plane);
}

void winograd_f2_gradient_tiles_reference(winograd_plane plane, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x,
                                          const float *zeros, float *out, ptrdiff_t first_tile, ptrdiff_t tile_stride,
                                          ptrdiff_t xi_stride) {
    gradient_tiles_reference(&plane, channels, tiles_y, tiles_x, zeros, out, first_tile, tile_stride, xi_stride);
}
