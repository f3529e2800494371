import XCTest
import GANCore

/// Agreement with PyTorch on fixed inputs (fixtures from tools/make_reference_fixtures.py).
final class PyTorchReferenceTests: XCTestCase {
    var ref: [String: SafeTensors.Entry] = [:]
    var rng = RandomGenerator(seed: 0)

    override func setUpWithError() throws { ref = try fixture("reference_ops") }

    func check(_ prefix: String, _ layer: Layer, training: Bool = true) { checkAgainstReference(ref, prefix, layer, training: training) }

    func testLinear() { check("linear", Linear(inFeatures: 5, outFeatures: 3, rng: &rng)) }

    func testConv2d() {
        forEachConvolutionKernel { kernel in
            for (c, o, k, s, p, h) in [(3, 4, 3, 1, 1, 7), (2, 3, 3, 2, 1, 8), (2, 3, 4, 2, 0, 9), (3, 2, 1, 1, 0, 5), (2, 2, 5, 3, 2, 11)] {
                checkAgainstReference(ref, "conv2d.c\(c)o\(o)k\(k)s\(s)p\(p)h\(h)",
                                      Conv2d(inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p, rng: &rng),
                                      note: " (\(kernel))")
            }
        }
    }

    func testConvTranspose2d() {
        for (c, o, k, s, p, op, h) in [(3, 2, 4, 2, 1, 0, 4), (2, 3, 3, 2, 1, 1, 5), (2, 2, 3, 1, 0, 0, 4), (3, 2, 5, 3, 2, 2, 3)] {
            check("convt.c\(c)o\(o)k\(k)s\(s)p\(p)op\(op)h\(h)",
                  ConvTranspose2d(inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p, outputPadding: op, rng: &rng))
        }
    }

    func testBatchNorm() {
        for dims in ["2d", "1d"] {
            for mode in ["train", "eval"] { check("bn\(dims).\(mode)", BatchNorm(numFeatures: 4), training: mode == "train") }
        }
    }

    func testActivations() {
        check("leakyrelu", LeakyReLU(0.2))
        check("leakyrelu", LeakyReLU(0.2, inPlace: true))
        check("relu", ReLU())
        check("tanh", Tanh())
        check("sigmoid", Sigmoid())
    }

    func testPoolingAndResidualBlocks() {
        check("avgpool", GlobalAvgPool2d())
        check("resblock.proj", ResidualBlock.basic(inChannels: 4, outChannels: 6, stride: 2, rng: &rng))
        check("resblock.identity", ResidualBlock.basic(inChannels: 4, outChannels: 4, stride: 1, rng: &rng))
    }

    func testCrossEntropy() {
        for (name, eps) in [("ce", Float(0)), ("ce_smooth", 0.1)] {
            let loss = CrossEntropyLoss(labelSmoothing: eps)
            let labels = ref.tensor("\(name).labels").toArray().map { Int($0) }
            let value = loss.forward(ref.tensor("\(name).logits"), labels)
            XCTAssertEqual(value, Double(ref.tensor("\(name).loss")[0]), accuracy: 1e-5, name)
            assertClose(loss.backward(), ref.tensor("\(name).grad"), name)
        }
    }

    func testBCEWithLogits() {
        let loss = BCEWithLogitsLoss()
        let value = loss.forward(ref.tensor("bce.logits"), ref.tensor("bce.targets"))
        XCTAssertEqual(value, Double(ref.tensor("bce.loss")[0]), accuracy: 1e-6)
        assertClose(loss.backward(), ref.tensor("bce.grad"), "bce grad")
    }

    func testOptimizers() {
        let cases: [(String, (Parameter) -> Optimizer)] = [
            ("adam", { Adam(parameters: [$0], lr: 1e-2, betas: (0.5, 0.999)) }),
            ("adam_wd", { Adam(parameters: [$0], lr: 1e-3, betas: (0.9, 0.99), eps: 1e-6, weightDecay: 0.1) }),
            ("sgd", { SGD(parameters: [$0], lr: 0.1) }),
            ("sgd_momentum", { SGD(parameters: [$0], lr: 0.1, momentum: 0.9, weightDecay: 0.01) }),
            ("sgd_nesterov", { SGD(parameters: [$0], lr: 0.1, momentum: 0.9, nesterov: true) }),
        ]
        for (name, make) in cases {
            let p = Parameter(ref.tensor("\(name).p0"))
            let opt = make(p)
            for step in 0..<3 {
                p.grad.copy(from: ref.tensor("\(name).g\(step)"))
                opt.step()
            }
            assertClose(p.value, ref.tensor("\(name).p3"), rtol: 1e-5, "\(name) after 3 steps")
        }
    }
}
