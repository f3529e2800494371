import CTranspose
import Foundation

/// A convolution that can hand its output over, or take its input, in oneDNN's blocked layout (`BlockedHandoff`):
/// `Conv2d`, and `ConvTranspose2d` on its oneDNN mirror.
protocol BlockedLayoutConvolution: AnyObject {
    /// Whether a forward pass (in training or eval mode) on an input of this size runs on oneDNN.
    func willUseOneDNN(inputHeight: Int, inputWidth: Int, training: Bool) -> Bool
    /// The links to the next and the previous convolution, set by the model's `FusionPlan`.
    var outputHandoff: BlockedHandoff? { get set }
    var inputHandoff: BlockedHandoff? { get set }
}

/// The link between two convolutions that may pass an activation in oneDNN's blocked layout (see
/// `Conv2d.outputHandoff`), directly or through a batch norm (`normalization`) whose activation is fused both ways.
/// The producer decides per forward pass and records it in `activeBlock` and `activeBF16`; the batch norm and the
/// consumer read it.
final class BlockedHandoff {
    /// 8 or 16: the channel block of oneDNN's preferred activation layout (nChw8c / nChw16c).
    let block: Int
    weak var consumer: BlockedLayoutConvolution?
    /// The batch norm between producer and consumer, if any (`.blockedHandoffThroughNormalization`).
    weak var normalization: BatchNorm?
    /// The block in use for the current forward pass, 0 for NCHW.
    var activeBlock = 0
    /// Whether the activation and its gradient pass as bfloat16 (both layers multiply in bfloat16 anyway): the
    /// producer writes y and the consumer dx in bfloat16, and neither converts its input. Never through a batch norm,
    /// which reads float32.
    var activeBF16 = false
    init(block: Int, consumer: BlockedLayoutConvolution, normalization: BatchNorm? = nil) {
        self.block = block; self.consumer = consumer; self.normalization = normalization
    }

    /// The block for a producer's output of `channels` channels and h×w positions: `block` when the consumer runs on
    /// oneDNN for it and a batch norm between them (if any) normalises this process's batch alone (a synchronised
    /// one sums NCHW statistics across ranks), else 0.
    func blockFor(channels: Int, height h: Int, width w: Int, training: Bool) -> Int {
        guard channels % block == 0, consumer?.willUseOneDNN(inputHeight: h, inputWidth: w, training: training) == true,
              normalization == nil || (KernelSettings.blockedNormalization && normalization?.crossReplica == nil)
        else { return 0 }
        return block
    }
}

/// 2-d convolution, `torch.nn.Conv2d` semantics: weight [out, in, k, k], bias [out].
///
/// Which kernel runs (`kernelPath`): oneDNN where it loads (`ConvolutionKernels`); elsewhere, or with
/// `KernelSettings.convolution = .blas`, Winograd tiles for 4×4 stride-2 and 3×3 stride-1 layers on small images
/// (`Conv2d+Winograd.swift`), else the reference-order path here: each core takes a slice of the batch; per group
/// of samples it builds the patch matrix from channels-last copies of the images and runs one GEMM against the
/// kernel in patch order.
///
/// ```swift
/// let conv = Conv2d(inChannels: 3, outChannels: 64, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
/// let y = conv.forward(x, training: true)   // [N, 3, 32, 32] → [N, 64, 32, 32]
/// ```
public final class Conv2d: LeakyReLUFusing, LeakyReLUGradientFusing, BlockedLayoutConvolution {
    public let inChannels, outChannels, kernelSize, stride, padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?
    private var output: Tensor?
    private var inputGrad: Tensor?
    let workspace = Workspace(slots: 5)
    /// The flipped weight in `NarrowConvolution`'s layout, for the image gradient of a first layer.
    private var narrowWeightScratch: Tensor?
    /// The weight in `NarrowConvolution`'s layout, for the forward pass of a last layer (≤ 3 output channels).
    private var narrowForwardWeightScratch: Tensor?
    /// Whether the last forward ran on `NarrowConvolution`'s kernel (its backward runs on oneDNN).
    private var forwardUsedNarrow = false
    /// The weight in patch order [out][k][k][in], refreshed every forward (the optimizer changes the weight).
    private let patchWeight: Tensor
    /// oneDNN's primitives for the last input shape, when this layer runs on oneDNN (`ConvolutionKernels`).
    private var oneDNN: OneDNNConvolution?
    /// Whether the last forward ran on oneDNN (its backward then does too).
    private var forwardUsedOneDNN = false
    /// Which Winograd tiles the last forward ran on, if any (its backward then does too).
    private var forwardTiles: WinogradTiles?
    /// The transposed convolution whose Winograd passes compute this layer's (`Conv2d+Winograd.swift`); it shares
    /// `weight`, so its weight gradient is this layer's.
    lazy var winogradMirror = ConvTranspose2d(weight: weight, bias: nil, stride: stride, padding: padding, outputPadding: 0)
    /// dx before a fused input LeakyReLU's gradient rule, on the Winograd paths.
    private var winogradScratch: Tensor?
    /// The F(2×2, 3×3)-transformed filters [16][in][out] (or [16][out][in] for dx), made by each pass that reads them.
    private var winograd3x3FilterScratch: Tensor?
    /// `KernelSettings.precision` when `oneDNN` was made.
    private var planPrecision = Precision.fp32
    /// Set by the model's `FusionPlan` between two convolutions joined by a fused in-place LeakyReLU: when both run on
    /// oneDNN, the activation (and its gradient) passes between them in oneDNN's channel-blocked layout instead
    /// of being converted to NCHW and back. Only the two layers read that tensor (the LeakyReLU between them
    /// passes it through both ways), which is what makes the private layout safe.
    var outputHandoff: BlockedHandoff?
    var inputHandoff: BlockedHandoff?
    /// Whether the last forward pass handed its output to the next convolution in oneDNN's blocked layout.
    public var handedOutputInBlockedLayout: Bool { (outputHandoff?.activeBlock ?? 0) > 0 }
    /// Whether it handed it over in bfloat16 (`BlockedHandoff.activeBF16`).
    public var handedOutputInBFloat16: Bool { outputHandoff?.activeBF16 ?? false }
    /// The slope of a LeakyReLU applied to the output (set by `Sequential`, see `LeakyReLUFusing`).
    public private(set) var fusedLeakyReLUSlope: Float?
    /// The slope of the LeakyReLU whose output is this layer's input, when dx applies its gradient rule
    /// (set by `Sequential`, see `LeakyReLUGradientFusing`).
    public private(set) var inputLeakyReLUSlope: Float?

    public init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout RandomGenerator) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
        weight = Parameter(Tensor(shape: [outChannels, inChannels, kernelSize, kernelSize]))
        self.bias = bias ? Parameter(Tensor(shape: [outChannels])) : nil
        patchWeight = Tensor(shape: [outChannels, kernelSize * kernelSize * inChannels])
        pytorchDefaultInit(weight.value, self.bias?.value, fanIn: inChannels * kernelSize * kernelSize, rng: &rng)
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernelSize) / stride + 1, (w + 2 * padding - kernelSize) / stride + 1)
    }

    func geometry(_ x: Tensor) -> PatchGeometry {
        let (oh, ow) = outputSize(x.shape[2], x.shape[3])
        return PatchGeometry(channels: inChannels, height: x.shape[2], width: x.shape[3], kernel: kernelSize,
                             stride: stride, padding: padding, gridHeight: oh, gridWidth: ow)
    }

    public func fuseLeakyReLU(negativeSlope: Float) {
        fusedLeakyReLUSlope = negativeSlope
        oneDNN = nil
    }

    public func fuseInputLeakyReLUGradient(negativeSlope: Float) {
        inputLeakyReLUSlope = negativeSlope
    }

    /// oneDNN's primitives for this input shape, or nil to run the BLAS kernels.
    private func oneDNNPlan(for x: Tensor, training: Bool) -> OneDNNConvolution? {
        let (oh, ow) = outputSize(x.shape[2], x.shape[3])
        let inputBlock = inputHandoff?.activeBlock ?? 0, inputBF16 = inputHandoff?.activeBF16 ?? false
        guard willUseOneDNN(inputHeight: x.shape[2], inputWidth: x.shape[3], training: training) else {
            precondition(inputBlock == 0, "Conv2d: input arrived in oneDNN's layout but this layer runs on BLAS")
            outputHandoff?.activeBlock = 0; outputHandoff?.activeBF16 = false
            return nil
        }
        let outputBlock = outputHandoff?.blockFor(channels: outChannels, height: oh, width: ow, training: training) ?? 0
        let outputBF16 = outputBlock > 0 && KernelSettings.precision == .bf16 && KernelSettings.bf16Handoff
            && outputHandoff?.normalization == nil
        outputHandoff?.activeBlock = outputBlock; outputHandoff?.activeBF16 = outputBF16
        if let plan = oneDNN, plan.shape == x.shape, plan.inputBlock == inputBlock, plan.outputBlock == outputBlock,
           plan.inputBF16 == inputBF16, plan.outputBF16 == outputBF16,
           planPrecision == KernelSettings.precision, plan.winogradRequested == KernelSettings.oneDNNWinograd {
            return plan
        }
        // In bfloat16 every convolution oneDNN runs multiplies in bfloat16 — 3×3 stride-1 ones too, although oneDNN
        // has float32 Winograd for them (4× fewer products): with 64-sample chunks bfloat16 measured 14% faster in
        // training on the residual models (docs/performance.md), where with 16-sample chunks Winograd had won.
        oneDNN = OneDNNConvolution(inputShape: x.shape, outChannels: outChannels, kernel: kernelSize, stride: stride,
                                   padding: padding, leakyReLUSlope: fusedLeakyReLUSlope,
                                   inputBlock: inputBlock, outputBlock: outputBlock, bf16: KernelSettings.precision == .bf16,
                                   inputBF16: inputBF16, outputBF16: outputBF16)
        planPrecision = KernelSettings.precision
        precondition(oneDNN != nil || (inputBlock == 0 && outputBlock == 0), "oneDNN refused a blocked-layout convolution")
        return oneDNN
    }

    /// The buffer for F(2×2, 3×3)-transformed filters, kept between calls.
    private func winograd3x3Filters() -> Tensor {
        let t = Tensor.reuse(winograd3x3FilterScratch, shape: [16 * inChannels * outChannels])
        winograd3x3FilterScratch = t
        return t
    }

    /// Whether a forward pass on an input of this size runs on oneDNN (in either mode: a `Conv2d`'s path does not
    /// depend on it).
    func willUseOneDNN(inputHeight: Int, inputWidth: Int, training: Bool) -> Bool {
        kernelPath(inputHeight: inputHeight, inputWidth: inputWidth) == .oneDNN
    }

    /// The kernel path of the last forward pass (nil before the first), for `bench --profile`.
    public var lastKernelPath: ConvolutionPath? { input.map { kernelPath(inputHeight: $0.shape[2], inputWidth: $0.shape[3]) } }

    /// How the last forward pass ran within its path, for `bench --profile`: oneDNN's "Winograd F(4×4, 3×3)" or "bf16",
    /// which Winograd tiles, or nil.
    public var lastKernelVariant: String? {
        if let tiles = forwardTiles { return tiles.rawValue }
        if forwardUsedNarrow { return "direct 3-channel forward" }
        guard forwardUsedOneDNN, let plan = oneDNN else { return nil }
        return plan.bf16 ? "bf16" : plan.winograd ? "Winograd F(4×4, 3×3)" : nil
    }

    /// The forward kernel for an input of h×w: Winograd tiles in float32 where the layer would otherwise run on the
    /// patch GEMM (4×4 stride-2 layers as their mirror's tiles, `usesWinogradMirror`; 3×3 stride-1 layers by
    /// F(2×2, 3×3), `usesWinograd3x3`) where oneDNN does not run, oneDNN where `KernelSettings.convolution` picks it,
    /// else the patch GEMMs (the fallback wherever oneDNN is missing).
    public func kernelPath(inputHeight h: Int, inputWidth w: Int) -> ConvolutionPath {
        if winogradTiles(inputHeight: h, inputWidth: w) != nil { return .winograd }
        return ConvolutionKernels.useOneDNN ? .oneDNN : .patchGEMM
    }

    /// Builds the patch matrix of samples n..<n+nb into `rows` ([nb·P][K]), via a channels-last copy.
    @inline(__always)
    private func patches(_ g: PatchGeometry, _ xp: UnsafePointer<Float>, _ n: Int, _ nb: Int,
                         _ rows: UnsafeMutablePointer<Float>, _ image: UnsafeMutablePointer<Float>) {
        let HW = g.height * g.width
        for s in 0..<nb {
            channelsLast(xp + (n + s) * g.imageSize, image, channels: g.channels, positions: HW)
            im2row(g, image: image, rows: rows + s * g.positions * g.patchSize)
        }
    }

    // x [N, Cin, H, W] → y [N, Cout, OH, OW]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == inChannels, "Conv2d expects [N, \(inChannels), H, W], got \(x.shape)")
        let g = geometry(x), N = x.shape[0], O = outChannels, P = g.positions, K = g.patchSize
        let y = Tensor.reuse(output, shape: [N, O, g.gridHeight, g.gridWidth])
        output = y; input = x
        forwardTiles = nil
        forwardUsedNarrow = false
        if let plan = oneDNNPlan(for: x, training: training) {
            forwardUsedOneDNN = true
            // A last layer (≤ 3 output channels, the image) is a 3-wide product that oneDNN runs at a fraction of its
            // speed, in bfloat16 too: the direct kernel computes it in float32, reading x in whatever layout the
            // previous layer handed over, and the backward passes stay on oneDNN.
            if stride == 1, fusedLeakyReLUSlope == nil, plan.outputBlock == 0,
               NarrowConvolution.applies(resultChannels: outChannels, reducedChannels: inChannels) {
                forwardUsedNarrow = true
                forwardNarrow(x, inputBlock: plan.inputBlock, inputBF16: plan.inputBF16, y)
                return y
            }
            plan.forward(x: x.data, weight: weight.value.data, bias: bias?.value.data, y: y.data)
            return y
        }
        forwardUsedOneDNN = false
        if let tiles = winogradTiles(inputHeight: x.shape[2], inputWidth: x.shape[3]) {
            forwardTiles = tiles
            switch tiles {
            case .f2x2_3x3: forwardWinograd3x3(x, y, filters: winograd3x3Filters())
            case .mirror: forwardWinogradMirror(x, y)
            }
            return y
        }
        kernelToPatchOrder(weight.value.data, patchWeight.data, rows: O, channels: inChannels, kernel: kernelSize)
        let group = samplesPerGroup(positions: P)
        let xp = x.data, yp = y.data, wp = patchWeight.data, bp = bias?.value.data, ws = workspace
        let slope = fusedLeakyReLUSlope
        Parallel.forEachChunk(count: N) { range, worker in
            let image = ws.buffer(worker: worker, slot: 3, count: g.imageSize)
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let rows = ws.buffer(worker: worker, slot: 0, count: cols * K)
                patches(g, xp, n, nb, rows, image)
                let tmp = ws.buffer(worker: worker, slot: 1, count: O * cols)
                gemm(transA: false, transB: true, m: O, n: cols, k: K, a: wp, lda: K, b: rows, ldb: K, c: tmp, ldc: cols)
                scatterSampleMajor(tmp, yp + n * O * P, samples: nb, channels: O, positions: P, bias: bp, leakySlope: slope)
                n += nb
            }
        }
        return y
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW += dy·patches; db += Σ dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        let g = geometry(x), N = x.shape[0], O = outChannels, P = g.positions, K = g.patchSize
        // After an in-place LeakyReLU whose gradient rule this layer applies, nothing but this layer reads x, and
        // not after its backward pass: dx overwrites x, as an in-place LeakyReLU's dx overwrites dy.
        let inPlace = inputLeakyReLUSlope != nil
        let dx: Tensor? = inputGradient ? (inPlace ? x : Tensor.reuse(inputGrad, shape: x.shape)) : nil
        if inPlace { inputGrad = nil } else if let dx { inputGrad = dx }
        // The image gradient of a first layer (≤ 3 input channels) by the direct kernel, not a 3-wide GEMM.
        let narrow = inputGradient && stride == 1 && inputLeakyReLUSlope == nil
            && NarrowConvolution.applies(resultChannels: inChannels, reducedChannels: outChannels)
        if let tiles = forwardTiles {
            let scratch = { () -> Tensor in let t = Tensor.reuse(self.winogradScratch, shape: x.shape); self.winogradScratch = t; return t }
            switch tiles {
            case .f2x2_3x3:
                backwardWinograd3x3(x, dy, dx, weightGradients: weightGradients, filters: winograd3x3Filters(), scratch: scratch)
            case .mirror:
                backwardWinogradMirror(x, dy, dx, weightGradients: weightGradients, scratch: scratch)
            }
            return dx
        }
        if forwardUsedOneDNN, let plan = oneDNN {
            if weightGradients {
                plan.backwardWeights(x: x.data, dy: dy.data, weightGrad: weight.grad.data, biasGrad: bias?.grad.data)
            }
            if let dx {
                if narrow {
                    narrowInputGradient(dy, dyBlock: plan.outputBlock, dyBF16: plan.outputBF16, dx)
                } else if let a = inputLeakyReLUSlope {
                    plan.backwardDataOverwritingLeakyReLUInput(dy: dy.data, weight: weight.value.data, x: x.data, slope: a)
                } else {
                    plan.backwardData(dy: dy.data, weight: weight.value.data, dx: dx.data)
                }
            }
            return dx
        }
        let group = samplesPerGroup(positions: P)
        let xp = x.data, dyp = dy.data, wp = patchWeight.data, dxp = narrow ? nil : dx?.data, ws = workspace
        let hasBias = bias != nil, HW = g.height * g.width, inputSlope = inputLeakyReLUSlope
        if let dx, narrow { narrowInputGradient(dy, dyBlock: 0, dyBF16: false, dx) }
        guard weightGradients || dxp != nil else { return dx }
        Parallel.forEachChunk(count: N) { range, worker in
            let dW = ws.buffer(worker: worker, slot: 2, count: O * K + O)
            if weightGradients { dW.update(repeating: 0, count: O * K + O) }
            let image = ws.buffer(worker: worker, slot: 3, count: g.imageSize)
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let dyT = ws.buffer(worker: worker, slot: 1, count: O * cols)
                gatherChannelMajor(dyp + n * O * P, dyT, samples: nb, channels: O, positions: P)
                let rows = ws.buffer(worker: worker, slot: 0, count: cols * K)
                if weightGradients {
                    patches(g, xp, n, nb, rows, image)
                    gemm(transA: false, transB: false, m: O, n: K, k: cols, a: dyT, lda: cols, b: rows, ldb: K,
                         beta: 1, c: dW, ldc: K)
                    if hasBias {
                        let db = dW + O * K
                        for o in 0..<O { var acc: Float = 0; let r = dyT + o * cols; for q in 0..<cols { acc += r[q] }; db[o] += acc }
                    }
                }
                if let dxp {
                    gemm(transA: true, transB: false, m: cols, n: K, k: O, a: dyT, lda: cols, b: wp, ldb: K, c: rows, ldc: K)
                    for s in 0..<nb {
                        image.update(repeating: 0, count: g.imageSize)
                        row2im(g, rows: rows + s * P * K, image: image)
                        let dxs = dxp + (n + s) * g.imageSize
                        if let a = inputSlope {
                            // dx replaces x (== dxs) sample by sample; this group's patches were built already.
                            let plain = ws.buffer(worker: worker, slot: 4, count: g.imageSize)
                            channelsFirst(image, plain, channels: g.channels, positions: HW)
                            leakyReLUGradient(dy: plain, sign: dxs, into: dxs, count: g.imageSize, slope: a)
                        } else {
                            channelsFirst(image, dxs, channels: g.channels, positions: HW)
                        }
                    }
                }
                n += nb
            }
        }
        if weightGradients {
            ws.addWorkerGradients(slot: 2, workers: min(Parallel.workerCount, N), rows: O, channels: inChannels, kernel: kernelSize,
                                  into: weight.grad.data, bias: bias?.grad.data, biasCount: O)
        }
        return dx
    }

    /// y by `NarrowConvolution`'s kernel (stride 1, ≤ 3 output channels): y[o][i][j] = bias[o] + Σ_{c, a, b}
    /// x[c][i − p + a][j − p + b] · w[o][c][a][b]. x is NCHW (`inputBlock` 0: each sample is blocked into scratch
    /// with a border of p zeros) or already in oneDNN's blocked layout with that channel block (the kernel then
    /// skips the border itself), in float32 or (`inputBF16`, widened into scratch first) bfloat16.
    private func forwardNarrow(_ x: Tensor, inputBlock: Int, inputBF16: Bool, _ y: Tensor) {
        let N = x.shape[0], C = inChannels, O = outChannels, k = kernelSize, p = padding
        let block = inputBlock == 0 ? 8 : inputBlock
        let H = x.shape[2], W = x.shape[3], OH = y.shape[2], OW = y.shape[3]
        // narrowWeight[cb][a][b][l/8][o][l%8] = w[o][cb·block + l][a][b]
        let narrowWeight = Tensor.reuse(narrowForwardWeightScratch, shape: [C * k * k * O])
        narrowForwardWeightScratch = narrowWeight
        let w = weight.value.data, nw = narrowWeight.data
        for c in 0..<C { for a in 0..<k { for b in 0..<k { for o in 0..<O {
            nw[narrowWeightOffset(channel: c, block: block, tap: a, b, kernel: k, out: o, outs: O)] = w[((o * C + c) * k + a) * k + b]
        } } } }
        let xp = x.data, yp = y.data, bp = bias?.value.data, ws = workspace
        let image = C * H * W, outImage = O * OH * OW, paddedImage = C * (H + 2 * p) * (W + 2 * p)
        Parallel.forEachChunk(count: N) { range, worker in
            for n in range {
                // The blocked image the kernel reads, its size, and where output (0, 0)'s window starts in it.
                var blocked = UnsafePointer(xp + n * image), height = H, width = W, offset = -p
                if inputBlock == 0 {
                    let scratch = ws.buffer(worker: worker, slot: 4, count: paddedImage)
                    blockChannels(xp + n * image, scratch, channels: C, height: H, width: W, pad: p)
                    (blocked, height, width, offset) = (UnsafePointer(scratch), H + 2 * p, W + 2 * p, 0)
                } else if inputBF16 {
                    let widened = ws.buffer(worker: worker, slot: 4, count: image)
                    BFloat16.widen(BFloat16.pointer(xp + n * image / 2), into: widened, count: image)
                    blocked = UnsafePointer(widened)
                }
                let out = yp + n * outImage
                narrowConvolution(blocked, channels: C, block: block, height: height, width: width, weight: nw,
                                  outs: O, kernel: k, offsetY: offset, offsetX: offset, out: out, outHeight: OH, outWidth: OW,
                                  outPlane: OH * OW, outRow: OW, outColumn: 1)
                addNarrowBias(bp, to: out, outs: O, plane: OH * OW)
            }
        }
    }

    /// dx by `NarrowConvolution`'s kernel (stride 1, ≤ 3 input channels): dx[c][y][x] = Σ_{o, a, b}
    /// dy[o][y + p − (k−1) + a][x + p − (k−1) + b] · w[o][c][k−1−a][k−1−b], a correlation of dy with the flipped
    /// kernel. dy is NCHW (`dyBlock` 0; each sample is blocked into scratch first) or already in oneDNN's
    /// blocked layout with that channel block, in float32 or (`dyBF16`, widened into scratch first) bfloat16.
    private func narrowInputGradient(_ dy: Tensor, dyBlock: Int, dyBF16: Bool, _ dx: Tensor) {
        let N = dy.shape[0], O = outChannels, C = inChannels, k = kernelSize
        let OH = dy.shape[2], OW = dy.shape[3], H = dx.shape[2], W = dx.shape[3]
        let block = dyBlock == 0 ? 8 : dyBlock
        // narrowWeight[cb][a][b][l/8][c][l%8] = w[cb·block + l][c][k−1−a][k−1−b]
        let narrowWeight = Tensor.reuse(narrowWeightScratch, shape: [O * k * k * C])
        narrowWeightScratch = narrowWeight
        let w = weight.value.data, nw = narrowWeight.data
        for o in 0..<O { for a in 0..<k { for b in 0..<k { for c in 0..<C {
            nw[narrowWeightOffset(channel: o, block: block, tap: a, b, kernel: k, out: c, outs: C)] =
                w[((o * C + c) * k + k - 1 - a) * k + k - 1 - b]
        } } } }
        let dyp = dy.data, dxp = dx.data, ws = workspace, offset = padding - (k - 1)
        let dyImage = O * OH * OW, dxImage = C * H * W
        Parallel.forEachChunk(count: N) { range, worker in
            for n in range {
                var image = UnsafePointer(dyp + n * dyImage)
                if dyBF16 {
                    let widened = ws.buffer(worker: worker, slot: 4, count: dyImage)
                    BFloat16.widen(BFloat16.pointer(dyp + n * dyImage / 2), into: widened, count: dyImage)
                    image = UnsafePointer(widened)
                } else if dyBlock == 0 {
                    let blocked = ws.buffer(worker: worker, slot: 4, count: dyImage)
                    blockChannels(image, blocked, channels: O, height: OH, width: OW)
                    image = UnsafePointer(blocked)
                }
                narrowConvolution(image, channels: O, block: block, height: OH, width: OW, weight: nw, outs: C, kernel: k,
                                  offsetY: offset, offsetX: offset, out: dxp + n * dxImage, outHeight: H, outWidth: W,
                                  outPlane: H * W, outRow: W, outColumn: 1)
            }
        }
    }
}

