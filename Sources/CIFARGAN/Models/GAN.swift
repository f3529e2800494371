import GANCore

/// What one training iteration measured.
public struct IterationStats: Sendable {
    public var lossD = 0.0, lossG = 0.0
    /// Mean σ(D(x)) on the real batch and σ(D(G(z))) on the generated batch of the D step.
    public var dReal = 0.0, dFake = 0.0
    /// Share of real images D scored above 0.5, and of generated images below 0.5.
    public var accuracyReal = 0.0, accuracyFake = 0.0
    /// λ·R of LeCam regularisation (in `lossD` too; 0 without it).
    public var lecamPenalty = 0.0
    /// Whether this iteration also stepped G (`lossG` is 0 when not; see `iteration(…, updateGenerator:)`).
    public var generatorStepped = false
    public var isFinite: Bool { lossD.isFinite && lossG.isFinite }
}

/// The adversarial loss.
///
/// ```swift
/// let gan = GAN(model: ModelConfig(), optimizer: OptimizerConfig(), seed: 1, loss: .hinge)
/// ```
public enum GANLoss: String, ConfigChoice {
    /// The original system's: binary cross-entropy with smoothed targets for D, target 1 for G.
    case bce
    /// The non-saturating loss of Goodfellow et al.: D softplus(−D(x)) + softplus(D(G(z))), G softplus(−D(G(z)))
    /// — BCE with hard targets 1 and 0, whatever the target ranges say.
    case nonSaturating = "non_saturating"
    /// SNGAN's hinge loss: D relu(1 − D(x)) + relu(1 + D(G(z))), G −D(G(z)).
    case hinge
}

/// A generator, a discriminator and their optimizers, with the original system's iteration:
/// a D step on a real and a generated batch, then a G step on a fresh latent batch during which D's
/// weight gradients are not computed. Options beyond the original: the loss, differentiable augmentation
/// of every D input, an exponential moving average of G's weights, and class conditioning.
///
/// ```swift
/// let gan = GAN(model: ModelConfig(), optimizer: OptimizerConfig(), seed: 1)
/// let stats = gan.iteration(real: x, latentForD: z1, latentForG: z2, realTargets: t1, fakeTargets: t0)
/// ```
public final class GAN {
    public let model: ModelConfig
    public let loss: GANLoss
    public let generator: Sequential
    public let discriminator: Sequential
    public let optimizerG: Adam
    public let optimizerD: Adam
    /// The labels of the batch being processed, shared by every conditional layer (conditional models only).
    public let labels: ClassLabels?
    /// Augmentation applied to every D input (nil: none).
    public let augment: DiffAugment?
    /// The moving average of G's weights (nil: not kept), used for samples and evaluation.
    public let generatorEMA: Sequential?
    public let emaDecay: Float
    /// EMA updates so far; the decay warms up as min(decay, (1 + t)/(10 + t)) so early weights fade quickly.
    public var emaUpdates = 0
    /// Iterations before the moving average starts to average: until then it copies G (BigGAN's ema_start).
    public let emaStart: Int
    /// Completed iterations (G steps) of this GAN, counted for `emaStart`.
    public var iterations = 0
    /// LeCam regularisation of D (nil: off).
    public let lecam: LeCam?
    /// ADA's controller of the augmentation probability (nil: every operation always applies).
    public var ada: AdaptiveAugmentation?
    /// The ranks this GAN trains with (nil: alone): each holds a shard of every batch; gradients, batch-norm
    /// statistics and the per-step figures are combined over the ranks, so N ranks take the steps one process takes.
    public let dataParallel: DataParallel?
    private let bce = BCEWithLogitsLoss(), hingeLoss = HingeLoss()
    private var ones: Tensor?, zeros: Tensor?
    private var noisyReal: Tensor?, noisyFake: Tensor?
    /// The whole batch's instance noise in a data-parallel job, of which each rank adds its rows.
    private var wholeBatchNoise: [Float] = []

    public init(model: ModelConfig, optimizer: OptimizerConfig, seed: UInt64, loss: GANLoss = .bce,
                augment: Set<DiffAugment.Operation> = [], emaDecay: Float = 0, emaStart: Int = 0, lecamWeight: Float = 0,
                adaTarget: Double = 0, dataParallel: DataParallel? = nil) {
        self.model = model; self.loss = loss; self.emaDecay = emaDecay; self.emaStart = emaStart
        self.dataParallel = dataParallel
        lecam = lecamWeight > 0 ? LeCam(weight: lecamWeight) : nil
        var rng = RandomGenerator(seed: seed)
        labels = model.isConditional ? ClassLabels(classes: model.classes) : nil
        generator = model.makeGenerator(rng: &rng, labels: labels)
        discriminator = model.makeDiscriminator(rng: &rng, labels: labels)
        generator.name = "G"; discriminator.name = "D"
        optimizerG = Adam(parameters: generator.parameters, lr: optimizer.generatorLR,
                          betas: (optimizer.beta1, optimizer.beta2))
        optimizerD = Adam(parameters: discriminator.parameters, lr: optimizer.discriminatorLR,
                          betas: (optimizer.beta1, optimizer.beta2))
        var augmentSeed = RandomGenerator(seed: seed).derived(4)
        self.augment = augment.isEmpty ? nil : DiffAugment(policy: augment, seed: augmentSeed.next())
        if adaTarget > 0, let a = self.augment {
            ada = AdaptiveAugmentation(target: adaTarget)
            a.probability = 0   // ADA starts without augmentation and adds it as D starts to memorise
        }
        if let dataParallel {   // the moving average is not: its statistics are re-estimated on every rank alike
            dataParallel.distribute(generator); dataParallel.distribute(discriminator)
            if let augment = self.augment { dataParallel.distribute(augment) }
        }
        if emaDecay > 0 {
            // Same architecture, started at G's weights (its own initialisation is overwritten).
            var throwaway = RandomGenerator(seed: 0)
            let ema = model.makeGenerator(rng: &throwaway, labels: labels)
            for (e, p) in zip(ema.stateDict, generator.stateDict) { e.tensor.copy(from: p.tensor) }
            generatorEMA = ema
        } else {
            generatorEMA = nil
        }
    }

    /// The GAN a run configuration describes.
    public convenience init(config: RunConfig, dataParallel: DataParallel? = nil) {
        self.init(model: config.model, optimizer: config.optimizer, seed: config.seed, loss: config.loss,
                  augment: config.augmentPolicy, emaDecay: config.emaDecay, emaStart: config.emaStart, lecamWeight: config.lecamWeight,
                  adaTarget: config.adaTarget, dataParallel: dataParallel)
    }

    /// The generator to sample from: the moving average when kept.
    public var samplingGenerator: Sequential { generatorEMA ?? generator }

    /// The discriminator's dropout layers, whose random streams a checkpoint saves.
    public var dropoutLayers: [Dropout] { discriminator.layers.compactMap { $0 as? Dropout } }

    /// Everything beyond weights and optimizer moments that the GAN needs to continue exactly: its random
    /// streams (dropout, augmentation) and counters (EMA updates, iterations, LeCam's averages, ADA's
    /// controller). A checkpoint saves it and restores it in one assignment (`TrainingState.gan`).
    public struct State: Equatable, Sendable {
        public var dropout: [RandomGenerator]
        public var augment: RandomGenerator?
        public var emaUpdates: Int?
        public var iterations: Int
        public var lecam: LeCam.State?
        public var ada: AdaptiveAugmentation?
    }

    public var state: State {
        get {
            State(dropout: dropoutLayers.map(\.rng), augment: augment?.rng, emaUpdates: generatorEMA == nil ? nil : emaUpdates,
                  iterations: iterations, lecam: lecam?.state, ada: ada)
        }
        set {
            precondition(newValue.dropout.count == dropoutLayers.count, "GAN.state: \(newValue.dropout.count) dropout streams for \(dropoutLayers.count) layers")
            for (layer, rng) in zip(dropoutLayers, newValue.dropout) { layer.rng = rng }
            if let rng = newValue.augment { augment?.rng = rng }
            if let n = newValue.emaUpdates { emaUpdates = n }
            iterations = newValue.iterations
            if let s = newValue.lecam { lecam?.state = s }
            if let a = newValue.ada, ada != nil { ada = a; augment?.probability = Float(a.probability) }
        }
    }

    /// Generates images in eval mode; `classes` gives each latent's class for a conditional model.
    public func sample(_ z: Tensor, classes: [Int]? = nil, generator g: Sequential? = nil) -> Tensor {
        if let labels { labels.labels = classes ?? Array(repeating: 0, count: z.shape[0]) }
        return (g ?? samplingGenerator).forward(z, training: false)
    }

    /// `sample` in batches of `b` latents (the last one padded with zero latents), so that the generator's
    /// layers keep the buffers of that batch size — the training batch size, for samples drawn during training.
    /// Eval mode treats samples independently, so the padding changes no image (beyond float rounding).
    public func sample(_ z: Tensor, classes: [Int]? = nil, inBatchesOf b: Int, generator g: Sequential? = nil) -> Tensor {
        let n = z.shape[0], d = z.shape[1]
        let batch = Tensor(shape: [b, d])
        var out: Tensor?
        var done = 0
        while done < n {
            let m = min(b, n - done)
            batch.fill(0)
            batch.data.update(from: z.data + done * d, count: m * d)
            let cls = classes.map { Array($0[done..<(done + m)]) + Array(repeating: 0, count: b - m) }
            let x = sample(batch, classes: cls, generator: g)
            let per = x.count / b
            if out == nil { out = Tensor(shape: [n] + Array(x.shape.dropFirst())) }
            out!.data.advanced(by: done * per).update(from: x.data, count: m * per)
            done += m
        }
        return out ?? Tensor(shape: [0])
    }

    /// One D step, then one G step unless `updateGenerator` is false (several D steps per G step, as SNGAN's
    /// n_dis, are iterations of which only every n-th updates G). `instanceNoise` (σ, with its generator) is added
    /// to every D input. For a conditional model, `classes` holds the real batch's labels and the labels drawn
    /// for each latent batch. In a data-parallel job the tensors are this rank's rows, and the statistics returned
    /// are the whole batch's.
    @discardableResult
    public func iteration(real: Tensor, latentForD: Tensor, latentForG: Tensor,
                          realTargets: Tensor, fakeTargets: Tensor,
                          instanceNoise: (std: Float, rng: UnsafeMutablePointer<RandomGenerator>)? = nil,
                          classes: (real: [Int], fakeD: [Int], fakeG: [Int])? = nil,
                          updateGenerator: Bool = true) -> IterationStats {
        precondition((labels == nil) == (classes == nil), "a conditional GAN needs class labels for every batch, and only it")
        var stats = IterationStats()
        let N = real.shape[0]
        let one = Tensor.reuse(ones, shape: [N, 1]); ones = one; one.fill(1)
        let zero = Tensor.reuse(zeros, shape: [N, 1]); zeros = zero; zero.fill(0)
        let (realT, fakeT) = loss == .nonSaturating ? (one, zero) : (realTargets, fakeTargets)

        // D step: gradients of the real and the fake batch accumulate, then one Adam step.
        optimizerD.zeroGrad()
        if let classes { labels?.labels = classes.real }
        let realLogits = discriminator.forward(dInput(real, &noisyReal, instanceNoise), training: true)
        let lossReal = lossValue(realLogits, .real, realT)
        stats.dReal = meanSigmoid(realLogits)
        stats.accuracyReal = share(realLogits) { $0 > 0 }
        let realMean = lecam == nil ? 0 : mean(realLogits)   // before the fake pass reuses D's output buffer
        if ada != nil {
            var signs = [AdaptiveAugmentation.signSum(realLogits), Double(realLogits.count)]
            dataParallel?.sum(&signs)
            if let p = ada!.observe(signSum: signs[0], count: Int(signs[1])) { augment?.probability = Float(p) }
        }
        let gReal = lossGradient()
        if let lecam { stats.lecamPenalty += lecam.addGradient(logits: realLogits, term: .real, into: gReal) }
        _ = discriminator.backward(gReal, weightGradients: true, inputGradient: false)

        if let classes { labels?.labels = classes.fakeD }
        let fake = generator.forward(latentForD, training: true)
        let fakeLogits = discriminator.forward(dInput(fake, &noisyFake, instanceNoise), training: true)
        let lossFake = lossValue(fakeLogits, .fake, fakeT)
        stats.dFake = meanSigmoid(fakeLogits)
        stats.accuracyFake = share(fakeLogits) { $0 < 0 }
        let gFake = lossGradient()
        if let lecam {
            stats.lecamPenalty += lecam.addGradient(logits: fakeLogits, term: .fake, into: gFake)
            // The anchors take this step's means after both penalties used the earlier ones (the authors update
            // first; with decay 0.99 the difference is a hundredth of one batch's mean).
            var means = [realMean, mean(fakeLogits)]
            dataParallel?.average(&means)
            lecam.update(realMean: means[0], fakeMean: means[1])
        }
        _ = discriminator.backward(gFake, weightGradients: true, inputGradient: false)
        dataParallel?.averageGradients(discriminator.parameters)
        optimizerD.step()
        stats.lossD = lossReal + lossFake + stats.lecamPenalty
        guard updateGenerator else { return wholeBatch(stats) }

        // G step: the gradient flows through D (input gradients only) and the augmentation into G.
        optimizerG.zeroGrad()
        if let classes { labels?.labels = classes.fakeG }
        let fake2 = generator.forward(latentForG, training: true)
        let logits = discriminator.forward(dInput(fake2, &noisyFake, instanceNoise), training: true)
        stats.lossG = lossValue(logits, .generator, one)
        if var dFake = discriminator.backward(lossGradient(), weightGradients: false, inputGradient: true) {
            if let augment, let d = augment.backward(dFake, weightGradients: false, inputGradient: true) { dFake = d }
            _ = generator.backward(dFake, weightGradients: true, inputGradient: false)
        }
        dataParallel?.averageGradients(generator.parameters)
        optimizerG.step()
        stats.generatorStepped = true
        iterations += 1
        updateEMA()
        return wholeBatch(stats)
    }

    /// A data-parallel step's figures averaged over the ranks (each rank's are means over its rows): one exchange.
    private func wholeBatch(_ stats: IterationStats) -> IterationStats {
        guard let dataParallel else { return stats }
        var s = stats
        var values = [s.lossD, s.lossG, s.dReal, s.dFake, s.accuracyReal, s.accuracyFake, s.lecamPenalty]
        dataParallel.average(&values)
        (s.lossD, s.lossG, s.dReal, s.dFake) = (values[0], values[1], values[2], values[3])
        (s.accuracyReal, s.accuracyFake, s.lecamPenalty) = (values[4], values[5], values[6])
        return s
    }

    private func lossValue(_ logits: Tensor, _ term: HingeLoss.Term, _ targets: Tensor) -> Double {
        loss == .hinge ? hingeLoss.forward(logits, term) : bce.forward(logits, targets)
    }

    private func lossGradient() -> Tensor { loss == .hinge ? hingeLoss.backward() : bce.backward() }

    /// What D sees: the images, augmented, plus instance noise.
    private func dInput(_ x: Tensor, _ cache: inout Tensor?,
                        _ noise: (std: Float, rng: UnsafeMutablePointer<RandomGenerator>)?) -> Tensor {
        addNoise(augment?.forward(x, training: true) ?? x, &cache, noise)
    }

    /// ema ← β·ema + (1 − β)·θ for G's parameters; buffers (batch-norm statistics) are re-estimated by
    /// `refreshEMAStatistics`, since G's running statistics describe G's activations, not the average's.
    private func updateEMA() {
        guard let ema = generatorEMA else { return }
        if iterations <= emaStart {
            for (e, p) in zip(ema.parameters, generator.parameters) { e.value.copy(from: p.value) }
            return
        }
        let t = Float(emaUpdates)
        let beta = min(emaDecay, (1 + t) / (10 + t))
        emaUpdates += 1
        for (e, p) in zip(ema.parameters, generator.parameters) {
            let ep = e.value.data, pp = p.value.data
            for i in 0..<e.value.count { ep[i] = beta * ep[i] + (1 - beta) * pp[i] }
        }
    }

    /// Re-estimates the moving average's batch-norm statistics from `batches` batches of 256 latents
    /// (fixed by `seed`; classes in turn for a conditional model), as a cumulative average.
    public func refreshEMAStatistics(seed: UInt64, batches: Int = 4) {
        guard let ema = generatorEMA else { return }
        let norms = batchNorms(in: ema)
        for bn in norms {
            bn.runningMean.fill(0); bn.runningVar.fill(1); bn.numBatchesTracked.fill(0); bn.cumulative = true
        }
        var rng = RandomGenerator(seed: seed)
        let z = Tensor(shape: [256, model.latentDim])
        for b in 0..<batches {
            rng.fillNormal(z)
            if let labels { labels.labels = (0..<256).map { ($0 + b * 256) % labels.classes } }
            _ = ema.forward(z, training: true)
        }
        for bn in norms { bn.cumulative = false }
    }

    private func addNoise(_ x: Tensor, _ cache: inout Tensor?,
                          _ noise: (std: Float, rng: UnsafeMutablePointer<RandomGenerator>)?) -> Tensor {
        guard let noise, noise.std > 0 else { return x }
        let y = Tensor.reuse(cache, shape: x.shape); cache = y
        noise.rng.pointee.fillNormal(y.data, count: y.count, std: noise.std, shard: dataParallel?.shard ?? .whole,
                                     scratch: &wholeBatchNoise)
        y.add(x)
        return y
    }

    private func mean(_ logits: Tensor) -> Double {
        var s = 0.0
        for i in 0..<logits.count { s += Double(logits[i]) }
        return s / Double(logits.count)
    }

    private func meanSigmoid(_ logits: Tensor) -> Double {
        var s = 0.0
        for i in 0..<logits.count { s += Double(sigmoid(logits[i])) }
        return s / Double(logits.count)
    }

    private func share(_ logits: Tensor, _ pred: (Float) -> Bool) -> Double {
        var c = 0
        for i in 0..<logits.count where pred(logits[i]) { c += 1 }
        return Double(c) / Double(logits.count)
    }
}

/// Adam settings of the two players.
public struct OptimizerConfig: DefaultedConfig, Equatable, Sendable {
    public var generatorLR: Float = 1e-4
    public var discriminatorLR: Float = 2e-4
    public var beta1: Float = 0.5
    public var beta2: Float = 0.999
    public init() {}

    // Spelled so that JSON's snake_case conversion maps them to generator_lr / discriminator_lr both ways.
    enum CodingKeys: String, CodingKey {
        case generatorLR = "generatorLr", discriminatorLR = "discriminatorLr", beta1, beta2
    }

    public func validate() throws {
        guard generatorLR > 0, generatorLR.isFinite else { throw ConfigError("generator_lr must be positive, got \(generatorLR)") }
        guard discriminatorLR > 0, discriminatorLR.isFinite else { throw ConfigError("discriminator_lr must be positive, got \(discriminatorLR)") }
        guard beta1 >= 0 && beta1 < 1 else { throw ConfigError("beta1 must be in [0, 1), got \(beta1)") }
        guard beta2 >= 0 && beta2 < 1 else { throw ConfigError("beta2 must be in [0, 1), got \(beta2)") }
    }
}

