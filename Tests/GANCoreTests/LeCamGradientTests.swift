import XCTest
import GANCore

/// LeCam's penalty gradient by central differences (PyTorch agreement: CIFARGANTests/LeCamTests).
final class LeCamGradientTests: XCTestCase {
    func testLeCamGradientByFiniteDifferences() {
        let lecam = LeCam(weight: 0.5)
        lecam.update(realMean: 0.6, fakeMean: -0.4)
        var rng = RandomGenerator(seed: 9)
        let logits = Tensor(shape: [12, 1]); rng.fillNormal(logits)
        for term in [LeCam.Term.real, .fake] {
            assertLossGradient(logits, { x in let g = Tensor(shape: x.shape); return lecam.addGradient(logits: x, term: term, into: g) },
                               { let g = Tensor(shape: logits.shape); g.fill(0); lecam.addGradient(logits: logits, term: term, into: g); return g },
                               "LeCam \(term)")
        }
        // Gradients add to what is there (the adversarial loss's), and the anchors are bias-corrected.
        let g = Tensor(shape: [12, 1]); g.fill(1)
        let h = Tensor(shape: [12, 1]); h.fill(0)
        lecam.addGradient(logits: logits, term: .real, into: g); lecam.addGradient(logits: logits, term: .real, into: h)
        for i in 0..<12 { XCTAssertEqual(g[i], 1 + h[i], accuracy: 1e-7) }
        XCTAssertEqual(lecam.anchors.real, 0.6, accuracy: 1e-12)
        XCTAssertEqual(lecam.anchors.fake, -0.4, accuracy: 1e-12)
    }

}
