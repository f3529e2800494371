// A small C interface to oneDNN's convolution primitives for GANCore: PyTorch layouts in and out
// (NCHW activations, [out, in, k, k] weights), oneDNN's own blocked layouts inside.
//
// oneDNN 2.x is loaded at run time (dlopen of libdnnl.so.2), so building needs only its headers and running
// needs nothing: without them (or with oneDNN 3's, whose API differs) every call reports "unavailable" and
// GANCore keeps its BLAS kernels.
#ifndef ONEDNN_CONVOLUTION_H
#define ONEDNN_CONVOLUTION_H

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when oneDNN could be loaded (first call loads it), else 0. `threads` sets OpenMP's thread count
/// when the environment does not (OMP_NUM_THREADS). `shared_team`: whether GANCore's own loops will run on
/// OpenMP's team too (`onednn_parallel_for`); if not, its threads are told to sleep between regions
/// (OMP_WAIT_POLICY=passive, unless the environment says otherwise), since other threads need the cores then.
int onednn_available(int threads, int shared_team);

/// Why the last `onednn_available` returned 0, or "" — for diagnostics.
const char *onednn_unavailable_reason(void);

/// One convolution shape with its primitives and scratch memory, created once and reused.
typedef struct onednn_convolution onednn_convolution;

/// A 2-d convolution of x [batch, in, height, width] with a [out, in, kernel, kernel] weight and a bias,
/// stride and symmetric zero padding; with `leaky_relu` nonzero the forward output is LeakyReLU(y) with
/// slope `negative_slope` (fused into the convolution's output pass). NULL when oneDNN is unavailable or
/// refuses the shape.
///
/// `input_block` / `output_block` give the layout of x (and dx) / y (and dy) in the caller's memory: 0 for NCHW,
/// 8 or 16 for oneDNN's channel-blocked nChw8c / nChw16c, in which consecutive convolutions can pass
/// activations without converting them (see `onednn_preferred_channel_block`).
onednn_convolution *onednn_convolution_create(int batch, int in_channels, int height, int width,
                                              int out_channels, int kernel, int stride, int padding,
                                              int leaky_relu, float negative_slope,
                                              int input_block, int output_block);

/// The same for a kh×kw kernel with padding (ph, pw), as inference only when `training` is 0 (no backward
/// primitives: the two backward calls must not be used). `options` (bits below): ONEDNN_TRAINING makes the backward
/// primitives too; with ONEDNN_BF16 each pass multiplies bfloat16 copies of its two inputs and accumulates and
/// writes float32 (the caller's buffers stay float32; NULL where this oneDNN has no bfloat16 kernel for the CPU);
/// ONEDNN_WINOGRAD asks for Winograd F(4×4, 3×3) on 3×3 stride-1 kernels, which oneDNN has for float32 on AVX-512
/// (elsewhere the direct algorithm runs: `onednn_convolution_is_winograd` says which); its LeakyReLU, if any, then
/// runs as a second pass over y, since oneDNN's Winograd takes no post-op.
///
/// ONEDNN_BF16_INPUT_HANDOFF / ONEDNN_BF16_OUTPUT_HANDOFF (with ONEDNN_BF16 and a blocked `input_block` /
/// `output_block`): the caller's x and dx / y and dy are bfloat16 in that blocked layout (2 bytes a value, behind
/// the same `float *` pointers), so that two bfloat16 convolutions hand an activation and its gradient to each
/// other without converting them: the producer writes y in bfloat16, the consumer writes dx in bfloat16.
enum { ONEDNN_TRAINING = 1, ONEDNN_BF16 = 2, ONEDNN_WINOGRAD = 4, ONEDNN_BF16_INPUT_HANDOFF = 8, ONEDNN_BF16_OUTPUT_HANDOFF = 16 };
onednn_convolution *onednn_convolution_create_general(int batch, int in_channels, int height, int width,
                                                      int out_channels, int kernel_height, int kernel_width, int stride,
                                                      int padding_height, int padding_width,
                                                      int leaky_relu, float negative_slope,
                                                      int input_block, int output_block, unsigned options);
/// 1 when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX), 0 otherwise (or without oneDNN).
int onednn_native_bf16(void);

/// Runs body(context, w) for w < workers on oneDNN's own OpenMP thread team (libgomp's GOMP_parallel), so that
/// GANCore's parallel loops and oneDNN's primitives share one set of threads. 0 (and nothing run) where oneDNN
/// or its libgomp is not loaded.
typedef void (*onednn_parallel_body)(void *context, int worker);
int onednn_parallel_for(int workers, onednn_parallel_body body, void *context);
/// The channel block (8 or 16) of the layout oneDNN picks for activations on this CPU, or 0 if it picks none.
int onednn_preferred_channel_block(void);
void onednn_convolution_destroy(onednn_convolution *conv);

/// Output height and width.
int onednn_convolution_output_height(const onednn_convolution *conv);
int onednn_convolution_output_width(const onednn_convolution *conv);
/// 1 when the primitives run Winograd F(4×4, 3×3), 0 for the direct algorithm.
int onednn_convolution_is_winograd(const onednn_convolution *conv);

// Each returns 0 on success, else oneDNN's status code.

/// y = conv(x, weight) + bias (bias may be NULL).
int onednn_convolution_forward(onednn_convolution *conv, const float *x, const float *weight,
                               const float *bias, float *y);
/// dx = conv_transpose(dy, weight): overwrites dx.
int onednn_convolution_backward_data(onednn_convolution *conv, const float *dy, const float *weight, float *dx);
/// weight_grad += dW, bias_grad += db (bias_grad may be NULL): accumulates, like PyTorch's .grad.
int onednn_convolution_backward_weights(onednn_convolution *conv, const float *x, const float *dy,
                                        float *weight_grad, float *bias_grad);

#ifdef __cplusplus
}
#endif
#endif
