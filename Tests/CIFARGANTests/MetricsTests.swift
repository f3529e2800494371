import XCTest
import Foundation
import CIFARGAN
import GANCore

/// The metrics against numpy/scipy on fixed features (tools/make_metric_fixtures.py), and on constructed sets.
final class MetricsTests: XCTestCase {
    var ref: [String: SafeTensors.Entry] = [:]

    override func setUpWithError() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "metrics", withExtension: "safetensors", subdirectory: "Fixtures"))
        ref = try SafeTensors.read(from: url)
    }

    func features(_ name: String) -> FeatureSet {
        let e = ref[name]!
        return FeatureSet(count: e.shape[0], dim: e.shape[1], values: e.values.map(Double.init))
    }
    func scalar(_ name: String) -> Double { Double(ref[name]!.values[0]) }

    func testFIDAgreesWithScipyAndIsZeroOnItself() throws {
        let real = features("real"), fake = features("fake")
        XCTAssertEqual(try Metrics.fid(real.statistics(), fake.statistics()), scalar("fid"), accuracy: 1e-4 * scalar("fid"))
        XCTAssertEqual(try Metrics.fid(real.statistics(), real.statistics()), 0, accuracy: 1e-6)
    }

    func testSquareRootAgreesWithScipy() throws {
        let a = ref["spd"]!, expected = ref["spd_sqrt"]!
        let n = a.shape[0]
        let s = try symmetricSquareRoot(a.values.map(Double.init), n: n)
        let scale = expected.values.map { abs(Double($0)) }.max()!
        for i in 0..<(n * n) { XCTAssertEqual(s[i], Double(expected.values[i]), accuracy: 1e-4 * scale) }
        // S·S = A
        for i in 0..<n { for j in 0..<n {
            var acc = 0.0
            for k in 0..<n { acc += s[i * n + k] * s[k * n + j] }
            XCTAssertEqual(acc, Double(a.values[i * n + j]), accuracy: 1e-4 * scale * scale)
        } }
    }

    func testKIDPrecisionRecallAndISAgreeWithNumpy() {
        let real = features("real"), fake = features("fake")
        XCTAssertEqual(Metrics.mmd2(real, fake), scalar("mmd2"), accuracy: 1e-4 * abs(scalar("mmd2")))
        let (p, r) = Metrics.precisionRecall(real: real, fake: fake, k: 3)
        XCTAssertEqual(p, scalar("precision"), accuracy: 1e-6)
        XCTAssertEqual(r, scalar("recall"), accuracy: 1e-6)
        let probs = ref["probs"]!.values.map(Double.init)
        let (mean, std) = Metrics.inceptionScore(probabilities: probs, classes: 10, splits: 10)
        XCTAssertEqual(mean, scalar("is_mean"), accuracy: 1e-4)
        XCTAssertEqual(std, scalar("is_std"), accuracy: 1e-4)
        // KID over subsets as large as both sets reproduces the full-set MMD² with no spread; smaller subsets spread.
        let real250 = real.subset(Array(0..<250))
        let (kid, kidStd) = Metrics.kid(real250, fake, subsets: 3, subsetSize: 10_000, seed: 1)
        XCTAssertEqual(kid, Metrics.mmd2(real250, fake), accuracy: 1e-9 * abs(kid))
        XCTAssertEqual(kidStd, 0, accuracy: 1e-9 * abs(kid))
        let (_, smallStd) = Metrics.kid(real, fake, subsets: 10, subsetSize: 50, seed: 1)
        XCTAssertGreaterThan(smallStd, 0)
    }

    /// Constructed clouds: a sample of the same distribution scores better than a noisy copy or another cloud.
    func testMetricsRankSameDistributionFirst() throws {
        var rng = RandomGenerator(seed: 3)
        func cloud(_ n: Int, shift: Double, noise: Double = 0) -> FeatureSet {
            var v = [Double]()
            for i in 0..<n { for j in 0..<8 { v.append(Double(rng.uniform(-1, 1)) + (j == 0 ? shift : 0) + noise * Double(rng.uniform(-1, 1)) + Double(i % 3) * 0.1) } }
            return FeatureSet(count: n, dim: 8, values: v)
        }
        let a = cloud(400, shift: 0), sameDistribution = cloud(400, shift: 0)
        let noisy = FeatureSet(count: a.count, dim: a.dim, values: a.values.map { $0 + Double(rng.uniform(-1, 1)) })
        let other = cloud(400, shift: 2)
        let fidSame = try Metrics.fid(a.statistics(), sameDistribution.statistics())
        XCTAssertLessThan(fidSame, try Metrics.fid(a.statistics(), noisy.statistics()))
        XCTAssertLessThan(fidSame, try Metrics.fid(a.statistics(), other.statistics()))
        XCTAssertLessThan(Metrics.mmd2(a, sameDistribution), Metrics.mmd2(a, other))
        // Precision/recall: a subset of the real points is all precision; a far cloud has neither.
        let subset = a.subset(Array(0..<100))
        XCTAssertEqual(Metrics.precisionRecall(real: a, fake: subset).precision, 1)
        let far = FeatureSet(count: 100, dim: 8, values: subset.values.map { $0 + 50 })
        let pr = Metrics.precisionRecall(real: a, fake: far)
        XCTAssertEqual(pr.precision, 0); XCTAssertEqual(pr.recall, 0)
        // Recognition rate
        XCTAssertEqual(Metrics.recognitionRate(probabilities: [0.1, 0.9, 0.8, 0.2, 0.3, 0.7], classes: 2, label: 1), 2.0 / 3.0, accuracy: 1e-12)
    }
}
