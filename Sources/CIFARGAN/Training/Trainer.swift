import Foundation
import GANCore

/// One epoch's averages, one line of `metrics.jsonl`.
public struct EpochMetrics: Codable, Sendable {
    public var epoch: Int
    public var lossD: Double
    public var lossG: Double
    public var dReal: Double
    public var dFake: Double
    public var accuracyReal: Double
    public var accuracyFake: Double
    public var imagesPerSec: Double
    public var seconds: Double
    public var instanceNoise: Double
    public var iterations: Int
    /// In-training evaluation (epochs where it ran): FID and recognition rate of generated samples.
    public var fid: Double?
    public var recognitionRate: Double?
    /// ADA's augmentation probability at the end of the epoch (runs with `ada_target`).
    public var augmentProbability: Double?

    /// The epoch's numbers under TensorBoard tags (those measured this epoch).
    public var tensorBoardScalars: [(tag: String, value: Double)] {
        [("loss/d", lossD), ("loss/g", lossG), ("D/real", dReal), ("D/fake", dFake),
         ("accuracy/real", accuracyReal), ("accuracy/fake", accuracyFake), ("speed/images_per_sec", imagesPerSec),
         ("instance_noise", instanceNoise)]
            + [("eval/fid", fid), ("eval/recognition", recognitionRate), ("augment/probability", augmentProbability)]
                .compactMap { tag, v in v.map { (tag, $0) } }
    }
}

public enum TrainingOutcome: Equatable, Sendable {
    case finished(epochs: Int)
    case autoStopped(atEpoch: Int, bestEpoch: Int)
    /// FID did not improve for `eval_patience` evaluations; `bestEpoch` had the lowest FID.
    case earlyStopped(atEpoch: Int, bestEpoch: Int)
    /// `time_limit_minutes` ran out during epoch `atEpoch` (which is partial).
    case timeLimit(atEpoch: Int)
}

public struct TrainingDiverged: UserFacingError {
    public var exitCode: Int32 { 3 }
    public let description: String
}

/// Trains one GAN on one dataset into a run folder:
/// `config.json`, `metrics.jsonl`, `samples/epoch-NNNN.png`, `report.html` and `checkpoints/`.
///
/// The whole run is a function of the config's seed: the data order of epoch e comes from (seed, e), the
/// latents, targets and noise from one stream saved in each checkpoint, so resuming from a checkpoint gives
/// the same weights as never stopping.
///
/// ```swift
/// let trainer = try Trainer(config: config, data: cats, runFolder: url, title: "cat")
/// let outcome = try trainer.run(epochs: 150)
/// ```
public final class Trainer {
    public let config: RunConfig
    public let data: ImageDataset
    public let runFolder: URL
    public let title: String
    public let gan: GAN
    public var log: (String) -> Void = say
    public var progress: ProgressDisplay
    private var state: TrainingState
    /// The judge and the reference features of this run's class, when `eval_every` is set.
    private var evaluation: (judge: Judge, reference: FeatureSet, label: Int?)?
    private var tensorboard: TensorBoardLog?

    /// Every path of the run folder.
    public var run: RunFolder { RunFolder(runFolder) }
    var checkpoints: URL { run.checkpoints }
    var metricsFile: URL { run.metricsFile }

    /// Starts a new run, or continues the one in `runFolder` when `resume` is set.
    public init(config: RunConfig, data: ImageDataset, runFolder: URL, title: String, resume: Bool) throws {
        try config.validate()
        guard data.count >= config.batchSize else {
            throw DataError("\(title): \(data.count) training images, fewer than one batch of \(config.batchSize)")
        }
        self.config = config; self.data = data; self.runFolder = runFolder; self.title = title
        if config.model.isConditional {
            guard config.model.classes == data.classNames.count else {
                throw ConfigError("\(title): the model has \(config.model.classes) classes, the data \(data.classNames.count)")
            }
        }
        gan = GAN(config: config)
        progress = ProgressDisplay()
        state = TrainingState(epoch: 0, rng: RandomGenerator(seed: config.seed).derived(1), gan: gan.state)
        let fm = FileManager.default
        if resume {
            guard run.pointer(.latest) != nil else {
                throw DataError("\(runFolder.path): nothing to resume (no checkpoints/latest)")
            }
            let folder = try Checkpoint.resolve(CheckpointPointer.latest.rawValue, in: checkpoints)
            if let s = try Checkpoint.load(folder, into: gan) { state = s }
            try truncateMetrics(after: state.epoch)
            try run.saveConfig(config)
            log("resuming \(title) from \(folder.lastPathComponent) (epoch \(state.epoch))")
        } else {
            if fm.fileExists(atPath: checkpoints.path),
               !((try? fm.contentsOfDirectory(atPath: checkpoints.path)) ?? []).isEmpty {
                throw DataError("\(runFolder.path): already holds a run; use --resume \(runFolder.path) to continue it or choose another --run folder")
            }
            try fm.createDirectory(at: runFolder, withIntermediateDirectories: true)
            try run.saveConfig(config)
            try writeAtomically(Data(), to: metricsFile)
        }
        if config.tensorboard { tensorboard = try TensorBoardLog(runFolder: runFolder, keepingStepsUpTo: state.epoch) }
        if config.evalEvery > 0 { try prepareEvaluation() }
    }

    /// Loads the judge and the reference features (CIFAR-10 training images of the run's class) up front,
    /// so that a missing judge or dataset is an error before training, not after an epoch.
    private func prepareEvaluation() throws {
        let judge = try Judge(folder: config.judge.map { URL(fileURLWithPath: $0) } ?? Judge.defaultFolder)
        let label = try config.target.className.map { name -> Int in
            guard let i = CIFAR10.classNames.firstIndex(of: name) else {
                throw ConfigError("eval_every: the judge knows the CIFAR-10 classes; '\(name)' is not one of them")
            }
            return i
        }
        // The reference is the run's own training images (the first 5,000): embedding only those keeps a
        // 50,000-image run's start-up from embedding ten times more than it uses.
        let reference = judge.embed(pixels: Array(data.pixels.prefix(5000 * ImageDataset.imageBytes))).0
        evaluation = (judge, reference, label)
    }

    /// FID and recognition rate of `eval_count` samples from a fixed latent stream, in eval mode.
    private func evaluateNow() throws -> (Double, Double?) {
        guard let evaluation else { return (.nan, nil) }
        var rng = RandomGenerator(seed: config.seed).derived(3)
        var pixels = [UInt8](); pixels.reserveCapacity(config.evalCount * 3072)
        var done = 0
        while done < config.evalCount {
            let n = min(250, config.evalCount - done)
            let z = Tensor(shape: [n, config.model.latentDim]); rng.fillNormal(z)
            let x = gan.sample(z, classes: sampleClasses(n, offset: done), inBatchesOf: config.batchSize)
            for i in 0..<n { pixels.append(contentsOf: RGBImage(tensor: x.data + i * 3072).planar) }
            done += n
        }
        let (features, probs) = evaluation.judge.embed(pixels: pixels)
        let fid = try Metrics.fid(evaluation.reference.statistics(), features.statistics())
        let recognition = evaluation.label.map {
            Metrics.recognitionRate(probabilities: probs, classes: evaluation.judge.config.classes, label: $0,
                                    realistic: Metrics.insideManifold(evaluation.reference, features))
        }
        return (fid, recognition)
    }

    public var completedEpochs: Int { state.epoch }

    /// Trains until `epochs` are complete (or auto-stop); returns how it ended.
    @discardableResult
    public func run(epochs: Int) throws -> TrainingOutcome {
        let N = config.batchSize, latent = config.model.latentDim
        let batches = data.count / N
        let real = Tensor(shape: [N, 3, 32, 32])
        let z1 = Tensor(shape: [N, latent]), z2 = Tensor(shape: [N, latent])
        let tReal = Tensor(shape: [N, 1]), tFake = Tensor(shape: [N, 1])
        let startEpoch = state.epoch
        let runStart = Date()
        let secondsBefore = state.trainingSeconds ?? 0
        let limit = config.timeLimitMinutes * 60
        let conditional = config.model.isConditional
        var realClasses = [Int](repeating: 0, count: N), classesD = realClasses, classesG = realClasses
        if limit > 0 && secondsBefore >= limit {
            log("\(title): already trained for its time limit of \(formatDuration(limit)); raise it with --time-limit to continue")
            return .timeLimit(atEpoch: state.epoch)
        }
        if state.epoch >= epochs {
            log("\(title): already trained for \(state.epoch) epochs")
            return .finished(epochs: state.epoch)
        }
        while state.epoch < epochs {
            let epoch = state.epoch
            var order = RandomGenerator(seed: config.seed).derived(1000 &+ UInt64(epoch))
            let perm = order.permutation(data.count)
            let noise = config.noiseStd(epoch: epoch)
            var sums = [Double](repeating: 0, count: 6), generatorSteps = 0
            let epochStart = Date()
            var completed = batches
            for b in 0..<batches {
                if limit > 0 && secondsBefore + Date().timeIntervalSince(runStart) >= limit && b > 0 {
                    completed = b
                    break
                }
                let indices = perm[(b * N)..<((b + 1) * N)]
                data.fillBatch(indices: indices, into: real)
                state.rng.fillNormal(z1); state.rng.fillNormal(z2)
                state.rng.fillUniform(tReal, config.realTargetRange[0], config.realTargetRange[1])
                state.rng.fillUniform(tFake, config.fakeTargetRange[0], config.fakeTargetRange[1])
                if conditional {
                    let K = UInt64(config.model.classes)
                    for (k, i) in indices.enumerated() { realClasses[k] = Int(data.labels[i]) }
                    for k in 0..<N { classesD[k] = Int(state.rng.next() % K); classesG[k] = Int(state.rng.next() % K) }
                }
                if config.lrDecayStart != nil {
                    let factor = config.learningRateFactor(iteration: epoch * batches + b, total: epochs * batches)
                    gan.optimizerG.lr = config.optimizer.generatorLR * factor
                    gan.optimizerD.lr = config.optimizer.discriminatorLR * factor
                }
                let stats = withUnsafeMutablePointer(to: &state.rng) { rng in
                    gan.iteration(real: real, latentForD: z1, latentForG: z2, realTargets: tReal, fakeTargets: tFake,
                                  instanceNoise: noise > 0 ? (noise, rng) : nil,
                                  classes: conditional ? (realClasses, classesD, classesG) : nil,
                                  // by position in the run, so that a resumed run steps G where an unbroken one would
                                  updateGenerator: (epoch * batches + b + 1) % config.discriminatorSteps == 0)
                }
                guard stats.isFinite else {
                    let last = run.pointer(.latest).map { "checkpoints/\($0)" } ?? "none yet"
                    progress.finishLine()
                    throw TrainingDiverged(description: "\(title): training diverged at epoch \(epoch + 1), batch \(b + 1): "
                        + "loss_d \(stats.lossD), loss_g \(stats.lossG); stopped, the last good checkpoint is \(last)")
                }
                for (k, v) in [stats.lossD, stats.lossG, stats.dReal, stats.dFake, stats.accuracyReal, stats.accuracyFake].enumerated() {
                    sums[k] += v
                }
                if stats.generatorStepped { generatorSteps += 1 }
                let elapsed = Date().timeIntervalSince(epochStart)
                let done = Double(epoch - startEpoch) + Double(b + 1) / Double(batches)
                let eta = Date().timeIntervalSince(runStart) / done * (Double(epochs - startEpoch) - done)
                progress.update(title: title, epoch: epoch + 1, epochs: epochs, fraction: Double(b + 1) / Double(batches),
                                imagesPerSec: Double((b + 1) * N) / max(elapsed, 1e-9),
                                lossD: sums[0] / Double(b + 1), lossG: sums[1] / Double(max(generatorSteps, 1)), eta: eta)
            }
            let seconds = Date().timeIntervalSince(epochStart)
            let n = Double(completed)
            var m = EpochMetrics(epoch: epoch + 1, lossD: sums[0] / n, lossG: sums[1] / Double(max(generatorSteps, 1)), dReal: sums[2] / n, dFake: sums[3] / n,
                                 accuracyReal: sums[4] / n, accuracyFake: sums[5] / n,
                                 imagesPerSec: Double(completed * N) / seconds, seconds: seconds,
                                 instanceNoise: Double(noise), iterations: completed)
            m.augmentProbability = gan.ada?.probability
            state.epoch = epoch + 1
            state.trainingSeconds = secondsBefore + Date().timeIntervalSince(runStart)
            let outcome = try finishEpoch(m, totalEpochs: epochs)
            if let outcome { return outcome }
            if completed < batches || (limit > 0 && state.trainingSeconds! >= limit) {
                try run.setPointer(.final, to: run.pointer(.latest)!)
                log("\(title): time limit of \(formatDuration(limit)) reached in epoch \(state.epoch)"
                    + (completed < batches ? " after \(completed) of \(batches) batches" : "") + "; final checkpoint \(Checkpoint.folderName(epoch: state.epoch))")
                return .timeLimit(atEpoch: state.epoch)
            }
        }
        try run.setPointer(.final, to: run.pointer(.latest)!)
        log("\(title): finished \(state.epoch) epochs in \(formatDuration(Date().timeIntervalSince(runStart))); "
            + "samples in \(runFolder.path)/samples, report \(runFolder.path)/report.html")
        return .finished(epochs: state.epoch)
    }

    /// End of an epoch: evaluation (when due), log and metrics line, sample grid, auto-stop bookkeeping,
    /// checkpoint and report; then whether a stopping rule ends the run.
    private func finishEpoch(_ epochMetrics: EpochMetrics, totalEpochs: Int) throws -> TrainingOutcome? {
        var m = epochMetrics
        progress.finishLine()
        gan.refreshEMAStatistics(seed: config.seed &+ 5)
        let improved = try evaluateIfDue(&m)
        log(String(format: "%@ epoch %d/%d: loss_d %.4f loss_g %.4f D(x) %.3f D(G(z)) %.3f acc real %.3f fake %.3f, %.0f img/s, %.1f s",
                   title, m.epoch, totalEpochs, m.lossD, m.lossG, m.dReal, m.dFake, m.accuracyReal, m.accuracyFake, m.imagesPerSec, m.seconds)
            + (m.fid.map { String(format: ", FID %.3f", $0) } ?? "") + (m.recognitionRate.map { String(format: ", recognised %.3f", $0) } ?? ""))
        try appendMetrics(m)
        let grid = try saveSampleGrid(epoch: m.epoch)
        try tensorboard?.append(step: m.epoch, scalars: m.tensorBoardScalars,
                                image: ("samples", PNG.encode(grid), grid.height, grid.width))
        let dominated = updateDominationStreak(m)
        let folder = try saveCheckpoint(best: improved)
        try Report.write(runFolder: runFolder, title: title, config: config)
        return try stoppingOutcome(m, dominated: dominated, checkpoint: folder)
    }

    /// FID (and recognition rate) into `m` when this epoch is due for evaluation; true if the FID is the best so far.
    private func evaluateIfDue(_ m: inout EpochMetrics) throws -> Bool {
        guard config.evalEvery > 0 && m.epoch % config.evalEvery == 0 else { return false }
        let (fid, recognition) = try evaluateNow()
        m.fid = fid; m.recognitionRate = recognition
        if fid < (state.bestFID ?? .infinity) {
            state.bestFID = fid; state.bestEpoch = m.epoch; state.evaluationsWithoutImprovement = 0
            return true
        }
        state.evaluationsWithoutImprovement = (state.evaluationsWithoutImprovement ?? 0) + 1
        return false
    }

    /// Auto-stop: D "dominates" when it recognises at least `autoStopAccuracy` of generated images; true once it
    /// has for `autoStopPatience` epochs in a row.
    private func updateDominationStreak(_ m: EpochMetrics) -> Bool {
        guard config.autoStopPatience > 0 else { return false }
        if m.accuracyFake >= config.autoStopAccuracy {
            state.dominationStreak += 1
        } else {
            state.dominationStreak = 0
            state.lastHealthyEpoch = m.epoch
        }
        return state.dominationStreak >= config.autoStopPatience
    }

    /// Writes this epoch's checkpoint, moves `latest` (and `best`) to it, and prunes older ones, keeping the
    /// last checkpoint before D began to dominate.
    private func saveCheckpoint(best: Bool) throws -> URL {
        state.gan = gan.state
        let folder = try Checkpoint.save(gan: gan, state: state, in: checkpoints)
        try run.setPointer(.latest, to: folder.lastPathComponent)
        if best { try run.setPointer(.best, to: folder.lastPathComponent) }
        var protected: Set<String> = []
        if config.autoStopPatience > 0 && state.lastHealthyEpoch > 0 {
            protected.insert(Checkpoint.folderName(epoch: state.lastHealthyEpoch))
        }
        Checkpoint.prune(in: checkpoints, every: config.checkpointEvery, keep: config.keepCheckpoints, protected: protected)
        return folder
    }

    /// Auto-stop or early stop (FID without improvement for `evalPatience` evaluations), with their pointers and
    /// log lines; nil to go on.
    private func stoppingOutcome(_ m: EpochMetrics, dominated: Bool, checkpoint folder: URL) throws -> TrainingOutcome? {
        if dominated {
            let best = state.lastHealthyEpoch
            if best > 0 { try run.setPointer(.preDomination, to: Checkpoint.folderName(epoch: best)) }
            try run.setPointer(.final, to: folder.lastPathComponent)
            log("\(title): auto-stop at epoch \(m.epoch): D's accuracy on generated images was ≥ \(config.autoStopAccuracy) for "
                + "\(config.autoStopPatience) epochs in a row (epochs \(m.epoch - config.autoStopPatience + 1)–\(m.epoch)); "
                + (best > 0 ? "the checkpoint from before (epoch \(best)) is checkpoints/pre-domination" : "it dominated from the start"))
            return .autoStopped(atEpoch: m.epoch, bestEpoch: best)
        }
        if config.evalPatience > 0, let waited = state.evaluationsWithoutImprovement, waited >= config.evalPatience {
            try run.setPointer(.final, to: folder.lastPathComponent)
            let best = state.bestEpoch ?? 0
            log(String(format: "%@: early stop at epoch %d: FID has not improved for %d evaluations; the best (%.3f) is epoch %d, checkpoints/best",
                       title, m.epoch, waited, state.bestFID ?? .nan, best))
            return .earlyStopped(atEpoch: m.epoch, bestEpoch: best)
        }
        return nil
    }

    private func appendMetrics(_ m: EpochMetrics) throws {
        let enc = JSONEncoder(); enc.keyEncodingStrategy = .convertToSnakeCase; enc.outputFormatting = [.sortedKeys]
        var line = try enc.encode(m); line.append(0x0A)
        let handle = try FileHandle(forWritingTo: metricsFile)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
        try handle.synchronize()
    }

    /// Drops metric lines after the checkpoint a run resumes from (and any half-written last line).
    private func truncateMetrics(after epoch: Int) throws {
        let kept = Report.readMetrics(metricsFile).filter { $0.epoch <= epoch }
        let enc = JSONEncoder(); enc.keyEncodingStrategy = .convertToSnakeCase; enc.outputFormatting = [.sortedKeys]
        var data = Data()
        for m in kept { data.append(try enc.encode(m)); data.append(0x0A) }
        try writeAtomically(data, to: metricsFile)
    }

    /// The same latent batch every epoch, drawn from the seed, rendered in eval mode.
    @discardableResult
    private func saveSampleGrid(epoch: Int) throws -> RGBImage {
        var rng = RandomGenerator(seed: config.seed).derived(2)
        // In training-sized batches: G's layers keep buffers for one shape, and sampling at another size would
        // reallocate all of them twice per epoch (a higher peak memory).
        let z = Tensor(shape: [config.sampleCount, config.model.latentDim])
        rng.fillNormal(z)
        let images = gan.sample(z, classes: sampleClasses(config.sampleCount, offset: 0), inBatchesOf: config.batchSize)
        let tiles = (0..<config.sampleCount).map { RGBImage(tensor: images.data + $0 * 3072) }
        // A conditional model's grid has one column per class.
        let columns = config.model.isConditional ? config.model.classes : Int(Double(config.sampleCount).squareRoot().rounded(.up))
        let grid = imageGrid(tiles, columns: columns)
        try PNG.write(grid, to: run.sampleGrid(epoch: epoch))
        return grid
    }
}

extension Trainer {
    /// Classes for `n` samples of a conditional model, in turn (nil for other models).
    func sampleClasses(_ n: Int, offset: Int) -> [Int]? {
        guard config.model.isConditional else { return nil }
        return (0..<n).map { ($0 + offset) % config.model.classes }
    }
}

/// A one-line progress bar on a terminal; plain periodic lines otherwise (logs, CI).
public final class ProgressDisplay {
    let isTerminal = isatty(STDOUT_FILENO) != 0
    private var lastPrint = Date.distantPast
    private var drawn = false
    public var enabled = true
    public init() {}

    func update(title: String, epoch: Int, epochs: Int, fraction: Double, imagesPerSec: Double, lossD: Double, lossG: Double, eta: Double) {
        guard enabled else { return }
        let now = Date()
        if isTerminal {
            guard now.timeIntervalSince(lastPrint) > 0.2 || fraction >= 1 else { return }
            let width = 24, filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = String(format: "\r%@ %d/%d %@ %3.0f%% %5.0f img/s loss_d %.3f loss_g %.3f ETA %@ ",
                              title, epoch, epochs, bar, fraction * 100, imagesPerSec, lossD, lossG, formatDuration(eta))
            FileHandle.standardOutput.write(Data(line.utf8))
            drawn = true
        } else {
            guard now.timeIntervalSince(lastPrint) > 30 else { return }
            say(String(format: "%@ epoch %d/%d %.0f%%: %.0f img/s loss_d %.3f loss_g %.3f ETA %@",
                         title, epoch, epochs, fraction * 100, imagesPerSec, lossD, lossG, formatDuration(eta)))
        }
        lastPrint = now
    }

    func finishLine() {
        if drawn { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)); drawn = false }
    }
}

public func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "--:--" }
    let t = Int(s)
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}

/// Prints a line and flushes it, so logs written to a file or a pipe show progress as it happens.
public func say(_ line: String) {
    print(line)
    fflush(nil)
}
