import XCTest
import Foundation
import CIFARGAN
import GANCore

/// pytorch-fid's statistics files: `.npz` written here and read by numpy, written by numpy (compressed and
/// float32) and read here, and FID between two of them equal to pytorch-fid's `calculate_frechet_distance`.
final class NumpyArchiveTests: XCTestCase {
    func stats(_ d: Int, _ k: Int) -> (mu: [Double], sigma: [Double]) {
        let mu = (0..<d).map { sin(Double($0 + k)) }
        var sigma = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0..<d {
            var s = 0.0
            for t in 0..<d { s += cos(Double(i + 2 * t + k)) * cos(Double(j + 2 * t + k)) }
            sigma[i * d + j] = s / Double(d)
        } }
        return (mu, sigma)
    }

    func testRoundTripWithNumpyAndPytorchFid() throws {
        let dir = temporaryFolder(self), d = 6
        for (name, k) in [("a", 0), ("b", 1)] {
            let (mu, sigma) = stats(d, k)
            try NumpyArchive.write(["mu": ([d], mu), "sigma": ([d, d], sigma)], to: dir.appendingPathComponent("\(name).npz"))
        }
        let r = try runPythonCheck(packages: ["numpy", "scipy", "torch", "--no-deps", "torchvision", "pytorch-fid=pytorch_fid"], "check_npz.py", [dir.path])
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.output.split(separator: "\n").first { $0.contains("FID(a, b) =") }, r.output)
        let theirs = try XCTUnwrap(Double(try XCTUnwrap(line.components(separatedBy: "= ").last).trimmingCharacters(in: .whitespaces)), r.output)
        func gaussian(_ s: (mu: [Double], sigma: [Double])) -> GaussianStatistics { GaussianStatistics(mean: s.mu, covariance: s.sigma, dim: d, count: 2) }
        let ours = try Metrics.fid(gaussian(stats(d, 0)), gaussian(stats(d, 1)))
        XCTAssertEqual(ours, theirs, accuracy: 1e-6 * max(1, abs(theirs)), "FID of the same statistics")
        let (mu, sigma) = stats(d, 2)
        for (file, tolerance) in [("compressed.npz", 1e-12), ("float32.npz", 1e-6)] {
            let read = try NumpyArchive.read(from: dir.appendingPathComponent(file))
            XCTAssertEqual(read["mu"]?.shape, [d]); XCTAssertEqual(read["sigma"]?.shape, [d, d])
            for (x, y) in zip(read["mu"]!.values + read["sigma"]!.values, mu + sigma) { XCTAssertEqual(x, y, accuracy: tolerance, file) }
        }
    }

    func testDamagedArchivesNameTheFile() throws {
        let dir = temporaryFolder(self)
        let url = dir.appendingPathComponent("stats.npz")
        try NumpyArchive.write(["mu": ([3], [1, 2, 3])], to: url)
        var bytes = [UInt8](try Data(contentsOf: url))
        XCTAssertEqual(try NumpyArchive.decode(bytes, file: "stats.npz")["mu"]?.values, [1, 2, 3])
        var rng = RandomGenerator(seed: 9)
        for _ in 0..<2000 {
            var b = bytes
            for _ in 0..<(1 + rng.next() % 6) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            if rng.next() % 3 == 0 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count)))) }
            _ = try? NumpyArchive.decode(b, file: "stats.npz")
        }
        bytes = Array(bytes.prefix(40))
        XCTAssertThrowsError(try NumpyArchive.decode(bytes, file: "stats.npz")) { XCTAssert("\($0)".contains("stats.npz"), "\($0)") }
    }
}
