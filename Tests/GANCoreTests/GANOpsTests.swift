import XCTest
import GANCore

/// The ops beyond the original recipe: spectral norm, conditional batch norm, the projection head,
/// DiffAugment, resampling, the hinge loss — finite differences and PyTorch fixtures
/// (`reference_gan_ops.safetensors` from tools/make_reference_fixtures.py).
final class GANOpsTests: XCTestCase {
    var rng = RandomGenerator(seed: 11)

    // MARK: finite differences

    func testSpectralNormGradients() {
        // Eval mode: u and v stay fixed, so the finite differences see the same function as backward.
        // Power iterations first: with random u and v, σ = uᵀWv can be near 0 and W/σ ill-conditioned.
        let linear = SpectralNorm(Linear(inFeatures: 6, outFeatures: 4, rng: &rng), rng: &rng)
        for _ in 0..<5 { _ = linear.forward(randomTensor([2, 6], &rng), training: true) }
        gradientCheck(linear, input: randomTensor([5, 6], &rng), training: false, "SpectralNorm(Linear)")
        let conv = SpectralNorm(Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, stride: 2, padding: 1, rng: &rng), rng: &rng)
        for _ in 0..<5 { _ = conv.forward(randomTensor([1, 3, 7, 7], &rng), training: true) }
        gradientCheck(conv, input: randomTensor([2, 3, 7, 7], &rng), training: false, "SpectralNorm(Conv2d)")
    }

    func testSpectralNormConvergesToTheLargestSingularValue() {
        // W = diag(3, 2, 1) padded: σ = 3, and power iteration must find it.
        let linear = Linear(inFeatures: 4, outFeatures: 3, bias: false, rng: &rng)
        linear.weight.value.fill(0)
        linear.weight.value[0] = 2; linear.weight.value[5] = 3; linear.weight.value[10] = 1
        let sn = SpectralNorm(linear, rng: &rng)
        for _ in 0..<50 { _ = sn.forward(randomTensor([1, 4], &rng), training: true) }
        XCTAssertEqual(sn.sigma, 3, accuracy: 1e-4)
        XCTAssertEqual(linear.weight.value[5], 1, accuracy: 1e-4, "the normalised weight has spectral norm 1")
    }

    func testConditionalBatchNormGradients() {
        let labels = ClassLabels(classes: 3)
        labels.labels = [2, 0, 2, 1]
        for training in [true, false] {
            let cbn = ConditionalBatchNorm(numFeatures: 3, labels: labels)
            rng.fillUniform(cbn.weight.value, 0.5, 1.5)
            rng.fillNormal(cbn.bias.value)
            rng.fillUniform(cbn.norm.runningVar, 0.5, 1.5)
            gradientCheck(cbn, input: randomTensor([4, 3, 3, 3], &rng, scale: 2), training: training,
                          "ConditionalBatchNorm \(training ? "train" : "eval")")
        }
    }

    func testProjectionHeadGradients() {
        let labels = ClassLabels(classes: 4)
        labels.labels = [3, 0, 3, 1, 2]
        let head = ProjectionHead(linear: Linear(inFeatures: 6, outFeatures: 1, rng: &rng), features: 6, labels: labels, rng: &rng)
        gradientCheck(head, input: randomTensor([5, 6], &rng), "ProjectionHead")
        let snHead = ProjectionHead(linear: SpectralNorm(Linear(inFeatures: 6, outFeatures: 1, rng: &rng), rng: &rng),
                                    features: 6, labels: labels, rng: &rng)
        for _ in 0..<3 { _ = snHead.forward(randomTensor([5, 6], &rng), training: true) }
        gradientCheck(snHead, input: randomTensor([5, 6], &rng), training: false, "ProjectionHead with spectral norm")
    }

    func testDiffAugmentGradients() {
        let policies: [Set<DiffAugment.Operation>] = [[.color], [.translation], [.cutout], [.color, .translation, .cutout]]
        for (i, policy) in policies.enumerated() {
            let augment = DiffAugment(policy: policy, seed: UInt64(i))
            let x = randomTensor([6, 3, 8, 8], &rng)
            _ = augment.forward(x, training: true)
            augment.redraw = false   // the same draws for every perturbed forward
            gradientCheck(augment, input: x, "DiffAugment \(policy.map(\.rawValue).sorted())")
        }
        // With ADA's per-image probability: skipped operations must be skipped in backward too.
        let gated = DiffAugment(policy: [.color, .translation, .cutout], seed: 7)
        gated.probability = 0.5
        let x = randomTensor([6, 3, 8, 8], &rng)
        _ = gated.forward(x, training: true)
        gated.redraw = false
        gradientCheck(gated, input: x, "DiffAugment at probability ½")
    }

    func testDiffAugmentTranslationAndCutoutMoveAndEraseOnly() {
        let x = randomTensor([16, 2, 8, 8], &rng)
        for i in 0..<x.count where x[i] == 0 { x[i] = 1 }   // zeros below mean "shifted in" or "cut out"
        let translated = DiffAugment(policy: [.translation], seed: 1).forward(x, training: true)
        var shifts = Set<[Int]>()
        for n in 0..<16 {
            // Exactly one shift within ±1 pixel (⅛ of 8) explains the image: moved pixels, zeros shifted in.
            let matches = (-1...1).flatMap { dy in (-1...1).map { dx in [dy, dx] } }.filter { s in
                (0..<2).allSatisfy { c in (0..<8).allSatisfy { i in (0..<8).allSatisfy { j in
                    let (si, sj) = (i + s[0], j + s[1])
                    let want: Float = (0..<8).contains(si) && (0..<8).contains(sj) ? x[((n * 2 + c) * 8 + si) * 8 + sj] : 0
                    return translated[((n * 2 + c) * 8 + i) * 8 + j] == want
                } } }
            }
            XCTAssertEqual(matches.count, 1, "image \(n): \(matches)")
            shifts.formUnion(matches)
        }
        XCTAssertGreaterThan(shifts.count, 3, "shifts vary between images")
        let cut = DiffAugment(policy: [.cutout], seed: 2).forward(x, training: true)
        for n in 0..<16 {
            var zeros = 0
            for k in 0..<128 {
                let v = cut[n * 128 + k]
                XCTAssert(v == 0 || v == x[n * 128 + k])
                if v == 0 { zeros += 1 }
            }
            XCTAssert(zeros <= 2 * 16 && zeros % 2 == 0, "image \(n): a square of at most 4×4 per channel, got \(zeros) zeros")
        }
        XCTAssert(DiffAugment(policy: [.color], seed: 3).forward(x, training: false) === x, "eval mode is the identity")
    }

    func testResamplingAndPoolingGradients() {
        gradientCheck(Upsample2x(), input: randomTensor([2, 3, 3, 4], &rng), "Upsample2x")
        gradientCheck(AvgPool2x2(), input: randomTensor([2, 3, 4, 6], &rng), "AvgPool2x2")
        gradientCheck(GlobalSumPool2d(), input: randomTensor([2, 3, 4, 5], &rng), "GlobalSumPool2d")
    }

    func testHingeLossGradients() {
        let x = randomTensor([9, 1], &rng, scale: 1.5)
        for i in 0..<x.count where abs(abs(x[i]) - 1) < 0.05 { x[i] += 0.1 }   // away from the hinge
        for term in [HingeLoss.Term.real, .fake, .generator] {
            let loss = HingeLoss()
            assertLossGradient(x, { loss.forward($0, term) }, { loss.backward() }, "hinge \(term)")
        }
    }

    // MARK: PyTorch

    func testAgainstPyTorch() throws {
        let ref = try fixture("reference_gan_ops")
        for mode in ["train", "eval"] {
            checkAgainstReference(ref, "sn_linear.\(mode)", SpectralNorm(Linear(inFeatures: 6, outFeatures: 4, rng: &rng), rng: &rng), training: mode == "train")
            checkAgainstReference(ref, "sn_conv.\(mode)", SpectralNorm(Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, stride: 2, padding: 1, rng: &rng), rng: &rng),
                  training: mode == "train")
        }
        let labels = ClassLabels(classes: 4)
        labels.labels = ref.tensor("labels").toArray().map { Int($0) }
        for mode in ["train", "eval"] {
            checkAgainstReference(ref, "cbn.\(mode)", ConditionalBatchNorm(numFeatures: 3, labels: labels), training: mode == "train")
        }
        checkAgainstReference(ref, "projection", ProjectionHead(linear: Linear(inFeatures: 5, outFeatures: 1, rng: &rng), features: 5, labels: labels, rng: &rng))
        checkAgainstReference(ref, "projection_sn", ProjectionHead(linear: SpectralNorm(Linear(inFeatures: 5, outFeatures: 1, rng: &rng), rng: &rng),
                                                   features: 5, labels: labels, rng: &rng))
        checkAgainstReference(ref, "upsample", Upsample2x())
        checkAgainstReference(ref, "avgpool2", AvgPool2x2())
        checkAgainstReference(ref, "sumpool", GlobalSumPool2d())
        for (name, term) in [("real", HingeLoss.Term.real), ("fake", .fake), ("generator", .generator)] {
            let loss = HingeLoss()
            XCTAssertEqual(loss.forward(ref.tensor("hinge.logits"), term), Double(ref.tensor("hinge.\(name).loss")[0]), accuracy: 1e-6, name)
            assertClose(loss.backward(), ref.tensor("hinge.\(name).grad"), "hinge \(name) grad")
        }
    }
}
