import XCTest
import GANCore
import CIFARGAN

/// One whole training iteration (D step, then G step) of the original models against PyTorch.
final class SeedIterationTests: XCTestCase {
    func testOneIterationMatchesPyTorch() throws {
        try forEachConvolutionKernel { _ in try checkOneIteration() }
    }

    private func checkOneIteration() throws {
        let ref = try fixture("reference_seed_iteration")
        let gan = GAN(model: ModelConfig(), optimizer: OptimizerConfig(), seed: 0)
        XCTAssertEqual(gan.generator.parameterCount, 738_307)
        XCTAssertEqual(gan.discriminator.parameterCount, 262_209)
        // The fixture's deterministic weights: offset + scale·(2·u(j, i) − 1) for parameter j (see the script).
        for (prefix, net) in [("G", gan.generator), ("D", gan.discriminator)] {
            for (j, (name, p)) in net.namedParameters.enumerated() {
                let so = ref.tensor("init.\(prefix).\(name)")
                for i in 0..<p.value.count {
                    p.value[i] = Float(Double(so[1]) + Double(so[0]) * (2 * hashUniform(j, i) - 1))
                }
            }
        }
        gan.dropoutLayers[0].presetMasks = (0..<3).map { ref.tensor("input.mask\($0)") }
        let stats = gan.iteration(real: ref.tensor("input.real"), latentForD: ref.tensor("input.z1"),
                                  latentForG: ref.tensor("input.z2"), realTargets: ref.tensor("input.t_real"),
                                  fakeTargets: ref.tensor("input.t_fake"))
        XCTAssertEqual(stats.lossD, Double(ref.tensor("out.loss_d")[0]), accuracy: 1e-5)
        XCTAssertEqual(stats.lossG, Double(ref.tensor("out.loss_g")[0]), accuracy: 1e-5)
        // D's gradients from its step, G's from its step (the optimizers do not clear them), then every
        // weight and running statistic after both Adam steps.
        var compared: [(String, Tensor)] = []
        compared += gan.discriminator.namedParameters.map { ("dstep.grad.\($0.0)", $0.1.grad) }
        compared += gan.generator.namedParameters.map { ("gstep.grad.\($0.0)", $0.1.grad) }
        for (prefix, net) in [("G", gan.generator), ("D", gan.discriminator)] {
            compared += net.stateDict.filter { !$0.isInteger }.map { ("after.\(prefix).\($0.name)", $0.tensor) }
        }
        XCTAssertEqual(compared.count, 2 * (14 + 10) + 6, "every gradient, parameter and running statistic")
        for (key, tensor) in compared {
            // Reference: PyTorch in float64, large tensors sampled every 97th value; tolerance: 1e-4 relative
            // plus twice PyTorch float32's own error (see the fixture script).
            let expected = ref.tensor(key), tolerance = ref.tensor("tol.\(key)")[0]
            var worst: Float = 0
            for i in 0..<expected.count {
                worst = max(worst, abs(tensor[tensor.count <= 10000 ? i : i * 97] - expected[i]))
            }
            XCTAssert(worst <= tolerance, "\(key): max abs difference \(worst) exceeds \(tolerance)")
        }
    }
}

/// SplitMix64 of (j << 32 | i), top 24 bits: the fixture script's `hash_uniform`.
func hashUniform(_ j: Int, _ i: Int) -> Double {
    var z = (UInt64(j) << 32) | UInt64(i)
    z &+= 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Double(z >> 40) / Double(1 << 24)
}
