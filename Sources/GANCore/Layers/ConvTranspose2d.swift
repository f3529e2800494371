import CTranspose
import Foundation

/// The output rows (or columns) of one stride phase of a transposed convolution: the Y with
/// (Y + padding) mod stride = phase, 0 ≤ Y < size. The i-th such Y, first + stride·i, reads input rows
/// input + i − t through kernel taps phase + stride·t, where input = (first + padding − phase)/stride.
@inline(__always)
func phaseRange(phase r: Int, stride s: Int, padding p: Int, size: Int) -> (first: Int, count: Int, input: Int) {
    let first = ((r &- p) % s &+ s) % s
    return (first, first < size ? (size &- 1 &- first) / s &+ 1 : 0, (first &+ p &- r) / s)
}

/// Transposed 2-d convolution, `torch.nn.ConvTranspose2d` semantics: weight [in, out, k, k], bias [out],
/// output size (H − 1)·stride − 2·padding + k + outputPadding.
///
/// Its forward pass is the convolution's backward-data pass: one GEMM to the patch matrix, then row2im. When the
/// kernel is a multiple of the stride (DCGAN's 4×4, stride 2) it runs instead as stride² ordinary convolutions,
/// one per output phase ("sub-pixel"), each with (kernel/stride)² taps: same FLOPs, but the GEMM writes each
/// output once instead of a patch matrix that must be zeroed, summed back and transposed. With a kernel of
/// 2·stride (4×4 at stride 2) and channel counts in multiples of 8, those 2×2 phase convolutions run as
/// Winograd F(2×2, 2×2) tiles in all three passes (see `Winograd.swift`): 9/16 of the multiplications.
///
/// ```swift
/// let up = ConvTranspose2d(inChannels: 128, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
/// let y = up.forward(x, training: true)   // [N, 128, 8, 8] → [N, 64, 16, 16]
/// ```
public final class ConvTranspose2d: Layer, BlockedLayoutConvolution {
    public let inChannels, outChannels, kernelSize, stride, padding, outputPadding: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?
    private var output: Tensor?
    private var inputGrad: Tensor?
    let workspace = Workspace(slots: 6)
    /// The weight in patch order [in][k][k][out], made by the passes that read it (GEMM forward, dx).
    private lazy var patchWeight = Tensor(shape: [inChannels, kernelSize * kernelSize * outChannels])
    /// For the sub-pixel forward: per output phase (ry, rx), the taps as a [(t, u, in)][out] matrix.
    private lazy var phaseWeight = Tensor(shape: [kernelSize * kernelSize * inChannels * outChannels])
    /// Winograd-transformed filters (see `Winograd.swift`): for the forward pass [phase][ξ][in][out], for dx
    /// [ξ][(phase, out)][in]. Made when first needed.
    var winogradWeightScratch: Tensor?
    /// The output phases of the last output size seen by the Winograd path (`winogradPhases`).
    var winogradPlan: (height: Int, width: Int, phases: [WinogradPhase], tilesPerImage: Int)?
    /// The mirror convolution on oneDNN, for bfloat16 (`ConvTranspose2d+OneDNN.swift`).
    var oneDNNMirror: OneDNNConvolution?
    /// Whether the last forward pass ran on oneDNN (its backward then does too).
    var forwardUsedOneDNN = false
    /// Set by the model's `FusionPlan` where this layer's output reaches another convolution through a batch norm
    /// (`.blockedHandoffThroughNormalization`) or its input comes from one that way: when the layers at both ends
    /// run on oneDNN, the activation and its gradient stay in oneDNN's blocked layout (`ConvTranspose2d+OneDNN.swift`).
    var outputHandoff: BlockedHandoff?
    var inputHandoff: BlockedHandoff?
    /// The layouts the last oneDNN forward pass read x and wrote y in (its backward writes dx and reads dy in them).
    var lastBlocks = (input: 0, output: 0)
    /// Per (sample, channel) sums of dy for the bias gradient on the oneDNN path.
    var biasSums: Tensor?
    /// The phase kernels in `NarrowConvolution`'s layout, for an image layer (≤ 3 output channels).
    private var narrowWeightScratch: Tensor?
    /// The batch norm right after this layer, when the model's `FusionPlan` folds it in
    /// (`.batchNormIntoTransposedConvolution`). In eval mode the phase (or Winograd) forward folds its affine
    /// map (running statistics) into the weights and the bias, and its fused LeakyReLU into the output pass, so
    /// that the batch norm passes the result through: one memory pass over G's largest activations fewer per
    /// generated batch.
    weak var foldedBatchNorm: BatchNorm?
    /// Per output channel, for the phase and Winograd forward passes: the scale of a folded batch norm (else 1)
    /// and the bias after it.
    let foldedScale: Tensor, foldedBias: Tensor
    /// Whether the forward pass runs as one ordinary convolution per output phase: measured faster for wide
    /// outputs only (with 3 output channels, G's last layer, the GEMM would be 3 columns wide).
    let usesPhases: Bool
    /// Whether the phase convolutions can run as Winograd tiles: a kernel of 2·stride (4×4 at stride 2), channel
    /// counts in multiples of 8 and ≥ 32 outputs. From 32 rather than phase GEMMs' 64: the tiles' GEMMs do 9/16 of
    /// the products, and G.10 of `--preset cnn` (64→32) measured ~25% faster per pass than its patch GEMM
    /// (docs/performance.md), where phase GEMMs at 32 outputs were slower.
    let hasWinogradShape: Bool
    /// Whether a batch norm after this layer can be folded into its forward pass (`FusionPlan`): every path that
    /// a layer of this shape takes folds it (Winograd tiles, phase GEMMs, oneDNN's mirror), none but the patch GEMM.
    var foldsBatchNorm: Bool { usesPhases || hasWinogradShape }

    public convenience init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            outputPadding: Int = 0, bias: Bool = true, rng: inout RandomGenerator) {
        let weight = Parameter(Tensor(shape: [inChannels, outChannels, kernelSize, kernelSize]))
        let bias = bias ? Parameter(Tensor(shape: [outChannels])) : nil
        // PyTorch computes fan_in from weight.size(1), which is out_channels here.
        pytorchDefaultInit(weight.value, bias?.value, fanIn: outChannels * kernelSize * kernelSize, rng: &rng)
        self.init(weight: weight, bias: bias, stride: stride, padding: padding, outputPadding: outputPadding)
    }

    /// A layer on given parameters: weight [in, out, k, k]. `Conv2d` makes its mirror this way, sharing its weight
    /// (`Conv2d+Winograd.swift`).
    init(weight: Parameter, bias: Parameter?, stride: Int, padding: Int, outputPadding: Int) {
        precondition(outputPadding < stride, "ConvTranspose2d: outputPadding must be smaller than stride")
        let shape = weight.value.shape
        precondition(shape.count == 4 && shape[2] == shape[3], "ConvTranspose2d: weight must be [in, out, k, k], got \(shape)")
        inChannels = shape[0]; outChannels = shape[1]; kernelSize = shape[2]
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        self.weight = weight; self.bias = bias
        usesPhases = kernelSize % stride == 0 && outChannels >= 64
        hasWinogradShape = kernelSize == 2 * stride && inChannels % 8 == 0 && outChannels % 8 == 0 && outChannels >= 32
        foldedScale = Tensor(shape: [outChannels]); foldedBias = Tensor(shape: [outChannels])
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h - 1) * stride - 2 * padding + kernelSize + outputPadding,
         (w - 1) * stride - 2 * padding + kernelSize + outputPadding)
    }

    func geometry(_ x: Tensor) -> PatchGeometry {
        let (oh, ow) = outputSize(x.shape[2], x.shape[3])
        return PatchGeometry(channels: outChannels, height: oh, width: ow, kernel: kernelSize,
                             stride: stride, padding: padding, gridHeight: x.shape[2], gridWidth: x.shape[3])
    }

    // x [N, Cin, H, W] → y [N, Cout, OH, OW]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == inChannels, "ConvTranspose2d expects [N, \(inChannels), H, W], got \(x.shape)")
        let g = geometry(x), N = x.shape[0], C = inChannels, P = g.positions, K = g.patchSize
        let y = Tensor.reuse(output, shape: [N, outChannels, g.height, g.width])
        output = y; input = x
        lastForwardTraining = training
        let folded = training ? nil : foldedBatchNorm   // eval only: training needs the batch's own statistics
        let path = kernelPath(inputHeight: x.shape[2], inputWidth: x.shape[3], training: training)
        forwardUsedOneDNN = path == .oneDNN
        if path != .oneDNN {
            precondition((inputHandoff?.activeBlock ?? 0) == 0, "ConvTranspose2d: input arrived in oneDNN's layout but this layer does not run on oneDNN")
            outputHandoff?.activeBlock = 0
        }
        switch path {
        case .oneDNN: forwardOneDNN(x, y, training: training, foldingBatchNorm: folded); return y
        case .winograd: forwardWinograd(x, y, foldingBatchNorm: folded); return y
        case .phaseGEMM: forwardByPhases(x, y, foldingBatchNorm: folded); return y
        case .narrow: forwardNarrow(x, y); return y
        case .patchGEMM: break   // the naive-order path below
        }
        kernelToPatchOrder(weight.value.data, patchWeight.data, rows: C, channels: outChannels, kernel: kernelSize)
        let group = samplesPerGroup(positions: P)
        let xp = x.data, yp = y.data, wp = patchWeight.data, bp = bias?.value.data, ws = workspace
        let OHW = g.height * g.width
        Parallel.forEachChunk(count: N) { range, worker in
            let image = ws.buffer(worker: worker, slot: 3, count: g.imageSize)
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let xT = ws.buffer(worker: worker, slot: 1, count: C * cols)
                gatherChannelMajor(xp + n * C * P, xT, samples: nb, channels: C, positions: P)
                let rows = ws.buffer(worker: worker, slot: 0, count: cols * K)
                gemm(transA: true, transB: false, m: cols, n: K, k: C, a: xT, lda: cols, b: wp, ldb: K, c: rows, ldc: K)
                for s in 0..<nb {
                    image.update(repeating: 0, count: g.imageSize)
                    row2im(g, rows: rows + s * P * K, image: image)
                    channelsFirst(image, yp + (n + s) * g.imageSize, channels: g.channels, positions: OHW, bias: bp)
                }
                n += nb
            }
        }
        return y
    }

    /// The kernel path of the last forward pass (nil before the first), for `bench --profile`.
    public var lastKernelPath: ConvolutionPath? {
        input.map { kernelPath(inputHeight: $0.shape[2], inputWidth: $0.shape[3], training: lastForwardTraining) }
    }
    /// Whether the last forward pass ran in training mode (the path can depend on it, see `kernelPath`).
    private var lastForwardTraining = true

    /// The forward kernel for an input of h×w: oneDNN's mirror convolution where asked for everywhere
    /// (`CIFAR_GAN_CONVOLUTION=onednn`); the direct kernel for an image layer; oneDNN's mirror in bfloat16; else
    /// Winograd tiles (`hasWinogradShape`), phase GEMMs for wide outputs whose kernel the stride divides
    /// (`usesPhases`), or one GEMM and row2im. Every path but the direct kernel and the GEMM with row2im folds a
    /// batch norm, which `FusionPlan` checks through `foldsBatchNorm`.
    public func kernelPath(inputHeight h: Int, inputWidth w: Int, training: Bool = true) -> ConvolutionPath {
        let (oh, ow) = outputSize(h, w)
        let mirror = hasOneDNNMirror(inputHeight: h, inputWidth: w)
        if mirror && KernelSettings.convolution == .onednn { return .oneDNN }
        if kernelSize % stride == 0 && !usesPhases
            && NarrowConvolution.applies(resultChannels: outChannels, reducedChannels: inChannels) { return .narrow }
        // In bfloat16 the Winograd tiles give way too: with 64-sample oneDNN chunks the mirror measured faster in
        // training (G.7 of the original models 19–23 → 14–15 ms forward, `cnn` 280–289 → 313–325 img/s;
        // docs/performance.md). The direct 3-channel kernel stays float32 (measured as fast, session 9). In eval mode a
        // layer that folds the batch norm after it keeps the tiles: their output pass applies it, which generated
        // faster than bfloat16's products plus the batch norm's own pass (`original`, `cnn`; session 15).
        let tiles = usesWinograd(outputHeight: oh, outputWidth: ow)
        let foldsInEval = !training && foldedBatchNorm != nil && tiles
        if mirror && KernelSettings.precision == .bf16 && !foldsInEval { return .oneDNN }
        if tiles { return .winograd }
        // A Winograd-shaped layer with the tiles switched off takes phase GEMMs, which fold a batch norm.
        return foldsBatchNorm ? .phaseGEMM : .patchGEMM
    }

    /// Fills `foldedScale` and `foldedBias` and returns the LeakyReLU slope to apply in the output pass.
    /// With a folded batch norm (eval): BN(conv(x) + b) = conv(x)·scale + (b·scale + shift) per output channel,
    /// scale = γ/√(running var + ε), shift = β − running mean·scale. Without one, scale 1 and shift 0 (exact).
    func foldAffine(_ bn: BatchNorm?) -> Float? {
        let scale = foldedScale.data, bp = foldedBias.data
        for o in 0..<outChannels {
            scale[o] = 1
            var shift: Float = 0
            if let bn {
                scale[o] = bn.weight.value[o] / (bn.runningVar[o] + bn.eps).squareRoot()
                shift = bn.bias.value[o] - bn.runningMean[o] * scale[o]
            }
            bp[o] = (bias?.value[o] ?? 0) * scale[o] + shift
        }
        return bn?.fusedLeakyReLUSlope
    }

    /// Output phase (ry, rx) as a convolution: y[o, Y, X] = b[o] + Σ_{t,u,c} x[c, qy − t, qx − u]·w[c, o, ry + s·t, rx + s·u]
    /// with qy = (Y + p − ry)/s, for the Y, X of that phase. Per group of samples and phase: a patch matrix of
    /// (k/s)²·C columns from channels-last images, one GEMM, and a strided write into y. With `bn` (eval mode) the
    /// batch norm after this layer is folded in: scaled weights, its shift in the bias, its LeakyReLU in the write.
    private func forwardByPhases(_ x: Tensor, _ y: Tensor, foldingBatchNorm bn: BatchNorm?) {
        let N = x.shape[0], C = inChannels, O = outChannels, H = x.shape[2], W = x.shape[3]
        let OH = y.shape[2], OW = y.shape[3], s = stride, p = padding, k = kernelSize, T = k / s
        let K = T * T * C  // patch length
        let slope = foldAffine(bn), scale = foldedScale.data, bp = foldedBias.data
        // phaseWeight[phase][(t·T + u)·C + c][o] = w[c][o][ry + s·t][rx + s·u] · scale[o]
        let w = weight.value.data, pw = phaseWeight.data
        for ry in 0..<s { for rx in 0..<s {
            let base = pw + (ry * s + rx) * K * O
            for t in 0..<T { for u in 0..<T { for c in 0..<C {
                let row = base + ((t * T + u) * C + c) * O, src = w + c * O * k * k + (ry + s * t) * k + rx + s * u
                for o in 0..<O { row[o] = src[o * k * k] * scale[o] }
            } } }
        } }
        let maxPositions = ((OH + s - 1) / s) * ((OW + s - 1) / s)
        let group = samplesPerGroup(positions: maxPositions)
        let xp = x.data, yp = y.data, ws = workspace, HWC = H * W * C
        Parallel.forEachChunk(count: N) { range, worker in
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n)
                let images = ws.buffer(worker: worker, slot: 3, count: nb * HWC)
                for j in 0..<nb { channelsLast(xp + (n + j) * C * H * W, images + j * HWC, channels: C, positions: H * W) }
                let rows = ws.buffer(worker: worker, slot: 0, count: nb * maxPositions * K)
                let out = ws.buffer(worker: worker, slot: 1, count: nb * maxPositions * O)
                for ry in 0..<s { for rx in 0..<s {
                    let (y0, ny, qy0) = phaseRange(phase: ry, stride: s, padding: p, size: OH)
                    let (x0, nx, qx0) = phaseRange(phase: rx, stride: s, padding: p, size: OW)
                    if ny == 0 || nx == 0 { continue }
                    // Patch rows (sample, Y, X) of this phase, columns (t, u, c).
                    var row = rows
                    for j in 0..<nb {
                        let image = images + j * HWC
                        for yi in 0..<ny {
                            let qy = qy0 + yi
                            for xi in 0..<nx {
                                let qx = qx0 + xi
                                for t in 0..<T {
                                    let iy = qy - t
                                    for u in 0..<T {
                                        let ix = qx - u
                                        if iy < 0 || iy >= H || ix < 0 || ix >= W { row.update(repeating: 0, count: C) } else {
                                            row.update(from: image + (iy * W + ix) * C, count: C)
                                        }
                                        row += C
                                    }
                                }
                            }
                        }
                    }
                    let m = nb * ny * nx
                    gemm(transA: false, transB: false, m: m, n: O, k: K, a: rows, lda: K,
                         b: pw + (ry * s + rx) * K * O, ldb: O, c: out, ldc: O)
                    // out[(j, yi, xi)][o] → y[n + j][o][y0 + s·yi][x0 + s·xi] (+ bias)
                    for j in 0..<nb {
                        for o in 0..<O {
                            let b = bp[o]
                            let src = out + j * ny * nx * O + o, dst = yp + ((n + j) * O + o) * OH * OW
                            for yi in 0..<ny {
                                let d = dst + (y0 + yi * s) * OW + x0, sr = src + yi * nx * O
                                if let a = slope {
                                    for xi in 0..<nx { d[xi * s] = leakyReLU(sr[xi * O] + b, slope: a) }
                                } else {
                                    for xi in 0..<nx { d[xi * s] = sr[xi * O] + b }
                                }
                            }
                        }
                    }
                } }
                n += nb
            }
        }
    }

    /// The output phases of an image layer (≤ 3 output channels) by `NarrowConvolution`'s kernel: per sample, x in
    /// the blocked layout, then per phase (ry, rx) a correlation with the (k/s)² taps of that phase, flipped, whose
    /// results land directly on the phase's pixels of y (row step s·OW, column step s).
    private func forwardNarrow(_ x: Tensor, _ y: Tensor) {
        let N = x.shape[0], C = inChannels, O = outChannels, H = x.shape[2], W = x.shape[3]
        let OH = y.shape[2], OW = y.shape[3], s = stride, p = padding, k = kernelSize, T = k / s, block = 8
        let phaseSize = C * T * T * O
        // narrowWeight[phase][cb][a][b][o][l] = w[cb·8 + l][o][ry + s·(T−1−a)][rx + s·(T−1−b)]
        let narrowWeight = Tensor.reuse(narrowWeightScratch, shape: [s * s * phaseSize])
        narrowWeightScratch = narrowWeight
        let w = weight.value.data, nw = narrowWeight.data
        for ry in 0..<s { for rx in 0..<s {
            let phase = nw + (ry * s + rx) * phaseSize
            for c in 0..<C { for a in 0..<T { for b in 0..<T { for o in 0..<O {
                phase[narrowWeightOffset(channel: c, block: block, tap: a, b, kernel: T, out: o, outs: O)] =
                    w[((c * O + o) * k + ry + s * (T - 1 - a)) * k + rx + s * (T - 1 - b)]
            } } } }
        } }
        // Output row y0 + s·i of phase ry reads input rows (y0 + p − ry)/s + i − t for taps t = T−1−a: a border of
        // `pad` zero pixels around the blocked copy keeps every read inside it (no edge cases in the kernel).
        struct Phase { var weightOffset, y0, x0, ny, nx, rowOffset, columnOffset: Int }
        var phases: [Phase] = [], pad = 0
        for ry in 0..<s { for rx in 0..<s {
            let (y0, ny, qy0) = phaseRange(phase: ry, stride: s, padding: p, size: OH)
            let (x0, nx, qx0) = phaseRange(phase: rx, stride: s, padding: p, size: OW)
            if ny == 0 || nx == 0 { continue }
            let rowOffset = qy0 - (T - 1), columnOffset = qx0 - (T - 1)
            pad = max(pad, -rowOffset, -columnOffset, rowOffset + ny + T - 1 - H, columnOffset + nx + T - 1 - W)
            phases.append(Phase(weightOffset: (ry * s + rx) * phaseSize, y0: y0, x0: x0, ny: ny, nx: nx,
                                rowOffset: rowOffset, columnOffset: columnOffset))
        } }
        let xp = x.data, yp = y.data, bp = bias?.value.data, ws = workspace, image = C * H * W, outImage = O * OH * OW
        let paddedImage = C * (H + 2 * pad) * (W + 2 * pad)
        Parallel.forEachChunk(count: N) { range, worker in
            let blocked = ws.buffer(worker: worker, slot: 4, count: paddedImage)
            for n in range {
                blockChannels(xp + n * image, blocked, channels: C, height: H, width: W, pad: pad)
                let out = yp + n * outImage
                for phase in phases {
                    narrowConvolution(blocked, channels: C, block: block, height: H + 2 * pad, width: W + 2 * pad,
                                      weight: nw + phase.weightOffset, outs: O, kernel: T,
                                      offsetY: phase.rowOffset + pad, offsetX: phase.columnOffset + pad,
                                      out: out + phase.y0 * OW + phase.x0, outHeight: phase.ny, outWidth: phase.nx,
                                      outPlane: OH * OW, outRow: s * OW, outColumn: s)
                }
                addNarrowBias(bp, to: out, outs: O, plane: OH * OW)
            }
        }
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW += x·patches(dy); db += Σ dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("ConvTranspose2d.backward before forward") }
        let g = geometry(x), N = x.shape[0], C = inChannels, P = g.positions, K = g.patchSize
        let dx: Tensor? = inputGradient ? Tensor.reuse(inputGrad, shape: x.shape) : nil
        if let dx { inputGrad = dx }
        if forwardUsedOneDNN {
            backwardOneDNN(x, dy, dx, weightGradients: weightGradients)
            return dx
        }
        if usesWinograd(outputHeight: g.height, outputWidth: g.width) {
            backwardWinograd(x, dy, dx, weightGradients: weightGradients)
            return dx
        }
        // Only dx reads the weight in patch order (the phase and narrow forward passes do not make it).
        if inputGradient {
            kernelToPatchOrder(weight.value.data, patchWeight.data, rows: C, channels: outChannels, kernel: kernelSize)
        }
        let group = samplesPerGroup(positions: P)
        let xp = x.data, dyp = dy.data, wp = patchWeight.data, dxp = dx?.data, ws = workspace
        let O = outChannels, OHW = g.height * g.width, hasBias = bias != nil
        Parallel.forEachChunk(count: N) { range, worker in
            let dW = ws.buffer(worker: worker, slot: 2, count: C * K + O)
            if weightGradients { dW.update(repeating: 0, count: C * K + O) }
            let image = ws.buffer(worker: worker, slot: 3, count: g.imageSize)
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let rows = ws.buffer(worker: worker, slot: 0, count: cols * K)
                for s in 0..<nb {
                    channelsLast(dyp + (n + s) * g.imageSize, image, channels: O, positions: OHW)
                    im2row(g, image: image, rows: rows + s * P * K)
                }
                let xT = ws.buffer(worker: worker, slot: 1, count: C * cols)
                if weightGradients {
                    gatherChannelMajor(xp + n * C * P, xT, samples: nb, channels: C, positions: P)
                    gemm(transA: false, transB: false, m: C, n: K, k: cols, a: xT, lda: cols, b: rows, ldb: K,
                         beta: 1, c: dW, ldc: K)
                }
                if let dxp {
                    gemm(transA: false, transB: true, m: C, n: cols, k: K, a: wp, lda: K, b: rows, ldb: K, c: xT, ldc: cols)
                    scatterSampleMajor(xT, dxp + n * C * P, samples: nb, channels: C, positions: P, bias: nil)
                }
                n += nb
            }
            if weightGradients && hasBias {
                let db = dW + C * K
                for n in range { for o in 0..<O { var acc: Float = 0; let p = dyp + (n * O + o) * OHW; for q in 0..<OHW { acc += p[q] }; db[o] += acc } }
            }
        }
        if weightGradients {
            ws.addWorkerGradients(slot: 2, workers: min(Parallel.workerCount, N), rows: C, channels: O, kernel: kernelSize,
                                  into: weight.grad.data, bias: bias?.grad.data, biasCount: O)
        }
        return dx
    }
}

