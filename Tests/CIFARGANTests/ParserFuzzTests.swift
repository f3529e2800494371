import XCTest
import Foundation
import CIFARGAN
import GANCore

/// Every reader of files a user may get from elsewhere, under a bounded random-mutation fuzzer (libFuzzer's
/// mutations, in a loop the tests can run anywhere): bit flips, bytes set to boundary values, truncations,
/// duplicated and inserted chunks, splices with another seed. A parser may accept or refuse a mutant; it may
/// not crash or hang. `CIFAR_GAN_FUZZ_ITERATIONS` sets the mutants per seed file (default 300: seconds in CI).
final class ParserFuzzTests: XCTestCase {
    var iterations: Int { Int(ProcessInfo.processInfo.environment["CIFAR_GAN_FUZZ_ITERATIONS"] ?? "") ?? 300 }

    /// Mutants of `seeds` through `parse`; returns (executions, refused).
    @discardableResult
    func fuzz(_ target: String, seeds: [[UInt8]], _ parse: ([UInt8]) throws -> Void) -> (Int, Int) {
        var rng = RandomGenerator(seed: UInt64(target.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) }.magnitude))
        func r(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }
        var executions = 0, refused = 0
        let started = Date()
        for seed in seeds where !seed.isEmpty {
            for _ in 0..<iterations {
                var b = seed
                for _ in 0..<(1 + r(4)) {
                    switch r(7) {
                    case 0: let i = r(b.count); if i < b.count { b[i] ^= UInt8(1 << r(8)) }
                    case 1: let i = r(b.count); if i < b.count { b[i] = [0, 0xff, 0x7f, 0x80, 0x01, 0xfe][r(6)] }
                    case 2: b = Array(b.prefix(r(b.count + 1)))
                    case 3: let i = r(b.count), n = min(r(64), b.count - i); if n > 0 { b.insert(contentsOf: b[i..<(i + n)], at: r(b.count)) }
                    case 4: b.insert(contentsOf: (0..<r(16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: r(b.count + 1))
                    case 5: let other = seeds[r(seeds.count)]; if !other.isEmpty { b = Array(b.prefix(r(b.count + 1))) + other[r(other.count)...] }
                    default: let i = r(max(b.count - 8, 0)); for k in 0..<min(8, b.count - i) { b[i + k] = 0xff }   // a forged length
                    }
                }
                executions += 1
                do { try parse(b) } catch { refused += 1 }
            }
        }
        print(String(format: "fuzz %@: %d executions, %d refused with an error, %.1f s, no crash", target, executions, refused,
                     Date().timeIntervalSince(started)))
        return (executions, refused)
    }

    func testPNGReader() throws {
        var rng = RandomGenerator(seed: 1)
        let image = RGBImage(width: 8, height: 5, pixels: (0..<120).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        fuzz("png", seeds: [[UInt8](PNG.encode(image))]) { _ = try PNG.decode(Data($0), file: "fuzz.png") }
    }

    func testSafetensorsTensorBoardNpzReaders() throws {
        let w = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let st = [UInt8](try SafeTensors.encode([StateEntry(name: "w", tensor: w), StateEntry(name: "n", tensor: Tensor(shape: [1], values: [3]), isInteger: true)]))
        fuzz("safetensors", seeds: [st]) { _ = try SafeTensors.decode(Data($0), file: "fuzz.safetensors") }
        var e = ProtobufWriter(); e.double(1, 1); e.varint(2, 7)
        fuzz("tfevents", seeds: [TensorBoardLog.frame(e.bytes) + TensorBoardLog.frame(e.bytes)]) {
            if TensorBoardLog.records(in: Data($0)).isEmpty { throw CocoaError(.fileReadCorruptFile) }
        }
        let dir = temporaryFolder(self), url = dir.appendingPathComponent("s.npz")
        try NumpyArchive.write(["mu": ([2], [1, 2]), "sigma": ([2, 2], [1, 0, 0, 1])], to: url)
        fuzz("npz", seeds: [[UInt8](try Data(contentsOf: url))]) { _ = try NumpyArchive.decode($0, file: "fuzz.npz") }
    }

    func testConfigAndCIFARReaders() throws {
        let dir = temporaryFolder(self)
        let config = [UInt8](try RunConfig.preset("cnn").encoded())
        let url = dir.appendingPathComponent("config.json")
        fuzz("config.json", seeds: [config]) { try Data($0).write(to: url); try RunConfig.load(from: url).validate() }
        let data = dir.appendingPathComponent("cifar")
        try writeSyntheticCIFAR(to: data, perClass: 1, files: CIFAR10.testFiles)
        let test = data.appendingPathComponent(CIFAR10.testFiles[0])
        fuzz("cifar-binary", seeds: [[UInt8](try Data(contentsOf: test))]) { try Data($0).write(to: test); _ = try CIFAR10.load(from: data, split: .test) }
    }
}
