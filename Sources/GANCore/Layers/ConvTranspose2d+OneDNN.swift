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

    /// Whether a forward pass (in training or eval mode) on an input of this size runs on oneDNN (its mirror), for a
    /// `BlockedHandoff`.
    func willUseOneDNN(inputHeight h: Int, inputWidth w: Int, training: Bool) -> Bool {
        kernelPath(inputHeight: h, inputWidth: w, training: training) == .oneDNN
    }

    /// The mirror convolution's primitives for an input x [N, in, H, W] with x in channel block `inputBlock` and y in
    /// `outputBlock` (0: NCHW) — the mirror's y and x ports — made when the shape, layouts or precision change.
    func mirrorPlan(for x: Tensor, inputBlock: Int, outputBlock: Int) -> OneDNNConvolution {
        let (oh, ow) = outputSize(x.shape[2], x.shape[3])
        let shape = [x.shape[0], outChannels, oh, ow]
        if let plan = oneDNNMirror, plan.shape == shape, plan.bf16 == (KernelSettings.precision == .bf16),
           plan.inputBlock == outputBlock, plan.outputBlock == inputBlock { return plan }
        guard let plan = OneDNNConvolution(inputShape: shape, outChannels: inChannels, kernel: kernelSize, stride: stride,
                                           padding: padding, leakyReLUSlope: nil,
                                           inputBlock: outputBlock, outputBlock: inputBlock) else {
            // Precision.resolve allows bfloat16 only where oneDNN made such primitives when it was checked.
            preconditionFailure("oneDNN refused the mirror of ConvTranspose2d \(inChannels)→\(outChannels) for input \(x.shape)")
        }
        oneDNNMirror = plan
        return plan
    }

    // x [N, Cin, H, W] → y [N, Cout, OH, OW]; with `bn` (eval) y = LeakyReLU(BN(conv(x) + b)) in one output pass. x
    // and y may be in oneDNN's blocked layout (`inputHandoff`, `outputHandoff`): the bias pass walks either.
    func forwardOneDNN(_ x: Tensor, _ y: Tensor, training: Bool, foldingBatchNorm bn: BatchNorm?) {
        let inputBlock = inputHandoff?.activeBlock ?? 0
        // With a folded batch norm (eval: this pass applies it, the batch norm passes y on) y goes out in NCHW, the
        // path the fold was measured on; the hand-over is for the batch norms that run themselves.
        let outputBlock = bn != nil ? 0
            : outputHandoff?.blockFor(channels: outChannels, height: y.shape[2], width: y.shape[3], training: training) ?? 0
        outputHandoff?.activeBlock = outputBlock
        mirrorPlan(for: x, inputBlock: inputBlock, outputBlock: outputBlock).backwardData(dy: x.data, weight: weight.value.data, dx: y.data)
        lastBlocks = (inputBlock, outputBlock)
        let slope = foldAffine(bn), scale = foldedScale.data, shift = foldedBias.data
        let N = y.shape[0], O = outChannels, plane = y.shape[2] * y.shape[3], yp = y.data
        if outputBlock > 0 {   // 8 channels of one position at a time, every B-th vector of a sample's block
            NormalizationPasses.forEachGroup(N: N, C: O, S: plane, block: outputBlock) { _, c, offset in
                let a = load8(scale, c), b = load8(shift, c), p = yp + offset, B = outputBlock
                for s in 0..<plane {
                    let v = load8(p, s &* B) * a + b
                    store8(slope.map { leakyReLU(v, slope: $0) } ?? v, p, s &* B)
                }
            }
            return
        }
        Parallel.forEachChunk(count: N * O) { range, _ in
            for row in range {
                let o = row % O, p = yp + row * plane, a = scale[o], b = shift[o]
                for i in 0..<plane { p[i] = p[i] * a + b }
                if let slope { for i in 0..<plane where p[i] < 0 { p[i] *= slope } }
            }
        }
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW += …; db += Σ dy (dy and dx in the forward pass's layouts)
    func backwardOneDNN(_ x: Tensor, _ dy: Tensor, _ dx: Tensor?, weightGradients: Bool) {
        let plan = mirrorPlan(for: x, inputBlock: lastBlocks.input, outputBlock: lastBlocks.output)
        if let dx { plan.forward(x: dy.data, weight: weight.value.data, bias: nil, y: dx.data) }
        guard weightGradients else { return }
        plan.backwardWeights(x: dy.data, dy: x.data, weightGrad: weight.grad.data, biasGrad: nil)
        guard let bias else { return }
        // Σ dy per (sample, channel), then over the samples in order (a fixed order, whatever the workers).
        let N = dy.shape[0], O = outChannels, plane = dy.shape[2] * dy.shape[3], dyp = dy.data, B = lastBlocks.output
        let sums = Tensor.reuse(biasSums, shape: [N * O]), sp = sums.data
        biasSums = sums
        if B > 0 {
            NormalizationPasses.forEachGroup(N: N, C: O, S: plane, block: B) { n, c, offset in
                var acc = SIMD8<Float>.zero
                for s in 0..<plane { acc += load8(dyp + offset, s &* B) }
                store8(acc, sp, n &* O &+ c)
            }
        } else {
            Parallel.forEachChunk(count: N * O) { range, _ in
                for row in range { sp[row] = vectorSum(dyp + row * plane, plane) }
            }
        }
        let db = bias.grad.data
        for o in 0..<O { var acc: Float = 0; for n in 0..<N { acc += sp[n * O + o] }; db[o] += acc }
    }
}
