import XCTest
import Foundation
import GANCore

/// The `.pth` reader against files torch.save wrote (`tools/make_torch_checkpoint_fixtures.py`): both formats,
/// views and dtypes, malicious pickles refused, and mutated files that end in an error, never a crash.
final class TorchCheckpointTests: XCTestCase {
    func fixture(_ name: String) throws -> URL {
        let base = (name as NSString).deletingPathExtension, ext = (name as NSString).pathExtension
        return try XCTUnwrap(Bundle.module.url(forResource: base, withExtension: ext, subdirectory: "Fixtures"))
    }

    func testBothFormatsReadLikeTorch() throws {
        let expected = try SafeTensors.read(from: try fixture("torch_state_expected.safetensors"))
        for name in ["torch_state_zip.pth", "torch_state_legacy.pth"] {
            let got = try TorchCheckpoint.read(from: try fixture(name))
            XCTAssertEqual(Set(got.keys), Set(expected.keys), name)
            for (key, e) in expected {
                XCTAssertEqual(got[key]?.shape, e.shape, "\(name) \(key)")
                XCTAssertEqual(got[key]?.values, e.values, "\(name) \(key)")
                XCTAssertEqual(got[key]?.dtype, e.dtype, "\(name) \(key)")
            }
        }
        XCTAssertEqual(try TorchCheckpoint.read(from: try fixture("torch_state_expected.safetensors"))["views.row"]?.values,
                       expected["views.row"]?.values, "safetensors files are accepted too")
    }

    func testMaliciousPicklesAreRefused() throws {
        let marker = "/tmp/cifar-gan-pwned"
        try? FileManager.default.removeItem(atPath: marker)
        for (name, global) in [("torch_malicious_system.pth", "system"), ("torch_malicious_eval.pth", "eval")] {
            XCTAssertThrowsError(try TorchCheckpoint.read(from: try fixture(name))) {
                XCTAssert("\($0)".contains("refuses the global") && "\($0)".contains(global) && "\($0)".contains(name), "\($0)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
        XCTAssertThrowsError(try TorchCheckpoint.decode(Array("hello".utf8), file: "notes.txt")) {
            XCTAssert("\($0)".contains("notes.txt") && "\($0)".contains("not a PyTorch checkpoint"), "\($0)")
        }
    }

    func testForgedSafetensorsShapeIsRefused() {
        let header = Array(#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776,16],"data_offsets":[0,0]}}"#.utf8)
        var length = UInt64(header.count).littleEndian
        let bytes = withUnsafeBytes(of: &length) { Array($0) } + header
        XCTAssertThrowsError(try SafeTensors.decode(Data(bytes), file: "forged.safetensors")) {
            XCTAssert("\($0)".contains("forged.safetensors") && "\($0)".contains("'a'"), "\($0)")
        }
    }

    /// Deeply nested values (what libFuzzer found: a protocol number wrapped in ~30,000 one-element tuples) end in
    /// an error naming the file, not a stack overflow while describing, walking or freeing them.
    func testDeeplyNestedPicklesGiveErrors() throws {
        let magic: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]
        // PROTO 2, BININT2 1001, 30,000 × TUPLE1, STOP
        let version: [UInt8] = [0x80, 0x02, 0x4d, 0xe9, 0x03] + Array(repeating: 0x85, count: 30_000) + [0x2e]
        XCTAssertThrowsError(try TorchCheckpoint.decode(magic + version, file: "nested.pth")) {
            XCTAssert("\($0)".contains("nested.pth") && "\($0)".contains("protocol a tuple of 1"), "\($0)")
        }
        // A state dict of dicts 1,000 deep: PROTO 2, then per level EMPTY_DICT, SHORT_BINUNICODE "a"; then NONE and
        // 1,000 × SETITEM, STOP; then an empty storage-key list.
        var dicts: [UInt8] = [0x80, 0x02]
        for _ in 0..<1000 { dicts += [0x7d, 0x8c, 0x01, 0x61] }
        dicts += [0x4e] + Array(repeating: 0x73, count: 1000) + [0x2e] + [0x80, 0x02, 0x5d, 0x2e]
        var zipless = magic + [0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e] + [0x80, 0x02, 0x7d, 0x2e] + dicts
        XCTAssertThrowsError(try TorchCheckpoint.decode(zipless, file: "deep.pth")) {
            XCTAssert("\($0)".contains("deep.pth") && "\($0)".contains("64 levels"), "\($0)")
        }
        zipless.removeAll()
    }

    /// A bounded random-mutation fuzzer: flipped bytes, truncations, forged lengths and spliced tails
    /// (1,500 mutants per file; `CIFAR_GAN_FUZZ_ITERATIONS` for long runs).
    func testMutatedFilesGiveErrorsNotCrashes() throws {
        var rng = RandomGenerator(seed: 17)
        var outcomes = (read: 0, refused: 0)
        for name in ["torch_state_zip.pth", "torch_state_legacy.pth", "torch_state_expected.safetensors"] {
            let valid = [UInt8](try Data(contentsOf: try fixture(name)))
            for _ in 0..<(Int(ProcessInfo.processInfo.environment["CIFAR_GAN_FUZZ_ITERATIONS"] ?? "") ?? 1500) {
                var b = valid
                switch rng.next() % 4 {
                case 0: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
                case 1: for _ in 0..<(1 + rng.next() % 8) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                case 2:
                    let at = Int(rng.next() % UInt64(b.count - 4))
                    for k in 0..<4 { b[at + k] = [0xff, 0x7f, 0x00, 0x80][Int(rng.next() % 4)] }   // forged lengths and offsets
                default: b += (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                }
                do { _ = try TorchCheckpoint.decode(b, file: name); outcomes.read += 1 } catch { outcomes.refused += 1 }
            }
        }
        XCTAssertGreaterThan(outcomes.refused, 1000, "most mutations are caught")
        print("mutated .pth files: \(outcomes.read) still read, \(outcomes.refused) refused with an error")
    }
}
