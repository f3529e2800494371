// Direct convolutions with few output channels: the layers where a GEMM is a poor fit because one of its
// dimensions would be the 3 colour channels — the image gradient of the discriminator's first convolution and
// the generator's last transposed convolution (phase by phase).
//
// The input is in oneDNN's channel-blocked layout ([channels/B][height][width][B], B = 8 or 16), so 8 channels of
// one pixel are one vector: each output value is a dot product over (channel block, tap) of such vectors. Plain C so that
// the vector kernel can ask for AVX2 and FMA per function and be picked at run time (Swift code builds for the
// baseline x86-64 CPU); elsewhere the reference loop runs.
#ifndef NARROW_CONVOLUTION_H
#define NARROW_CONVOLUTION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// For o < outs, i < out_height, j < out_width:
///   out[o·out_plane + i·out_row + j·out_column] =
///     Σ_{cb < blocks, a < kernel, b < kernel, l < block} in[cb][i + offset_y + a][j + offset_x + b][l] · W(cb, a, b, o, l)
/// a stride-1 correlation of one image in[blocks][height][width][block] that reads zeros outside it, where
/// W(cb, a, b, o, l) = weight[cb][a][b][l / 8][o][l % 8] (8 weights of one output channel are one vector).
/// The vector kernel covers outs ≤ 3 and block 8 or 16.
void narrow_convolution(const float *in, int blocks, int block, int height, int width,
                        const float *weight, int outs, int kernel, int offset_y, int offset_x,
                        float *out, int out_height, int out_width,
                        ptrdiff_t out_plane, ptrdiff_t out_row, ptrdiff_t out_column);

/// The same by plain loops (the reference the tests compare the vector kernel with).
void narrow_convolution_reference(const float *in, int blocks, int block, int height, int width,
                                  const float *weight, int outs, int kernel, int offset_y, int offset_x,
                                  float *out, int out_height, int out_width,
                                  ptrdiff_t out_plane, ptrdiff_t out_row, ptrdiff_t out_column);

/// One image [channels][height][width] → [channels/8][height + 2·pad][width + 2·pad][8] (channels a multiple
/// of 8) with a border of `pad` zero pixels: an image whose taps all fall inside it takes the fastest path.
void narrow_convolution_block_channels(const float *in, int channels, int height, int width, int pad, float *out);

/// 1 when `narrow_convolution` runs its AVX2/FMA kernel on this CPU, else 0.
int narrow_convolution_vectorized(void);

#ifdef __cplusplus
}
#endif
#endif
