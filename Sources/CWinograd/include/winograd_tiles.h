// The tile transforms of Winograd F(2×2, 2×2) (GANCore's `Winograd.swift` explains the maps): the passes between the
// GEMMs of the transposed convolutions' Winograd path, in AVX-512 (16 channels per instruction, then 8) or AVX2 (8),
// chosen at run time, and one channel at a time where the CPU has neither. GANCore's Swift is built for baseline
// x86-64, where the same loops ran on 4-wide SSE registers at about half this speed (docs/performance.md, session 15).
// Each function has a `_reference` twin of plain loops that the tests compare against (the same bits).
//
// A plane is an image of channel vectors: pixel (r, c) at base + r·row_step + c·column_step, present for
// 0 ≤ r < rows, 0 ≤ c < columns, zero elsewhere (read from `zeros`, which holds `channels` zeros). Channels come in
// multiples of 8. Tile t's ξ-th value (ξ < 9) for channel c is at out[ξ·xi_stride + t·tile_stride + c], tiles
// numbered from first_tile, row-major over tiles_y × tiles_x.
#ifndef CIFAR_GAN_WINOGRAD_TILES_H
#define CIFAR_GAN_WINOGRAD_TILES_H

#include <stddef.h>

typedef struct {
    float *base;
    ptrdiff_t row_step, column_step, rows, columns;
} winograd_plane;

/// Input tiles: tile (ty, tx) reads the 3×3 pixels from (origin_row + 2·ty, origin_column + 2·tx) and writes Bᵀ·d·B.
void winograd_f2_input_tiles(winograd_plane plane, ptrdiff_t channels, ptrdiff_t origin_row, ptrdiff_t origin_column,
                             ptrdiff_t tiles_y, ptrdiff_t tiles_x, const float *zeros, float *out, ptrdiff_t first_tile,
                             ptrdiff_t tile_stride, ptrdiff_t xi_stride);

/// Output tiles: tile (ty, tx)'s 2×2 values Aᵀ·m·A (m read like `out` above), + bias[c] when bias is not NULL, then
/// LeakyReLU(slope) when has_slope, written to the pixels (2·ty + a, 2·tx + b) of the plane that exist.
void winograd_f2_output_tiles(const float *m, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x, ptrdiff_t first_tile,
                              ptrdiff_t tile_stride, ptrdiff_t xi_stride, const float *bias, int has_slope, float slope,
                              winograd_plane plane);

/// Output-gradient tiles: tile (ty, tx)'s 2×2 pixels from (2·ty, 2·tx) (zero where the plane ends), expanded to A·dy·Aᵀ.
void winograd_f2_gradient_tiles(winograd_plane plane, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x,
                                const float *zeros, float *out, ptrdiff_t first_tile, ptrdiff_t tile_stride,
                                ptrdiff_t xi_stride);

/// For tests: use at most this level of kernels (2 AVX-512, 1 AVX2, 0 or less the plain loops; 2 by default) and
/// return the level the functions above now use.
int winograd_tiles_cap_isa(int level_cap);

/// The same three by plain loops, one channel at a time.
void winograd_f2_input_tiles_reference(winograd_plane plane, ptrdiff_t channels, ptrdiff_t origin_row, ptrdiff_t origin_column,
                                       ptrdiff_t tiles_y, ptrdiff_t tiles_x, const float *zeros, float *out,
                                       ptrdiff_t first_tile, ptrdiff_t tile_stride, ptrdiff_t xi_stride);
void winograd_f2_output_tiles_reference(const float *m, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x,
                                        ptrdiff_t first_tile, ptrdiff_t tile_stride, ptrdiff_t xi_stride, const float *bias,
                                        int has_slope, float slope, winograd_plane plane);
void winograd_f2_gradient_tiles_reference(winograd_plane plane, ptrdiff_t channels, ptrdiff_t tiles_y, ptrdiff_t tiles_x,
                                          const float *zeros, float *out, ptrdiff_t first_tile, ptrdiff_t tile_stride,
                                          ptrdiff_t xi_stride);

#endif
