import XCTest
import GANCore

/// `ConvTranspose2d` by Winograd tiles (4×4 kernels, stride 2, ≥ 64 output channels, channels in multiples of 8)
/// against the naive kernel and against the same layer with `KernelSettings.winograd` off (phase GEMMs, patch GEMMs).
final class WinogradTests: XCTestCase {
    var rng = RandomGenerator(seed: 13)

    /// (in, out, padding, output padding, size): DCGAN's shapes, odd phase sizes (partial tiles), padding 0 and 2.
    let shapes = [(16, 64, 1, 0, 4), (8, 64, 1, 0, 5), (8, 72, 1, 1, 3), (16, 64, 0, 0, 3), (8, 64, 2, 1, 6), (24, 64, 1, 0, 1)]

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
}
