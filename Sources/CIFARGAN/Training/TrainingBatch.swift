import Dispatch
import GANCore

/// The tensors of one training iteration, allocated once per run and refilled per batch: the real images,
/// two latent batches (D's step and G's), the smoothed targets and, for a conditional model, the labels.
/// Every random draw comes from the run's training stream in a fixed order, which is what makes a resumed
/// run draw what an unbroken one would. In a data-parallel job (`shard`) the tensors hold this rank's rows:
/// every rank draws the whole batch's latents, targets and labels and keeps its rows, so the stream (saved in
/// checkpoints) is the same on every rank and in one process.
///
/// ```swift
/// let batch = TrainingBatch(config: config)
/// batch.draw(indices, from: dataset, rng: &rng, config: config)   // then gan.iteration(real: batch.real, …)
/// ```
final class TrainingBatch {
    let real: Tensor, latentD: Tensor, latentG: Tensor, realTargets: Tensor, fakeTargets: Tensor
    let shard: BatchShard
    /// The latents and targets: this rank's rows, and the whole batch's draws (the same tensors when not sharded).
    private let rowsHeld: [Tensor], drawn: [Tensor]
    private var realClasses: [Int], classesD: [Int], classesG: [Int]
    private let conditional: Bool

    /// Rows per rank: the batch size divided by the ranks (`RunConfig.validate(ranks:)` checks it divides).
    init(config: RunConfig, shard: BatchShard = .whole) {
        let n = config.batchSize / shard.count, latent = config.model.latentDim
        self.shard = shard
        real = Tensor(shape: [n, 3, 32, 32])
        latentD = Tensor(shape: [n, latent]); latentG = Tensor(shape: [n, latent])
        realTargets = Tensor(shape: [n, 1]); fakeTargets = Tensor(shape: [n, 1])
        rowsHeld = [latentD, latentG, realTargets, fakeTargets]
        drawn = shard.isWhole ? rowsHeld : rowsHeld.map { Tensor(shape: [config.batchSize] + Array($0.shape.dropFirst())) }
        realClasses = [Int](repeating: 0, count: n); classesD = realClasses; classesG = realClasses
        conditional = config.model.isConditional
    }

    /// Labels of the real images, and of the generated images of D's and G's steps (conditional models only).
    var classes: (real: [Int], fakeD: [Int], fakeG: [Int])? {
        conditional ? (realClasses, classesD, classesG) : nil
    }

    /// The images at `indices` (this rank's rows of the batch), then latents, targets and generated labels of the
    /// whole batch from `rng`.
    func draw(_ indices: ArraySlice<Int>, from data: ImageDataset, rng: inout RandomGenerator, config: RunConfig) {
        precondition(indices.count == real.shape[0], "TrainingBatch: \(indices.count) images for \(real.shape[0]) rows")
        data.fillBatch(indices: indices, into: real)
        rng.fillNormal(drawn[0]); rng.fillNormal(drawn[1])
        rng.fillUniform(drawn[2], config.realTargetRange[0], config.realTargetRange[1])
        rng.fillUniform(drawn[3], config.fakeTargetRange[0], config.fakeTargetRange[1])
        let rows = shard.rows(local: real.shape[0])
        if !shard.isWhole {
            for (mine, whole) in zip(rowsHeld, drawn) {
                let per = mine.count / mine.shape[0]
                mine.data.update(from: whole.data + rows.lowerBound * per, count: mine.count)
            }
        }
        guard conditional else { return }
        let k = UInt64(config.model.classes)
        for (j, i) in indices.enumerated() { realClasses[j] = Int(data.labels[i]) }
        for j in 0..<config.batchSize {
            let d = Int(rng.next() % k), g = Int(rng.next() % k)
            if rows.contains(j) { classesD[j - rows.lowerBound] = d; classesG[j - rows.lowerBound] = g }
        }
    }
}

extension DataParallel {
    /// Each rank's rows of a batch of `batchSize`; an error naming the field when the ranks do not divide it.
    public func rowsPerRank(batchSize: Int) throws -> Int {
        guard batchSize % world.size == 0 else {
            throw ConfigError("batch_size \(batchSize) does not split evenly over \(world.size) ranks; "
                              + "choose a multiple of \(world.size) (--batch-size)")
        }
        return batchSize / world.size
    }
}

/// The sums of one epoch's iteration statistics: D's figures per iteration, G's loss per G step (with
/// `discriminator_steps` > 1 not every iteration steps G).
struct EpochStatistics {
    private(set) var batches = 0, generatorSteps = 0
    private var lossD = 0.0, lossG = 0.0, dReal = 0.0, dFake = 0.0, accuracyReal = 0.0, accuracyFake = 0.0

    mutating func add(_ s: IterationStats) {
        batches += 1
        lossD += s.lossD; dReal += s.dReal; dFake += s.dFake; accuracyReal += s.accuracyReal; accuracyFake += s.accuracyFake
        lossG += s.lossG
        if s.generatorStepped { generatorSteps += 1 }
    }

    var meanLossD: Double { lossD / Double(max(batches, 1)) }
    var meanLossG: Double { lossG / Double(max(generatorSteps, 1)) }

    func metrics(epoch: Int, batchSize: Int, seconds: Double, instanceNoise: Float) -> EpochMetrics {
        let n = Double(max(batches, 1))
        return EpochMetrics(epoch: epoch, lossD: meanLossD, lossG: meanLossG, dReal: dReal / n, dFake: dFake / n,
                            accuracyReal: accuracyReal / n, accuracyFake: accuracyFake / n,
                            imagesPerSec: Double(batches * batchSize) / seconds, seconds: seconds,
                            instanceNoise: Double(instanceNoise), iterations: batches)
    }
}

/// `time_limit_minutes` across resumes: the seconds spent before this process plus those since it started.
struct TimeBudget {
    /// Seconds (0: no limit).
    let limit: Double
    let spentBefore: Double
    private let started = DispatchTime.now()

    init(limit: Double, spentBefore: Double) { self.limit = limit; self.spentBefore = spentBefore }

    var elapsedThisRun: Double { Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) * 1e-9 }
    var spent: Double { spentBefore + elapsedThisRun }
    var exhausted: Bool { limit > 0 && spent >= limit }
}
