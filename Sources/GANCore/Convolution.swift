import Foundation

/// Where a k×k window with stride and padding lands on a C×H×W image: the shared geometry of
/// `im2col` / `col2im`. For a transposed convolution the "image" is its output and the "grid"
/// (outH×outW window positions) is its input.
public struct PatchGeometry: Sendable {
    public var channels, height, width, kernel, stride, padding, gridHeight, gridWidth: Int
    public var rows: Int { channels &* kernel &* kernel }      // C·k·k
    public var positions: Int { gridHeight &* gridWidth }       // window positions
    public var imageSize: Int { channels &* height &* width }
}

/// The window positions whose input index o·stride − padding + k lies inside 0..<size: a half-open range,
/// so the inner loops of im2col and col2im run without bounds tests.
@inline(__always)
func validRange(kernelOffset k: Int, stride s: Int, padding p: Int, size: Int, positions: Int) -> (Int, Int) {
    // first o with o·s − p + k ≥ 0, and first o with o·s − p + k ≥ size
    let lo = max(0, (p - k + s - 1) / s)
    let hi = min(positions, max(0, (size + p - k + s - 1) / s))
    return (lo, max(lo, hi))
}

/// Copies every k×k window of one image into the columns of `col` (row r = (c, ky, kx), column = position),
/// zeros where the window reads padding. `ld` is the row stride of `col`.
@inline(__always)
func im2col(_ g: PatchGeometry, image: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>, ld: Int) {
    let k = g.kernel, s = g.stride, p = g.padding, H = g.height, W = g.width
    let OH = g.gridHeight, OW = g.gridWidth
    for c in 0..<g.channels {
        let plane = image + c &* H &* W
        for ky in 0..<k {
            let (oy0, oy1) = validRange(kernelOffset: ky, stride: s, padding: p, size: H, positions: OH)
            for kx in 0..<k {
                let (ox0, ox1) = validRange(kernelOffset: kx, stride: s, padding: p, size: W, positions: OW)
                let row = col + ((c &* k &+ ky) &* k &+ kx) &* ld
                if oy0 > 0 { row.update(repeating: 0, count: oy0 &* OW) }
                if oy1 < OH { (row + oy1 &* OW).update(repeating: 0, count: (OH &- oy1) &* OW) }
                for oy in oy0..<oy1 {
                    let out = row + oy &* OW
                    let offset: Int = (oy &* s &- p &+ ky) &* W &+ (kx &- p)
                    let src = plane + offset   // src[ox·s] is input column ox·s − p + kx
                    for ox in 0..<ox0 { out[ox] = 0 }
                    if s == 1 {
                        (out + ox0).update(from: src + ox0, count: ox1 &- ox0)
                    } else {
                        for ox in ox0..<ox1 { out[ox] = src[ox &* s] }
                    }
                    for ox in ox1..<OW { out[ox] = 0 }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: adds each column entry back into the image position it was read from.
/// `image` must be zeroed (or hold values to accumulate onto).
@inline(__always)
func col2im(_ g: PatchGeometry, col: UnsafePointer<Float>, ld: Int, image: UnsafeMutablePointer<Float>) {
    let k = g.kernel, s = g.stride, p = g.padding, H = g.height, W = g.width
    let OH = g.gridHeight, OW = g.gridWidth
    for c in 0..<g.channels {
        let plane = image + c &* H &* W
        for ky in 0..<k {
            let (oy0, oy1) = validRange(kernelOffset: ky, stride: s, padding: p, size: H, positions: OH)
            for kx in 0..<k {
                let (ox0, ox1) = validRange(kernelOffset: kx, stride: s, padding: p, size: W, positions: OW)
                let row = col + ((c &* k &+ ky) &* k &+ kx) &* ld
                for oy in oy0..<oy1 {
                    let offset: Int = (oy &* s &- p &+ ky) &* W &+ (kx &- p)
                    let dst = plane + offset
                    let src = row + oy &* OW
                    if s == 1 {
                        for ox in ox0..<ox1 { dst[ox] += src[ox] }
                    } else {
                        for ox in ox0..<ox1 { dst[ox &* s] += src[ox] }
                    }
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

/// Channel-major [C][nb·P] → sample-major [nb][C][P], adding `bias[c]` when given.
@inline(__always)
func scatterSampleMajor(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, samples nb: Int, channels C: Int, positions P: Int, bias: UnsafePointer<Float>?) {
    let ld = nb &* P
    for s in 0..<nb {
        for c in 0..<C {
            let o: UnsafeMutablePointer<Float> = dst + (s &* C &+ c) &* P
            let i: UnsafePointer<Float> = src + (c &* ld &+ s &* P)
            if let bias { let b = bias[c]; for q in 0..<P { o[q] = i[q] + b } } else { o.update(from: i, count: P) }
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
            buffers[worker][slot]?.deallocate()
            buffers[worker][slot] = .allocate(capacity: count)
            sizes[worker][slot] = count
        }
        return buffers[worker][slot]!
    }
    deinit { for row in buffers { for b in row { b?.deallocate() } } }
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

/// 2-d convolution, `torch.nn.Conv2d` semantics: weight [out, in, k, k], bias [out].
///
/// Forward is im2col followed by one GEMM per group of samples; each core takes a slice of the batch.
///
/// ```swift
/// let conv = Conv2d(inChannels: 3, outChannels: 64, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
/// let y = conv.forward(x, training: true)   // [N, 3, 32, 32] → [N, 64, 32, 32]
/// ```
public final class Conv2d: Layer {
    public let inChannels, outChannels, kernelSize, stride, padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?
    private var output: Tensor?
    private var inputGrad: Tensor?
    private let workspace = Workspace(slots: 4)

    public init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout RandomGenerator) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
        weight = Parameter(Tensor(shape: [outChannels, inChannels, kernelSize, kernelSize]))
        self.bias = bias ? Parameter(Tensor(shape: [outChannels])) : nil
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

    // x [N, Cin, H, W] → y [N, Cout, OH, OW]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == inChannels, "Conv2d expects [N, \(inChannels), H, W], got \(x.shape)")
        let g = geometry(x), N = x.shape[0], O = outChannels, P = g.positions, R = g.rows
        let y = Tensor.reuse(output, shape: [N, O, g.gridHeight, g.gridWidth])
        output = y; input = x
        let group = samplesPerGroup(positions: P)
        let xp = x.data, yp = y.data, wp = weight.value.data, bp = bias?.value.data, ws = workspace
        Parallel.forEachChunk(count: N) { range, worker in
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let col = ws.buffer(worker: worker, slot: 0, count: R * cols)
                for s in 0..<nb { im2col(g, image: xp + (n + s) * g.imageSize, col: col + s * P, ld: cols) }
                let tmp = ws.buffer(worker: worker, slot: 1, count: O * cols)
                gemm(transA: false, transB: false, m: O, n: cols, k: R, a: wp, lda: R, b: col, ldb: cols, c: tmp, ldc: cols)
                scatterSampleMajor(tmp, yp + n * O * P, samples: nb, channels: O, positions: P, bias: bp)
                n += nb
            }
        }
        return y
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW [Cout, Cin·k·k] += dy·colᵀ; db += Σ dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        let g = geometry(x), N = x.shape[0], O = outChannels, P = g.positions, R = g.rows
        let dx: Tensor? = inputGradient ? Tensor.reuse(inputGrad, shape: x.shape) : nil
        if let dx { inputGrad = dx; dx.fill(0) }
        let group = samplesPerGroup(positions: P)
        let xp = x.data, dyp = dy.data, wp = weight.value.data, dxp = dx?.data, ws = workspace
        let hasBias = bias != nil
        Parallel.forEachChunk(count: N) { range, worker in
            let dW = ws.buffer(worker: worker, slot: 2, count: O * R + O)
            if weightGradients { dW.update(repeating: 0, count: O * R + O) }
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let dyT = ws.buffer(worker: worker, slot: 1, count: O * cols)
                gatherChannelMajor(dyp + n * O * P, dyT, samples: nb, channels: O, positions: P)
                let col = ws.buffer(worker: worker, slot: 0, count: R * cols)
                if weightGradients {
                    for s in 0..<nb { im2col(g, image: xp + (n + s) * g.imageSize, col: col + s * P, ld: cols) }
                    gemm(transA: false, transB: true, m: O, n: R, k: cols, a: dyT, lda: cols, b: col, ldb: cols,
                         beta: 1, c: dW, ldc: R)
                    if hasBias {
                        let db = dW + O * R
                        for o in 0..<O { var acc: Float = 0; let r = dyT + o * cols; for q in 0..<cols { acc += r[q] }; db[o] += acc }
                    }
                }
                if let dxp {
                    gemm(transA: true, transB: false, m: R, n: cols, k: O, a: wp, lda: R, b: dyT, ldb: cols, c: col, ldc: cols)
                    for s in 0..<nb { col2im(g, col: col + s * P, ld: cols, image: dxp + (n + s) * g.imageSize) }
                }
                n += nb
            }
        }
        if weightGradients {
            for w in 0..<min(Parallel.workerCount, N) {
                let dW = ws.buffer(worker: w, slot: 2, count: O * R + O)
                let gw = weight.grad.data
                for i in 0..<(O * R) { gw[i] += dW[i] }
                if let gb = bias?.grad.data { for o in 0..<O { gb[o] += dW[O * R + o] } }
            }
        }
        return dx
    }
}

/// Transposed 2-d convolution, `torch.nn.ConvTranspose2d` semantics: weight [in, out, k, k], bias [out],
/// output size (H − 1)·stride − 2·padding + k + outputPadding.
///
/// Its forward pass is the convolution's backward-data pass: one GEMM to columns, then col2im.
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
    private let workspace = Workspace(slots: 4)

    public init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, bias: Bool = true, rng: inout RandomGenerator) {
        precondition(outputPadding < stride, "ConvTranspose2d: outputPadding must be smaller than stride")
        self.inChannels = inChannels; self.outChannels = outChannels; self.kernelSize = kernelSize
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        weight = Parameter(Tensor(shape: [inChannels, outChannels, kernelSize, kernelSize]))
        self.bias = bias ? Parameter(Tensor(shape: [outChannels])) : nil
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
        let g = geometry(x), N = x.shape[0], C = inChannels, P = g.positions, R = g.rows
        let y = Tensor.reuse(output, shape: [N, outChannels, g.height, g.width])
        output = y; input = x
        y.fill(0)
        let group = samplesPerGroup(positions: P)
        let xp = x.data, yp = y.data, wp = weight.value.data, ws = workspace
        let OP = g.height * g.width, O = outChannels
        Parallel.forEachChunk(count: N) { range, worker in
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let xT = ws.buffer(worker: worker, slot: 1, count: C * cols)
                gatherChannelMajor(xp + n * C * P, xT, samples: nb, channels: C, positions: P)
                let col = ws.buffer(worker: worker, slot: 0, count: R * cols)
                gemm(transA: true, transB: false, m: R, n: cols, k: C, a: wp, lda: R, b: xT, ldb: cols, c: col, ldc: cols)
                for s in 0..<nb { col2im(g, col: col + s * P, ld: cols, image: yp + (n + s) * g.imageSize) }
                n += nb
            }
            if let b = self.bias?.value.data {
                for n in range { for o in 0..<O { let v = b[o], p = yp + (n * O + o) * OP; for q in 0..<OP { p[q] += v } } }
            }
        }
        return y
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW [Cin, Cout·k·k] += x·colᵀ; db += Σ dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("ConvTranspose2d.backward before forward") }
        let g = geometry(x), N = x.shape[0], C = inChannels, P = g.positions, R = g.rows
        let dx: Tensor? = inputGradient ? Tensor.reuse(inputGrad, shape: x.shape) : nil
        if let dx { inputGrad = dx }
        let group = samplesPerGroup(positions: P)
        let xp = x.data, dyp = dy.data, wp = weight.value.data, dxp = dx?.data, ws = workspace
        let O = outChannels, OP = g.height * g.width, hasBias = bias != nil
        Parallel.forEachChunk(count: N) { range, worker in
            let dW = ws.buffer(worker: worker, slot: 2, count: C * R + O)
            if weightGradients { dW.update(repeating: 0, count: C * R + O) }
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n), cols = nb * P
                let col = ws.buffer(worker: worker, slot: 0, count: R * cols)
                for s in 0..<nb { im2col(g, image: dyp + (n + s) * g.imageSize, col: col + s * P, ld: cols) }
                let xT = ws.buffer(worker: worker, slot: 1, count: C * cols)
                if weightGradients {
                    gatherChannelMajor(xp + n * C * P, xT, samples: nb, channels: C, positions: P)
                    gemm(transA: false, transB: true, m: C, n: R, k: cols, a: xT, lda: cols, b: col, ldb: cols,
                         beta: 1, c: dW, ldc: R)
                }
                if let dxp {
                    gemm(transA: false, transB: false, m: C, n: cols, k: R, a: wp, lda: R, b: col, ldb: cols, c: xT, ldc: cols)
                    scatterSampleMajor(xT, dxp + n * C * P, samples: nb, channels: C, positions: P, bias: nil)
                }
                n += nb
            }
            if weightGradients && hasBias {
                let db = dW + C * R
                for n in range { for o in 0..<O { var acc: Float = 0; let p = dyp + (n * O + o) * OP; for q in 0..<OP { acc += p[q] }; db[o] += acc } }
            }
        }
        if weightGradients {
            for w in 0..<min(Parallel.workerCount, N) {
                let dW = ws.buffer(worker: w, slot: 2, count: C * R + O)
                let gw = weight.grad.data
                for i in 0..<(C * R) { gw[i] += dW[i] }
                if let gb = bias?.grad.data { for o in 0..<O { gb[o] += dW[C * R + o] } }
            }
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
