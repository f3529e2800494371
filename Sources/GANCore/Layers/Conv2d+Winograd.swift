import Foundation

/// A 4×4, stride-2 convolution (D's downsampling layers in `--preset cnn`) by Winograd F(2×2, 2×2) tiles, run as
/// its *mirror*: the transposed convolution from this layer's output shape back to its input shape, on the same
/// weight tensor ([out, in, k, k] read as the transposed layer's [in', out', k, k]), whose three passes already run
/// on Winograd tiles (`ConvTranspose2d+Winograd.swift`):
///
///     forward  y  = mirror.dx(dy: x)            + bias, then the fused LeakyReLU, in the same output pass
///     dx          = mirror.forward(x: dy)       (then the input LeakyReLU's gradient rule, when fused)
///     dW         += mirror.dW(x: dy, dy: x)     (the shared weight's gradient)
///     db         += Σ dy
///
/// The tiles' GEMMs do 9/16 of the direct products. Measured at batch 64 (docs/performance.md): in place of the
/// patch GEMM (`--preset cnn`'s D.10, 128→128 on 8×8) 15% faster per pass in the model; in place of oneDNN (D.6,
/// 64→64 on 16×16) 25–35% faster alone but slower in the model, where oneDNN's pass hands its activations to its
/// neighbours in its blocked layout — so the tiles replace the patch GEMM only, never oneDNN.
extension Conv2d {
    /// Whether a forward pass on an input of h×w runs on the mirror's Winograd tiles: float32 (in bfloat16 every
    /// convolution runs on oneDNN), a layer that would otherwise run on patch GEMMs, ≥ 64 input channels, and a
    /// mirror that reproduces this layer — kernel 2·stride, channels in multiples of 8, (h + 2·padding − k)
    /// divisible by the stride.
    func usesWinogradMirror(inputHeight h: Int, inputWidth w: Int) -> Bool {
        let (oh, ow) = outputSize(h, w)
        guard KernelSettings.winograd, KernelSettings.precision == .fp32, !ConvolutionKernels.useOneDNN(outputPositions: oh * ow),
              kernelSize == 2 * stride, inChannels >= 64,
              (h + 2 * padding - kernelSize) % stride == 0, (w + 2 * padding - kernelSize) % stride == 0 else { return false }
        return winogradMirror.usesWinograd(outputHeight: h, outputWidth: w)
    }

    // x [N, Cin, H, W] → y [N, Cout, OH, OW]: the mirror's dx of dy = x, with bias and LeakyReLU in its output tiles.
    func forwardWinogradMirror(_ x: Tensor, _ y: Tensor) {
        winogradMirror.backwardWinograd(y, x, y, weightGradients: false, dxBias: bias?.value.data, dxSlope: fusedLeakyReLUSlope)
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W] (nil: none); dW += mirror's dW with x and dy swapped; db += Σ dy.
    // With a fused input LeakyReLU, dx overwrites x (as `backward` does on every path): the weight gradient, which
    // reads x, comes first, and dx is made in `scratch` before the gradient rule writes it over x.
    func backwardWinogradMirror(_ x: Tensor, _ dy: Tensor, _ dx: Tensor?, weightGradients: Bool, scratch: () -> Tensor) {
        let mirror = winogradMirror
        if weightGradients {
            mirror.backwardWinograd(dy, x, nil, weightGradients: true)
            if let db = bias?.grad.data {
                let N = dy.shape[0], O = outChannels, P = dy.shape[2] * dy.shape[3], dyp = dy.data
                for n in 0..<N { for o in 0..<O { db[o] += vectorSum(dyp + (n * O + o) * P, P) } }
            }
        }
        guard let dx else { return }
        guard let slope = inputLeakyReLUSlope else { mirror.forwardWinograd(dy, dx, foldingBatchNorm: nil); return }
        let plain = scratch()
        mirror.forwardWinograd(dy, plain, foldingBatchNorm: nil)
        leakyReLUGradient(dy: plain.data, sign: x.data, into: dx.data, count: x.count, slope: slope)
    }
}
