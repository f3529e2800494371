import XCTest
import GANCore

/// `Precision.bf16`: each convolution pass multiplies bfloat16 copies of its two inputs and accumulates in float32.
/// Checked two ways on oneDNN's bfloat16 kernels:
/// - against float32 convolutions (the BLAS kernels, another code path) of the same inputs rounded to bfloat16
///   first: then only the order of the float32 sums differs (products of two bfloat16 values are exact in
///   float32), hence a tight tolerance (1e-4 of the largest value), which catches a pass that multiplies the
///   wrong rounding or drops a term;
/// - against plain float32: within 1% of the largest value, bfloat16's 8-bit mantissa in sums of ≤ 1,152 terms.
final class BFloat16Tests: XCTestCase {
    var rng = RandomGenerator(seed: 16)

    /// float → bfloat16 → float, rounding to nearest even (what oneDNN's reorders do).
    func bf16(_ x: Float) -> Float {
        let b = x.bitPattern
        return Float(bitPattern: (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000)
    }

    func rounded(_ t: Tensor) -> Tensor {
        let r = t.clone()
        for i in 0..<r.count { r[i] = bf16(r[i]) }
        return r
    }

    /// Runs `body` with bfloat16 in force, or skips where oneDNN cannot make bfloat16 primitives on this CPU.
    func withBF16(_ body: () throws -> Void) throws {
        try XCTSkipUnless(ConvolutionKernels.oneDNNAvailable, "oneDNN not available: \(ConvolutionKernels.oneDNNUnavailableReason)")
        let saved = (KernelSettings.precision, KernelSettings.convolution)
        defer { (KernelSettings.precision, KernelSettings.convolution) = saved }
        KernelSettings.precision = .bf16
        KernelSettings.convolution = .auto
        var r = RandomGenerator(seed: 1)
        let probe = Conv2d(inChannels: 16, outChannels: 16, kernelSize: 4, stride: 2, padding: 1, rng: &r)
        _ = probe.forward(randomTensor([2, 16, 8, 8], &r), training: true)
        try XCTSkipIf(probe.lastKernelVariant != "bf16", "this oneDNN has no bfloat16 convolution for this CPU")
        try body()
    }

    /// One forward and backward pass: y, dx, and the weight and bias gradients.
    func pass(_ layer: Layer, _ x: Tensor, _ dy: Tensor) -> [Tensor] {
        for (_, p) in layer.namedParameters { p.grad.fill(0) }
        let y = layer.forward(x, training: true).clone()
        let dx = layer.backward(dy, weightGradients: true, inputGradient: true)!.clone()
        return [y, dx] + layer.namedParameters.map { $0.1.grad.clone() }
    }

    /// The layer in float32 on the BLAS kernels, with its weight (not its bias: oneDNN adds that in float32)
    /// and the inputs rounded to bfloat16.
    func referenceOnRoundedInputs(_ make: (inout RandomGenerator) -> Layer, seed: UInt64, _ x: Tensor, _ dy: Tensor) -> [Tensor] {
        let saved = (KernelSettings.precision, KernelSettings.convolution)
        defer { (KernelSettings.precision, KernelSettings.convolution) = saved }
        KernelSettings.precision = .fp32
        KernelSettings.convolution = .blas
        var r = RandomGenerator(seed: seed)
        let layer = make(&r)
        let w = layer.namedParameters[0].1.value
        w.copy(from: rounded(w))
        return pass(layer, rounded(x), rounded(dy))
    }

    func plainFloat32(_ make: (inout RandomGenerator) -> Layer, seed: UInt64, _ x: Tensor, _ dy: Tensor) -> [Tensor] {
        let saved = KernelSettings.precision
        defer { KernelSettings.precision = saved }
        KernelSettings.precision = .fp32
        var r = RandomGenerator(seed: seed)
        return pass(make(&r), x, dy)
    }

    /// `float32Passes`: results that stay float32 in this layer (the image gradient of a 3-channel input runs on
    /// `NarrowConvolution`; a transposed convolution's bias gradient is a float32 sum of dy): those must equal plain
    /// float32 tightly instead.
    func check(_ name: String, _ make: (inout RandomGenerator) -> Layer, input: [Int], float32Passes: Set<String> = []) {
        var r = RandomGenerator(seed: 5)
        let layer = make(&r)
        let x = randomTensor(input, &rng)
        let y0 = layer.forward(x, training: true)
        let dy = randomTensor(y0.shape, &rng)
        let got = pass(layer, x, dy)
        let exact = referenceOnRoundedInputs(make, seed: 5, x, dy), float32 = plainFloat32(make, seed: 5, x, dy)
        for (i, what) in ["y", "dx", "dW", "db"].prefix(got.count).enumerated() {
            if float32Passes.contains(what) {
                assertClose(got[i], float32[i], rtol: 1e-5, atol: 1e-6, "\(name) \(what) stays float32")
                continue
            }
            assertClose(got[i], exact[i], rtol: 1e-4, atol: 1e-6, "\(name) \(what) vs float32 of bfloat16-rounded inputs")
            assertClose(got[i], float32[i], rtol: 1e-2, atol: 1e-6, "\(name) \(what) vs float32")
        }
        // The tolerance can fail: plain float32 differs from the bfloat16 result by more than the tight one.
        guard !float32Passes.contains("y") else { return }
        var worst: Float = 0
        for j in 0..<got[0].count { worst = max(worst, abs(got[0][j] - float32[0][j])) }
        XCTAssertGreaterThan(worst, 1e-4 * float32[0].maxAbs(), "\(name): bfloat16 should differ visibly from float32")
    }

    func testConvolutionsMultiplyBFloat16AndSumFloat32() throws {
        try withBF16 {
            // One bfloat16 oneDNN chunk and a remainder.
            let n = KernelSettings.oneDNNChunk + 2
            check("Conv2d 3→16 k3 s1", { Conv2d(inChannels: 3, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &$0) },
                  input: [n, 3, 8, 8], float32Passes: ["dx"])
            check("Conv2d 16→32 k4 s2", { Conv2d(inChannels: 16, outChannels: 32, kernelSize: 4, stride: 2, padding: 1, rng: &$0) },
                  input: [n, 16, 8, 8])
            check("Conv2d 32→8 k3 on 2×2 (BLAS-sized in float32)",
                  { Conv2d(inChannels: 32, outChannels: 8, kernelSize: 3, stride: 1, padding: 1, rng: &$0) }, input: [5, 32, 2, 2])
        }
    }

    /// In bfloat16 mode the direct 3-channel transposed convolution stays float32, exactly; every other transposed
    /// convolution with a mirror runs as the mirror convolution in bfloat16, Winograd-shaped ones too — and every
    /// `Conv2d` on oneDNN runs in bfloat16, 3×3 stride-1 ones too (no float32 Winograd).
    func testOnlyTheDirectKernelStaysFloat32() throws {
        try withBF16 {
            var r = RandomGenerator(seed: 2)
            let conv = Conv2d(inChannels: 16, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &r)
            _ = conv.forward(randomTensor([4, 16, 8, 8], &rng), training: true)
            XCTAssertEqual(conv.lastKernelVariant, "bf16", "a 3×3 stride-1 convolution multiplies in bfloat16")
            let winogradShaped = ConvTranspose2d(inChannels: 64, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &r)
            XCTAssertEqual(winogradShaped.kernelPath(inputHeight: 4, inputWidth: 4), .oneDNN)
            check("ConvTranspose2d 64→64 k4 s2 (Winograd-shaped)",
                  { ConvTranspose2d(inChannels: 64, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &$0) },
                  input: [3, 64, 4, 4], float32Passes: ["db"])
            check("ConvTranspose2d 16→3 k4 s2 (direct 3-channel kernel)",
                  { ConvTranspose2d(inChannels: 16, outChannels: 3, kernelSize: 4, stride: 2, padding: 1, rng: &$0) },
                  input: [7, 16, 8, 8], float32Passes: ["y", "dx", "dW", "db"])
        }
    }

    func testTransposedConvolutionsRunAsTheMirrorConvolution() throws {
        try withBF16 {
            var r = RandomGenerator(seed: 1)
            let layer = ConvTranspose2d(inChannels: 32, outChannels: 16, kernelSize: 4, stride: 2, padding: 1, rng: &r)
            XCTAssertEqual(layer.kernelPath(inputHeight: 4, inputWidth: 4), .oneDNN)
            check("ConvTranspose2d 32→16 k4 s2", { ConvTranspose2d(inChannels: 32, outChannels: 16, kernelSize: 4, stride: 2, padding: 1, rng: &$0) },
                  input: [KernelSettings.oneDNNChunk + 2, 32, 4, 4], float32Passes: ["db"])
            check("ConvTranspose2d 8→8 k3 s1", { ConvTranspose2d(inChannels: 8, outChannels: 8, kernelSize: 3, stride: 1, padding: 1, rng: &$0) },
                  input: [4, 8, 5, 5], float32Passes: ["db"])
            let odd = ConvTranspose2d(inChannels: 8, outChannels: 8, kernelSize: 3, stride: 2, padding: 1, outputPadding: 1, rng: &r)
            XCTAssertNotEqual(odd.kernelPath(inputHeight: 4, inputWidth: 4), .oneDNN, "output padding has no mirror: float32 kernels")
        }
    }

    /// A generator's pattern in bfloat16 — transposed convolution → batch norm → ReLU, twice, then the image layer:
    /// in training the transposed layers run on oneDNN's bfloat16 mirror (their activations handed over blocked), in
    /// eval mode on float32 Winograd tiles that fold each batch norm (faster for generation, session 15), so the
    /// eval output equals float32's own eval output to float32 rounding (the image layer's forward is float32 too).
    func testEvalFoldsBatchNormsOnFloat32TilesInBFloat16() throws {
        func make() -> Sequential {
            var r = RandomGenerator(seed: 8)
            return Sequential([ConvTranspose2d(inChannels: 16, outChannels: 32, kernelSize: 4, stride: 2, padding: 1, rng: &r),
                               BatchNorm(numFeatures: 32), ReLU(inPlace: true),
                               ConvTranspose2d(inChannels: 32, outChannels: 32, kernelSize: 4, stride: 2, padding: 1, rng: &r),
                               BatchNorm(numFeatures: 32), ReLU(inPlace: true),
                               Conv2d(inChannels: 32, outChannels: 3, kernelSize: 3, padding: 1, rng: &r)])
        }
        let x = randomTensor([6, 16, 4, 4], &rng)
        let savedPrecision = KernelSettings.precision
        KernelSettings.precision = .fp32
        let float32 = make().forward(x, training: false).clone()
        KernelSettings.precision = savedPrecision
        try withBF16 {
            let g = make(), layers = [g.layers[0] as! ConvTranspose2d, g.layers[3] as! ConvTranspose2d]
            let eval = g.forward(x, training: false).clone()
            XCTAssertEqual(layers.map { $0.lastKernelPath }, [.winograd, .winograd], "eval: float32 tiles folding the batch norms")
            assertClose(eval, float32, rtol: 1e-5, atol: 1e-6, "eval in bfloat16 mode against float32")
            _ = g.forward(x, training: true)
            XCTAssertEqual(layers.map { $0.lastKernelPath }, [.oneDNN, .oneDNN], "training: bfloat16 mirror")
            let again = g.forward(x, training: false)
            XCTAssertEqual(layers.map { $0.lastKernelPath }, [.winograd, .winograd], "eval after training")
            XCTAssertTrue((0..<again.count).allSatisfy { again[$0].isFinite })
        }
    }

    /// conv → in-place LeakyReLU → conv: the LeakyReLU fused into the first convolution's output and the second's
    /// dx, the activation handed over in oneDNN's blocked layout, in bfloat16. Against float32 with the input and
    /// weights rounded to bfloat16, so that the first layer's pre-activations agree to float32 rounding and the
    /// LeakyReLU takes the same slope everywhere (against plain float32, values within bfloat16's rounding of 0
    /// change sign and move single gradient entries by up to 0.9·dy: a few percent in L2, not an error); the rest
    /// differs by bfloat16 rounding of the activation and its gradient, hence 1% in relative L2.
    func testFusedPairInBFloat16HandsOverInBlockedLayout() throws {
        try withBF16 {
            func make(_ r: inout RandomGenerator) -> Sequential {
                Sequential([Conv2d(inChannels: 3, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &r), LeakyReLU(0.1, inPlace: true),
                            Conv2d(inChannels: 16, outChannels: 32, kernelSize: 4, stride: 2, padding: 1, rng: &r)])
            }
            var r1 = RandomGenerator(seed: 3), r2 = RandomGenerator(seed: 3)
            let model = make(&r1), reference = make(&r2)
            for (_, p) in reference.namedParameters where p.value.shape.count == 4 { p.value.copy(from: rounded(p.value)) }
            let x = randomTensor([20, 3, 16, 16], &rng)
            let y = model.forward(x, training: true).clone()
            XCTAssertTrue((model.layers[0] as! Conv2d).handedOutputInBlockedLayout, "the activation passed in oneDNN's blocked layout")
            let dy = randomTensor(y.shape, &rng)
            let dx = model.backward(dy.clone(), weightGradients: true, inputGradient: true)!.clone()
            KernelSettings.precision = .fp32
            let yRef = reference.forward(rounded(x), training: true).clone()
            let dxRef = reference.backward(rounded(dy), weightGradients: true, inputGradient: true)!.clone()
            XCTAssertLessThan(relativeError(y, yRef), 1e-2, "pair y")
            XCTAssertLessThan(relativeError(dx, dxRef), 1e-2, "pair dx")
            for ((name, p), (_, q)) in zip(model.namedParameters, reference.namedParameters) {
                XCTAssertLessThan(relativeError(p.grad, q.grad), 1e-2, "pair \(name) gradient")
                if name.hasSuffix("weight") {   // (the last bias gradient is Σ of bfloat16 dy on both sides: equal)
                    XCTAssertGreaterThan(relativeError(p.grad, q.grad), 1e-6, "pair \(name) gradient: bfloat16 visibly differs")
                }
            }
        }
    }

    /// A bfloat16 hand-over (`KernelSettings.bf16Handoff`) against a float32 one, both multiplying in bfloat16, on a
    /// chain whose middle layer receives and passes on bfloat16 (its dx then applies the LeakyReLU rule in
    /// bfloat16) and whose first layer's image gradient reads a bfloat16 dy. Forward: the consumer rounded the
    /// float32 hand-over to bfloat16 anyway, so y agrees to float32 rounding. Backward: dx is now rounded to
    /// bfloat16 before the LeakyReLU's slope (rounded again) rather than after, and the image gradient reads the
    /// rounded dy: differences of bfloat16's rounding, well under 1% in relative L2.
    func testBFloat16HandoffAgreesWithFloat32Handoff() throws {
        try withBF16 {
            func make(_ r: inout RandomGenerator) -> Sequential {
                Sequential([Conv2d(inChannels: 3, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &r), LeakyReLU(0.1, inPlace: true),
                            Conv2d(inChannels: 16, outChannels: 32, kernelSize: 4, stride: 2, padding: 1, rng: &r), LeakyReLU(0.2, inPlace: true),
                            Conv2d(inChannels: 32, outChannels: 32, kernelSize: 3, stride: 1, padding: 1, rng: &r)])
            }
            let saved = KernelSettings.bf16Handoff
            defer { KernelSettings.bf16Handoff = saved }
            let x = randomTensor([19, 3, 16, 16], &rng), dy = randomTensor([19, 32, 8, 8], &rng)
            var results: [[Tensor]] = []
            for handoff in [true, false] {
                KernelSettings.bf16Handoff = handoff
                var r = RandomGenerator(seed: 8)
                let model = make(&r)
                results.append(pass(model, x, dy))
                for i in [0, 2] {
                    XCTAssertTrue((model.layers[i] as! Conv2d).handedOutputInBlockedLayout, "activation \(i + 1) blocked")
                    XCTAssertEqual((model.layers[i] as! Conv2d).handedOutputInBFloat16, handoff, "activation \(i + 1) in bfloat16")
                }
            }
            XCTAssertLessThan(relativeError(results[0][0], results[1][0]), 1e-6, "y")
            let names = ["dx", "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
            for i in 1..<results[0].count {
                let e = relativeError(results[0][i], results[1][i])
                XCTAssertLessThan(e, 5e-3, names[i - 1])
            }
            XCTAssertGreaterThan(relativeError(results[0][1], results[1][1]), 1e-6, "dx: the hand-over visibly ran in bfloat16")
        }
    }

    /// The helpers for bfloat16 hand-overs outside oneDNN: rounding like oneDNN's reorders (ties to even), and a
    /// LeakyReLU gradient over bfloat16 values (vector body and scalar tail, zero and negative zero taking the slope).
    func testBFloat16HelpersRoundToNearestEven() {
        for x: Float in [1, 1.5, -2.75, 3.14159, 1e-30, -0, 65504, 1 + 1.0 / 256, 1 + 3.0 / 256] {
            XCTAssertEqual(BFloat16.float(BFloat16.bits(x)), bf16(x), "\(x)")
        }
        XCTAssertEqual(BFloat16.float(BFloat16.bits(1 + 1.0 / 256)), 1, "a tie rounds to the even neighbour")
        let n = 21, slope: Float = 0.2
        var dyValues: [Float] = [], signValues: [Float] = []
        for i in 0..<n {
            dyValues.append(Float(i) * 0.37 - 3)
            signValues.append(i % 3 == 0 ? -Float(i) : (i % 5 == 0 ? 0 : Float(i)))
        }
        let dy = Tensor(shape: [n]), sign = Tensor(shape: [n]), out = Tensor(shape: [n]), wide = Tensor(shape: [n])
        for i in 0..<n {
            BFloat16.pointer(dy.data)[i] = BFloat16.bits(dyValues[i]); BFloat16.pointer(sign.data)[i] = BFloat16.bits(signValues[i])
        }
        BFloat16.pointer(sign.data)[7] = 0x8000   // −0
        BFloat16.leakyReLUGradient(dy: BFloat16.pointer(dy.data), sign: BFloat16.pointer(sign.data), into: BFloat16.pointer(out.data),
                                   count: n, slope: slope)
        BFloat16.widen(BFloat16.pointer(out.data), into: wide.data, count: n)
        for i in 0..<n {
            let positive = i != 7 && signValues[i] > 0
            XCTAssertEqual(wide[i], positive ? bf16(dyValues[i]) : bf16(bf16(dyValues[i]) * slope), "value \(i)")
        }
    }

    /// ‖a − b‖ / ‖b‖.
    func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        var d = 0.0, n = 0.0
        for i in 0..<b.count { d += Double(a[i] - b[i]) * Double(a[i] - b[i]); n += Double(b[i]) * Double(b[i]) }
        return (d / n).squareRoot()
    }

    func testResolveFallsBackToFloat32WithAReason() {
        let saved = KernelSettings.convolution
        defer { KernelSettings.convolution = saved }
        XCTAssertEqual(Precision.resolve(.fp32).0, .fp32)
        XCTAssertNil(Precision.resolve(.fp32).1)
        KernelSettings.convolution = .blas
        let (precision, message) = Precision.resolve(.bf16)
        XCTAssertEqual(precision, .fp32)
        XCTAssertTrue(message?.contains("CIFAR_GAN_CONVOLUTION=blas") == true, message ?? "no message")
        KernelSettings.convolution = .auto
        if Precision.bf16Native { XCTAssertEqual(Precision.resolve(.bf16).0, .bf16) }
    }
}
