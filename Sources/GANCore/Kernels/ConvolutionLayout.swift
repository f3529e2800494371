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

