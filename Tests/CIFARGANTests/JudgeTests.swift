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
        XCTAssertGreaterThan(same.recognitionRate!, 0.6, "the judge recognises real cats")
        XCTAssertLessThan(other.recognitionRate!, 0.1, "and does not call automobiles cats")
        XCTAssertGreaterThan(same.precision, other.precision)
    }
}
