import XCTest
import Foundation
import CIFARGAN
import GANCore

/// LeCam regularisation against PyTorch (the authors' formula, `tools/make_model_fixtures.py`; finite
/// differences in GANCoreTests/LeCamGradientTests); the EMA start step.
final class LeCamTests: XCTestCase {
    func testLeCamAgreesWithPyTorch() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "reference_models", withExtension: "safetensors", subdirectory: "Fixtures"))
        let ref = try SafeTensors.read(from: url)
        func t(_ name: String) -> Tensor { let e = ref["lecam.\(name)"]!; return Tensor(shape: e.shape, values: e.values) }
        let lecam = LeCam(weight: 0.3)
        let r = t("real_means"), f = t("fake_means")
        for i in 0..<3 { lecam.update(realMean: Double(r[i]), fakeMean: Double(f[i])) }
        for (term, logits, penalty, grad) in [(LeCam.Term.real, t("d_real"), t("penalty_real"), t("grad_real")),
                                              (.fake, t("d_fake"), t("penalty_fake"), t("grad_fake"))] {
            let g = Tensor(shape: logits.shape); g.fill(0)
            let value = lecam.addGradient(logits: logits, term: term, into: g)
            XCTAssertEqual(value, Double(penalty[0]), accuracy: 1e-6 + 1e-5 * Double(penalty[0]), "\(term) penalty")
            for i in 0..<g.count { XCTAssertEqual(g[i], grad[i], accuracy: 1e-6, "\(term) gradient [\(i)]") }
            XCTAssert((0..<g.count).contains { g[$0] != 0 }, "\(term): some logits are penalised")
        }
    }

    func testEMACopiesGUntilItsStartStep() throws {
        var model = ModelConfig(); model.generatorWidth = 8; model.discriminatorWidth = 4; model.latentDim = 4
        let gan = GAN(model: model, optimizer: OptimizerConfig(), seed: 1, emaDecay: 0.9, emaStart: 2)
        var rng = RandomGenerator(seed: 2)
        func step() {
            let x = Tensor(shape: [4, 3, 32, 32]); rng.fillNormal(x)
            let z1 = Tensor(shape: [4, 4]), z2 = Tensor(shape: [4, 4]); rng.fillNormal(z1); rng.fillNormal(z2)
            let t1 = Tensor(shape: [4, 1]); t1.fill(1)
            let t0 = Tensor(shape: [4, 1]); t0.fill(0)
            gan.iteration(real: x, latentForD: z1, latentForG: z2, realTargets: t1, fakeTargets: t0)
        }
        func emaEqualsG() -> Bool { zip(gan.generatorEMA!.parameters, gan.generator.parameters).allSatisfy { $0.value.toArray() == $1.value.toArray() } }
        step(); XCTAssert(emaEqualsG())
        step(); XCTAssert(emaEqualsG())
        XCTAssertEqual(gan.emaUpdates, 0)
        step(); XCTAssertFalse(emaEqualsG(), "averaging starts after ema_start iterations")
        XCTAssertEqual(gan.emaUpdates, 1)
    }
}
