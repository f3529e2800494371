import XCTest
import Foundation
import CIFARGAN
import GANCore

final class TrainingTests: XCTestCase {
    func syntheticData() throws -> ImageDataset {
        let dir = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 8, files: CIFAR10.trainFiles)
        return try CIFAR10.load(from: dir, split: .train)
    }

    func train(_ config: RunConfig, _ data: ImageDataset, _ folder: URL, resume: Bool = false, epochs: Int? = nil) throws -> TrainingOutcome {
        var cfg = config
        if let epochs { cfg.epochs = epochs }
        let outcomes = try Jobs.train(config: cfg, runFolder: folder, resume: resume, data: data, quiet: true, log: { _ in })
        return outcomes.values.first!
    }

    func testSameSeedGivesSameWeightsAndRunFolderIsComplete() throws {
        let data = try syntheticData()
        let a = temporaryFolder(self), b = temporaryFolder(self)
        XCTAssertEqual(try train(tinyConfig(), data, a), .finished(epochs: 3))
        _ = try train(tinyConfig(), data, b)
        XCTAssertEqual(try generatorWeights(a), try generatorWeights(b))
        var other = tinyConfig(); other.seed = 8
        let c = temporaryFolder(self)
        _ = try train(other, data, c)
        XCTAssertNotEqual(try generatorWeights(a), try generatorWeights(c), "another seed gives other weights")
        // The run folder: config, one metrics line per epoch, a sample grid per epoch, the report, checkpoints.
        let fm = FileManager.default
        XCTAssertEqual(try RunConfig.load(from: a.appendingPathComponent("config.json")).model, tinyConfig().model)
        let metrics = Report.readMetrics(a.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(metrics.map(\.epoch), [1, 2, 3])
        XCTAssert(metrics.allSatisfy { $0.lossD.isFinite && $0.imagesPerSec > 0 && $0.iterations == 5 })
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: a.appendingPathComponent("samples").path).sorted(),
                       ["epoch-0001.png", "epoch-0002.png", "epoch-0003.png"])
        let grid = try PNG.read(from: a.appendingPathComponent("samples/epoch-0003.png"))
        XCTAssertEqual(grid.width, 2 * 34 + 2)
        let report = try String(contentsOf: a.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssert(report.contains("<svg") && report.contains("samples/epoch-0003.png") && report.contains("loss_d"))
        XCTAssertEqual(Checkpoint.pointer(.final, in: a.appendingPathComponent("checkpoints")), "epoch-0003")
    }

    /// Stopping after epoch 2 and resuming gives exactly the weights of an uninterrupted run.
    /// Sampling in padded batches of another size gives the same images as one batch (eval mode), plain and
    /// class-conditional, up to float rounding.
    func testSamplingInBatchesMatchesOneBatch() {
        for classes in [1, 10] {
            var config = RunConfig()
            config.model.generatorWidth = 8; config.model.discriminatorWidth = 4; config.model.classes = classes
            let gan = GAN(config: config)
            let z = Tensor(shape: [10, config.model.latentDim])
            var rng = RandomGenerator(seed: 3); rng.fillNormal(z)
            let labels: [Int]? = classes > 1 ? (0..<10).map { $0 % classes } : nil
            let whole = gan.sample(z, classes: labels).clone()
            let batched = gan.sample(z, classes: labels, inBatchesOf: 4)
            XCTAssertEqual(batched.shape, whole.shape)
            // Equal up to float rounding (BLAS blocks a 4-row product differently from a 10-row one).
            let worst = zip(batched.toArray(), whole.toArray()).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-5, "classes \(classes)")
        }
    }

    func testResumeGivesIdenticalWeights() throws {
        let data = try syntheticData()
        var cfg = tinyConfig(); cfg.instanceNoise = 0.1; cfg.instanceNoiseEpochs = 3
        let whole = temporaryFolder(self), split = temporaryFolder(self)
        _ = try train(cfg, data, whole, epochs: 4)
        _ = try train(cfg, data, split, epochs: 2)
        XCTAssertNotEqual(try generatorWeights(split), try generatorWeights(whole))
        _ = try train(cfg, data, split, resume: true, epochs: 4)
        XCTAssertEqual(try generatorWeights(split), try generatorWeights(whole))
        XCTAssertEqual(Report.readMetrics(split.appendingPathComponent("metrics.jsonl")).map(\.epoch), [1, 2, 3, 4])
    }

    func testCheckpointsArePrunedToPeriodicPlusLatest() throws {
        let data = try syntheticData()
        var cfg = tinyConfig(); cfg.epochs = 7; cfg.checkpointEvery = 2; cfg.keepCheckpoints = 2
        let folder = temporaryFolder(self)
        _ = try train(cfg, data, folder)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("checkpoints").path).sorted()
        XCTAssertEqual(names, ["epoch-0004", "epoch-0006", "epoch-0007", "final", "latest"])
    }

    /// The checkpoint files are PyTorch state dicts: `nn.Sequential` names and PyTorch layouts.
    func testCheckpointIsAPyTorchStateDict() throws {
        let data = try syntheticData()
        var cfg = RunConfig(); cfg.target = "cat"; cfg.epochs = 1; cfg.batchSize = 16; cfg.sampleCount = 4
        let folder = temporaryFolder(self)
        _ = try train(cfg, data, folder)
        let ck = try Checkpoint.resolve(nil, in: folder.appendingPathComponent("checkpoints"))
        let g = try SafeTensors.read(from: ck.appendingPathComponent("generator.safetensors"))
        XCTAssertEqual(g["0.weight"]?.shape, [2048, 100])                 // Linear [out, in]
        XCTAssertEqual(g["4.weight"]?.shape, [128, 128, 4, 4])            // ConvTranspose2d [in, out, k, k]
        XCTAssertEqual(g["10.weight"]?.shape, [128, 3, 4, 4])
        XCTAssertEqual(g["2.num_batches_tracked"]?.dtype, .i64)
        XCTAssertEqual(g["2.num_batches_tracked"]?.values, [Float(2 * (40 / 16))], "two G forwards per iteration")
        XCTAssertEqual(g.values.filter { $0.dtype == .f32 }.reduce(0) { $0 + $1.values.count } - 3 * 2 * 128, 738_307)
        let d = try SafeTensors.read(from: ck.appendingPathComponent("discriminator.safetensors"))
        XCTAssertEqual(d["0.weight"]?.shape, [64, 3, 3, 3])               // Conv2d [out, in, k, k]
        XCTAssertEqual(d["10.weight"]?.shape, [1, 2048])
        XCTAssertEqual(d.values.reduce(0) { $0 + $1.values.count }, 262_209)
        XCTAssertEqual(try SafeTensors.readMetadata(from: ck.appendingPathComponent("generator.safetensors"))["format"], "pt")
    }

    /// The rule, checked against the run's own metrics: stop at the first epoch that ends `patience` epochs in a
    /// row with D's accuracy on generated images ≥ the threshold; mark the epoch before that streak.
    func testAutoStopFollowsItsRuleAndMarksTheCheckpointBeforeDomination() throws {
        let data = try syntheticData()
        for (threshold, seed) in [(0.5, UInt64(1)), (0.9, 2), (1.0, 3)] {
            var cfg = tinyConfig(); cfg.epochs = 12; cfg.autoStopPatience = 2; cfg.autoStopAccuracy = threshold; cfg.seed = seed
            let folder = temporaryFolder(self)
            let outcome = try train(cfg, data, folder)
            let acc = Report.readMetrics(folder.appendingPathComponent("metrics.jsonl")).map(\.accuracyFake)
            var streak = 0, healthy = 0, expected = TrainingOutcome.finished(epochs: 12)
            for (i, a) in acc.enumerated() {
                if a >= threshold { streak += 1 } else { streak = 0; healthy = i + 1 }
                if streak >= 2 { expected = .autoStopped(atEpoch: i + 1, bestEpoch: healthy); break }
            }
            XCTAssertEqual(outcome, expected, "threshold \(threshold): accuracies \(acc)")
            let checkpoints = folder.appendingPathComponent("checkpoints")
            if case .autoStopped(let stop, let best) = outcome {
                XCTAssertEqual(acc.count, stop, "no epochs after the stop")
                if best > 0 {
                    XCTAssertEqual(Checkpoint.pointer(.preDomination, in: checkpoints), Checkpoint.folderName(epoch: best))
                    XCTAssertNoThrow(try Checkpoint.resolve("pre-domination", in: checkpoints), "its checkpoint was kept")
                }
            } else {
                XCTAssertNil(Checkpoint.pointer(.preDomination, in: checkpoints))
            }
        }
    }

    func testDivergenceStopsAndKeepsTheLastGoodCheckpoint() throws {
        let data = try syntheticData()
        var cfg = tinyConfig(); cfg.epochs = 2
        let folder = temporaryFolder(self)
        _ = try train(cfg, data, folder, epochs: 1)
        let good = try generatorWeights(folder)
        // Resume with a learning rate that blows up: the run must stop with a message and keep epoch 1.
        var wild = try RunConfig.load(from: folder.appendingPathComponent("config.json"))
        wild.optimizer.generatorLR = 1e30; wild.optimizer.discriminatorLR = 1e30
        try writeAtomically(try wild.encoded(), to: folder.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try train(wild, data, folder, resume: true, epochs: 2)) {
            XCTAssert("\($0)".contains("diverged") && "\($0)".contains("epoch-0001"), "\($0)")
        }
        XCTAssertEqual(try generatorWeights(folder), good)
    }

    func testLoadingAnotherArchitectureIsAClearError() throws {
        let data = try syntheticData()
        let folder = temporaryFolder(self)
        _ = try train(tinyConfig(), data, folder, epochs: 1)
        var wider = tinyConfig(); wider.model.generatorWidth = 16
        try writeAtomically(try wider.encoded(), to: folder.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try Sampler(runFolder: folder, checkpoint: nil)) {
            XCTAssert("\($0)".contains("generator.safetensors") && "\($0)".contains("another architecture"), "\($0)")
        }
    }

    func testGenerateWritesPNGsGridAndCIFARBinary() throws {
        let data = try syntheticData()
        var cfg = tinyConfig(target: "all"); cfg.epochs = 1; cfg.classEpochs = ["dog": 2]
        let run = temporaryFolder(self).appendingPathComponent("all")
        let outcomes = try Jobs.train(config: cfg, runFolder: run, resume: false, data: data, quiet: true, log: { _ in })
        XCTAssertEqual(outcomes.count, 10)
        XCTAssertEqual(outcomes["dog"], .finished(epochs: 2), "per-class epoch override")
        let out = temporaryFolder(self)
        try Jobs.generate(runFolder: run, className: "cat", checkpoint: nil, count: 5, seed: 1, out: out, format: .png, log: { _ in })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("cat").path).count, 5)
        XCTAssertEqual(try PNG.read(from: out.appendingPathComponent("cat/00004.png")).width, 32)
        XCTAssert(FileManager.default.fileExists(atPath: out.appendingPathComponent("cat-grid.png").path))
        try Jobs.generate(runFolder: run, className: nil, checkpoint: "1", count: 3, seed: 1, out: out, format: .cifarBin, log: { _ in })
        let bin = try Data(contentsOf: out.appendingPathComponent("truck.bin"))
        XCTAssertEqual(bin.count, 3 * 3073)
        XCTAssertEqual(bin[0], 9, "truck's CIFAR label")
        // Same seed, same images; the reloaded CIFAR file reads back.
        let a = try Sampler(runFolder: run.appendingPathComponent("cat"), checkpoint: nil).sample(count: 2, seed: 5)
        let b = try Sampler(runFolder: run.appendingPathComponent("cat"), checkpoint: nil).sample(count: 2, seed: 5)
        XCTAssertEqual(a, b)
        XCTAssertThrowsError(try Jobs.generate(runFolder: run, className: "unicorn", checkpoint: nil, count: 1, seed: 0, out: out, format: .png, log: { _ in })) {
            XCTAssert("\($0)".contains("unicorn"), "\($0)")
        }
    }

    /// Every field survives config.json: a field the decoder missed would silently fall back to its default.
    func testConfigRoundTripsEveryField() throws {
        var c = RunConfig()
        c.target = "dog"; c.imageFolder = "/x"; c.model.latentDim = 7; c.model.generatorWidth = 9; c.model.discriminatorWidth = 5
        c.model.dropout = 0.3; c.model.leakySlope = 0.1; c.optimizer.generatorLR = 3e-3; c.optimizer.discriminatorLR = 4e-3
        c.optimizer.beta1 = 0.4; c.optimizer.beta2 = 0.95; c.batchSize = 17; c.epochs = 11; c.classEpochs = ["cat": 3]
        c.realTargetRange = [0.7, 0.9]; c.fakeTargetRange = [0.05, 0.2]; c.instanceNoise = 0.2; c.instanceNoiseEpochs = 4
        c.checkpointEvery = 2; c.keepCheckpoints = 5; c.autoStopPatience = 6; c.autoStopAccuracy = 0.8; c.seed = 99; c.sampleCount = 16
        c.evalEvery = 3; c.evalCount = 500; c.evalPatience = 2; c.judge = "/j"; c.preset = "modern"; c.loss = .hinge
        c.diffAugment = [.cutout]; c.emaDecay = 0.99; c.timeLimitMinutes = 2.5; c.classNames = ["a", "b"]
        c.model.architecture = .resnet; c.model.spectralNorm = true; c.model.classes = 2
        let url = temporaryFolder(self).appendingPathComponent("config.json")
        try c.encoded().write(to: url)
        XCTAssertEqual(try RunConfig.load(from: url), c)
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssert(text.contains("\"generator_lr\"") && text.contains("\"batch_size\""), text)
    }

    /// A config.json written by main before the typed configuration (2026-12-02, `--conditional --preset cnn
    /// --ada-target 0.6`) loads into the typed fields and is written back the same, field for field.
    func testConfigOfEarlierFormatLoadsAndRoundTrips() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "config-2026-12-02", withExtension: "json", subdirectory: "Fixtures"))
        let c = try RunConfig.load(from: url)
        XCTAssertEqual(c.target, .conditional); XCTAssertEqual(c.loss, .hinge)
        XCTAssertEqual(c.model.architecture, .cnn); XCTAssertEqual(c.model.upsampling, .transposed)
        XCTAssertEqual(c.diffAugment, [.color, .translation, .cutout]); XCTAssertEqual(c.adaTarget, 0.6)
        XCTAssertEqual(c.optimizer.generatorLR, 2e-4); XCTAssertEqual(c.classNames?.count, 10)
        let before = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! NSDictionary
        let after = try JSONSerialization.jsonObject(with: c.encoded(), options: .mutableContainers) as! NSMutableDictionary
        // Fields added since then take their defaults (and are written back): a file without precision is float32.
        XCTAssertEqual(c.precision, .fp32)
        XCTAssertEqual(after["precision"] as? String, "fp32")
        after.removeObject(forKey: "precision")
        XCTAssertEqual(before, after)
        // A one-class run's target is the class name, as before.
        XCTAssertEqual(try RunConfig.decode(json: Data(#"{"target": "cat"}"#.utf8)).target, .oneClass("cat"))
        XCTAssertEqual(String(decoding: try { var c = RunConfig(); c.target = "dog"; return try c.encoded() }(), as: UTF8.self)
                        .contains(#""target" : "dog""#), true)
    }

    /// A run folder written by main before this redesign (`Fixtures/run-2026-12-02`: hinge, EMA, DiffAugment with
    /// ADA, LeCam; one epoch of cats at toy widths, commit 8e701f6) still samples and resumes: its checkpoint's
    /// training state lands in the GAN's one state value.
    func testRunOfEarlierFormatSamplesAndResumes() throws {
        let fixture = try XCTUnwrap(Bundle.module.url(forResource: "run-2026-12-02", withExtension: nil, subdirectory: "Fixtures"))
        let folder = temporaryFolder(self).appendingPathComponent("run")
        try FileManager.default.copyItem(at: fixture, to: folder)
        let sampler = try Sampler(runFolder: folder, checkpoint: nil)
        XCTAssertEqual(sampler.checkpoint.lastPathComponent, "epoch-0001")
        let ck = RunFolder(folder).checkpoint("epoch-0001")
        let gan = GAN(config: sampler.config)
        let state = try XCTUnwrap(try Checkpoint.load(ck, into: gan))
        XCTAssertEqual(state.epoch, 1)
        XCTAssertEqual(gan.state, state.gan)
        XCTAssertEqual(gan.emaUpdates, 20); XCTAssertEqual(gan.lecam?.state.updates, 20); XCTAssertNotNil(gan.ada)
        let dir = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 60, files: CIFAR10.trainFiles)
        let outcome = try train(try RunFolder(folder).loadConfig(), try CIFAR10.load(from: dir, split: .train), folder, resume: true, epochs: 2)
        XCTAssertEqual(outcome, .finished(epochs: 2))
        XCTAssertEqual(Report.readMetrics(RunFolder(folder).metricsFile).map(\.epoch), [1, 2])
    }

    func testConfigFileErrorsNameTheField() throws {
        let dir = temporaryFolder(self)
        let url = dir.appendingPathComponent("c.json")
        try Data(#"{"batch_size": "big"}"#.utf8).write(to: url)
        XCTAssertThrowsError(try RunConfig.load(from: url)) { XCTAssert("\($0)".contains("batch_size"), "\($0)") }
        try Data(#"{"epochs": 5, "model": {"generator_width": 256}}"#.utf8).write(to: url)
        let c = try RunConfig.load(from: url)
        XCTAssertEqual(c.epochs, 5); XCTAssertEqual(c.model.generatorWidth, 256); XCTAssertEqual(c.batchSize, 64)
        var bad = RunConfig(); bad.realTargetRange = [0.9, 0.2]
        XCTAssertThrowsError(try bad.validate()) { XCTAssert("\($0)".contains("real_target_range"), "\($0)") }
    }
}
