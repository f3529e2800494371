import XCTest
import GANCore
import CWinograd

/// `ConvTranspose2d` by Winograd tiles (4×4 kernels, stride 2, ≥ 32 output channels, channels in multiples of 8)
/// against the naive kernel and against the same layer with `KernelSettings.winograd` off (phase GEMMs, patch GEMMs).
final class WinogradTests: XCTestCase {
    var rng = RandomGenerator(seed: 13)

    /// (in, out, padding, output padding, size): DCGAN's shapes, odd phase sizes (partial tiles), padding 0 and 2.
    let shapes = [(16, 64, 1, 0, 4), (16, 32, 1, 0, 4), (8, 32, 1, 1, 5), (8, 64, 1, 0, 5), (8, 72, 1, 1, 3), (16, 64, 0, 0, 3), (8, 64, 2, 1, 6), (24, 64, 1, 0, 1)]

    private var saved = KernelSettings.winograd
    override func setUp() { saved = KernelSettings.winograd }
    override func tearDown() { KernelSettings.winograd = saved }

    /// y, dx, dW, db with Winograd on or off.
    func run(_ conv: ConvTranspose2d, _ x: Tensor, _ dy: Tensor, winograd: Bool) -> [Tensor] {
        KernelSettings.winograd = winograd
        conv.weight.grad.fill(0); conv.bias!.grad.fill(0)
        let y = conv.forward(x, training: true).clone()
        let dx = conv.backward(dy, weightGradients: true, inputGradient: true)!.clone()
        return [y, dx, conv.weight.grad.clone(), conv.bias!.grad.clone()]
    }

    func testAgreesWithPhaseGEMMsAndNaive() {
        for n in [1, 3, 17] {
            for (c, o, p, op, h) in shapes {
                let conv = ConvTranspose2d(inChannels: c, outChannels: o, kernelSize: 4, stride: 2, padding: p, outputPadding: op, rng: &rng)
                let x = randomTensor([n, c, h, h], &rng)
                let (oh, ow) = conv.outputSize(h, h)
                let dy = randomTensor([n, o, oh, ow], &rng)
                let fast = run(conv, x, dy, winograd: true), reference = run(conv, x, dy, winograd: false)
                let what = "n\(n) c\(c) o\(o) p\(p) op\(op) h\(h)"
                for (i, name) in ["y", "dx", "dW", "db"].enumerated() {
                    assertClose(fast[i], reference[i], rtol: 1e-4, atol: 1e-5, "Winograd vs phase GEMMs \(name), \(what)")
                }
                assertClose(fast[0], naiveConvTranspose2d(x: x, weight: conv.weight.value, bias: conv.bias?.value,
                                                          stride: 2, padding: p, outputPadding: op),
                            rtol: 1e-4, atol: 1e-5, "Winograd vs naive y, \(what)")
            }
        }
    }

    /// Only dx, or only dW: each pass is complete on its own (they share workspace slots).
    func testInputAndWeightGradientsApart() {
        let conv = ConvTranspose2d(inChannels: 16, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
        let x = randomTensor([5, 16, 4, 4], &rng), dy = randomTensor([5, 64, 8, 8], &rng)
        let both = run(conv, x, dy, winograd: true)
        conv.weight.grad.fill(0); conv.bias!.grad.fill(0)
        _ = conv.forward(x, training: true)
        let dx = conv.backward(dy, weightGradients: false, inputGradient: true)!.clone()
        XCTAssertEqual(conv.weight.grad.maxAbs(), 0, "dx only must not touch dW")
        assertClose(dx, both[1], rtol: 0, atol: 0, "dx alone")
        XCTAssertNil(conv.backward(dy, weightGradients: true, inputGradient: false))
        assertClose(conv.weight.grad, both[2], rtol: 0, atol: 0, "dW alone")
    }

    /// Finite differences through the Winograd path itself (the gradient checks elsewhere use layers too small for it).
    func testGradientCheck() {
        let conv = ConvTranspose2d(inChannels: 8, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
        gradientCheck(conv, input: randomTensor([2, 8, 3, 3], &rng), "ConvTranspose2d by Winograd tiles")
    }

    /// y, dx, dW and db of a `Conv2d` on Winograd tiles against the same layer on patch GEMMs (tiles off; the caller
    /// forces BLAS), and y against the naive kernel; checks the path each run took.
    func compareTilesWithPatchGEMMs(_ conv: Conv2d, _ x: Tensor, _ dy: Tensor, _ what: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        func run(winograd: Bool) -> [Tensor] {
            KernelSettings.winograd = winograd
            conv.weight.grad.fill(0); conv.bias!.grad.fill(0)
            let y = conv.forward(x, training: true).clone()
            XCTAssertEqual(conv.lastKernelPath, winograd ? .winograd : .patchGEMM, what, file: file, line: line)
            let dx = conv.backward(dy, weightGradients: true, inputGradient: true)!.clone()
            return [y, dx, conv.weight.grad.clone(), conv.bias!.grad.clone()]
        }
        let fast = run(winograd: true), reference = run(winograd: false)
        for (i, name) in ["y", "dx", "dW", "db"].enumerated() {
            assertClose(fast[i], reference[i], rtol: 1e-4, atol: 1e-5, "tiles vs patch GEMMs \(name), \(what)", file: file, line: line)
        }
        assertClose(fast[0], naiveConv2d(x: x, weight: conv.weight.value, bias: conv.bias?.value, stride: conv.stride, padding: conv.padding),
                    rtol: 1e-4, atol: 1e-5, "tiles vs naive y, \(what)", file: file, line: line)
    }

    /// A 4×4, stride-2 `Conv2d` with ≥ 64 input channels, where it would run on patch GEMMs, runs on its mirror's tiles
    /// (`Conv2d+Winograd.swift`): y, dx,
    /// dW and db against the same layer on patch GEMMs (Winograd off, BLAS) and y against the naive kernel.
    func testConv2dOnTheMirrorsTilesAgreesWithPatchGEMMs() {
        let savedKernels = KernelSettings.convolution
        defer { KernelSettings.convolution = savedKernels }
        KernelSettings.convolution = .blas
        // (in, out, padding, size): D.6/D.10 of `--preset cnn`, padding 0 and 2, a 2×2 input, partial tiles (size 6).
        for (c, o, p, h) in [(64, 64, 1, 8), (128, 16, 1, 4), (64, 8, 0, 6), (72, 24, 2, 6), (64, 64, 1, 2)] {
            for n in [1, 3, 17] {
                let conv = Conv2d(inChannels: c, outChannels: o, kernelSize: 4, stride: 2, padding: p, rng: &rng)
                let x = randomTensor([n, c, h, h], &rng)
                let (oh, ow) = conv.outputSize(h, h)
                let dy = randomTensor([n, o, oh, ow], &rng)
                compareTilesWithPatchGEMMs(conv, x, dy, "n\(n) c\(c) o\(o) p\(p) h\(h)")
            }
        }
        KernelSettings.winograd = true
        let narrow = Conv2d(inChannels: 32, outChannels: 32, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
        XCTAssertNotEqual(narrow.kernelPath(inputHeight: 8, inputWidth: 8), .winograd, "32 input channels stay off the tiles")
        let odd = Conv2d(inChannels: 64, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
        XCTAssertNotEqual(odd.kernelPath(inputHeight: 7, inputWidth: 7), .winograd, "an odd size has no exact mirror")
        if ConvolutionKernels.oneDNNAvailable {
            KernelSettings.convolution = .auto
            XCTAssertEqual(odd.kernelPath(inputHeight: 8, inputWidth: 8), .oneDNN, "where oneDNN loads it runs every size")
        }
    }

    /// conv → in-place LeakyReLU → 4×4 stride-2 conv on tiles → in-place LeakyReLU → 3×3 conv on F(2×2, 3×3) tiles →
    /// in-place LeakyReLU, spectrally normalised (D's pattern): the tiles' layers write their activation and apply
    /// their input's gradient rule; everything must equal the same network with the tiles off.
    func testConv2dOnTilesWithFusedLeakyReLUs() {
        let savedKernels = KernelSettings.convolution
        defer { KernelSettings.convolution = savedKernels }
        KernelSettings.convolution = .blas   // the tiles run where oneDNN does not
        func make() -> (Sequential, [SpectralNorm]) {
            var r = RandomGenerator(seed: 21)
            let layers = [SpectralNorm(Conv2d(inChannels: 8, outChannels: 64, kernelSize: 3, stride: 1, padding: 1, rng: &r), rng: &r),
                          SpectralNorm(Conv2d(inChannels: 64, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &r), rng: &r),
                          SpectralNorm(Conv2d(inChannels: 64, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &r), rng: &r)]
            return (Sequential([layers[0], LeakyReLU(0.1, inPlace: true), layers[1], LeakyReLU(0.1, inPlace: true), layers[2],
                                LeakyReLU(0.1, inPlace: true)]), layers)
        }
        let x = randomTensor([9, 8, 8, 8], &rng), dy = randomTensor([9, 16, 4, 4], &rng)
        var results: [[Tensor]] = []
        for winograd in [true, false] {
            KernelSettings.winograd = winograd
            let (net, layers) = make()
            let y = net.forward(x, training: true).clone()
            XCTAssertEqual((layers[1].inner as! Conv2d).lastKernelPath == .winograd, winograd)
            XCTAssertEqual((layers[2].inner as! Conv2d).lastKernelPath == .winograd, winograd, "3×3 on 4×4: F(2×2, 3×3)")
            let dx = net.backward(dy.clone(), weightGradients: true, inputGradient: true)!.clone()
            results.append([y, dx] + layers.flatMap { [$0.weightOrig.grad.clone(), $0.inner.bias!.grad.clone()] })
        }
        for i in results[0].indices {
            assertClose(results[0][i], results[1][i], rtol: 1e-4, atol: 1e-5, "tiles vs no tiles, result \(i)")
        }
    }

    /// A 3×3 stride-1 `Conv2d` where it would run on patch GEMMs runs on F(2×2, 3×3) tiles: y, dx, dW, db against the
    /// patch GEMMs (tiles off) and y against the naive kernel; odd sizes (partial tiles), 1×1 inputs, D.12's shape.
    func testConv2d3x3OnTilesAgreesWithPatchGEMMs() {
        let savedKernels = KernelSettings.convolution
        defer { KernelSettings.convolution = savedKernels }
        KernelSettings.convolution = .blas
        for (c, o, h) in [(8, 16, 4), (16, 8, 5), (24, 32, 1), (128, 256, 4), (8, 8, 7)] {
            for n in [1, 3, 17] {
                let conv = Conv2d(inChannels: c, outChannels: o, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
                let x = randomTensor([n, c, h, h], &rng), dy = randomTensor([n, o, h, h], &rng)
                compareTilesWithPatchGEMMs(conv, x, dy, "3×3, n\(n) c\(c) o\(o) h\(h)")
            }
        }
        KernelSettings.winograd = true
        let odd = Conv2d(inChannels: 12, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
        XCTAssertEqual(odd.kernelPath(inputHeight: 4, inputWidth: 4), .patchGEMM, "12 channels: not a multiple of 8")
        let strided = Conv2d(inChannels: 16, outChannels: 16, kernelSize: 3, stride: 2, padding: 1, rng: &rng)
        XCTAssertEqual(strided.kernelPath(inputHeight: 4, inputWidth: 4), .patchGEMM, "stride 2: no F(2×2, 3×3)")
    }

    /// Finite differences through F(2×2, 3×3) (a layer small enough for them).
    func testConv2d3x3GradientCheck() {
        let savedKernels = KernelSettings.convolution
        defer { KernelSettings.convolution = savedKernels }
        KernelSettings.convolution = .blas
        let conv = Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, stride: 1, padding: 1, rng: &rng)
        gradientCheck(conv, input: randomTensor([2, 8, 3, 3], &rng), "Conv2d 3×3 by F(2×2, 3×3) tiles")
        XCTAssertEqual(conv.lastKernelPath, .winograd)
    }

    /// `CWinograd`'s tile transforms (AVX-512 or AVX2 on this CPU) against their plain-loop references, bit for bit:
    /// input, output (with and without bias and LeakyReLU) and gradient tiles on planes with partial tiles (odd sizes),
    /// a phase's strided pixels, origins before the plane (zero padding), and channel counts with an 8-channel rest.
    func testTileTransformsMatchTheirReference() {
        defer { _ = winograd_tiles_cap_isa(2) }
        var levels = Set<Int32>()
        for cap in [2, 1] as [Int32] {   // AVX-512 and AVX2, where the CPU has them
            let level = winograd_tiles_cap_isa(cap)
            if level > 0 && levels.insert(level).inserted { compareTileTransformsWithReference() }
        }
        print("tile transforms compared at kernel levels \(levels.sorted()) (2 AVX-512, 1 AVX2)")
    }

    private func compareTileTransformsWithReference() {
        for C in [8, 16, 24, 72] {
            for (rows, columns, step) in [(4, 4, 1), (5, 3, 1), (7, 7, 2), (1, 1, 1)] {
                // A channels-last image of (rows·step)×(columns·step) pixels; the plane takes every step-th one.
                let image = randomTensor([rows * step * columns * step * C], &rng)
                let plane = winograd_plane(base: image.data, row_step: step * columns * step * C, column_step: step * C,
                                           rows: rows, columns: columns)
                let zeros = Tensor(shape: [C])
                let tilesY = (rows + 2) / 2, tilesX = (columns + 2) / 2, tiles = 3 + tilesY * tilesX   // 3 tiles before: firstTile
                let what = "C\(C) \(rows)×\(columns) step \(step)"
                func compare(_ count: Int, _ name: String, _ run: (UnsafeMutablePointer<Float>, Bool) -> Void) {
                    let fast = randomTensor([count], &rng), reference = fast.clone()   // untouched entries must stay equal too
                    run(fast.data, true); run(reference.data, false)
                    let a = fast.toArray(), b = reference.toArray()
                    let first = a.indices.first { a[$0] != b[$0] }
                    XCTAssertNil(first, "\(name), \(what): first difference at \(first ?? 0), \(a[first ?? 0]) against \(b[first ?? 0])")
                }
                compare(9 * tiles * C, "input tiles") { out, vector in
                    (vector ? winograd_f2_input_tiles : winograd_f2_input_tiles_reference)(
                        plane, C, -1, -1, tilesY, tilesX, zeros.data, out, 3, C, tiles * C)
                }
                compare(9 * tiles * C, "gradient tiles") { out, vector in
                    (vector ? winograd_f2_gradient_tiles : winograd_f2_gradient_tiles_reference)(
                        plane, C, tilesY, tilesX, zeros.data, out, 3, C, tiles * C)
                }
                let m = randomTensor([9 * tiles * C], &rng), bias = randomTensor([C], &rng)
                for (useBias, slope) in [(false, nil), (true, Float(0.2)), (true, nil), (false, Float(0))] as [(Bool, Float?)] {
                    compare(image.count, "output tiles, bias \(useBias), slope \(slope.map { "\($0)" } ?? "none")") { out, vector in
                        let target = winograd_plane(base: out, row_step: plane.row_step, column_step: plane.column_step,
                                                    rows: rows, columns: columns)
                        (vector ? winograd_f2_output_tiles : winograd_f2_output_tiles_reference)(
                            m.data, C, (rows + 1) / 2, (columns + 1) / 2, 3, C, tiles * C, useBias ? bias.data : nil,
                            slope == nil ? 0 : 1, slope ?? 0, target)
                    }
                }
            }
        }
    }
}
