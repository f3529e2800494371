import XCTest
import GANCore

/// Finite-difference gradient checks for every op and option.
final class GradientCheckTests: XCTestCase {
    var rng = RandomGenerator(seed: 1)

    func testLinear() {
        gradientCheck(Linear(inFeatures: 5, outFeatures: 3, rng: &rng), input: randomTensor([4, 5], &rng), "Linear")
        gradientCheck(Linear(inFeatures: 5, outFeatures: 3, bias: false, rng: &rng), input: randomTensor([4, 5], &rng), "Linear no bias")
    }

    func testConv2dOptions() {
        // (in, out, kernel, stride, padding, size, bias)
        forEachConvolutionKernel { kernel in
            for (c, o, k, s, p, h, b) in [(3, 4, 3, 1, 1, 7, true), (2, 3, 3, 2, 1, 8, true), (2, 3, 4, 2, 0, 9, false),
                                          (3, 2, 1, 1, 0, 5, true), (2, 2, 5, 3, 2, 11, true), (2, 3, 3, 2, 1, 4, true)] {
                let conv = Conv2d(inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p, bias: b, rng: &rng)
                gradientCheck(conv, input: randomTensor([3, c, h, h], &rng), "Conv2d k\(k) s\(s) p\(p) h\(h) (\(kernel))")
            }
        }
    }

    func testConvTranspose2dOptions() {
        // (in, out, kernel, stride, padding, output padding, size, bias)
        for (c, o, k, s, p, op, h, b) in [(3, 2, 4, 2, 1, 0, 4, true), (2, 3, 3, 2, 1, 1, 5, true), (2, 2, 3, 1, 0, 0, 4, false),
                                          (3, 2, 5, 3, 2, 2, 3, true), (2, 2, 4, 2, 1, 0, 16, true)] {
            let conv = ConvTranspose2d(inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p,
                                       outputPadding: op, bias: b, rng: &rng)
            gradientCheck(conv, input: randomTensor([3, c, h, h], &rng), "ConvTranspose2d k\(k) s\(s) p\(p) op\(op)")
        }
    }

    func testBatchNormTrainAndEval() {
        for shape in [[4, 3, 3, 3], [6, 3]] {
            for training in [true, false] {
                let bn = BatchNorm(numFeatures: 3)
                rng.fillUniform(bn.weight.value, 0.5, 1.5)
                rng.fillNormal(bn.bias.value)
                rng.fillUniform(bn.runningVar, 0.5, 1.5)
                gradientCheck(bn, input: randomTensor(shape, &rng, scale: 2), training: training,
                              "BatchNorm \(shape) \(training ? "train" : "eval")")
            }
        }
    }

    /// Inputs kept away from the kink at 0, where the derivative is not defined.
    func awayFromZero(_ shape: [Int]) -> Tensor {
        let x = randomTensor(shape, &rng, scale: 2)
        for i in 0..<x.count where abs(x[i]) < 0.05 { x[i] += x[i] < 0 ? -0.1 : 0.1 }
        return x
    }

    func testActivations() {
        gradientCheck(LeakyReLU(0.2), input: awayFromZero([3, 40]), "LeakyReLU")
        gradientCheck(LeakyReLU(0.2, inPlace: true), input: awayFromZero([3, 40]), "LeakyReLU in place")
        gradientCheck(ReLU(), input: awayFromZero([3, 40]), "ReLU")
        gradientCheck(Tanh(), input: randomTensor([3, 40], &rng), "Tanh")
        gradientCheck(Sigmoid(), input: randomTensor([3, 40], &rng), "Sigmoid")
    }

    func testDropoutReshapeScale() {
        let drop = Dropout(0.4, seed: 3)
        let mask = Tensor(shape: [4, 10])
        for i in 0..<mask.count { mask[i] = i % 3 == 0 ? 0 : 1 }
        gradientCheck(drop, input: randomTensor([4, 10], &rng), "Dropout",
                      prepare: { drop.presetMasks = [mask] })
        gradientCheck(Dropout(0.4), input: randomTensor([4, 10], &rng), training: false, "Dropout eval")
        gradientCheck(Reshape([2, 3, 2]), input: randomTensor([2, 12], &rng), "Reshape")
        gradientCheck(Scale(-1.5), input: randomTensor([2, 12], &rng), "Scale")
    }

    func testAdd() {
        let a = randomTensor([3, 4], &rng), b = randomTensor([3, 4], &rng), dy = randomTensor([3, 4], &rng)
        let add = Add()
        let y = add.forward(a, b)
        for i in 0..<y.count { XCTAssertEqual(y[i], a[i] + b[i]) }
        let (da, db) = add.backward(dy)
        // L = Σ (a + b)·dy is linear, so its finite difference is exact: check one coordinate of each input.
        let h: Float = 0.5
        let base = add.forward(a, b).toArray().enumerated().reduce(0.0) { $0 + Double($1.element * dy[$1.offset]) }
        a[5] += h
        let moved = add.forward(a, b).toArray().enumerated().reduce(0.0) { $0 + Double($1.element * dy[$1.offset]) }
        XCTAssertEqual((moved - base) / Double(h), Double(da[5]), accuracy: 1e-4)
        XCTAssertEqual(db[5], dy[5])
    }

    func testPoolingAndResidualBlocks() {
        gradientCheck(GlobalAvgPool2d(), input: randomTensor([2, 3, 4, 5], &rng), "GlobalAvgPool2d")
        gradientCheck(ReLU(inPlace: true), input: awayFromZero([3, 40]), "ReLU in place")
        // Residual blocks hold ReLUs behind batch norm: a step of 1e-2 or 1e-3 in a first-layer weight moves every
        // unit and some cross the kink (measured: mismatches at 1e-2 and 1e-3, none at 1e-4), so a smaller step.
        for (c, o, s) in [(3, 5, 2), (4, 4, 1)] {
            gradientCheck(ResidualBlock.basic(inChannels: c, outChannels: o, stride: s, rng: &rng),
                          input: randomTensor([4, c, 6, 6], &rng), tolerance: 2e-2, step: 1e-4, "ResidualBlock \(c)→\(o) s\(s)")
        }
    }

    func testCrossEntropy() {
        for eps in [Float(0), 0.1] {
            let x = randomTensor([5, 7], &rng, scale: 2), labels = [0, 6, 3, 3, 1]
            let loss = CrossEntropyLoss(labelSmoothing: eps)
            _ = loss.forward(x, labels)
            let g = loss.backward().clone()
            for i in stride(from: 0, to: 35, by: 3) {
                let old = x[i], h: Float = 1e-2
                x[i] = old + h; let lp = loss.forward(x, labels)
                x[i] = old - h; let lm = loss.forward(x, labels)
                x[i] = old
                XCTAssertEqual((lp - lm) / Double(2 * h), Double(g[i]), accuracy: 1e-4, "CE ε=\(eps) d/dx[\(i)]")
            }
        }
    }

    func testBCEWithLogits() {
        let x = randomTensor([8, 1], &rng, scale: 3), t = Tensor(shape: [8, 1])
        rng.fillUniform(t, 0, 1)
        let loss = BCEWithLogitsLoss()
        assertLossGradient(x, { loss.forward($0, t) }, { loss.backward() }, "BCE")
    }

    /// The harness itself must catch a wrong gradient: a layer whose backward is off by a factor fails it.
    func testGradientCheckCatchesAWrongGradient() {
        final class WrongScale: Layer {
            let inner = Scale(2)
            func forward(_ x: Tensor, training: Bool) -> Tensor { inner.forward(x, training: training) }
            func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
                let dx = inner.backward(dy, weightGradients: weightGradients, inputGradient: inputGradient)
                dx?.scale(by: 1.1)
                return dx
            }
        }
        XCTAssertFalse(gradientMismatches(WrongScale(), input: randomTensor([3, 5], &rng), "wrong").isEmpty)
        XCTAssertTrue(gradientMismatches(Scale(2), input: randomTensor([3, 5], &rng), "right").isEmpty)
    }
}
