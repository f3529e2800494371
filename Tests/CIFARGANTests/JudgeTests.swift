import XCTest
import Foundation
import CIFARGAN
import GANCore

/// The built-in judge on real images: the metrics rank a class against itself above the same images with
/// noise and above another class.
final class JudgeTests: XCTestCase {
    func testMetricsRankRealClassFirst() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "real-300", withExtension: "bin", subdirectory: "Fixtures"))
        let data = try Data(contentsOf: url)
        XCTAssertEqual(data.count, 300 * 3073)
        func pixels(_ range: Range<Int>) -> [UInt8] { range.flatMap { Array(data[($0 * 3073 + 1)..<(($0 + 1) * 3073)]) } }
        let catsA = pixels(0..<100), catsB = pixels(100..<200), autos = pixels(200..<300)
        var rng = RandomGenerator(seed: 1)
        let noisy = catsB.map { UInt8(max(0, min(255, Float($0) + 40 * rng.uniform(-1, 1)))) }

        let judge = try Judge(folder: Judge.defaultFolder)
        let reference = judge.embed(pixels: catsA).0
        func evaluate(_ px: [UInt8]) throws -> EvaluationResult {
            try Evaluator.evaluate(name: "x", pixels: px, reference: reference, judge: judge, classLabel: 3, kidSubsets: 10)
        }
        let same = try evaluate(catsB), withNoise = try evaluate(noisy), other = try evaluate(autos)
        XCTAssertLessThan(same.fid, withNoise.fid)
        XCTAssertLessThan(same.fid, other.fid)
        XCTAssertLessThan(same.kid, withNoise.kid)
        XCTAssertLessThan(same.kid, other.kid)
        XCTAssertGreaterThan(same.recognitionRate!, 0.45, "the judge recognises real cats (confident and inside the manifold of 100)")
        XCTAssertLessThan(other.recognitionRate!, 0.1, "and does not call automobiles cats")
        XCTAssertGreaterThan(same.precision, other.precision)
    }

    /// Recognition must not be credulous (issue 13): the judge's argmax alone calls noise, blobs and shuffled
    /// patches some class, often with high confidence; recognition counts an image only when the judge gives
    /// the class probability ≥ 0.5 and the image lies inside the real images' k-NN manifold.
    func testRecognitionRefusesNoiseBlobsAndShuffledPatches() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "real-300", withExtension: "bin", subdirectory: "Fixtures"))
        let data = try Data(contentsOf: url)
        func pixels(_ range: Range<Int>) -> [UInt8] { range.flatMap { Array(data[($0 * 3073 + 1)..<(($0 + 1) * 3073)]) } }
        let reference = pixels(0..<100), cats = pixels(100..<200), autos = pixels(200..<300)
        var rng = RandomGenerator(seed: 1)
        let noise = (0..<(100 * 3072)).map { _ in UInt8(rng.next() % 256) }
        // Box blur of radius r (r = 8: a blob of the image's colours).
        func blur(_ px: [UInt8], _ r: Int) -> [UInt8] {
            var out = px
            for img in 0..<(px.count / 3072) { for c in 0..<3 { for y in 0..<32 { for x in 0..<32 {
                var s = 0, n = 0
                for dy in -r...r { for dx in -r...r { let yy = y + dy, xx = x + dx; if yy >= 0, yy < 32, xx >= 0, xx < 32 { s += Int(px[img * 3072 + c * 1024 + yy * 32 + xx]); n += 1 } } }
                out[img * 3072 + c * 1024 + y * 32 + x] = UInt8(s / n) } } } }
            return out
        }
        func shuffle(_ px: [UInt8], _ block: Int) -> [UInt8] {
            var out = px
            let nb = 32 / block
            for img in 0..<(px.count / 3072) {
                var perm = Array(0..<(nb * nb)); for i in stride(from: perm.count - 1, to: 0, by: -1) { perm.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                for (dst, src) in perm.enumerated() {
                    for c in 0..<3 { for y in 0..<block { for x in 0..<block {
                        out[img * 3072 + c * 1024 + ((dst / nb) * block + y) * 32 + (dst % nb) * block + x] = px[img * 3072 + c * 1024 + ((src / nb) * block + y) * 32 + (src % nb) * block + x] } } }
                }
            }
            return out
        }
        let judge = try Judge(folder: Judge.defaultFolder)
        let manifold = judge.embed(pixels: reference).0
        func rates(_ px: [UInt8]) -> (gated: Double, argmaxAnyClass: Double) {
            let (f, p) = judge.embed(pixels: px)
            let gated = Metrics.recognitionRate(probabilities: p, classes: 10, label: 3, realistic: Metrics.insideManifold(manifold, f))
            let best = (0..<10).map { Metrics.recognitionRate(probabilities: p, classes: 10, label: $0, minimumConfidence: 0) }.max()!
            return (gated, best)
        }
        XCTAssertGreaterThan(rates(cats).gated, 0.45, "real cats are recognised")
        XCTAssertGreaterThan(rates(blur(cats, 1)).gated, 0.3, "so are slightly blurred ones")
        let shuffled = rates(shuffle(cats, 4))
        XCTAssertGreaterThan(shuffled.argmaxAnyClass, 0.8, "the argmax alone calls 4×4-patch shuffles one class")
        for (what, px, limit) in [("automobiles", autos, 0.02), ("uniform noise", noise, 0.02), ("blobs (blur radius 8)", blur(cats, 8), 0.02),
                                  ("heavy blur (radius 4)", blur(cats, 4), 0.05), ("8×8-patch shuffles", shuffle(cats, 8), 0.1),
                                  ("4×4-patch shuffles", shuffle(cats, 4), 0.02)] {
            XCTAssertLessThanOrEqual(rates(px).gated, limit, "\(what) must not be recognised as cats")
        }
    }
}
