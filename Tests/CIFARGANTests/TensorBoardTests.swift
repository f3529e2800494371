import XCTest
import Foundation
import CIFARGAN
import GANCore

/// The TensorBoard events file: its checksum, one record per epoch across a resume that follows a kill,
/// and the `tensorboard` package's own reader (`tools/check_tensorboard.py`) on the result.
final class TensorBoardTests: XCTestCase {
    func testChecksumIsCRC32C() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283, "the CRC-32C check value")
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    /// The reader that a resume runs on whatever a killed run left: random truncations, flipped bytes and
    /// forged lengths must end the read, never crash it.
    func testReaderSurvivesMutatedFiles() {
        var valid: [UInt8] = []
        for step in 1...4 {
            var e = ProtobufWriter(); e.double(1, 1); e.varint(2, step)
            e.message(5) { $0.message(1) { v in v.string(1, "loss/d"); v.float(2, 0.5) } }
            valid += TensorBoardLog.frame(e.bytes)
        }
        XCTAssertEqual(TensorBoardLog.records(in: Data(valid)).map(\.step), [1, 2, 3, 4])
        var rng = RandomGenerator(seed: 3)
        for _ in 0..<3000 {
            var b = valid
            switch rng.next() % 4 {
            case 0: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
            case 1: for _ in 0..<(1 + rng.next() % 4) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 2: for k in 0..<8 { b[k] = 0xff }   // a length near 2⁶⁴
            default: b += (0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            let steps = TensorBoardLog.records(in: Data(b)).map(\.step)
            XCTAssertLessThanOrEqual(steps.count, 4)
        }
    }

    func testEveryEpochIsLoggedOnceAcrossAKilledAndResumedRun() throws {
        let dir = temporaryFolder(self), run = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 8, files: CIFAR10.trainFiles)
        let data = try CIFAR10.load(from: dir, split: .train)
        var cfg = tinyConfig(); cfg.tensorboard = true; cfg.epochs = 2
        _ = try Jobs.train(config: cfg, runFolder: run, resume: false, data: data, quiet: true, log: { _ in })
        let name = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: run.path).first { $0.hasPrefix("events.out.tfevents.") })
        let file = run.appendingPathComponent(name)
        // A kill after epoch 3 was logged but before its checkpoint, in the middle of writing epoch 4's record.
        var event = ProtobufWriter(); event.double(1, 0); event.varint(2, 3)
        let stale = TensorBoardLog.frame(event.bytes)
        var later = ProtobufWriter(); later.double(1, 0); later.varint(2, 4)
        let torn = Array(TensorBoardLog.frame(later.bytes).prefix(15))
        let handle = try FileHandle(forWritingTo: file)
        try handle.seekToEnd(); try handle.write(contentsOf: Data(stale + torn)); try handle.close()
        XCTAssertEqual(TensorBoardLog.records(in: try Data(contentsOf: file)).map(\.step), [nil, 1, 2, 3], "the torn record is not read")

        cfg.epochs = 3
        _ = try Jobs.train(config: cfg, runFolder: run, resume: true, data: data, quiet: true, log: { _ in })
        let records = TensorBoardLog.records(in: try Data(contentsOf: file))
        XCTAssertEqual(records.map(\.step), [nil, 1, 2, 3], "the stale step 3 was dropped and logged again by the resumed run")
        XCTAssertEqual(records.map(\.framed.count).reduce(0, +), try Data(contentsOf: file).count, "no torn bytes left")
        XCTAssertNotEqual(records[3].framed, stale, "step 3 is the resumed run's record")

        let r = try runPythonCheck(packages: ["tensorboard"], "check_tensorboard.py", [run.path])
        XCTAssertEqual(r.status, 0, r.output)
        print(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
