import XCTest
import Foundation
import CIFARGAN
import GANCore

/// `cifar-gan` under `mpirun` (Open MPI, installed by scripts/install-deps): two ranks on this machine. Tests that
/// need mpirun skip, saying so, where it is missing; the refusal test runs everywhere.
final class MPITests: XCTestCase {
    var dataDir: URL!

    override func setUpWithError() throws {
        dataDir = temporaryFolder(self).appendingPathComponent("cifar")
        try writeSyntheticCIFAR(to: dataDir, perClass: 8)
    }

    func mpiProcess(_ ranks: Int, _ args: [String]) throws -> Process { try mpirunProcess(self, ranks: ranks, args) }

    func runMPI(_ ranks: Int, _ args: [String]) throws -> ProcessResult { try runCapturing(try mpiProcess(ranks, args)) }

    func trainFlags(_ run: URL, epochs: Int = 2) -> [String] {
        ["train", "--class", "all", "--epochs", "\(epochs)", "--data-dir", dataDir.path, "--no-download", "--run", run.path,
         "--quiet", "--batch-size", "4", "--generator-width", "16", "--discriminator-width", "8", "--seed", "3"]
    }

    /// A process that an MPI launcher started as one of several ranks, where MPI cannot be loaded, stops with a
    /// message naming its rank instead of training as an unrelated copy.
    func testARankWithoutMPIStopsAndSaysWhy() throws {
        let run = temporaryFolder(self).appendingPathComponent("run")
        let r = try runTool(trainFlags(run), env: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1",
                                                   "CIFAR_GAN_MPI_LIBRARY": "/nonexistent/libmpi.so.40"])
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssert(r.output.contains("rank 1 of 2") && r.output.contains("cannot load Open MPI"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("config.json").path), "nothing trained")
    }

    /// `--class all` on two ranks: each rank trains its classes (labels modulo 2); every class model equals the
    /// one a single process trains for that class alone (one thread each, so the sums run in the same order).
    func testClassParallelRunEqualsOneProcessPerClass() throws {
        let root = temporaryFolder(self)
        let parallel = root.appendingPathComponent("parallel")
        let r = try runMPI(2, trainFlags(parallel))
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("rank 0:") && r.output.contains("rank 1:"), r.output)
        for name in CIFAR10.classNames {
            XCTAssertNotNil(Checkpoint.pointer(.final, in: parallel.appendingPathComponent(name).appendingPathComponent("checkpoints")),
                            "\(name) finished")
        }
        for name in ["airplane", "cat"] {   // label 0 (rank 0) and label 3 (rank 1)
            let alone = root.appendingPathComponent("alone-\(name)")
            var flags = trainFlags(alone)
            flags[flags.firstIndex(of: "all")!] = name
            let single = try runTool(flags, env: ["CIFAR_GAN_THREADS": "1"])
            XCTAssertEqual(single.status, 0, single.output)
            XCTAssertEqual(try generatorWeights(parallel.appendingPathComponent(name), checkpoint: "final"),
                           try generatorWeights(alone, checkpoint: "final"), name)
        }
    }

    /// `evaluate` on two ranks (each samples and embeds its classes; rank 0 reports) prints what one process does.
    func testEvaluateSplitsTheClassesAcrossRanks() throws {
        let run = temporaryFolder(self).appendingPathComponent("run")
        XCTAssertEqual(try runMPI(2, trainFlags(run, epochs: 1)).status, 0)
        let flags = ["evaluate", "--run", run.path, "--count", "8", "--json", "--data-dir", dataDir.path]
        let one = try runTool(flags), two = try runMPI(2, flags)
        XCTAssertEqual(one.status, 0, one.output); XCTAssertEqual(two.status, 0, two.output)
        func classes(_ output: String) throws -> [String: [String: Double]] {
            let line = try XCTUnwrap(output.split(separator: "\n").last { $0.hasPrefix("{") }, output)
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return (object["classes"] as! [String: [String: Any]]).mapValues { $0.compactMapValues { $0 as? Double } }
        }
        let a = try classes(one.output), b = try classes(two.output)
        XCTAssertEqual(Set(a.keys), Set(CIFAR10.classNames))
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (name, metrics) in a {
            for (key, value) in metrics {
                XCTAssertEqual(b[name]?[key] ?? .nan, value, accuracy: 1e-6 * max(1, abs(value)), "\(name) \(key)")
            }
        }
        XCTAssertEqual(two.output.components(separatedBy: "\"classes\"").count - 1, 1, "one report, from rank 0")
    }

    /// One model on several ranks is refused with what to do instead (data-parallel training is not built yet).
    func testDataParallelRequestIsRefused() throws {
        let run = temporaryFolder(self).appendingPathComponent("run")
        var flags = trainFlags(run)
        flags[flags.firstIndex(of: "all")!] = "cat"
        let r = try runMPI(2, flags)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("data-parallel training of one model"), r.output)
    }

    /// A rank killed mid-run ends the job (mpirun names the rank) rather than leaving the other waiting; every
    /// checkpoint written stays intact and a resume (on two ranks again) finishes every class.
    func testAKilledRankEndsTheJobAndTheRunResumes() throws {
        let run = temporaryFolder(self).appendingPathComponent("run")
        let p = try mpiProcess(2, trainFlags(run, epochs: 30))
        let pipe = Pipe()
        p.standardOutput = pipe; p.standardError = pipe
        try p.run()
        defer { if p.isRunning { p.terminate(); p.waitUntilExit() } }
        // Rank 1 trains automobile (label 1) first; its lock file reads "process PID on HOST since …".
        let folder = run.appendingPathComponent("automobile")
        let deadline = Date().addingTimeInterval(120)
        var pid: Int32?
        while Date() < deadline, p.isRunning, pid == nil {
            if Checkpoint.pointer(.latest, in: folder.appendingPathComponent("checkpoints")) != nil,
               let text = try? String(contentsOf: folder.appendingPathComponent(".lock"), encoding: .utf8),
               case let words = text.split(separator: " "), words.count > 1, words[0] == "process", let n = Int32(words[1]) {
                pid = n
            }
            usleep(20_000)
        }
        let victim = try XCTUnwrap(pid, "rank 1 wrote a checkpoint")
        kill(victim, SIGKILL)
        let killed = Date(), ended = killed.addingTimeInterval(120)
        while p.isRunning && Date() < ended { usleep(50_000) }
        print("MPITests: the job ended \(String(format: "%.1f", Date().timeIntervalSince(killed))) s after rank 1 was killed")
        XCTAssertFalse(p.isRunning, "the job ended within two minutes of losing a rank")
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(p.terminationStatus, 0, output)
        XCTAssert(output.contains("rank 1"), output)
        let resumed = try runMPI(2, ["train", "--resume", run.path, "--quiet", "--no-download", "--data-dir", dataDir.path])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssert(resumed.output.contains("resuming"), resumed.output)
        for name in CIFAR10.classNames {
            XCTAssertNotNil(Checkpoint.pointer(.final, in: run.appendingPathComponent(name).appendingPathComponent("checkpoints")),
                            "\(name) finished after the resume")
        }
    }
}
