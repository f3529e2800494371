import XCTest
import Foundation
import CIFARGAN
import GANCore

/// The download against a real HTTP server on the loopback interface (Python's http.server).
final class DownloadTests: XCTestCase {
    var server: Process?
    var port = 0
    var archive = Data()

    override func setUpWithError() throws {
        let root = temporaryFolder(self)
        let staging = root.appendingPathComponent("staging")
        try writeSyntheticCIFAR(to: staging.appendingPathComponent("cifar-10-batches-bin"), perClass: 1)
        let served = root.appendingPathComponent("served")
        try FileManager.default.createDirectory(at: served, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", "-czf", served.appendingPathComponent("cifar-10-binary.tar.gz").path, "-C", staging.path, "cifar-10-batches-bin"]
        try tar.run(); tar.waitUntilExit()
        XCTAssertEqual(tar.terminationStatus, 0)
        archive = try Data(contentsOf: served.appendingPathComponent("cifar-10-binary.tar.gz"))
        for attempt in 0..<5 {
            port = 20000 + Int(UInt16.random(in: 0..<30000))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", served.path]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            // Wait (at most ~5 s) until it answers.
            for _ in 0..<50 {
                if (try? Data(contentsOf: URL(string: "http://127.0.0.1:\(port)/")!)) != nil { server = p; return }
                if !p.isRunning { break }
                usleep(100_000)
            }
            p.terminate()
            if attempt == 4 { throw XCTSkip("could not start a local HTTP server (python3 -m http.server)") }
        }
    }

    override func tearDown() { server?.terminate(); server?.waitUntilExit() }

    var url: URL { URL(string: "http://127.0.0.1:\(port)/cifar-10-binary.tar.gz")! }

    func testDownloadChecksAndUnpacks() throws {
        let dir = temporaryFolder(self).appendingPathComponent("data")
        final class Seen: @unchecked Sendable { var bytes: Int64 = 0 }
        let seen = Seen()
        try CIFARDownload.fetch(url: url, md5: MD5.hex(archive), into: dir) { done, _ in seen.bytes = done }
        XCTAssertEqual(seen.bytes, Int64(archive.count), "progress reached the archive size")
        XCTAssertEqual(try CIFAR10.load(from: dir, split: .train).count, 50)
        XCTAssertEqual(try CIFAR10.load(from: dir, split: .test).count, 10)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no temporary files left")
    }

    func testWrongChecksumIsRejected() throws {
        let dir = temporaryFolder(self).appendingPathComponent("data")
        XCTAssertThrowsError(try CIFARDownload.fetch(url: url, md5: String(repeating: "0", count: 32), into: dir)) {
            XCTAssert("\($0)".contains("checksum mismatch"), "\($0)")
        }
        XCTAssertFalse(CIFAR10.isPresent(in: dir), "nothing unpacked from a bad archive")
    }

    func testMissingFileIsAnHTTPError() throws {
        let dir = temporaryFolder(self).appendingPathComponent("data")
        let missing = URL(string: "http://127.0.0.1:\(port)/nope.tar.gz")!
        XCTAssertThrowsError(try CIFARDownload.fetch(url: missing, md5: "x", into: dir)) { XCTAssert("\($0)".contains("404"), "\($0)") }
    }

    /// `train` downloads missing data (from the URL given) before training, and `--no-download` refuses to.
    func testTrainDownloadsWhenDataIsMissing() throws {
        let root = temporaryFolder(self)
        let dataDir = root.appendingPathComponent("cifar")
        let refused = try runTool(["train", "--class", "cat", "--data-dir", dataDir.path, "--no-download", "--run", root.appendingPathComponent("r0").path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssert(refused.output.contains("not found"), refused.output)
        let r = try runTool(["train", "--class", "cat", "--epochs", "1", "--batch-size", "2", "--generator-width", "8",
                             "--discriminator-width", "4", "--data-dir", dataDir.path, "--download-url", url.absoluteString,
                             "--download-md5", MD5.hex(archive), "--run", root.appendingPathComponent("r1").path, "--quiet"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("downloading"), r.output)
        XCTAssert(CIFAR10.isPresent(in: dataDir))
    }
}
