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
/// neighbours in its blocked layout — so the tiles replace the patch GEMM only, never oneDNN. (With 64-sample
/// oneDNN calls oneDNN also beat the tiles on D.10 and D.12, so since session 13 the tiles run where oneDNN does
/// not: machines without it, and `CIFAR_GAN_CONVOLUTION=blas`.)
extension Conv2d {
    /// The two kinds of tiles a `Conv2d` can run on, named as `bench --profile` prints them.
    enum WinogradTiles: String {
        case mirror = "F(2×2, 2×2), as its mirror transposed convolution"
        case f2x2_3x3 = "F(2×2, 3×3)"
    }

    /// Which tiles a forward pass on an h×w input runs on, or nil for oneDNN or the patch GEMM.
    func winogradTiles(inputHeight h: Int, inputWidth w: Int) -> WinogradTiles? {
        if usesWinogradMirror(inputHeight: h, inputWidth: w) { return .mirror }
        if usesWinograd3x3(inputHeight: h, inputWidth: w) { return .f2x2_3x3 }
        return nil
    }

    /// Whether a forward pass on an input of h×w runs on the mirror's Winograd tiles: float32 (in bfloat16 every
    /// convolution runs on oneDNN), a layer that would otherwise run on patch GEMMs, ≥ 64 input channels, and a
    /// mirror that reproduces this layer — kernel 2·stride, channels in multiples of 8, (h + 2·padding − k)
    /// divisible by the stride.
    func usesWinogradMirror(inputHeight h: Int, inputWidth w: Int) -> Bool {
        guard KernelSettings.winograd, KernelSettings.precision == .fp32, !ConvolutionKernels.useOneDNN,
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
            addBiasGradient(dy)
        }
        if let dx { writeInputGradient(x, dx, scratch: scratch) { mirror.forwardWinograd(dy, $0, foldingBatchNorm: nil) } }
    }

    /// db += Σ dy over the batch and the positions (the tiles' passes leave the bias to this).
    func addBiasGradient(_ dy: Tensor) {
        guard let db = bias?.grad.data else { return }
        let N = dy.shape[0], O = outChannels, P = dy.shape[2] * dy.shape[3], dyp = dy.data
        for n in 0..<N { for o in 0..<O { db[o] += vectorSum(dyp + (n * O + o) * P, P) } }
    }

    /// dx by `compute`, which writes the image gradient into the tensor it is given: straight into dx, or — with a
    /// fused input LeakyReLU, whose dx overwrites x — into `scratch` first, then the LeakyReLU's rule over x.
    func writeInputGradient(_ x: Tensor, _ dx: Tensor, scratch: () -> Tensor, _ compute: (Tensor) -> Void) {
        guard let slope = inputLeakyReLUSlope else { compute(dx); return }
        let plain = scratch()
        compute(plain)
        leakyReLUGradient(dy: plain.data, sign: x.data, into: dx.data, count: x.count, slope: slope)
    }
}

/// A 3×3, stride-1, padding-1 convolution by Winograd F(2×2, 3×3) tiles (`Kernels/Winograd3x3.swift`: 16 products
/// per 2×2 output tile instead of 36), where it would otherwise run on the patch GEMM — D.12 of `--preset cnn`
/// (128→256 on 4×4) where oneDNN is missing or `KernelSettings.convolution` is `.blas`. Like the 4×4 layers' tiles
/// it does not replace oneDNN, whose blocked hand-over between D's layers the tiles' NCHW would end.
extension Conv2d {
    /// Float32, Winograd on, a layer that would run on the patch GEMM, 3×3 stride 1 padding 1, channels in
    /// multiples of 8.
    func usesWinograd3x3(inputHeight h: Int, inputWidth w: Int) -> Bool {
        KernelSettings.winograd && KernelSettings.precision == .fp32 && !ConvolutionKernels.useOneDNN
            && kernelSize == 3 && stride == 1 && padding == 1 && inChannels % 8 == 0 && outChannels % 8 == 0
    }

    /// Samples per group: about 128 tiles per GEMM, as for the transposed convolutions' tiles.
    private func winograd3x3Group(tilesPerImage: Int) -> Int { max(1, 128 / max(1, tilesPerImage)) }

    /// Runs `body(worker, first sample, samples, zeros, pixels)` for the groups of ≤ `group` samples of a batch of
    /// `N`, each worker its slice in order: `zeros` holds `zeroCount` zeros (workspace slot 2, which the caller may
    /// use beyond what it reads as zeros), `pixels` is scratch for a tile's 16 pointers.
    private func forEachTileGroup(count N: Int, group: Int, zeroCount: Int,
                                  _ body: (Int, Int, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<UnsafePointer<Float>>) -> Void) {
        let ws = workspace
        Parallel.forEachChunk(count: N) { range, worker in
            let zeros = ws.buffer(worker: worker, slot: 2, count: zeroCount)
            zeros.update(repeating: 0, count: zeroCount)
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: 16) { pixels in
                var n = range.lowerBound
                while n < range.upperBound {
                    let nb = min(group, range.upperBound - n)
                    body(worker, n, nb, zeros, pixels.baseAddress!)
                    n += nb
                }
            }
        }
    }

    /// The input tiles [16][nb · tiles per image][C] (workspace slot 0) of samples n..<n + nb of src [N][C][H][W],
    /// via channels-last copies (slot 3).
    private func winograd3x3GroupTiles(_ src: UnsafePointer<Float>, samples n: Int, count nb: Int, channels C: Int, height H: Int,
                                       width W: Int, worker: Int, zeros: UnsafePointer<Float>,
                                       pixels: UnsafeMutablePointer<UnsafePointer<Float>>) -> UnsafeMutablePointer<Float> {
        let P = H * W, tilesY = (H + 1) / 2, tilesX = (W + 1) / 2, perImage = tilesY * tilesX, tiles = nb * perImage
        let images = workspace.buffer(worker: worker, slot: 3, count: nb * P * C)
        for j in 0..<nb { channelsLast(src + (n + j) * C * P, images + j * P * C, channels: C, positions: P) }
        let v = workspace.buffer(worker: worker, slot: 0, count: 16 * tiles * C)
        for j in 0..<nb {
            winograd3x3InputTiles(WinogradPlane(base: images + j * P * C, rowStep: W * C, columnStep: C, rows: H, columns: W),
                                  channels: C, tilesY: tilesY, tilesX: tilesX, zeros: zeros, pixels: pixels,
                                  out: v, firstTile: j * perImage, tileStride: C, xiStride: tiles * C)
        }
        return v
    }

    // src [N, Ci, H, W] → dst [N, Co, H, W]: the 3×3 correlation (padding 1) with the transformed filters
    // u [16][Ci][Co], + bias, then LeakyReLU; per group of samples: input tiles, 16 GEMMs, output tiles.
    func winograd3x3Correlate(_ src: Tensor, ins Ci: Int, outs Co: Int, filters u: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, slope: Float?, into dst: Tensor) {
        let N = src.shape[0], H = src.shape[2], W = src.shape[3], P = H * W
        let tilesY = (H + 1) / 2, tilesX = (W + 1) / 2, perImage = tilesY * tilesX
        let group = winograd3x3Group(tilesPerImage: perImage)
        let sp = src.data, dp = dst.data, ws = workspace, CiCo = Ci * Co
        forEachTileGroup(count: N, group: group, zeroCount: Ci) { worker, n, nb, zeros, px in
            let tiles = nb * perImage
            let v = self.winograd3x3GroupTiles(sp, samples: n, count: nb, channels: Ci, height: H, width: W,
                                               worker: worker, zeros: zeros, pixels: px)
            let m = ws.buffer(worker: worker, slot: 1, count: 16 * tiles * Co)
            for xi in 0..<16 {
                gemm(transA: false, transB: false, m: tiles, n: Co, k: Ci, a: v + xi * tiles * Ci, lda: Ci,
                     b: u + xi * CiCo, ldb: Co, c: m + xi * tiles * Co, ldc: Co)
            }
            let outImages = ws.buffer(worker: worker, slot: 4, count: nb * P * Co)
            for j in 0..<nb {
                winograd3x3OutputTiles(m, channels: Co, tilesY: tilesY, tilesX: tilesX, firstTile: j * perImage,
                                       tileStride: Co, xiStride: tiles * Co, bias: bias, slope: slope,
                                       into: WinogradPlane(base: outImages + j * P * Co, rowStep: W * Co, columnStep: Co, rows: H, columns: W))
                channelsFirst(outImages + j * P * Co, dp + (n + j) * Co * P, channels: Co, positions: P)
            }
        }
    }

    // x [N, Cin, H, W] → y [N, Cout, H, W]
    func forwardWinograd3x3(_ x: Tensor, _ y: Tensor, filters: Tensor) {
        winograd3x3Filters(weight.value.data, outs: outChannels, ins: inChannels, flipped: false, into: filters.data)
        winograd3x3Correlate(x, ins: inChannels, outs: outChannels, filters: filters.data, bias: bias?.value.data,
                             slope: fusedLeakyReLUSlope, into: y)
    }

    // dy [N, Cout, H, W] → dx [N, Cin, H, W] (nil: none); dW += Gᵀ(Σ V ⊙ A dy Aᵀ)G; db += Σ dy. With a fused input
    // LeakyReLU dx overwrites x, after the weight gradient has read it (as on the other paths).
    func backwardWinograd3x3(_ x: Tensor, _ dy: Tensor, _ dx: Tensor?, weightGradients: Bool, filters: Tensor, scratch: () -> Tensor) {
        let N = x.shape[0], C = inChannels, O = outChannels, H = x.shape[2], W = x.shape[3], P = H * W
        if weightGradients {
            let tilesY = (H + 1) / 2, tilesX = (W + 1) / 2, perImage = tilesY * tilesX
            let group = winograd3x3Group(tilesPerImage: perImage), count = 16 * C * O
            let xp = x.data, dyp = dy.data, ws = workspace, offset = max(C, O)
            // Slot 2 holds the zeros, then this worker's dU (zeroed with them).
            forEachTileGroup(count: N, group: group, zeroCount: offset + count) { worker, n, nb, zeros, px in
                let tiles = nb * perImage, dU = zeros + offset
                let v = self.winograd3x3GroupTiles(xp, samples: n, count: nb, channels: C, height: H, width: W,
                                                   worker: worker, zeros: zeros, pixels: px)
                let dyImages = ws.buffer(worker: worker, slot: 4, count: nb * P * O)
                for j in 0..<nb { channelsLast(dyp + (n + j) * O * P, dyImages + j * P * O, channels: O, positions: P) }
                let g = ws.buffer(worker: worker, slot: 1, count: 16 * tiles * O)
                for j in 0..<nb {
                    winograd3x3GradientTiles(WinogradPlane(base: dyImages + j * P * O, rowStep: W * O, columnStep: O, rows: H, columns: W),
                                             channels: O, tilesY: tilesY, tilesX: tilesX, zeros: zeros,
                                             out: g, firstTile: j * perImage, tileStride: O, xiStride: tiles * O)
                }
                for xi in 0..<16 {
                    gemm(transA: true, transB: false, m: C, n: O, k: tiles, a: v + xi * tiles * C, lda: C,
                         b: g + xi * tiles * O, ldb: O, beta: 1, c: dU + xi * C * O, ldc: O)
                }
            }
            // The workers' sums in worker order (a fixed order, so results do not depend on timing).
            let workers = max(1, min(Parallel.workerCount, N))
            let total = ws.buffer(worker: 0, slot: 2, count: offset + count) + offset
            for wk in 1..<workers {
                let other = ws.buffer(worker: wk, slot: 2, count: offset + count) + offset
                for i in 0..<count { total[i] += other[i] }
            }
            winograd3x3AddFilterGradients(total, outs: O, ins: C, into: weight.grad.data)
            addBiasGradient(dy)
        }
        guard let dx else { return }
        winograd3x3Filters(weight.value.data, outs: O, ins: C, flipped: true, into: filters.data)
        writeInputGradient(x, dx, scratch: scratch) {
            winograd3x3Correlate(dy, ins: O, outs: C, filters: filters.data, bias: nil, slope: nil, into: $0)
        }
    }
}
