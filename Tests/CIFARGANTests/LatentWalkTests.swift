import XCTest
import Foundation
import CIFARGAN
import GANCore

/// Latent walks, class walks and truncated sampling (`generate --interpolate`, `--truncation`).
final class LatentWalkTests: XCTestCase {
    /// Largest pixel difference: batches of other sizes take other kernel blockings, so ends agree to float
    /// rounding (a pixel level or two), not bit for bit.
    func maxDifference(_ a: RGBImage, _ b: RGBImage) -> Int {
        zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
    }

    func conditionalRun() throws -> URL {
        let dir = temporaryFolder(self), run = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 8, files: CIFAR10.trainFiles)
        var cfg = tinyConfig(target: "conditional"); cfg.epochs = 1; cfg.model.architecture = .cnn
        _ = try Jobs.train(config: cfg, runFolder: run, resume: false, data: try CIFAR10.load(from: dir, split: .train),
                           quiet: true, log: { _ in })
        return run
    }

    func testSlerpKeepsEndsAndNorm() {
        let a: [Float] = [3, 0, 0, 0], b: [Float] = [0, 3, 0, 0]
        var out = [Float](repeating: 0, count: 4)
        for (t, expected) in [(Float(0), a), (1, b)] {
            Sampler.slerp(a, b, 4, t: t, into: &out)
            for i in 0..<4 { XCTAssertEqual(out[i], expected[i], accuracy: 1e-6) }
        }
        Sampler.slerp(a, b, 4, t: 0.5, into: &out)
        XCTAssertEqual((out[0] * out[0] + out[1] * out[1]).squareRoot(), 3, accuracy: 1e-5, "on the sphere, not the chord (2.12)")
        Sampler.slerp(a, a, 4, t: 0.3, into: &out)
        XCTAssertEqual(out, a, "parallel ends: no division by sin 0")
    }

    func testTruncationKeepsLatentsInsideAndLeavesTheDefaultStreamAlone() {
        var rng = RandomGenerator(seed: 5), plain = RandomGenerator(seed: 5)
        let z = Tensor(shape: [64, 32]), reference = Tensor(shape: [64, 32])
        Sampler.drawLatents(z, &rng, truncation: nil)
        plain.fillNormal(reference)
        XCTAssertEqual(z.toArray(), reference.toArray(), "no truncation: the stream `generate` always drew")
        Sampler.drawLatents(z, &rng, truncation: 0.5)
        XCTAssert(z.toArray().allSatisfy { abs($0) <= 0.5 })
        XCTAssertGreaterThan(Set(z.toArray()).count, 2000, "redrawn, not clipped to ±ψ")
    }

    func testWalksStartAndEndAtTheirSamples() throws {
        let sampler = try Sampler(runFolder: try conditionalRun(), checkpoint: nil)
        // After one tiny epoch the classes' γ and β are still nearly 1 and 0: make them differ, so that the
        // walk's ends are far apart and a walk that ignored the blend (or the class) would show.
        var rng = RandomGenerator(seed: 11)
        for case let cbn as ConditionalBatchNorm in sampler.gan.samplingGenerator.layers {
            rng.fillNormal(cbn.weight.value, mean: 1, std: 0.5); rng.fillNormal(cbn.bias.value, std: 0.5)
        }
        // A class walk's ends are the fixed latent generated as class c and as class c + 1.
        let steps = 4, K = 10
        let walk = sampler.classWalk(steps: steps, seed: 2)
        XCTAssertEqual(walk.count, K * steps)
        var r1 = RandomGenerator(seed: 2)
        let z = Tensor(shape: [K, 16]); r1.fillNormal(z)
        // (clones: G's output buffer is reused by its next forward)
        let asFrom = sampler.gan.sample(z, classes: Array(0..<K)).clone(), asTo = sampler.gan.sample(z, classes: (0..<K).map { ($0 + 1) % K }).clone()
        for c in 0..<K {
            XCTAssertLessThanOrEqual(maxDifference(walk[c * steps], RGBImage(tensor: asFrom.data + c * 3072)), 2, "class \(c) start")
            XCTAssertLessThanOrEqual(maxDifference(walk[c * steps + steps - 1], RGBImage(tensor: asTo.data + c * 3072)), 2, "class \(c) end")
            XCTAssertGreaterThan(maxDifference(walk[c * steps], walk[c * steps + steps - 1]), 10, "class \(c): the walk moves")
        }
        XCTAssertNil(sampler.gan.labels?.blend, "blends are cleared after the walk")
        // A latent walk's first column is its first latent's sample.
        let latent = sampler.latentWalk(rows: 2, steps: 3, seed: 9, classLabel: 4)
        var r2 = RandomGenerator(seed: 9)
        let ends = Tensor(shape: [4, 16]); r2.fillNormal(ends)
        let x = sampler.gan.sample(ends, classes: [4, 4, 4, 4])
        XCTAssertLessThanOrEqual(maxDifference(latent[0], RGBImage(tensor: x.data)), 2)
        XCTAssertLessThanOrEqual(maxDifference(latent[2], RGBImage(tensor: x.data + 3072)), 2)
        XCTAssertLessThanOrEqual(maxDifference(latent[3], RGBImage(tensor: x.data + 2 * 3072)), 2)
        XCTAssertGreaterThan(maxDifference(latent[0], latent[2]), 10)
    }
}
