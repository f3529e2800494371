import Foundation

/// A transposed convolution on oneDNN, for bfloat16 (`Precision.bf16`): oneDNN's kernels for the *mirror*
/// convolution, the ordinary convolution from this layer's output shape back to its input shape with the same
/// weight tensor ([in, out, k, k] read as that convolution's [out', in', k, k]):
///
///     forward  y  = mirror.backwardData(dy: x)        (+ bias, and a folded batch norm in eval mode)
///     dx          = mirror.forward(x: dy)             (no bias)
///     dW         += mirror.backwardWeights(x: dy, dy: x)
///     db         += Σ dy                              (here: the mirror's bias is the other side's)
///
/// Exact for outputPadding 0, where the mirror's output size is this layer's input size.
extension ConvTranspose2d {
    /// Whether the mirror convolution reproduces this layer for an input of h×w (outputPadding 0, and the mirror's
    /// output size is the input size), on a machine with oneDNN.
    func hasOneDNNMirror(inputHeight h: Int, inputWidth w: Int) -> Bool {
        guard ConvolutionKernels.oneDNNAvailable, outputPadding == 0 else { return false }
        let (oh, ow) = outputSize(h, w)
        return (oh + 2 * padding - kernelSize) % stride == 0 && (ow + 2 * padding - kernelSize) % stride == 0
    }

    /// The mirror convolution's primitives for an input x [N, in, H, W], made when the shape or precision changes.
    func mirrorPlan(for x: Tensor) -> OneDNNConvolution {
        let (oh, ow) = outputSize(x.shape[2], x.shape[3])
        let shape = [x.shape[0], outChannels, oh, ow]
        if let plan = oneDNNMirror, plan.shape == shape, plan.bf16 == (KernelSettings.precision == .bf16) { return plan }
        guard let plan = OneDNNConvolution(inputShape: shape, outChannels: inChannels, kernel: kernelSize, stride: stride,
                                           padding: padding, leakyReLUSlope: nil) else {
            // Precision.resolve allows bfloat16 only where oneDNN made such primitives when it was checked.
            preconditionFailure("oneDNN refused the mirror of ConvTranspose2d \(inChannels)→\(outChannels) for input \(x.shape)")
        }
        oneDNNMirror = plan
        return plan
    }

    // x [N, Cin, H, W] → y [N, Cout, OH, OW]; with `bn` (eval) y = LeakyReLU(BN(conv(x) + b)) in one output pass
    func forwardOneDNN(_ x: Tensor, _ y: Tensor, foldingBatchNorm bn: BatchNorm?) {
        mirrorPlan(for: x).backwardData(dy: x.data, weight: weight.value.data, dx: y.data)
        let slope = foldAffine(bn), scale = foldedScale.data, shift = foldedBias.data
        let O = outChannels, plane = y.shape[2] * y.shape[3], yp = y.data
        Parallel.forEachChunk(count: y.shape[0] * O) { range, _ in
            for row in range {
                let o = row % O, p = yp + row * plane, a = scale[o], b = shift[o]
                for i in 0..<plane { p[i] = p[i] * a + b }
                if let slope { for i in 0..<plane where p[i] < 0 { p[i] *= slope } }
            }
        }
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW += …; db += Σ dy
    func backwardOneDNN(_ x: Tensor, _ dy: Tensor, _ dx: Tensor?, weightGradients: Bool) {
        let plan = mirrorPlan(for: x)
        if let dx { plan.forward(x: dy.data, weight: weight.value.data, bias: nil, y: dx.data) }
        guard weightGradients else { return }
        plan.backwardWeights(x: dy.data, dy: x.data, weightGrad: weight.grad.data, biasGrad: nil)
        guard let bias else { return }
        let O = outChannels, plane = dy.shape[2] * dy.shape[3], N = dy.shape[0], dyp = dy.data, db = bias.grad.data
        Parallel.forEachChunk(count: O) { range, _ in
            for o in range {
                var acc: Float = 0
                for n in 0..<N { let p = dyp + (n * O + o) * plane; for i in 0..<plane { acc += p[i] } }
                db[o] += acc
            }
        }
    }
}
