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

    /// Data-parallel training of one model: at equal global batch and seed, two ranks (each with half of every
    /// batch) end ten iterations with the weights, buffers, optimizer moments and moving average of one process,
    /// and exactly its random streams, for the original recipe, the conditional model and every option with state.
    /// Tolerance: the root mean square of the differences over every tensor ≤ 1e-5, the largest ≤ 1e-3. The ranks
    /// sum each gradient in two halves and add them where one process sums in one pass: the float rounding differs
    /// (~1e-7 relative) and Adam's normalised step passes it on — fully so for gradients that are rounding noise
    /// (a convolution bias before batch norm), whose steps are ±lr either way. Measured: rms 4e-7 – 2.5e-6, largest
    /// 5e-5 – 3e-4. With the gradient average, the synchronised batch norm or the whole-batch draws of dropout and
    /// augmentation switched off in turn, the rms was 1e-4 – 2e-3 in every case: 40× the tolerance or more.
    func testDataParallelTrainingEqualsOneProcess() throws {
        let common = ["--epochs", "1", "--data-dir", dataDir.path, "--no-download", "--quiet",
                      "--generator-width", "16", "--discriminator-width", "8", "--seed", "5"]
        let cases: [(String, [String])] = [
            ("original", ["--class", "cat", "--batch-size", "4"]),
            ("options", ["--class", "cat", "--batch-size", "4", "--instance-noise", "0.1", "--diff-augment", "color,translation,cutout",
                         "--ada-target", "0.6", "--lecam", "0.3", "--ema-decay", "0.9"]),
            ("conditional", ["--conditional", "--batch-size", "40"]),
            ("conditional-sn", ["--conditional", "--batch-size", "40", "--spectral-norm", "on", "--loss", "hinge", "--ema-decay", "0.9",
                                "--diff-augment", "translation"]),
        ]
        for (name, flags) in cases {
            let root = temporaryFolder(self).appendingPathComponent(name)
            let one = root.appendingPathComponent("one"), two = root.appendingPathComponent("two")
            let single = try runTool(["train", "--run", one.path] + common + flags, env: ["CIFAR_GAN_THREADS": "1"])
            XCTAssertEqual(single.status, 0, single.output)
            let parallel = try runMPI(2, ["train", "--run", two.path] + common + flags)
            XCTAssertEqual(parallel.status, 0, parallel.output)
            XCTAssertFalse(parallel.output.contains("rank 1: cat epoch") || parallel.output.contains("rank 1: conditional epoch"),
                           "rank 1 does not log the epochs: \(parallel.output)")
            let a = try checkpointTensors(one), b = try checkpointTensors(two)
            XCTAssertEqual(Set(a.keys), Set(b.keys), name)
            XCTAssert(a.keys.contains { $0.hasPrefix("generator_ema") } == flags.contains("--ema-decay"), name)
            var worst = (0 as Float, ""), squares = 0.0, count = 0
            for (key, x) in a {
                guard let y = b[key], x.count == y.count else { XCTFail("\(name): \(key) missing or of another size"); continue }
                for i in x.indices {
                    let d = abs(x[i] - y[i])
                    if d > worst.0 { worst = (d, key) }
                    squares += Double(d * d); count += 1
                }
            }
            let rms = (squares / Double(max(count, 1))).squareRoot()
            print("MPITests: data-parallel \(name): difference from one process: rms \(rms), largest \(worst.0) in \(worst.1)")
            XCTAssertLessThanOrEqual(rms, 1e-5, name)
            XCTAssertLessThanOrEqual(worst.0, 1e-3, "\(name): \(worst.1)")
            // The streams are drawn for the whole batch on every rank: exactly where one process left them.
            let s1 = try trainingState(one), s2 = try trainingState(two)
            XCTAssertEqual(s1.rng, s2.rng, name); XCTAssertEqual(s1.dropoutRNGs, s2.dropoutRNGs, name)
            XCTAssertEqual(s1.augmentRNG, s2.augmentRNG, name); XCTAssertEqual(s1.ada, s2.ada, name)
            XCTAssertEqual(s1.iterations, s2.iterations, name); XCTAssertEqual(s1.emaUpdates, s2.emaUpdates, name)
            XCTAssertEqual(s1.lecam?.realSum ?? 0, s2.lecam?.realSum ?? 0, accuracy: 1e-4, name)
        }
    }

    /// A data-parallel run resumes on another number of ranks (here: one process) and continues.
    func testDataParallelRunResumesWithAnotherNumberOfRanks() throws {
        let run = temporaryFolder(self).appendingPathComponent("run")
        var flags = trainFlags(run, epochs: 1)
        flags[flags.firstIndex(of: "all")!] = "cat"
        let first = try runMPI(2, flags)
        XCTAssertEqual(first.status, 0, first.output)
        let resumed = try runTool(["train", "--resume", run.path, "--epochs", "2", "--quiet", "--no-download", "--data-dir", dataDir.path])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertEqual(try trainingState(run).epoch, 2)
        // A batch that does not split over the ranks is refused, naming the field.
        var odd = trainFlags(temporaryFolder(self).appendingPathComponent("odd"), epochs: 1)
        odd[odd.firstIndex(of: "all")!] = "cat"
        odd[odd.firstIndex(of: "4")!] = "5"
        let refused = try runMPI(2, odd)
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssert(refused.output.contains("batch_size 5 does not split evenly over 2 ranks"), refused.output)
    }

    /// Every tensor of a run's latest checkpoint: weights, buffers, the moving average and both Adam states.
    func checkpointTensors(_ run: URL) throws -> [String: [Float]] {
        let folder = try Checkpoint.resolve("latest", in: run.appendingPathComponent("checkpoints"))
        var out: [String: [Float]] = [:]
        for file in ["generator", "discriminator", "generator_ema", "training"] {
            let url = folder.appendingPathComponent(file + ".safetensors")
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            for (k, v) in try SafeTensors.read(from: url) { out[file + "/" + k] = v.values }
        }
        return out
    }

    func trainingState(_ run: URL) throws -> TrainingState {
        let folder = try Checkpoint.resolve("latest", in: run.appendingPathComponent("checkpoints"))
        let meta = try SafeTensors.readMetadata(from: folder.appendingPathComponent("training.safetensors"))
        return try JSONDecoder().decode(TrainingState.self, from: Data(try XCTUnwrap(meta["training_state"]).utf8))
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
