import XCTest
import Foundation
import GANCore
import CTranspose

/// The fast kernels against the naive reference kernels kept beside them.
final class KernelTests: XCTestCase {
    var rng = RandomGenerator(seed: 5)

    func testGemmAgainstNaive() {
        for (ta, tb, m, n, k) in [(false, false, 7, 5, 3), (true, false, 4, 9, 6), (false, true, 8, 3, 11), (true, true, 5, 5, 5)] {
            let a = randomTensor([m * k], &rng), b = randomTensor([k * n], &rng)
            let c1 = randomTensor([m * n], &rng), c2 = c1.clone()
            let lda = ta ? m : k, ldb = tb ? k : n
            gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.data, lda: lda, b: b.data, ldb: ldb, beta: 2, c: c1.data, ldc: n)
            naiveGemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.data, lda: lda, b: b.data, ldb: ldb, beta: 2, c: c2.data, ldc: n)
            assertClose(c1, c2, rtol: 1e-5, "gemm ta=\(ta) tb=\(tb)")
        }
    }

    /// Batch sizes that split unevenly over workers and over sample groups exercise the grouping code.
    func testConvolutionsAgainstNaive() {
        for n in [1, 3, 17] {
            forEachConvolutionKernel { kernel in
                for (c, o, k, s, p, h) in [(3, 8, 3, 1, 1, 8), (4, 6, 3, 2, 1, 8), (5, 4, 4, 2, 0, 10), (6, 6, 3, 2, 1, 4)] {
                    let conv = Conv2d(inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p, rng: &rng)
                    let x = randomTensor([n, c, h, h], &rng)
                    assertClose(conv.forward(x, training: true),
                                naiveConv2d(x: x, weight: conv.weight.value, bias: conv.bias?.value, stride: s, padding: p),
                                "Conv2d n\(n) k\(k) s\(s) (\(kernel))")
                }
            }
            // The last three have ≥ 64 output channels and a kernel that is a multiple of the stride: the
            // forward pass runs one convolution per output phase.
            for (c, o, k, s, p, op, h) in [(8, 3, 4, 2, 1, 0, 4), (4, 5, 3, 2, 1, 1, 5), (6, 6, 4, 2, 1, 0, 2),
                                           (8, 64, 4, 2, 1, 0, 4), (5, 64, 4, 2, 2, 1, 3), (6, 64, 3, 1, 1, 0, 5)] {
                let conv = ConvTranspose2d(inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p, outputPadding: op, rng: &rng)
                let x = randomTensor([n, c, h, h], &rng)
                assertClose(conv.forward(x, training: true),
                            naiveConvTranspose2d(x: x, weight: conv.weight.value, bias: conv.bias?.value, stride: s, padding: p, outputPadding: op),
                            "ConvTranspose2d n\(n) k\(k) s\(s)")
            }
        }
    }

    /// oneDNN and BLAS agree on a discriminator-sized layer whose batch does not divide into oneDNN's chunks,
    /// and `auto` picks oneDNN wherever it loads.
    func testOneDNNAgreesWithBLASOnModelShapes() throws {
        try XCTSkipUnless(ConvolutionKernels.oneDNNAvailable, "oneDNN not available: \(ConvolutionKernels.oneDNNUnavailableReason)")
        let saved = KernelSettings.convolution
        defer { KernelSettings.convolution = saved }
        let conv = Conv2d(inChannels: 16, outChannels: 24, kernelSize: 3, stride: 2, padding: 1, rng: &rng)
        let n = KernelSettings.oneDNNChunk + 5   // one whole chunk and a remainder
        let x = randomTensor([n, 16, 32, 32], &rng), dy = randomTensor([n, 24, 16, 16], &rng)
        var results: [[Tensor]] = []
        for kernel in [ConvolutionKernels.blas, .onednn] {
            KernelSettings.convolution = kernel
            conv.weight.grad.fill(0); conv.bias!.grad.fill(0)
            let y = conv.forward(x, training: true).clone()
            let dx = conv.backward(dy, weightGradients: true, inputGradient: true)!.clone()
            results.append([y, dx, conv.weight.grad.clone(), conv.bias!.grad.clone()])
        }
        for (i, name) in ["y", "dx", "dW", "db"].enumerated() {
            assertClose(results[1][i], results[0][i], rtol: 1e-4, atol: 1e-4, "oneDNN vs BLAS \(name)")
        }
        KernelSettings.convolution = .auto
        XCTAssertTrue(ConvolutionKernels.useOneDNN, "auto: oneDNN wherever it loads")
        KernelSettings.convolution = .blas
        XCTAssertFalse(ConvolutionKernels.useOneDNN)
    }

    /// A convolution or batch norm followed by an in-place LeakyReLU inside a Sequential writes the activated
    /// output itself; forward and backward must equal the two layers run apart (both convolution kernels, and
    /// through a spectral-norm wrapper).
    func testFusedLeakyReLUMatchesSeparateLayers() {
        forEachConvolutionKernel { kernel in
            let makers: [(String, (inout RandomGenerator) -> Layer)] = [
                ("conv", { Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, stride: 1, padding: 1, rng: &$0) }),
                ("sn conv", { SpectralNorm(Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, stride: 2, padding: 1, rng: &$0), rng: &$0) }),
                ("batch norm", { _ in BatchNorm(numFeatures: 3) }),
            ]
            for (name, make) in makers {
                var r1 = RandomGenerator(seed: 9), r2 = RandomGenerator(seed: 9)
                let fusedFirst = make(&r1), apart = make(&r2)
                let fused = Sequential([fusedFirst, LeakyReLU(0.2, inPlace: true)])
                let act = LeakyReLU(0.2)
                let x = randomTensor([17, 3, 8, 8], &rng)
                let y1 = fused.forward(x, training: true).clone()
                let y2 = act.forward(apart.forward(x, training: true), training: true)
                assertClose(y1, y2, rtol: 1e-6, "\(name) forward (\(kernel))")
                XCTAssertLessThan(y1.toArray().filter { $0 < 0 }.count, y1.count, "\(name): some outputs positive")
                let dy = randomTensor(y1.shape, &rng)
                let dx1 = fused.backward(dy.clone(), weightGradients: true, inputGradient: true)!
                let dx2 = apart.backward(act.backward(dy, weightGradients: true, inputGradient: true)!, weightGradients: true, inputGradient: true)!
                assertClose(dx1, dx2, rtol: 1e-5, "\(name) dx (\(kernel))")
                for ((pn, p1), (_, p2)) in zip(fusedFirst.namedParameters, apart.namedParameters) {
                    assertClose(p1.grad, p2.grad, rtol: 1e-5, "\(name) d\(pn) (\(kernel))")
                }
            }
        }
    }

    /// Batch norm and conditional batch norm followed by an in-place ReLU or LeakyReLU write the activation and
    /// apply its gradient themselves (`NormalizationPasses`); outputs, dx and every parameter gradient must equal
    /// the layers run apart, in training and eval mode, for position counts that do and do not fill 8-wide vectors.
    func testNormalizationWithFusedActivationMatchesSeparateLayers() {
        let labels = ClassLabels(classes: 4)
        for shape in [[17, 5, 3, 3], [6, 4, 16], [9, 3]] {
            let N = shape[0], C = shape[1]
            labels.labels = (0..<N).map { ($0 * 7) % 4 }
            let makers: [(String, () -> Layer)] = [
                ("batch norm", { BatchNorm(numFeatures: C) }),
                ("conditional batch norm", { ConditionalBatchNorm(numFeatures: C, labels: labels) }),
            ]
            for (name, make) in makers {
                for slope: Float in [0, 0.2] {
                    for training in [true, false] {
                        let fusedNorm = make(), apartNorm = make()
                        // Random γ, β and running statistics, the same in both, so that both signs occur.
                        for (a, b) in zip(fusedNorm.namedParameters + fusedNorm.namedBuffers.map { ($0.name, Parameter($0.tensor)) },
                                          apartNorm.namedParameters + apartNorm.namedBuffers.map { ($0.name, Parameter($0.tensor)) })
                        where !a.0.hasSuffix("num_batches_tracked") {
                            let r = randomTensor(a.1.value.shape, &rng)
                            for i in 0..<r.count { r[i] = a.0.hasSuffix("running_var") ? 0.5 + abs(r[i]) : r[i] }
                            a.1.value.copy(from: r); b.1.value.copy(from: r)
                        }
                        let act: Layer = slope == 0 ? ReLU(inPlace: true) : LeakyReLU(slope, inPlace: true)
                        let fused = Sequential([fusedNorm, act])
                        XCTAssertEqual(fused.plan.fusions.count, 2, "\(name): written and its gradient applied")
                        let apartAct: Layer = slope == 0 ? ReLU() : LeakyReLU(slope)
                        let x = randomTensor(shape, &rng)
                        let y1 = fused.forward(x, training: training).clone()
                        let y2 = apartAct.forward(apartNorm.forward(x, training: training), training: training)
                        let what = "\(name) \(shape) slope \(slope) \(training ? "train" : "eval")"
                        assertClose(y1, y2, rtol: 1e-5, atol: 1e-6, "\(what) forward")
                        let zeros = y1.toArray().filter { $0 == 0 }.count
                        XCTAssert(slope > 0 || (zeros > 0 && zeros < y1.count), "\(what): some outputs clipped, not all")
                        let dy = randomTensor(y1.shape, &rng)
                        let dx1 = fused.backward(dy.clone(), weightGradients: true, inputGradient: true)!
                        let dx2 = apartNorm.backward(apartAct.backward(dy, weightGradients: true, inputGradient: true)!,
                                                     weightGradients: true, inputGradient: true)!
                        assertClose(dx1, dx2, rtol: 1e-4, atol: 1e-5, "\(what) dx")
                        for ((pn, p1), (_, p2)) in zip(fusedNorm.namedParameters, apartNorm.namedParameters) {
                            assertClose(p1.grad, p2.grad, rtol: 1e-4, atol: 1e-5, "\(what) d\(pn)")
                        }
                    }
                }
            }
        }
    }

    /// conv → batch norm → activation → conv with both convolutions on oneDNN: the activation and its gradient pass
    /// in oneDNN's blocked layout through the batch norm (`.blockedHandoffThroughNormalization`), transposed and
    /// plain convolutions, batch norm and conditional batch norm, the gradient rule applied by the batch norm or by
    /// the next convolution. Everything must equal the NCHW hand-over (`KernelSettings.blockedNormalization` off) to
    /// float32 rounding — in bfloat16 too, where both convert the same values to bfloat16.
    func testBlockedHandoffThroughNormalizationMatchesNCHW() throws {
        try XCTSkipUnless(ConvolutionKernels.oneDNNAvailable && OneDNNConvolution.preferredChannelBlock > 0,
                          "oneDNN with a blocked layout not available")
        let saved = (KernelSettings.convolution, KernelSettings.precision, KernelSettings.blockedNormalization)
        defer { (KernelSettings.convolution, KernelSettings.precision, KernelSettings.blockedNormalization) = saved }
        KernelSettings.convolution = .onednn
        let labels = ClassLabels(classes: 3)
        labels.labels = [0, 2, 1, 1, 0, 2]
        func make(_ r: inout RandomGenerator) -> Sequential {
            Sequential([ConvTranspose2d(inChannels: 16, outChannels: 32, kernelSize: 4, stride: 2, padding: 1, rng: &r),
                        ConditionalBatchNorm(numFeatures: 32, labels: labels), ReLU(inPlace: true),
                        ConvTranspose2d(inChannels: 32, outChannels: 16, kernelSize: 4, stride: 2, padding: 1, rng: &r),
                        BatchNorm(numFeatures: 16), LeakyReLU(0.2, inPlace: true),
                        Conv2d(inChannels: 16, outChannels: 16, kernelSize: 3, padding: 1, rng: &r)])
        }
        let x = randomTensor([6, 16, 4, 4], &rng), dy = randomTensor([6, 16, 16, 16], &rng)
        let precisions: [Precision] = Precision.resolve(.bf16).0 == .bf16 ? [.fp32, .bf16] : [.fp32]
        for precision in precisions {
            KernelSettings.precision = precision
            var results: [[Tensor]] = []
            for blocked in [true, false] {
                KernelSettings.blockedNormalization = blocked
                var r = RandomGenerator(seed: 12)
                let g = make(&r)
                let handoffs = g.plan.fusions.filter { if case .blockedHandoffThroughNormalization = $0 { return true }; return false }
                XCTAssertEqual(handoffs, [.blockedHandoffThroughNormalization(producer: 0, normalization: 1, consumer: 3,
                                                                             block: OneDNNConvolution.preferredChannelBlock),
                                          .blockedHandoffThroughNormalization(producer: 3, normalization: 4, consumer: 6,
                                                                             block: OneDNNConvolution.preferredChannelBlock)])
                for (_, p) in g.namedParameters { p.grad.fill(0) }
                let y = g.forward(x, training: true).clone()
                let dx = g.backward(dy, weightGradients: true, inputGradient: true)!.clone()
                results.append([y, dx] + g.namedParameters.map { $0.1.grad.clone() })
                let eval = g.forward(x, training: false).clone()
                results[results.count - 1].append(eval)
            }
            // A transposed convolution's bias gradient before a training-mode batch norm is Σ of a dx that sums to 0:
            // rounding noise (~1e-5 here), compared absolutely. In bfloat16 a float32 value that moved by rounding can
            // round to the neighbouring bfloat16: 1e-3.
            let names = ["y", "dx"] + make(&rng).namedParameters.map { $0.0 } + ["eval y"]
            let tolerance: Float = precision == .bf16 ? 1e-3 : 1e-4
            for (i, name) in names.enumerated() {
                assertClose(results[0][i], results[1][i], rtol: tolerance, atol: name.hasSuffix("bias") ? 2e-4 : tolerance / 10,
                            "\(name) (\(precision.rawValue))")
            }
        }
    }

    /// conv → in-place LeakyReLU → conv: the first writes the activation, the second applies its gradient rule;
    /// everything must equal the three layers run apart (both kernels, plain and spectrally normalised).
    func testLeakyReLUBetweenConvolutionsMatchesSeparateLayers() {
        forEachConvolutionKernel { kernel in
            for sn in [false, true] {
                func make(_ r: inout RandomGenerator) -> [Layer] {
                    let a = Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, stride: 1, padding: 1, rng: &r)
                    let b = Conv2d(inChannels: 8, outChannels: 6, kernelSize: 3, stride: 2, padding: 1, rng: &r)
                    return sn ? [SpectralNorm(a, rng: &r), SpectralNorm(b, rng: &r)] : [a, b]
                }
                var r1 = RandomGenerator(seed: 4), r2 = RandomGenerator(seed: 4)
                let f = make(&r1), apart = make(&r2)
                let fused = Sequential([f[0], LeakyReLU(0.2, inPlace: true), f[1]])
                let act = LeakyReLU(0.2)
                let x = randomTensor([19, 3, 10, 10], &rng)
                let y1 = fused.forward(x, training: true).clone()
                let y2 = apart[1].forward(act.forward(apart[0].forward(x, training: true), training: true), training: true)
                assertClose(y1, y2, rtol: 1e-5, "forward sn=\(sn) (\(kernel))")
                let dy = randomTensor(y1.shape, &rng)
                let dx1 = fused.backward(dy.clone(), weightGradients: true, inputGradient: true)!
                let g = apart[1].backward(dy, weightGradients: true, inputGradient: true)!
                let dx2 = apart[0].backward(act.backward(g, weightGradients: true, inputGradient: true)!, weightGradients: true, inputGradient: true)!
                assertClose(dx1, dx2, rtol: 1e-5, "dx sn=\(sn) (\(kernel))")
                for (l1, l2) in zip(f, apart) {
                    for ((name, p1), (_, p2)) in zip(l1.namedParameters, l2.namedParameters) {
                        assertClose(p1.grad, p2.grad, rtol: 1e-5, "d\(name) sn=\(sn) (\(kernel))")
                    }
                }
            }
        }
    }

    /// Three convolutions joined by fused LeakyReLUs (the discriminator's pattern, 16 channels so that any
    /// channel block fits): on oneDNN the activations and gradients pass between them in oneDNN's blocked layout;
    /// outputs, dx and every gradient must equal the layers run apart, and the last convolution (followed by a
    /// reshape, not a convolution) must hand over plain NCHW.
    func testBlockedHandoffBetweenConvolutionsMatchesSeparateLayers() throws {
        try XCTSkipUnless(ConvolutionKernels.oneDNNAvailable, "oneDNN not available: \(ConvolutionKernels.oneDNNUnavailableReason)")
        let saved = KernelSettings.convolution
        defer { KernelSettings.convolution = saved }
        KernelSettings.convolution = .onednn
        func make(_ r: inout RandomGenerator) -> [Conv2d] {
            [Conv2d(inChannels: 3, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &r),
             Conv2d(inChannels: 16, outChannels: 32, kernelSize: 3, stride: 2, padding: 1, rng: &r),
             Conv2d(inChannels: 32, outChannels: 16, kernelSize: 3, stride: 2, padding: 1, rng: &r)]
        }
        var r1 = RandomGenerator(seed: 6), r2 = RandomGenerator(seed: 6)
        let f = make(&r1), apart = make(&r2)
        let fused = Sequential([f[0], LeakyReLU(0.2, inPlace: true), f[1], LeakyReLU(0.2, inPlace: true), f[2], Flatten(16 * 16)])
        let x = randomTensor([21, 3, 16, 16], &rng)
        for pass in 0..<2 {  // the second pass reuses every buffer and plan
            for l in f + apart { l.weight.grad.fill(0); l.bias!.grad.fill(0) }
            let y1 = fused.forward(x, training: true).clone()
            XCTAssertTrue(f[0].handedOutputInBlockedLayout && f[1].handedOutputInBlockedLayout)
            XCTAssertFalse(f[2].handedOutputInBlockedLayout)
            let acts = [LeakyReLU(0.2), LeakyReLU(0.2)]
            let y2 = apart[2].forward(acts[1].forward(apart[1].forward(acts[0].forward(apart[0].forward(x, training: true), training: true), training: true), training: true), training: true)
            let y2flat = y2.clone(); y2flat.reshape([21, 256])
            assertClose(y1, y2flat, rtol: 1e-5, "forward, pass \(pass)")
            let dy = randomTensor(y1.shape, &rng)
            let dx1 = fused.backward(dy.clone(), weightGradients: true, inputGradient: true)!
            let dyApart = dy.clone(); dyApart.reshape(y2.shape)
            var g = apart[2].backward(dyApart, weightGradients: true, inputGradient: true)!
            g = apart[1].backward(acts[1].backward(g, weightGradients: true, inputGradient: true)!, weightGradients: true, inputGradient: true)!
            let dx2 = apart[0].backward(acts[0].backward(g, weightGradients: true, inputGradient: true)!, weightGradients: true, inputGradient: true)!
            assertClose(dx1, dx2, rtol: 1e-5, "dx, pass \(pass)")
            for (i, (a, b)) in zip(f, apart).enumerated() {
                assertClose(a.weight.grad, b.weight.grad, rtol: 1e-5, "conv \(i) dW, pass \(pass)")
                assertClose(a.bias!.grad, b.bias!.grad, rtol: 1e-5, "conv \(i) db, pass \(pass)")
            }
        }
    }

    /// conv → in-place LeakyReLU or ReLU → conv with 3×3 stride-1 layers of ≥ 16 input channels, which ask oneDNN for
    /// Winograd F(4×4, 3×3) in float32: oneDNN's Winograd takes no post-op, so the shim applies the activation in a
    /// second pass over y. The fused pair must still run the same algorithm as the layers run apart (Winograd where
    /// the CPU has it), hand over in the blocked layout, and give the same outputs and gradients.
    func testWinogradConvolutionWithFusedActivationMatchesSeparateLayers() throws {
        try XCTSkipUnless(ConvolutionKernels.oneDNNAvailable, "oneDNN not available: \(ConvolutionKernels.oneDNNUnavailableReason)")
        let saved = (KernelSettings.convolution, KernelSettings.oneDNNWinograd, KernelSettings.precision)
        defer { (KernelSettings.convolution, KernelSettings.oneDNNWinograd, KernelSettings.precision) = saved }
        (KernelSettings.convolution, KernelSettings.oneDNNWinograd, KernelSettings.precision) = (.onednn, true, .fp32)
        for slope: Float in [0.2, 0] {
            func make(_ r: inout RandomGenerator) -> [Conv2d] {
                [Conv2d(inChannels: 16, outChannels: 32, kernelSize: 3, stride: 1, padding: 1, rng: &r),
                 Conv2d(inChannels: 32, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &r)]
            }
            var r1 = RandomGenerator(seed: 8), r2 = RandomGenerator(seed: 8)
            let f = make(&r1), apart = make(&r2)
            let activation: Layer = slope == 0 ? ReLU(inPlace: true) : LeakyReLU(slope, inPlace: true)
            let fused = Sequential([f[0], activation, f[1]])
            let act = LeakyReLU(slope)
            let n = KernelSettings.oneDNNChunk + 3   // a whole chunk and a remainder
            let x = randomTensor([n, 16, 12, 12], &rng)
            let y1 = fused.forward(x, training: true).clone()
            let y2 = apart[1].forward(act.forward(apart[0].forward(x, training: true), training: true), training: true)
            XCTAssertEqual(f[0].fusedLeakyReLUSlope, slope)
            XCTAssertTrue(f[0].handedOutputInBlockedLayout, "slope \(slope)")
            XCTAssertEqual(f[0].lastKernelVariant, apart[0].lastKernelVariant, "the same algorithm with the activation fused")
            assertClose(y1, y2, rtol: 1e-5, atol: 1e-6, "forward, slope \(slope)")
            let dy = randomTensor(y1.shape, &rng)
            let dx1 = fused.backward(dy.clone(), weightGradients: true, inputGradient: true)!
            let g = apart[1].backward(dy, weightGradients: true, inputGradient: true)!
            let dx2 = apart[0].backward(act.backward(g, weightGradients: true, inputGradient: true)!, weightGradients: true, inputGradient: true)!
            assertClose(dx1, dx2, rtol: 1e-5, atol: 1e-6, "dx, slope \(slope)")
            for (i, (a, b)) in zip(f, apart).enumerated() {
                assertClose(a.weight.grad, b.weight.grad, rtol: 1e-5, atol: 1e-6, "conv \(i) dW, slope \(slope)")
                assertClose(a.bias!.grad, b.bias!.grad, rtol: 1e-5, atol: 1e-6, "conv \(i) db, slope \(slope)")
            }
        }
        // On AVX-512 oneDNN has the float32 Winograd: then the fused layer must really run it.
        if OneDNNConvolution.preferredChannelBlock == 16 {
            let conv = Conv2d(inChannels: 16, outChannels: 16, kernelSize: 3, padding: 1, rng: &rng)
            let m = Sequential([conv, LeakyReLU(0.2, inPlace: true), Conv2d(inChannels: 16, outChannels: 16, kernelSize: 3, padding: 1, rng: &rng)])
            _ = m.forward(randomTensor([2, 16, 8, 8], &rng), training: true)
            XCTAssertEqual(conv.lastKernelVariant, "Winograd F(4×4, 3×3)")
        }
    }

    /// `Parallel.forEachChunk` on oneDNN's OpenMP team and on Dispatch's pool: every index once, each slice on its own
    /// worker index, and the pool it says it used (OpenMP wherever oneDNN loaded, unless switched off).
    func testParallelChunksCoverEveryIndexOnceOnEitherPool() throws {
        try XCTSkipIf(Parallel.workerCount < 2, "one worker: nothing runs in parallel")
        let saved = Parallel.sharesOpenMPTeam
        defer { Parallel.sharesOpenMPTeam = saved }
        _ = ConvolutionKernels.oneDNNAvailable   // loads oneDNN (and its team) where installed; before that, Dispatch's pool
        for shared in [true, false] {
            Parallel.sharesOpenMPTeam = shared
            for count in [2, 7, 1001] {
                let visits = Tensor(shape: [count]), owners = Tensor(shape: [count]), v = visits.data, o = owners.data
                Parallel.forEachChunk(count: count) { range, worker in
                    for i in range { v[i] += 1; o[i] = Float(worker) }
                }
                XCTAssertEqual(visits.toArray(), [Float](repeating: 1, count: count), "shared \(shared), count \(count)")
                let workers = owners.toArray()
                XCTAssertEqual(workers, workers.sorted(), "slices are contiguous and in worker order")
                XCTAssertEqual(Set(workers).count, min(count, Parallel.workerCount), "shared \(shared), count \(count)")
                XCTAssertEqual(Parallel.lastPool, shared && ConvolutionKernels.oneDNNAvailable ? "OpenMP" : "Dispatch")
            }
        }
    }

    func testFastTanhAgainstLibm() {
        var worst: Double = 0
        for i in -200_000...200_000 {
            let x = Float(i) * 1e-4  // −20…20, both branches and the saturated tails
            let exact = Foundation.tanh(Double(x))
            if exact != 0 { worst = max(worst, abs(Double(Tanh.evaluate(x)) - exact) / abs(exact)) }
        }
        XCTAssertLessThan(worst, 5e-7)
        XCTAssertEqual(Tanh.evaluate(0), 0)
        XCTAssertEqual(Tanh.evaluate(1e-30), 1e-30)
        XCTAssertEqual(Tanh.evaluate(100), 1)
        XCTAssertEqual(Tanh.evaluate(-100), -1)
    }

    /// Running a layer twice (buffers reused) gives the same result; gradients accumulate across backward calls.
    func testBufferReuseAndGradientAccumulation() {
        forEachConvolutionKernel { _ in checkBufferReuseAndGradientAccumulation() }
    }

    private func checkBufferReuseAndGradientAccumulation() {
        let conv = Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, stride: 2, padding: 1, rng: &rng)
        let x = randomTensor([5, 3, 8, 8], &rng)
        let y1 = conv.forward(x, training: true).clone()
        let dy = randomTensor(y1.shape, &rng)
        _ = conv.backward(dy, weightGradients: true, inputGradient: false)
        let g1 = conv.weight.grad.clone()
        let y2 = conv.forward(x, training: true)
        assertClose(y2, y1, rtol: 0, atol: 0, "second forward")
        _ = conv.backward(dy, weightGradients: true, inputGradient: false)
        g1.scale(by: 2)
        assertClose(conv.weight.grad, g1, rtol: 1e-6, "accumulated gradient")
    }

    func testRandomGeneratorIsDeterministicAndRoughlyNormal() {
        var a = RandomGenerator(seed: 11), b = RandomGenerator(seed: 11)
        let x = Tensor(shape: [20000]), y = Tensor(shape: [20000])
        a.fillNormal(x); b.fillNormal(y)
        XCTAssertEqual(x.toArray(), y.toArray())
        let mean = x.sum() / 20000
        let variance = x.toArray().reduce(0.0) { $0 + Double($1 * $1) } / 20000 - mean * mean
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
        XCTAssertEqual(Set(a.permutation(50)), Set(0..<50))
    }

    func testDropoutDropsAboutPAndScales() {
        let drop = Dropout(0.4, seed: 1)
        let x = Tensor(shape: [100, 100], repeating: 1)
        let y = drop.forward(x, training: true)
        let zeros = y.toArray().filter { $0 == 0 }.count
        XCTAssertEqual(Double(zeros) / 10000, 0.4, accuracy: 0.03)
        XCTAssertEqual(y.toArray().first { $0 != 0 }!, 1 / 0.6, accuracy: 1e-6)
        XCTAssert(drop.forward(x, training: false) === x, "eval-mode dropout is the identity")
    }
}

/// Eval-mode batch norm folded into the transposed convolution before it (`FusionPlan .batchNormIntoTransposedConvolution`).
final class BatchNormFoldingTests: XCTestCase {
    func testFoldedEvalBatchNormMatchesSeparateLayers() {
        for withLeakyReLU in [true, false] {
            var r1 = RandomGenerator(seed: 21), r2 = RandomGenerator(seed: 21), rng = RandomGenerator(seed: 22)
            func make(_ r: inout RandomGenerator) -> (ConvTranspose2d, BatchNorm) {
                (ConvTranspose2d(inChannels: 16, outChannels: 64, kernelSize: 4, stride: 2, padding: 1, rng: &r), BatchNorm(numFeatures: 64))
            }
            let (conv, bn) = make(&r1), (conv2, bn2) = make(&r2)
            // Running statistics and affine parameters far from the defaults, the same in both copies.
            for b in [bn, bn2] {
                var r = RandomGenerator(seed: 23)
                for c in 0..<64 {
                    b.runningMean[c] = r.uniform(-1, 1); b.runningVar[c] = r.uniform(0.2, 3)
                    b.weight.value[c] = r.uniform(0.5, 2); b.bias.value[c] = r.uniform(-1, 1)
                }
            }
            let folded = Sequential([conv, bn] + (withLeakyReLU ? [LeakyReLU(0.2, inPlace: true)] : []))
            let act = LeakyReLU(0.2)
            func apart(_ x: Tensor, training: Bool) -> Tensor {
                let h = bn2.forward(conv2.forward(x, training: training), training: training)
                return withLeakyReLU ? act.forward(h, training: training) : h
            }
            let x = randomTensor([5, 16, 4, 4], &rng)
            for (pass, training) in [false, true, false].enumerated() {
                let y1 = folded.forward(x, training: training).clone()
                assertClose(y1, apart(x, training: training), rtol: 1e-5, atol: 1e-5,
                            "pass \(pass) (\(training ? "training" : "eval"), LeakyReLU \(withLeakyReLU))")
            }
        }
    }
}

/// The AVX2 block transpose against the plain loops, on shapes with ragged edges, with and without a bias.
final class TransposeTests: XCTestCase {
    func testBlockTransposeMatchesReference() {
        var rng = RandomGenerator(seed: 21)
        for (rows, cols) in [(1, 1), (7, 13), (8, 8), (9, 16), (33, 130), (256, 128), (64, 3)] {
            let src = randomTensor([rows * cols], &rng), bias = randomTensor([cols], &rng)
            for b in [nil, bias] {
                let fast = Tensor(shape: [rows * cols]), reference = Tensor(shape: [rows * cols])
                transpose_floats(src.data, fast.data, rows, cols, b?.data)
                transpose_floats_reference(src.data, reference.data, rows, cols, b?.data)
                assertClose(fast, reference, rtol: 0, atol: 0, "transpose \(rows)×\(cols) bias \(b != nil)")
            }
        }
    }
}
