// Matrix transposes for the layout changes between NCHW tensors and the channels-last images the
// convolutions work on. An 8×8 block transpose in AVX2 registers where the CPU has it (chosen at run time);
// the plain loop elsewhere, and as the reference the tests compare against.
#ifndef CIFAR_GAN_TRANSPOSE_H
#define CIFAR_GAN_TRANSPOSE_H

#include <stddef.h>

/// dst[j·rows + i] = src[i·cols + j] (+ bias[j] when bias is not NULL), for i < rows, j < cols.
void transpose_floats(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols, const float *bias);

/// The same by plain loops.
void transpose_floats_reference(const float *src, float *dst, ptrdiff_t rows, ptrdiff_t cols, const float *bias);

#endif
