import CNarrowConvolution
import XCTest
import GANCore

/// The direct kernel for few-output-channel convolutions (`NarrowConvolution`): the AVX2 kernel against its plain
/// C reference, and the layer paths that use it against the GEMM paths and the naive kernels.
final class NarrowConvolutionTests: XCTestCase {
    var rng = RandomGenerator(seed: 11)

    override func tearDown() { KernelSettings.narrow = true }

    private func skipUnlessVectorized() throws {
        try XCTSkipUnless(NarrowConvolution.available, "no AVX2/FMA: the layers keep their GEMM paths")
    }

    /// Runs `body` with every convolution on oneDNN (skipped where oneDNN or the vector kernel is missing).
    private func onOneDNN(_ body: () throws -> Void) throws {
        try skipUnlessVectorized()
        try XCTSkipUnless(ConvolutionKernels.oneDNNAvailable, "oneDNN not available: \(ConvolutionKernels.oneDNNUnavailableReason)")
        let saved = KernelSettings.convolution
        defer { KernelSettings.convolution = saved }
        KernelSettings.convolution = .onednn
        try body()
    }

    func testVectorKernelMatchesReference() throws {
        try skipUnlessVectorized()
        // (channels, block, height, width, outs, kernel, offsetY, offsetX, outHeight, outWidth, rowStep, columnStep):
        // interior and border pixels, images narrower than a 4-pixel tile, block 16, strided outputs (phases).
        let cases: [(Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)] = [
            (64, 8, 32, 32, 3, 3, -1, -1, 32, 32, 1, 1), (16, 8, 9, 11, 2, 5, -2, -2, 9, 11, 1, 1),
            (24, 8, 7, 5, 1, 3, 0, 0, 5, 3, 1, 1), (32, 16, 10, 12, 3, 3, -1, -1, 10, 12, 1, 1),
            (16, 8, 8, 8, 3, 2, -1, 0, 8, 8, 2, 2), (8, 8, 3, 3, 3, 4, -2, -1, 3, 3, 2, 2), (8, 8, 6, 13, 3, 1, 0, 0, 6, 13, 1, 1),
        ]
        for (c, block, h, w, outs, k, oy, ox, oh, ow, rowStep, columnStep) in cases {
            let image = randomTensor([c * h * w], &rng), weight = randomTensor([c * k * k * outs], &rng)
            let plane = oh * rowStep * ow * columnStep
            let fast = Tensor(shape: [outs * plane]), reference = Tensor(shape: [outs * plane])
            fast.fill(7); reference.fill(7)  // untouched entries (between strided outputs) must stay as they were
            narrow_convolution(image.data, Int32(c / block), Int32(block), Int32(h), Int32(w), weight.data, Int32(outs), Int32(k),
                               Int32(oy), Int32(ox), fast.data, Int32(oh), Int32(ow), plane, rowStep * ow * columnStep, columnStep)
            narrow_convolution_reference(image.data, Int32(c / block), Int32(block), Int32(h), Int32(w), weight.data, Int32(outs),
                                         Int32(k), Int32(oy), Int32(ox), reference.data, Int32(oh), Int32(ow), plane,
                                         rowStep * ow * columnStep, columnStep)
            assertClose(fast, reference, rtol: 1e-5, atol: 1e-5, "c\(c) block\(block) \(h)×\(w) outs\(outs) k\(k) offset \(oy),\(ox)")
        }
    }

    func testBlockingChannelsWithBorder() {
        for (c, h, w, pad) in [(16, 5, 19, 0), (8, 3, 8, 2), (24, 4, 3, 1)] {
            let image = randomTensor([c * h * w], &rng)
            let hp = h + 2 * pad, wp = w + 2 * pad
            let blocked = Tensor(shape: [c * hp * wp]); blocked.fill(.nan)
            narrow_convolution_block_channels(image.data, Int32(c), Int32(h), Int32(w), Int32(pad), blocked.data)
            var wrong = 0
            for ch in 0..<c { for y in 0..<hp { for x in 0..<wp {
                let (iy, ix) = (y - pad, x - pad)
                let expected: Float = iy >= 0 && iy < h && ix >= 0 && ix < w ? image[(ch * h + iy) * w + ix] : 0
                if blocked[(((ch / 8) * hp + y) * wp + x) * 8 + ch % 8] != expected { wrong += 1 }
            } } }
            XCTAssertEqual(wrong, 0, "c\(c) \(h)×\(w) pad \(pad)")
        }
    }

    /// The image gradient of a first convolution: direct kernel against the GEMM path (BLAS or oneDNN), with dy
    /// in NCHW; the weight gradients must not change either.
    func testConv2dInputGradientMatchesGEMMPath() throws {
        try skipUnlessVectorized()
        forEachConvolutionKernel { kernel in
            for (c, o, k, p, h) in [(3, 16, 3, 1, 12), (2, 8, 5, 2, 9), (1, 24, 3, 0, 7), (3, 16, 1, 0, 5)] {
                var r1 = RandomGenerator(seed: 3), r2 = RandomGenerator(seed: 3)
                let narrow = Conv2d(inChannels: c, outChannels: o, kernelSize: k, stride: 1, padding: p, rng: &r1)
                let gemm = Conv2d(inChannels: c, outChannels: o, kernelSize: k, stride: 1, padding: p, rng: &r2)
                let x = randomTensor([5, c, h, h], &rng)
                let y = narrow.forward(x, training: true)
                _ = gemm.forward(x, training: true)
                let dy = randomTensor(y.shape, &rng)
                KernelSettings.narrow = true
                let dx1 = narrow.backward(dy, weightGradients: true, inputGradient: true)!.clone()
                KernelSettings.narrow = false
                let dx2 = gemm.backward(dy, weightGradients: true, inputGradient: true)!
                KernelSettings.narrow = true
                assertClose(dx1, dx2, rtol: 1e-4, atol: 1e-5, "dx c\(c) o\(o) k\(k) p\(p) (\(kernel))")
                assertClose(narrow.weight.grad, gemm.weight.grad, rtol: 1e-5, "dW c\(c) k\(k) (\(kernel))")
            }
        }
    }

    /// The same when dy arrives in oneDNN's blocked layout: a first convolution that hands its output to the next
    /// one on oneDNN (the original discriminator's D.0 → D.2).
    func testConv2dInputGradientFromBlockedLayout() throws {
        try onOneDNN {
            func make(_ seed: UInt64) -> (Sequential, Conv2d) {
                var r = RandomGenerator(seed: seed)
                let first = Conv2d(inChannels: 3, outChannels: 16, kernelSize: 3, stride: 1, padding: 1, rng: &r)
                let net = Sequential([first, LeakyReLU(0.2, inPlace: true),
                                      Conv2d(inChannels: 16, outChannels: 16, kernelSize: 3, stride: 2, padding: 1, rng: &r)])
                return (net, first)
            }
            let (a, firstA) = make(9), (b, _) = make(9)
            let x = randomTensor([19, 3, 16, 16], &rng)
            let y = a.forward(x, training: true)
            _ = b.forward(x, training: true)
            XCTAssertTrue(firstA.handedOutputInBlockedLayout)
            let dy = randomTensor(y.shape, &rng)
            KernelSettings.narrow = true
            let dx1 = a.backward(dy.clone(), weightGradients: false, inputGradient: true)!.clone()
            KernelSettings.narrow = false
            let dx2 = b.backward(dy.clone(), weightGradients: false, inputGradient: true)!
            assertClose(dx1, dx2, rtol: 1e-4, atol: 1e-5, "dx through the blocked handoff")
        }
    }

    /// A generator's last convolution (≤ 3 output channels, stride 1) where oneDNN runs the layer: the forward pass
    /// by the direct kernel against the naive kernel and oneDNN's, and the backward passes (on oneDNN) unchanged.
    func testConv2dForwardOfAnImageLayerMatchesNaive() throws {
        try onOneDNN {
            for (c, o, k, p, h) in [(32, 3, 3, 1, 16), (16, 3, 3, 1, 12), (8, 2, 5, 2, 9), (24, 1, 3, 0, 7), (8, 3, 1, 0, 5)] {
                var r1 = RandomGenerator(seed: 5), r2 = RandomGenerator(seed: 5)
                let narrow = Conv2d(inChannels: c, outChannels: o, kernelSize: k, stride: 1, padding: p, rng: &r1)
                let onednn = Conv2d(inChannels: c, outChannels: o, kernelSize: k, stride: 1, padding: p, rng: &r2)
                let x = randomTensor([3, c, h, h], &rng)
                KernelSettings.narrow = true
                let y1 = narrow.forward(x, training: true).clone()
                XCTAssertEqual(narrow.lastKernelVariant, "direct 3-channel forward", "c\(c) o\(o) k\(k)")
                KernelSettings.narrow = false
                let y2 = onednn.forward(x, training: true)
                XCTAssertNotEqual(onednn.lastKernelVariant, "direct 3-channel forward")
                let naive = naiveConv2d(x: x, weight: narrow.weight.value, bias: narrow.bias?.value, stride: 1, padding: p)
                assertClose(y1, naive, rtol: 1e-4, atol: 1e-5, "narrow, c\(c) o\(o) k\(k) p\(p)")
                assertClose(y2, naive, rtol: 1e-4, atol: 1e-5, "oneDNN, c\(c) o\(o) k\(k) p\(p)")
                let dy = randomTensor(y1.shape, &rng)
                let dx1 = narrow.backward(dy, weightGradients: true, inputGradient: true)!.clone()
                let dx2 = onednn.backward(dy, weightGradients: true, inputGradient: true)!
                assertClose(dx1, dx2, rtol: 1e-5, atol: 1e-6, "dx c\(c) o\(o) k\(k)")
                assertClose(narrow.weight.grad, onednn.weight.grad, rtol: 1e-5, atol: 1e-6, "dW c\(c) o\(o) k\(k)")
                KernelSettings.narrow = true
            }
        }
    }

    /// An image layer whose input arrives from a convolution in oneDNN's blocked layout — float32, or bfloat16 when
    /// both layers multiply in bfloat16 and hand over in bfloat16 — runs its forward on the direct kernel too, reading
    /// that layout; outputs and gradients must equal the layers run apart (on the handed-over values: rounded to
    /// bfloat16 where they pass as bfloat16).
    func testImageLayerReadsABlockedHandoff() throws {
        try onOneDNN {
            let saved = (KernelSettings.precision, KernelSettings.bf16Handoff)
            defer { (KernelSettings.precision, KernelSettings.bf16Handoff) = saved }
            for (precision, bf16Handoff) in [(Precision.fp32, false), (.bf16, false), (.bf16, true)] {
                (KernelSettings.precision, KernelSettings.bf16Handoff) = (precision, bf16Handoff)
                func make(_ r: inout RandomGenerator) -> [Conv2d] {
                    [Conv2d(inChannels: 8, outChannels: 32, kernelSize: 3, stride: 2, padding: 1, rng: &r),
                     Conv2d(inChannels: 32, outChannels: 3, kernelSize: 3, stride: 1, padding: 1, rng: &r)]
                }
                var r1 = RandomGenerator(seed: 3), r2 = RandomGenerator(seed: 3)
                let f = make(&r1), apart = make(&r2)
                let fused = Sequential([f[0], LeakyReLU(0.2, inPlace: true), f[1]])
                let act = LeakyReLU(0.2)
                let x = randomTensor([5, 8, 18, 18], &rng)
                let y1 = fused.forward(x, training: true).clone()
                if precision == .bf16 && f[0].lastKernelVariant != "bf16" { continue }  // no bfloat16 kernel on this CPU
                let what = "\(precision.rawValue)\(bf16Handoff ? ", bfloat16 hand-over" : "")"
                XCTAssertTrue(f[0].handedOutputInBlockedLayout, what)
                XCTAssertEqual(f[0].handedOutputInBFloat16, bf16Handoff, what)
                XCTAssertEqual(f[1].lastKernelVariant, "direct 3-channel forward", what)
                let mid = act.forward(apart[0].forward(x, training: true), training: true)
                if bf16Handoff { for i in 0..<mid.count { mid[i] = BFloat16.float(BFloat16.bits(mid[i])) } }
                let y2 = apart[1].forward(mid, training: true)
                assertClose(y1, y2, rtol: 1e-4, atol: 1e-5, "forward, \(what)")
                let dy = randomTensor(y1.shape, &rng)
                let dx1 = fused.backward(dy.clone(), weightGradients: true, inputGradient: true)!
                let g = apart[1].backward(dy, weightGradients: true, inputGradient: true)!
                let dx2 = apart[0].backward(act.backward(g, weightGradients: true, inputGradient: true)!,
                                            weightGradients: true, inputGradient: true)!
                // dx passes back as bfloat16 too with a bfloat16 hand-over
                let tolerance: Float = bf16Handoff ? 2e-2 : 1e-4
                assertClose(dx1, dx2, rtol: tolerance, atol: tolerance, "dx, \(what)")
                assertClose(f[1].weight.grad, apart[1].weight.grad, rtol: 1e-4, atol: 1e-4, "image layer dW, \(what)")
            }
        }
    }

    /// A generator's image layer by output phases against the naive kernel and the GEMM path.
    func testConvTranspose2dForwardMatchesNaive() throws {
        try skipUnlessVectorized()
        for (c, o, k, s, p, op, h) in [(16, 3, 4, 2, 1, 0, 7), (8, 2, 4, 2, 1, 1, 5), (24, 1, 2, 2, 0, 0, 6),
                                       (8, 3, 3, 1, 1, 0, 6), (16, 3, 4, 2, 2, 0, 3), (8, 3, 6, 3, 1, 2, 4)] {
            let conv = ConvTranspose2d(inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p, outputPadding: op, rng: &rng)
            let x = randomTensor([3, c, h, h], &rng)
            KernelSettings.narrow = true
            let y1 = conv.forward(x, training: true).clone()
            KernelSettings.narrow = false
            let y2 = conv.forward(x, training: true)
            let naive = naiveConvTranspose2d(x: x, weight: conv.weight.value, bias: conv.bias?.value, stride: s, padding: p, outputPadding: op)
            assertClose(y1, naive, rtol: 1e-4, atol: 1e-5, "narrow, c\(c) o\(o) k\(k) s\(s) p\(p) op\(op)")
            assertClose(y2, naive, rtol: 1e-4, atol: 1e-5, "GEMM, c\(c) o\(o) k\(k) s\(s) p\(p) op\(op)")
        }
    }
}
