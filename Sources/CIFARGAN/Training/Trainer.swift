import Foundation
import GANCore

/// One epoch's averages, one line of `metrics.jsonl`.
/// Trains one GAN on one dataset into a run folder:
/// `config.json`, `metrics.jsonl`, `samples/epoch-NNNN.png`, `report.html` and `checkpoints/`.
///
/// The whole run is a function of the config's seed: the data order of epoch e comes from (seed, e), the
/// latents, targets and noise from one stream saved in each checkpoint, so resuming from a checkpoint gives
/// the same weights as never stopping.
///
/// ```swift
/// let trainer = try Trainer(config: config, data: cats, runFolder: url, title: "cat", resume: false)
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
    /// The ranks training this model together (nil: this process alone). Rank 0 — the leader — alone writes the
    /// run folder; every rank takes the same steps.
    public let dataParallel: DataParallel?
    var leader: Bool { (dataParallel?.world.rank ?? 0) == 0 }

    /// Every path of the run folder.
    public var run: RunFolder { RunFolder(runFolder) }
    var checkpoints: URL { run.checkpoints }
    var metricsFile: URL { run.metricsFile }

    /// Starts a new run, or continues the one in `runFolder` when `resume` is set; with `dataParallel`, as one
    /// rank of the job that trains it.
    public init(config: RunConfig, data: ImageDataset, runFolder: URL, title: String, resume: Bool,
                dataParallel: DataParallel? = nil) throws {
        try config.validate()
        _ = try dataParallel?.rowsPerRank(batchSize: config.batchSize)
        self.dataParallel = dataParallel
        guard data.count >= config.batchSize else {
            throw DataError("\(title): \(data.count) training images, fewer than one batch of \(config.batchSize)")
        }
        self.config = config; self.data = data; self.runFolder = runFolder; self.title = title
        if config.model.isConditional {
            guard config.model.classes == data.classNames.count else {
                throw ConfigError("\(title): the model has \(config.model.classes) classes, the data \(data.classNames.count)")
            }
        }
        gan = GAN(config: config, dataParallel: dataParallel)
        progress = ProgressDisplay()
        state = TrainingState(epoch: 0, rng: RandomGenerator(seed: config.seed).derived(1), gan: gan.state)
        let fm = FileManager.default
        if resume {
            guard run.pointer(.latest) != nil else {
                throw DataError("\(runFolder.path): nothing to resume (no checkpoints/latest)")
            }
            let folder = try Checkpoint.resolve(CheckpointPointer.latest.rawValue, in: checkpoints)
            if let s = try Checkpoint.load(folder, into: gan) { state = s }
            if leader {
                try truncateMetrics(after: state.epoch)
                try run.saveConfig(config)
            }
            log("resuming \(title) from \(folder.lastPathComponent) (epoch \(state.epoch))")
        } else {
            if fm.fileExists(atPath: checkpoints.path),
               !((try? fm.contentsOfDirectory(atPath: checkpoints.path)) ?? []).isEmpty {
                throw DataError("\(runFolder.path): already holds a run; use --resume \(runFolder.path) to continue it or choose another --run folder")
            }
            if leader {
                try fm.createDirectory(at: runFolder, withIntermediateDirectories: true)
                try run.saveConfig(config)
                try writeAtomically(Data(), to: metricsFile)
            }
        }
        if config.tensorboard && leader { tensorboard = try TensorBoardLog(runFolder: runFolder, keepingStepsUpTo: state.epoch) }
        if config.evalEvery > 0 && leader { try prepareEvaluation() }
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

    /// Trains until `epochs` are complete (or a stopping rule, or the time limit); returns how it ended.
    @discardableResult
    public func run(epochs: Int) throws -> TrainingOutcome {
        let budget = TimeBudget(limit: config.timeLimitMinutes * 60, spentBefore: state.trainingSeconds ?? 0)
        if agree(budget.exhausted) {
            log("\(title): already trained for its time limit of \(formatDuration(budget.limit)); raise it with --time-limit to continue")
            return .timeLimit(atEpoch: state.epoch)
        }
        if state.epoch >= epochs {
            log("\(title): already trained for \(state.epoch) epochs")
            return .finished(epochs: state.epoch)
        }
        let batch = TrainingBatch(config: config, shard: dataParallel?.shard ?? .whole)
        let startEpoch = state.epoch
        while state.epoch < epochs {
            let epoch = state.epoch, batches = data.count / config.batchSize
            let (statistics, seconds) = try trainEpoch(epoch, of: epochs, batch: batch, budget: budget) { b in
                let done = Double(epoch - startEpoch) + Double(b) / Double(batches)
                return budget.elapsedThisRun / done * (Double(epochs - startEpoch) - done)
            }
            var m = statistics.metrics(epoch: epoch + 1, batchSize: config.batchSize, seconds: seconds,
                                       instanceNoise: config.noiseStd(epoch: epoch))
            m.augmentProbability = gan.ada?.probability
            state.epoch = epoch + 1
            state.trainingSeconds = budget.spent
            if let outcome = try finishEpoch(m, totalEpochs: epochs) { return outcome }
            if statistics.batches < batches || agree(budget.limit > 0 && state.trainingSeconds! >= budget.limit) {   // as of the epoch's end
                if leader { try run.setPointer(.final, to: run.pointer(.latest)!) }
                log("\(title): time limit of \(formatDuration(budget.limit)) reached in epoch \(state.epoch)"
                    + (statistics.batches < batches ? " after \(statistics.batches) of \(batches) batches" : "")
                    + "; final checkpoint \(Checkpoint.folderName(epoch: state.epoch))")
                return .timeLimit(atEpoch: state.epoch)
            }
        }
        if leader { try run.setPointer(.final, to: run.pointer(.latest)!) }
        log("\(title): finished \(state.epoch) epochs in \(formatDuration(budget.elapsedThisRun)); "
            + "samples in \(run.samples.path), report \(run.report.path)")
        return .finished(epochs: state.epoch)
    }

    /// One pass over the data in the epoch's order (a function of the seed and the epoch, so that a resumed
    /// run sees what an unbroken one would), stopping early when the time budget runs out.
    private func trainEpoch(_ epoch: Int, of epochs: Int, batch: TrainingBatch, budget: TimeBudget,
                            eta: (Int) -> Double) throws -> (EpochStatistics, seconds: Double) {
        let N = config.batchSize, batches = data.count / N
        let mine = batch.shard.rows(local: batch.real.shape[0])
        var order = RandomGenerator(seed: config.seed).derived(1000 &+ UInt64(epoch))
        let permutation = order.permutation(data.count)
        let noise = config.noiseStd(epoch: epoch)
        var statistics = EpochStatistics()
        let started = Date()
        for b in 0..<batches {
            if b > 0 && agree(budget.exhausted) { break }
            batch.draw(permutation[(b * N + mine.lowerBound)..<(b * N + mine.upperBound)], from: data, rng: &state.rng, config: config)
            let iteration = epoch * batches + b
            applyLearningRateSchedule(iteration: iteration, total: epochs * batches)
            let stats = withUnsafeMutablePointer(to: &state.rng) { rng in
                gan.iteration(real: batch.real, latentForD: batch.latentD, latentForG: batch.latentG,
                              realTargets: batch.realTargets, fakeTargets: batch.fakeTargets,
                              instanceNoise: noise > 0 ? (noise, rng) : nil,
                              classes: batch.classes,
                              // by position in the run, so that a resumed run steps G where an unbroken one would
                              updateGenerator: (iteration + 1) % config.discriminatorSteps == 0)
            }
            try checkFinite(stats, epoch: epoch, batch: b)
            statistics.add(stats)
            progress.update(title: title, epoch: epoch + 1, epochs: epochs, fraction: Double(b + 1) / Double(batches),
                            imagesPerSec: Double((b + 1) * N) / max(Date().timeIntervalSince(started), 1e-9),
                            lossD: statistics.meanLossD, lossG: statistics.meanLossG, eta: eta(b + 1))
        }
        return (statistics, Date().timeIntervalSince(started))
    }

    /// Whether `flag` holds on any rank: every rank of a data-parallel job must stop at the same batch.
    private func agree(_ flag: Bool) -> Bool { dataParallel?.anyRank(flag) ?? flag }

    /// `lr_decay_start`: both learning rates scaled by the schedule's factor at this iteration.
    private func applyLearningRateSchedule(iteration: Int, total: Int) {
        guard config.lrDecayStart != nil else { return }
        let factor = config.learningRateFactor(iteration: iteration, total: total)
        gan.optimizerG.lr = config.optimizer.generatorLR * factor
        gan.optimizerD.lr = config.optimizer.discriminatorLR * factor
    }

    /// Stops the run with `TrainingDiverged` (naming the last good checkpoint) when a loss is not finite.
    private func checkFinite(_ stats: IterationStats, epoch: Int, batch b: Int) throws {
        guard !stats.isFinite else { return }
        let last = run.pointer(.latest).map { "checkpoints/\($0)" } ?? "none yet"
        progress.finishLine()
        throw TrainingDiverged(description: "\(title): training diverged at epoch \(epoch + 1), batch \(b + 1): "
            + "loss_d \(stats.lossD), loss_g \(stats.lossG); stopped, the last good checkpoint is \(last)")
    }

    /// End of an epoch: evaluation (when due), log and metrics line, sample grid, auto-stop bookkeeping,
    /// checkpoint and report; then whether a stopping rule ends the run.
    private func finishEpoch(_ epochMetrics: EpochMetrics, totalEpochs: Int) throws -> TrainingOutcome? {
        var m = epochMetrics
        progress.finishLine()
        gan.refreshEMAStatistics(seed: config.seed &+ 5)
        let improved = try evaluateIfDue(&m)
        let dominated = updateDominationStreak(m)
        // Every rank of a data-parallel job has the same metrics (the whole batch's) and evaluation (the leader's),
        // so every rank reaches the same stopping decision; only the leader writes.
        var folder: URL?
        if leader {
            log(String(format: "%@ epoch %d/%d: loss_d %.4f loss_g %.4f D(x) %.3f D(G(z)) %.3f acc real %.3f fake %.3f, %.0f img/s, %.1f s",
                       title, m.epoch, totalEpochs, m.lossD, m.lossG, m.dReal, m.dFake, m.accuracyReal, m.accuracyFake, m.imagesPerSec, m.seconds)
                + (m.fid.map { String(format: ", FID %.3f", $0) } ?? "") + (m.recognitionRate.map { String(format: ", recognised %.3f", $0) } ?? ""))
            try appendMetrics(m)
            let grid = try saveSampleGrid(epoch: m.epoch)
            try tensorboard?.append(step: m.epoch, scalars: m.tensorBoardScalars,
                                    image: ("samples", PNG.encode(grid), grid.height, grid.width))
            folder = try saveCheckpoint(best: improved)
            try Report.write(runFolder: runFolder, title: title, config: config)
        }
        return try stoppingOutcome(m, dominated: dominated, checkpoint: folder)
    }

    /// FID (and recognition rate) into `m` when this epoch is due for evaluation; true if the FID is the best so far.
    private func evaluateIfDue(_ m: inout EpochMetrics) throws -> Bool {
        guard config.evalEvery > 0 && m.epoch % config.evalEvery == 0 else { return false }
        var (fid, recognition) = leader ? try evaluateNow() : (.nan, nil)
        if let dataParallel {   // the leader evaluated; every rank keeps the same best-FID bookkeeping
            var values = [fid, recognition ?? .nan]
            dataParallel.fromFirstRank(&values)
            fid = values[0]; recognition = values[1].isNaN ? nil : values[1]
        }
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
    /// `folder` is the checkpoint just written (nil on a rank that does not write).
    private func stoppingOutcome(_ m: EpochMetrics, dominated: Bool, checkpoint folder: URL?) throws -> TrainingOutcome? {
        if dominated {
            let best = state.lastHealthyEpoch
            if let folder {
                if best > 0 { try run.setPointer(.preDomination, to: Checkpoint.folderName(epoch: best)) }
                try run.setPointer(.final, to: folder.lastPathComponent)
            }
            log("\(title): auto-stop at epoch \(m.epoch): D's accuracy on generated images was ≥ \(config.autoStopAccuracy) for "
                + "\(config.autoStopPatience) epochs in a row (epochs \(m.epoch - config.autoStopPatience + 1)–\(m.epoch)); "
                + (best > 0 ? "the checkpoint from before (epoch \(best)) is checkpoints/pre-domination" : "it dominated from the start"))
            return .autoStopped(atEpoch: m.epoch, bestEpoch: best)
        }
        if config.evalPatience > 0, let waited = state.evaluationsWithoutImprovement, waited >= config.evalPatience {
            if let folder { try run.setPointer(.final, to: folder.lastPathComponent) }
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
