import Foundation
import XCTest
import GANCore

/// Reads a committed fixture made by `tools/make_reference_fixtures.py`.
func fixture(_ name: String) throws -> [String: SafeTensors.Entry] {
    guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
        throw ConfigFailure("fixture \(name).safetensors is missing: run tools/make_reference_fixtures.py")
    }
    return try SafeTensors.read(from: url)
}

struct ConfigFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension Dictionary where Key == String, Value == SafeTensors.Entry {
    func tensor(_ name: String, file: StaticString = #filePath, line: UInt = #line) -> Tensor {
        guard let e = self[name] else {
            XCTFail("fixture tensor \(name) missing", file: file, line: line)
            return Tensor(shape: [0])
        }
        return Tensor(shape: e.shape, values: e.values)
    }
}

/// Asserts max|a − b| ≤ rtol·max(|b|) + atol elementwise over the whole tensor.
func assertClose(_ a: Tensor, _ b: Tensor, rtol: Float = 1e-4, atol: Float = 1e-6, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): \(a.count) vs \(b.count) values", file: file, line: line)
    guard a.count == b.count else { return }
    var worst: Float = 0
    for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
    let limit = rtol * b.maxAbs() + atol
    XCTAssert(worst <= limit, "\(what): max abs difference \(worst) exceeds \(limit)", file: file, line: line)
}

/// Copies values into a tensor (shapes must hold the same count).
func load(_ dst: Tensor, _ src: Tensor, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(dst.count, src.count, "load: shapes \(dst.shape) vs \(src.shape)", file: file, line: line)
    if dst.count == src.count { dst.copy(from: src) }
}

func randomTensor(_ shape: [Int], _ rng: inout RandomGenerator, scale: Float = 1) -> Tensor {
    let t = Tensor(shape: shape)
    rng.fillNormal(t, std: scale)
    return t
}

/// Finite-difference check of a layer: L = Σ y·w for a fixed random w; compares the analytic dL/dx and
/// dL/dθ from `backward` with central differences (step h, 1e-2 by default; loss in double) at up to `samples` entries each.
func gradientCheck(_ layer: Layer, input x: Tensor, training: Bool = true, samples: Int = 24,
                   tolerance: Double = 1e-2, step: Float = 1e-2, _ what: String, prepare: () -> Void = {},
                   file: StaticString = #filePath, line: UInt = #line) {
    for failure in gradientMismatches(layer, input: x, training: training, samples: samples, tolerance: tolerance, step: step, what, prepare: prepare) {
        XCTFail(failure, file: file, line: line)
    }
}

/// The mismatches `gradientCheck` reports (empty when the gradients agree).
func gradientMismatches(_ layer: Layer, input x: Tensor, training: Bool = true, samples: Int = 24,
                        tolerance: Double = 1e-2, step h: Float = 1e-2, _ what: String, prepare: () -> Void = {}) -> [String] {
    var failures: [String] = []
    var rng = RandomGenerator(seed: 99)
    prepare()
    let y0 = layer.forward(x.clone(), training: training)
    let w = randomTensor(y0.shape, &rng)
    for (_, p) in layer.namedParameters { p.grad.fill(0) }
    prepare()
    _ = layer.forward(x.clone(), training: training)
    // A copy of w: in-place layers overwrite the gradient they are given.
    guard let dx = layer.backward(w.clone(), weightGradients: true, inputGradient: true)?.clone() else {
        return ["\(what): no input gradient"]
    }
    func loss() -> Double {
        prepare()
        let y = layer.forward(x.clone(), training: training)   // a copy: in-place layers overwrite their input
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(w[i]) }
        return s
    }
    func check(_ target: Tensor, _ analytic: Tensor, _ name: String) {
        let scale = max(1.0, Double(analytic.maxAbs()))
        var pick = RandomGenerator(seed: 7)
        let indices = target.count <= samples ? Array(0..<target.count) : (0..<samples).map { _ in Int(pick.next() % UInt64(target.count)) }
        for i in indices {
            let old = target[i]
            target[i] = old + h; let lp = loss()
            target[i] = old - h; let lm = loss()
            target[i] = old
            let numeric = (lp - lm) / (2 * Double(h))
            let err = abs(numeric - Double(analytic[i]))
            if err > tolerance * scale {
                failures.append("\(what) \(name)[\(i)]: analytic \(analytic[i]) vs numeric \(numeric)")
            }
        }
    }
    check(x, dx, "dx")
    for (name, p) in layer.namedParameters { check(p.value, p.grad.clone(), "d\(name)") }
    return failures
}

/// Loads a fixture case's parameters and buffers into `layer`, runs forward and backward, and compares
/// y, dx, every parameter gradient and every buffer afterwards with PyTorch's (`tools/make_reference_fixtures.py`).
func checkAgainstReference(_ ref: [String: SafeTensors.Entry], _ prefix: String, _ layer: Layer, training: Bool = true,
                           note: String = "", file: StaticString = #filePath, line: UInt = #line) {
    for (name, p) in layer.namedParameters { load(p.value, ref.tensor("\(prefix).\(name)")); p.grad.fill(0) }
    for b in layer.namedBuffers where !b.isInteger { load(b.tensor, ref.tensor("\(prefix).\(b.name)")) }
    let y = layer.forward(ref.tensor("\(prefix).x"), training: training)
    assertClose(y, ref.tensor("\(prefix).y"), "\(prefix) y\(note)", file: file, line: line)
    let dy = ref.tensor("\(prefix).dy"); dy.reshape(y.shape)
    let dx = layer.backward(dy, weightGradients: true, inputGradient: true)!
    assertClose(dx, ref.tensor("\(prefix).dx"), "\(prefix) dx\(note)", file: file, line: line)
    for (name, p) in layer.namedParameters {
        assertClose(p.grad, ref.tensor("\(prefix).grad.\(name)"), "\(prefix) grad \(name)\(note)", file: file, line: line)
    }
    for b in layer.namedBuffers where !b.isInteger {
        assertClose(b.tensor, ref.tensor("\(prefix).after.\(b.name)"), "\(prefix) \(b.name)\(note)", file: file, line: line)
    }
}

/// Central differences (h = 1e-2, loss in double) of a loss of logits `x` against its analytic gradient.
func assertLossGradient(_ x: Tensor, _ value: (Tensor) -> Double, _ gradient: () -> Tensor, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    _ = value(x)
    let g = gradient().clone()
    for i in 0..<x.count {
        let old = x[i], h: Float = 1e-2
        x[i] = old + h; let lp = value(x)
        x[i] = old - h; let lm = value(x)
        x[i] = old
        XCTAssertEqual((lp - lm) / Double(2 * h), Double(g[i]), accuracy: 1e-4, "\(what) d/dx[\(i)]", file: file, line: line)
    }
}

/// Runs `body` once per convolution kernel this machine has: BLAS always, oneDNN where its library loads
/// (a machine without it says so once and checks BLAS only). Restores the previous choice afterwards.
func forEachConvolutionKernel(_ body: (ConvolutionKernels) throws -> Void) rethrows {
    let saved = KernelSettings.convolution
    defer { KernelSettings.convolution = saved }
    var kernels: [ConvolutionKernels] = [.blas]
    if ConvolutionKernels.oneDNNAvailable { kernels.append(.onednn) } else { reportOneDNNMissing }
    for kernel in kernels {
        KernelSettings.convolution = kernel
        try body(kernel)
    }
}

private let reportOneDNNMissing: Void = print("note: oneDNN not available (\(ConvolutionKernels.oneDNNUnavailableReason)); convolution tests check the BLAS kernels only")
