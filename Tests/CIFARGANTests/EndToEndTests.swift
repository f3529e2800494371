import XCTest
import Foundation
import CIFARGAN
import GANCore

/// The `cifar-gan` executable as a user runs it.
final class EndToEndTests: XCTestCase {
    var dataDir: URL!

    override func setUpWithError() throws {
        dataDir = temporaryFolder(self).appendingPathComponent("cifar")
        try writeSyntheticCIFAR(to: dataDir, perClass: 8)
    }

    func commonFlags(_ run: URL) -> [String] {
        ["--data-dir", dataDir.path, "--no-download", "--run", run.path, "--quiet", "--batch-size", "4",
         "--generator-width", "32", "--discriminator-width", "16", "--seed", "3"]
    }

    /// A run killed with SIGKILL mid-training and resumed ends with the weights of an uninterrupted run.
    func testKillNineThenResumeMatchesUninterruptedRun() throws {
        let root = temporaryFolder(self)
        let whole = root.appendingPathComponent("whole"), killed = root.appendingPathComponent("killed")
        let epochs = "8"
        let r = try runTool(["train", "--class", "cat", "--epochs", epochs] + commonFlags(whole))
        XCTAssertEqual(r.status, 0, r.output)

        let p = Process()
        p.executableURL = cifarGANBinary()
        p.arguments = ["train", "--class", "cat", "--epochs", epochs] + commonFlags(killed)
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        let checkpoints = killed.appendingPathComponent("checkpoints")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, p.isRunning {
            if let latest = Checkpoint.pointer(.latest, in: checkpoints), latest >= "epoch-0002" { break }
            usleep(2_000)
        }
        usleep(UInt32.random(in: 0..<100_000))   // somewhere inside the next epoch (or a checkpoint write)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the run was killed before it finished")
        let resumed = try runTool(["train", "--resume", killed.path, "--quiet", "--no-download", "--data-dir", dataDir.path])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssert(resumed.output.contains("resuming"), resumed.output)
        XCTAssertEqual(try generatorWeights(killed, checkpoint: "final"), try generatorWeights(whole, checkpoint: "final"))
        XCTAssertEqual(Report.readMetrics(killed.appendingPathComponent("metrics.jsonl")).map(\.epoch), Array(1...8))
    }

    /// A second writer of a run folder is refused while the first trains — a new `train` on the same `--run`
    /// and a `--resume` alike — naming the folder and the holder; once the holder is killed, the resume runs.
    func testARunFolderHasOneWriter() throws {
        let run = temporaryFolder(self).appendingPathComponent("run")
        let first = Process()
        first.executableURL = cifarGANBinary()
        first.arguments = ["train", "--class", "cat", "--epochs", "10000"] + commonFlags(run)
        first.standardOutput = FileHandle.nullDevice; first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL); first.waitUntilExit() } }
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, Checkpoint.pointer(.latest, in: run.appendingPathComponent("checkpoints")) == nil { usleep(5_000) }
        // (time limits: were the lock to fail, these would end instead of training 10,000 epochs)
        for args in [["train", "--class", "cat", "--time-limit", "0.05"] + commonFlags(run),
                     ["train", "--resume", run.path, "--time-limit", "0.05", "--quiet", "--no-download", "--data-dir", dataDir.path]] {
            let r = try runTool(args)
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssert(r.output.contains("another cifar-gan is writing this run") && r.output.contains("process \(first.processIdentifier)")
                      && r.output.contains(run.path), r.output)
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let resumed = try runTool(["train", "--resume", run.path, "--epochs", "3", "--quiet", "--no-download", "--data-dir", dataDir.path])
        XCTAssertEqual(resumed.status, 0, "a lock left by a killed process does not block: \(resumed.output)")
    }

    func testBadInputGivesOneLineErrorsAndNonZeroExit() throws {
        let root = temporaryFolder(self)
        let cases: [([String], String)] = [
            (["train", "--class", "unicorn"] + commonFlags(root.appendingPathComponent("a")), "unknown class 'unicorn'"),
            (["train", "--class", "cat", "--batch-size", "1", "--data-dir", dataDir.path], "batch_size"),
            (["train", "--class", "cat", "--epochs", "0", "--data-dir", dataDir.path], "epochs"),
            (["train", "--class", "cat", "--real-targets", "0.9", "--data-dir", dataDir.path], "--real-targets"),
            (["train", "--class", "cat", "--data-dir", root.appendingPathComponent("nowhere").path, "--no-download"], "not found"),
            (["train", "--resume", root.path], "not a run folder"),
            (["generate", "--run", root.path, "--out", root.path], "not a run folder"),
            (["generate", "--run", root.path, "--out", root.path, "--count", "0"], "--count"),
            (["bench", "--batch-size", "1"], "--batch-size"),
            (["bench", "--preset", "fancy"], "unknown preset 'fancy'"),
            (["train", "--class", "cat", "--preset", "fancy", "--data-dir", dataDir.path], "unknown preset 'fancy'"),
            (["train", "--class", "cat", "--loss", "wgan", "--data-dir", dataDir.path], "loss"),
            (["train", "--class", "cat", "--diff-augment", "rotate", "--data-dir", dataDir.path], "rotate"),
            (["train", "--class", "cat", "--spectral-norm", "yes", "--data-dir", dataDir.path], "--spectral-norm"),
            (["train", "--class", "cat", "--architecture", "vit", "--data-dir", dataDir.path], "architecture"),
            (["train", "--class", "cat", "--conditional", "--data-dir", dataDir.path], "exclude each other"),
        ]
        for (args, expected) in cases {
            let r = try runTool(args)
            XCTAssertNotEqual(r.status, 0, "\(args) should fail")
            XCTAssert(r.output.contains(expected), "\(args): expected '\(expected)' in: \(r.output)")
            XCTAssertFalse(r.output.contains("Fatal error"), "\(args) crashed: \(r.output)")
        }
        // A truncated data file is named.
        let f = dataDir.appendingPathComponent("data_batch_4.bin")
        let d = try Data(contentsOf: f)
        try d.prefix(5000).write(to: f)
        let r = try runTool(["train", "--class", "cat"] + commonFlags(root.appendingPathComponent("b")))
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.output.contains("data_batch_4.bin"), r.output)
    }

    func testUnconditionalTrainingAndGenerationFromTheCommandLine() throws {
        let root = temporaryFolder(self)
        let run = root.appendingPathComponent("u")
        let r = try runTool(["train", "--unconditional", "--epochs", "1"] + commonFlags(run))
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(Report.readMetrics(run.appendingPathComponent("metrics.jsonl")).first?.iterations, 400 / 4)
        let g = try runTool(["generate", "--run", run.path, "--count", "3", "--out", root.appendingPathComponent("out").path])
        XCTAssertEqual(g.status, 0, g.output)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("out/unconditional").path).count, 3)
        // Training into a folder that holds a run is refused rather than overwriting it.
        let again = try runTool(["train", "--unconditional", "--epochs", "1"] + commonFlags(run))
        XCTAssertNotEqual(again.status, 0)
        XCTAssert(again.output.contains("--resume"), again.output)
    }

    func testConditionalPresetRunFromTheCommandLine() throws {
        let root = temporaryFolder(self)
        let run = root.appendingPathComponent("c")
        let r = try runTool(["train", "--conditional", "--preset", "modern", "--epochs", "1"] + commonFlags(run))
        XCTAssertEqual(r.status, 0, r.output)
        let config = try RunConfig.load(from: run.appendingPathComponent("config.json"))
        XCTAssertEqual(config.preset, "modern")
        XCTAssertEqual(config.diffAugment, [.color, .translation, .cutout])
        XCTAssertEqual(config.evalEvery, 1)
        XCTAssertNotNil(Checkpoint.pointer(.best, in: run.appendingPathComponent("checkpoints")), "the preset keeps the best-FID checkpoint")
        XCTAssertEqual(config.model.generatorWidth, 32, "flags override the preset")
        let out = root.appendingPathComponent("out")
        let g = try runTool(["generate", "--run", run.path, "--class", "dog", "--count", "2", "--out", out.path])
        XCTAssertEqual(g.status, 0, g.output)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("dog").path).count, 2)
        let all = try runTool(["generate", "--run", run.path, "--count", "1", "--out", root.appendingPathComponent("all").path])
        XCTAssertEqual(all.status, 0, all.output)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("all").path).filter { $0.hasSuffix("-grid.png") }.count, 10)
    }
}
