import XCTest
import Foundation
import CIFARGAN
import GANCore

/// ADA's controller against StyleGAN2-ADA's update rule (`tools/make_model_fixtures.py`), and the
/// probability it steers in DiffAugment.
final class AdaptiveAugmentationTests: XCTestCase {
    func testControllerFollowsTheReferenceRule() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "reference_models", withExtension: "safetensors", subdirectory: "Fixtures"))
        let ref = try SafeTensors.read(from: url)
        let logits = try XCTUnwrap(ref["ada.logits"]), expected = try XCTUnwrap(ref["ada.p"]).values
        var ada = AdaptiveAugmentation(target: 0.6, interval: 4, speedImages: 40)
        var seen: [Float] = [], moved = false
        for step in 0..<40 {
            let batch = Tensor(shape: [8, 1], values: Array(logits.values[(step * 8)..<((step + 1) * 8)]))
            if let p = ada.observe(realLogits: batch) { moved = moved || p != 0 }
            seen.append(Float(ada.probability))
        }
        XCTAssertEqual(seen, expected)
        XCTAssert(moved && expected.contains(0) && expected.contains(1), "the fixture drives p down to 0 and up to 1")
    }

    func testUpdateRuleDirectionAndClamp() {
        XCTAssertEqual(AdaptiveAugmentation.adjusted(0.5, signal: 0.9, target: 0.6, images: 256, speedImages: 512), 1)
        XCTAssertEqual(AdaptiveAugmentation.adjusted(0.5, signal: 0.1, target: 0.6, images: 128, speedImages: 512), 0.25)
        XCTAssertEqual(AdaptiveAugmentation.adjusted(0.1, signal: -1, target: 0.6, images: 256, speedImages: 512), 0)
        XCTAssertEqual(AdaptiveAugmentation.adjusted(0.3, signal: 0.6, target: 0.6, images: 256, speedImages: 512), 0.3)
    }

    func testProbabilityGatesEachOperationPerImage() {
        var rng = RandomGenerator(seed: 4)
        let x = Tensor(shape: [64, 3, 8, 8]); rng.fillNormal(x)
        let policy: Set<DiffAugment.Operation> = [.color, .translation, .cutout]
        let none = DiffAugment(policy: policy, seed: 1); none.probability = 0
        XCTAssertEqual(none.forward(x, training: true).toArray(), x.toArray(), "probability 0 is the identity")
        let half = DiffAugment(policy: policy, seed: 1); half.probability = 0.5
        let y = half.forward(x, training: true)
        let unchanged = (0..<64).filter { n in (0..<192).allSatisfy { y[n * 192 + $0] == x[n * 192 + $0] } }.count
        // An image is left alone when none of its three operations is drawn: 1/8 of them, give or take.
        XCTAssert((2...18).contains(unchanged), "\(unchanged) of 64 images unchanged at p = ½")
        let always = DiffAugment(policy: policy, seed: 1), before = DiffAugment(policy: policy, seed: 1)
        always.probability = 1
        XCTAssertEqual(always.forward(x, training: true).toArray(), before.forward(x, training: true).toArray())
    }
}
