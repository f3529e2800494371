import CTranspose
import Foundation

/// Where a k×k window with stride and padding lands on a C×H×W image: the shared geometry of
/// `im2row` / `row2im`. For a transposed convolution the "image" is its output and the "grid"
/// (gridHeight×gridWidth window positions) is its input.
public struct PatchGeometry: Sendable {
    public var channels, height, width, kernel, stride, padding, gridHeight, gridWidth: Int
    public var patchSize: Int { channels &* kernel &* kernel }  // k·k·C, one row of the patch matrix
    public var positions: Int { gridHeight &* gridWidth }       // window positions
    public var imageSize: Int { channels &* height &* width }
}

// The convolutions work on channels-last copies of each image ([H][W][C]): a window's pixels are then
// contiguous runs of C floats, so building the patch matrix is a series of short memory copies instead of
// strided gathers over tiny rows (the NCHW im2col spent a third of a stride-2 convolution's time there).

/// dst[j][i] = src[i][j] (+ bias[j]) for a rows×cols matrix (8×8 register blocks where the CPU has AVX2; see
/// the C target `CTranspose`).
@inline(__always)
func transposeTiled(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                    bias: UnsafePointer<Float>? = nil) {
    transpose_floats(src, dst, rows, cols, bias)
}

/// [C][P] → [P][C] for one image (P = H·W).
@inline(__always)
func channelsLast(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, channels C: Int, positions P: Int) {
    transposeTiled(src, dst, rows: C, cols: P)
}

/// [P][C] → [C][P] for one image, adding `bias[c]` when given.
@inline(__always)
func channelsFirst(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, channels C: Int, positions P: Int,
                   bias: UnsafePointer<Float>? = nil) {
    transposeTiled(src, dst, rows: P, cols: C, bias: bias)
}

/// One channels-last image → its patch matrix: row q (window position) holds the k·k·C values the window at
/// q covers, ordered (ky, kx, c); zeros where it reads padding. Row stride is `g.patchSize`.
@inline(__always)
func im2row(_ g: PatchGeometry, image: UnsafePointer<Float>, rows: UnsafeMutablePointer<Float>) {
    let k = g.kernel, s = g.stride, p = g.padding, H = g.height, W = g.width, C = g.channels
    let K = g.patchSize
    for oy in 0..<g.gridHeight {
        for ox in 0..<g.gridWidth {
            var out = rows + (oy &* g.gridWidth &+ ox) &* K
            for ky in 0..<k {
                let iy = oy &* s &- p &+ ky
                if iy < 0 || iy >= H { out.update(repeating: 0, count: k &* C); out += k &* C; continue }
                for kx in 0..<k {
                    let ix = ox &* s &- p &+ kx
                    if ix < 0 || ix >= W { out.update(repeating: 0, count: C) } else {
                        out.update(from: image + (iy &* W &+ ix) &* C, count: C)
                    }
                    out += C
                }
            }
        }
    }
}

/// The adjoint of `im2row`: adds every patch-matrix row back onto the channels-last image it was read from.
@inline(__always)
func row2im(_ g: PatchGeometry, rows: UnsafePointer<Float>, image: UnsafeMutablePointer<Float>) {
    let k = g.kernel, s = g.stride, p = g.padding, H = g.height, W = g.width, C = g.channels
    let K = g.patchSize
    for oy in 0..<g.gridHeight {
        for ox in 0..<g.gridWidth {
            var src = rows + (oy &* g.gridWidth &+ ox) &* K
            for ky in 0..<k {
                let iy = oy &* s &- p &+ ky
                if iy < 0 || iy >= H { src += k &* C; continue }
                for kx in 0..<k {
                    let ix = ox &* s &- p &+ kx
                    if ix >= 0 && ix < W {
                        let dst = image + (iy &* W &+ ix) &* C
                        for c in 0..<C { dst[c] += src[c] }
                    }
                    src += C
                }
            }
        }
    }
}

/// Sample-major [nb][C][P] → channel-major [C][nb·P], so a group of samples is one wide GEMM operand.
@inline(__always)
func gatherChannelMajor(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, samples nb: Int, channels C: Int, positions P: Int) {
    let ld = nb &* P
    for s in 0..<nb {
        for c in 0..<C {
            let from: UnsafePointer<Float> = src + (s &* C &+ c) &* P
            let to: UnsafeMutablePointer<Float> = dst + (c &* ld &+ s &* P)
            to.update(from: from, count: P)
        }
    }
}

/// Channel-major [C][nb·P] → sample-major [nb][C][P], adding `bias[c]` when given and then applying
/// LeakyReLU(`leakySlope`) when given.
@inline(__always)
func scatterSampleMajor(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, samples nb: Int, channels C: Int,
                        positions P: Int, bias: UnsafePointer<Float>?, leakySlope: Float? = nil) {
    let ld = nb &* P
    for s in 0..<nb {
        for c in 0..<C {
            let o: UnsafeMutablePointer<Float> = dst + (s &* C &+ c) &* P
            let i: UnsafePointer<Float> = src + (c &* ld &+ s &* P)
            let b = bias?[c] ?? 0
            if let a = leakySlope {
                for q in 0..<P { o[q] = leakyReLU(i[q] + b, slope: a) }
            } else if bias != nil {
                for q in 0..<P { o[q] = i[q] + b }
            } else {
                o.update(from: i, count: P)
            }
        }
    }
}

/// Per-worker scratch memory, grown on demand and kept across calls (no allocation per step).
final class Workspace: @unchecked Sendable {
    private var buffers: [[UnsafeMutablePointer<Float>?]]
    private var sizes: [[Int]]
    init(slots: Int) {
        let w = Parallel.workerCount
        buffers = Array(repeating: Array(repeating: nil, count: slots), count: w)
        sizes = Array(repeating: Array(repeating: 0, count: slots), count: w)
    }
    func buffer(worker: Int, slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        if sizes[worker][slot] < count {
            buffers[worker][slot].map(FloatStorage.deallocate)
            buffers[worker][slot] = FloatStorage.allocate(count)
            sizes[worker][slot] = count
        }
        return buffers[worker][slot]!
    }
    deinit { for row in buffers { for b in row { b.map(FloatStorage.deallocate) } } }

    /// Sums the workers' gradient buffers in `slot` (a kernel in patch order, [rows][k][k][channels], followed by
    /// `biasCount` bias gradients) in worker order — a fixed order, so results do not depend on timing — and adds
    /// the total to a PyTorch-layout weight gradient and the bias gradient.
    func addWorkerGradients(slot: Int, workers: Int, rows: Int, channels: Int, kernel: Int,
                            into weightGrad: UnsafeMutablePointer<Float>, bias biasGrad: UnsafeMutablePointer<Float>?, biasCount: Int) {
        let kernelCount = rows * channels * kernel * kernel, count = kernelCount + biasCount
        let total = buffer(worker: 0, slot: slot, count: count)
        for w in 1..<max(1, workers) {
            let other = buffer(worker: w, slot: slot, count: count)
            for i in 0..<count { total[i] += other[i] }
        }
        addKernelFromPatchOrder(total, weightGrad, rows: rows, channels: channels, kernel: kernel)
        if let biasGrad { for o in 0..<biasCount { biasGrad[o] += total[kernelCount + o] } }
    }
}

/// How many samples share one GEMM: enough columns (≈512) for BLAS to run near its peak.
@inline(__always)
func samplesPerGroup(positions: Int) -> Int { max(1, 512 / max(1, positions)) }

/// Kaiming-uniform(a = √5) weights and U(±1/√fan_in) biases: PyTorch's default initialisation.
func pytorchDefaultInit(_ weight: Tensor, _ bias: Tensor?, fanIn: Int, rng: inout RandomGenerator) {
    let bound = Float(1.0 / Double(fanIn).squareRoot())
    rng.fillUniform(weight, -bound, bound)
    if let bias { rng.fillUniform(bias, -bound, bound) }
}

/// Reorders each row of a PyTorch kernel, [rows][C][k][k] → [rows][k][k][C], to match `im2row`'s patch order.
@inline(__always)
func kernelToPatchOrder(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, channels C: Int, kernel k: Int) {
    let kk = k &* k
    for r in 0..<rows {
        let s = src + r &* C &* kk, d = dst + r &* C &* kk
        for c in 0..<C { for t in 0..<kk { d[t &* C &+ c] = s[c &* kk &+ t] } }
    }
}

/// The inverse reordering, accumulating: grad[rows][C][k][k] += src[rows][k][k][C].
@inline(__always)
func addKernelFromPatchOrder(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, channels C: Int, kernel k: Int) {
    let kk = k &* k
    for r in 0..<rows {
        let s = src + r &* C &* kk, d = dst + r &* C &* kk
        for c in 0..<C { for t in 0..<kk { d[c &* kk &+ t] += s[t &* C &+ c] } }
    }
}

/// The link between two convolutions that may pass an activation in oneDNN's blocked layout (see
/// `Conv2d.outputHandoff`). The producer decides per forward pass and records it in `activeBlock`.
final class BlockedHandoff {
    /// 8 or 16: the channel block of oneDNN's preferred activation layout (nChw8c / nChw16c).
    let block: Int
    weak var consumer: Conv2d?
    /// The block in use for the current forward pass, 0 for NCHW.
    var activeBlock = 0
    init(block: Int, consumer: Conv2d) { self.block = block; self.consumer = consumer }
}

/// 2-d convolution, `torch.nn.Conv2d` semantics: weight [out, in, k, k], bias [out].
///
/// Each core takes a slice of the batch; per group of samples it builds the patch matrix from channels-last
/// copies of the images and runs one GEMM against the kernel in patch order.
///
/// ```swift
/// let conv = Conv2d(inChannels: 3, outChannels: 64, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
/// let y = conv.forward(x, training: true)   // [N, 3, 32, 32] → [N, 64, 32, 32]
/// ```
public final class Conv2d: LeakyReLUFusing, LeakyReLUGradientFusing {
    public let inChannels, outChannels, kernelSize, stride, padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?
    private var output: Tensor?
    private var inputGrad: Tensor?
    private let workspace = Workspace(slots: 5)
    /// The flipped weight in `NarrowConvolution`'s layout, for the image gradient of a first layer.
    private var narrowWeightScratch: Tensor?
    /// The weight in patch order [out][k][k][in], refreshed every forward (the optimizer changes the weight).
    private let patchWeight: Tensor
    /// oneDNN's primitives for the last input shape, when this layer runs on oneDNN (`ConvolutionKernels`).
    private var oneDNN: OneDNNConvolution?
    /// Whether the last forward ran on oneDNN (its backward then does too).
    private var forwardUsedOneDNN = false
    /// Set by `Sequential` between two convolutions joined by a fused in-place LeakyReLU: when both run on
    /// oneDNN, the activation (and its gradient) passes between them in oneDNN's channel-blocked layout instead
    /// of being converted to NCHW and back. Only the two layers read that tensor (the LeakyReLU between them
    /// passes it through both ways), which is what makes the private layout safe.
    var outputHandoff: BlockedHandoff?
    var inputHandoff: BlockedHandoff?
    /// Whether the last forward pass handed its output to the next convolution in oneDNN's blocked layout.
    public var handedOutputInBlockedLayout: Bool { (outputHandoff?.activeBlock ?? 0) > 0 }
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

    public func fuseLeakyReLU(negativeSlope: Float) -> Bool {
        fusedLeakyReLUSlope = negativeSlope
        oneDNN = nil
        return true
    }

    public func fuseInputLeakyReLUGradient(negativeSlope: Float) -> Bool {
        inputLeakyReLUSlope = negativeSlope
        return true
    }

    /// oneDNN's primitives for this input shape, or nil to run the BLAS kernels.
    private func oneDNNPlan(for x: Tensor) -> OneDNNConvolution? {
        let (oh, ow) = outputSize(x.shape[2], x.shape[3])
        let inputBlock = inputHandoff?.activeBlock ?? 0
        guard willUseOneDNN(inputHeight: x.shape[2], inputWidth: x.shape[3]) else {
            precondition(inputBlock == 0, "Conv2d: input arrived in oneDNN's layout but this layer runs on BLAS")
            outputHandoff?.activeBlock = 0
            return nil
        }
        var outputBlock = 0
        if let handoff = outputHandoff, outChannels % handoff.block == 0,
           handoff.consumer?.willUseOneDNN(inputHeight: oh, inputWidth: ow) == true {
            outputBlock = handoff.block
        }
        outputHandoff?.activeBlock = outputBlock
        if let plan = oneDNN, plan.shape == x.shape, plan.inputBlock == inputBlock, plan.outputBlock == outputBlock {
            return plan
        }
        oneDNN = OneDNNConvolution(inputShape: x.shape, outChannels: outChannels, kernel: kernelSize, stride: stride,
                                   padding: padding, leakyReLUSlope: fusedLeakyReLUSlope,
                                   inputBlock: inputBlock, outputBlock: outputBlock)
        precondition(oneDNN != nil || (inputBlock == 0 && outputBlock == 0), "oneDNN refused a blocked-layout convolution")
        return oneDNN
    }

    /// Whether a forward pass on an input of this size runs on oneDNN.
    func willUseOneDNN(inputHeight: Int, inputWidth: Int) -> Bool {
        let (oh, ow) = outputSize(inputHeight, inputWidth)
        return ConvolutionKernels.useOneDNN(outputPositions: oh * ow)
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
        if let plan = oneDNNPlan(for: x) {
            forwardUsedOneDNN = true
            plan.forward(x: x.data, weight: weight.value.data, bias: bias?.value.data, y: y.data)
            return y
        }
        forwardUsedOneDNN = false
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
        if forwardUsedOneDNN, let plan = oneDNN {
            if weightGradients {
                plan.backwardWeights(x: x.data, dy: dy.data, weightGrad: weight.grad.data, biasGrad: bias?.grad.data)
            }
            if let dx {
                if narrow {
                    narrowInputGradient(dy, dyBlock: plan.outputBlock, dx)
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
        if let dx, narrow { narrowInputGradient(dy, dyBlock: 0, dx) }
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

    /// dx by `NarrowConvolution`'s kernel (stride 1, ≤ 3 input channels): dx[c][y][x] = Σ_{o, a, b}
    /// dy[o][y + p − (k−1) + a][x + p − (k−1) + b] · w[o][c][k−1−a][k−1−b], a correlation of dy with the flipped
    /// kernel. dy is NCHW (`dyBlock` 0; each sample is blocked into scratch first) or already in oneDNN's
    /// blocked layout with that channel block.
    private func narrowInputGradient(_ dy: Tensor, dyBlock: Int, _ dx: Tensor) {
        let N = dy.shape[0], O = outChannels, C = inChannels, k = kernelSize
        let OH = dy.shape[2], OW = dy.shape[3], H = dx.shape[2], W = dx.shape[3]
        let block = dyBlock == 0 ? 8 : dyBlock
        // narrowWeight[cb][a][b][l/8][c][l%8] = w[cb·block + l][c][k−1−a][k−1−b]
        let narrowWeight = Tensor.reuse(narrowWeightScratch, shape: [O * k * k * C])
        narrowWeightScratch = narrowWeight
        let w = weight.value.data, nw = narrowWeight.data
        for o in 0..<O {
            let cb = o / block, l = o % block
            for a in 0..<k { for b in 0..<k { for c in 0..<C {
                let tap = ((cb * k + a) * k + b) * block * C
                nw[tap + narrowWeightIndex(channelInBlock: l, out: c, outs: C)] = w[((o * C + c) * k + k - 1 - a) * k + k - 1 - b]
            } } }
        }
        let dyp = dy.data, dxp = dx.data, ws = workspace, offset = padding - (k - 1)
        let dyImage = O * OH * OW, dxImage = C * H * W
        Parallel.forEachChunk(count: N) { range, worker in
            for n in range {
                var image = UnsafePointer(dyp + n * dyImage)
                if dyBlock == 0 {
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
public final class ConvTranspose2d: Layer {
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
    /// The phase kernels in `NarrowConvolution`'s layout, for an image layer (≤ 3 output channels).
    private var narrowWeightScratch: Tensor?
    /// The batch norm right after this layer (set by `Sequential`). In eval mode the phase (or Winograd) forward
    /// folds its affine map (running statistics) into the weights and the bias, and its fused LeakyReLU into the
    /// output pass, so that the batch norm passes the result through: one memory pass over G's largest
    /// activations fewer per generated batch.
    weak var followingBatchNorm: BatchNorm?
    /// Per output channel, for the phase and Winograd forward passes: the scale of a folded batch norm (else 1)
    /// and the bias after it.
    let foldedScale: Tensor, foldedBias: Tensor
    /// Whether the forward pass runs as one ordinary convolution per output phase: measured faster for wide
    /// outputs only (with 3 output channels, G's last layer, the GEMM would be 3 columns wide).
    let usesPhases: Bool

    public init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, bias: Bool = true, rng: inout RandomGenerator) {
        precondition(outputPadding < stride, "ConvTranspose2d: outputPadding must be smaller than stride")
        self.inChannels = inChannels; self.outChannels = outChannels; self.kernelSize = kernelSize
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        weight = Parameter(Tensor(shape: [inChannels, outChannels, kernelSize, kernelSize]))
        self.bias = bias ? Parameter(Tensor(shape: [outChannels])) : nil
        usesPhases = kernelSize % stride == 0 && outChannels >= 64
        foldedScale = Tensor(shape: [outChannels]); foldedBias = Tensor(shape: [outChannels])
        // PyTorch computes fan_in from weight.size(1), which is out_channels here.
        pytorchDefaultInit(weight.value, self.bias?.value, fanIn: outChannels * kernelSize * kernelSize, rng: &rng)
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
        let foldsBatchNorm = usesPhases && !training && followingBatchNorm != nil
        followingBatchNorm?.appliedByPreviousLayer = foldsBatchNorm
        if usesWinograd(outputHeight: g.height, outputWidth: g.width) {
            forwardWinograd(x, y, foldingBatchNorm: foldsBatchNorm ? followingBatchNorm : nil)
            return y
        }
        if usesPhases { forwardByPhases(x, y, foldingBatchNorm: foldsBatchNorm ? followingBatchNorm : nil); return y }
        if kernelSize % stride == 0 && NarrowConvolution.applies(resultChannels: outChannels, reducedChannels: C) {
            forwardNarrow(x, y)
            return y
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
                let tap = (((c / block) * T + a) * T + b) * block * O
                phase[tap + narrowWeightIndex(channelInBlock: c % block, out: o, outs: O)] =
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
                if let bp { for o in 0..<O { let plane = out + o * OH * OW, b = bp[o]; for i in 0..<OH * OW { plane[i] += b } } }
            }
        }
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW += x·patches(dy); db += Σ dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("ConvTranspose2d.backward before forward") }
        let g = geometry(x), N = x.shape[0], C = inChannels, P = g.positions, K = g.patchSize
        let dx: Tensor? = inputGradient ? Tensor.reuse(inputGrad, shape: x.shape) : nil
        if let dx { inputGrad = dx }
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

// MARK: - Naive reference kernels (direct loops), used by the tests to check the fast paths.

/// Direct 2-d convolution: y[n,o,oy,ox] = b[o] + Σ w[o,c,ky,kx]·x[n,c,oy·s−p+ky, ox·s−p+kx].
public func naiveConv2d(x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int) -> Tensor {
    let N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    let O = weight.shape[0], k = weight.shape[2]
    let OH = (H + 2 * padding - k) / stride + 1, OW = (W + 2 * padding - k) / stride + 1
    let y = Tensor(shape: [N, O, OH, OW])
    for n in 0..<N { for o in 0..<O { for oy in 0..<OH { for ox in 0..<OW {
        var s = Double(bias?[o] ?? 0)
        for c in 0..<C { for ky in 0..<k { for kx in 0..<k {
            let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
            if iy >= 0 && iy < H && ix >= 0 && ix < W {
                s += Double(weight[((o * C + c) * k + ky) * k + kx]) * Double(x[((n * C + c) * H + iy) * W + ix])
            }
        } } }
        y[((n * O + o) * OH + oy) * OW + ox] = Float(s)
    } } } }
    return y
}

/// Direct transposed convolution: each input pixel scatters w[c,o,:,:]·x into the output.
public func naiveConvTranspose2d(x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int, outputPadding: Int) -> Tensor {
    let N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    let O = weight.shape[1], k = weight.shape[2]
    let OH = (H - 1) * stride - 2 * padding + k + outputPadding, OW = (W - 1) * stride - 2 * padding + k + outputPadding
    var acc = [Double](repeating: 0, count: N * O * OH * OW)
    for n in 0..<N { for c in 0..<C { for iy in 0..<H { for ix in 0..<W {
        let v = Double(x[((n * C + c) * H + iy) * W + ix])
        for o in 0..<O { for ky in 0..<k { for kx in 0..<k {
            let oy = iy * stride - padding + ky, ox = ix * stride - padding + kx
            if oy >= 0 && oy < OH && ox >= 0 && ox < OW {
                acc[((n * O + o) * OH + oy) * OW + ox] += v * Double(weight[((c * O + o) * k + ky) * k + kx])
            }
        } } }
    } } } }
    let y = Tensor(shape: [N, O, OH, OW])
    for i in 0..<acc.count { y[i] = Float(acc[i] + Double(bias?[(i / (OH * OW)) % O] ?? 0)) }
    return y
}
