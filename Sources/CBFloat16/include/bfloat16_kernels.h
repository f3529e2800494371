// The passes over bfloat16 activations that run outside oneDNN (see GANCore's `BFloat16`): plain C so that the
// vector kernels can ask for AVX-512 per function and be picked at run time (Swift code builds for the baseline
// x86-64 CPU, whose SSE2 has no cheap 16 → 32-bit widening); elsewhere the scalar loops run. bfloat16 only runs
// where the CPU has AVX512-BF16, so the vector kernels cover every machine that uses them.
#ifndef BFLOAT16_KERNELS_H
#define BFLOAT16_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// dx[i] = sign[i] > 0 ? dy[i] : bf16(dy[i] · slope) over `count` bfloat16 values (bit patterns), rounding to nearest
/// even; `dx` may be `dy` or `sign`.
void bf16_leaky_relu_gradient(const uint16_t *dy, const uint16_t *sign, uint16_t *dx, size_t count, float slope);

/// The same by a plain loop (the reference the tests compare the vector kernel with).
void bf16_leaky_relu_gradient_reference(const uint16_t *dy, const uint16_t *sign, uint16_t *dx, size_t count, float slope);

/// dst[i] = the float32 value of src[i].
void bf16_widen(const uint16_t *src, float *dst, size_t count);

#ifdef __cplusplus
}
#endif
#endif
