import Foundation
import GANCore

/// Everything that defines a training run, saved as `config.json` in the run folder.
/// Defaults are the original system's recipe.
///
/// ```swift
/// var config = RunConfig()
/// config.epochs = 10
/// try config.validate()
/// ```
public struct RunConfig: DefaultedConfig, Equatable, Sendable {
    /// What the run trains (see `RunTarget`).
    public var target: RunTarget = .all
    /// The preset the run started from (informational; every value it set is in this config).
    public var preset: String?
    /// A folder of PNG images (one subfolder per class) to train on instead of CIFAR-10.
    public var imageFolder: String?
    public var model = ModelConfig()
    public var optimizer = OptimizerConfig()
    public var batchSize = 64
    /// Epochs for every class, unless `classEpochs` names the class.
    public var epochs = 150
    /// Per-class epoch counts (class name → epochs); the original author found the best cutoff differs by class.
    public var classEpochs: [String: Int] = [:]
    /// Real targets are drawn uniformly from this range, fake targets from `fakeTargetRange` (label smoothing).
    public var realTargetRange: [Float] = [0.8, 1.0]
    public var fakeTargetRange: [Float] = [0.0, 0.1]
    /// Standard deviation of Gaussian noise added to every D input at epoch 0, annealed linearly to 0.
    public var instanceNoise: Float = 0
    public var instanceNoiseEpochs = 0
    /// A checkpoint is kept every this many epochs (the last `keepCheckpoints` of them), plus the final one.
    public var checkpointEvery = 5
    public var keepCheckpoints = 3
    /// Auto-stop: stop when D's accuracy on generated images is at least `autoStopAccuracy` for
    /// `autoStopPatience` epochs in a row (0 disables it).
    public var autoStopPatience = 0
    public var autoStopAccuracy = 0.95
    public var seed: UInt64 = 0
    /// Number of images in each epoch's sample grid.
    public var sampleCount = 64
    /// Every this many epochs, FID and the recognition rate of `evalCount` samples on the judge's features
    /// (0: never); the best FID's checkpoint is kept as `best`.
    public var evalEvery = 0
    public var evalCount = 1000
    /// Stop when FID has not improved for this many evaluations (0: never).
    public var evalPatience = 0
    /// The judge folder (nil: the built-in judge).
    public var judge: String?
    /// The original's BCE with smoothed targets, the non-saturating loss, or SNGAN's hinge loss.
    public var loss: GANLoss = .bce
    /// Differentiable augmentation of every D input (a subset of colour, translation, cutout).
    public var diffAugment: [DiffAugment.Operation] = []
    /// Decay of the moving average of G's weights used for samples and evaluation (0: none; typical 0.999).
    public var emaDecay: Float = 0
    /// G steps before the moving average starts averaging (it copies G until then), as BigGAN's ema_start.
    public var emaStart = 0
    /// Weight λ of LeCam regularisation of D (0: off; the LeCam paper uses 0.1–0.3 on CIFAR-10).
    public var lecamWeight: Float = 0
    /// ADA: the target of the overfitting signal E[sign(D(x))] that steers the probability of the DiffAugment
    /// operations (0: off, every operation always applies; the ADA paper uses 0.6).
    public var adaTarget: Double = 0
    /// D steps per G step (SNGAN's n_dis; 1: alternate). Each D step takes the next real batch, so an epoch
    /// still shows D every training image once and takes 1/n of the G steps.
    public var discriminatorSteps = 1
    /// Linear learning-rate decay: both learning rates fall linearly from their value at this fraction of the
    /// run's iterations (`epochs` × batches per epoch) to 0 at its end (nil: constant).
    public var lrDecayStart: Double?
    /// The number format convolutions multiply in (`Precision`): bf16 on CPUs with AVX512-BF16 or AMX, else a
    /// message and float32. Weights, optimizer state and checkpoints are float32 either way.
    public var precision: Precision = .fp32
    /// Also log each epoch to a TensorBoard events file in the run folder (`TensorBoardLog`).
    public var tensorboard = false
    /// Stop each model after this many minutes of training (0: no limit); the last epoch is then partial.
    public var timeLimitMinutes: Double = 0
    /// The class names of a conditional model, in label order (set when it starts training).
    public var classNames: [String]?

    public init() {}

    public var augmentPolicy: Set<DiffAugment.Operation> { Set(diffAugment) }

    public func epochs(forClass name: String) -> Int { classEpochs[name] ?? epochs }

    /// The learning rates' factor at `iteration` of `total`: 1, then linear to 0 from `lrDecayStart`·total.
    public func learningRateFactor(iteration: Int, total: Int) -> Float {
        guard let start = lrDecayStart, total > 0 else { return 1 }
        let t = Double(iteration) / Double(total)
        return t <= start ? 1 : Float(max(0, (1 - t) / (1 - start)))
    }

    public func validate() throws {
        try model.validate()
        try optimizer.validate()
        guard (2...4096).contains(batchSize) else { throw ConfigError("batch_size must be in 2…4096, got \(batchSize)") }
        guard (1...100_000).contains(epochs) else { throw ConfigError("epochs must be in 1…100000, got \(epochs)") }
        for (name, n) in classEpochs where !(1...100_000).contains(n) {
            throw ConfigError("class_epochs[\(name)] must be in 1…100000, got \(n)")
        }
        for (name, r) in [("real_target_range", realTargetRange), ("fake_target_range", fakeTargetRange)] {
            guard r.count == 2, r[0] <= r[1], r[0] >= 0, r[1] <= 1 else {
                throw ConfigError("\(name) must be two numbers lo ≤ hi within [0, 1], got \(r)")
            }
        }
        guard instanceNoise >= 0, instanceNoise.isFinite else { throw ConfigError("instance_noise must be ≥ 0, got \(instanceNoise)") }
        guard instanceNoiseEpochs >= 0 else { throw ConfigError("instance_noise_epochs must be ≥ 0, got \(instanceNoiseEpochs)") }
        guard checkpointEvery >= 1 else { throw ConfigError("checkpoint_every must be ≥ 1, got \(checkpointEvery)") }
        guard keepCheckpoints >= 1 else { throw ConfigError("keep_checkpoints must be ≥ 1, got \(keepCheckpoints)") }
        guard autoStopPatience >= 0 else { throw ConfigError("auto_stop_patience must be ≥ 0, got \(autoStopPatience)") }
        guard autoStopAccuracy > 0 && autoStopAccuracy <= 1 else { throw ConfigError("auto_stop_accuracy must be in (0, 1], got \(autoStopAccuracy)") }
        guard (1...1024).contains(sampleCount) else { throw ConfigError("sample_count must be in 1…1024, got \(sampleCount)") }
        guard evalEvery >= 0 else { throw ConfigError("eval_every must be ≥ 0, got \(evalEvery)") }
        guard (10...50_000).contains(evalCount) else { throw ConfigError("eval_count must be in 10…50000, got \(evalCount)") }
        guard evalPatience >= 0 else { throw ConfigError("eval_patience must be ≥ 0, got \(evalPatience)") }
        guard emaDecay >= 0 && emaDecay < 1 else { throw ConfigError("ema_decay must be in [0, 1), got \(emaDecay)") }
        if let f = lrDecayStart { guard f >= 0 && f < 1 else { throw ConfigError("lr_decay_start must be in [0, 1), got \(f)") } }
        guard adaTarget >= 0 && adaTarget < 1 else { throw ConfigError("ada_target must be in [0, 1), got \(adaTarget)") }
        guard adaTarget == 0 || !diffAugment.isEmpty else {
            throw ConfigError("ada_target steers the diff_augment operations; give some (e.g. --diff-augment color,translation,cutout)")
        }
        guard (1...16).contains(discriminatorSteps) else { throw ConfigError("discriminator_steps must be in 1…16, got \(discriminatorSteps)") }
        guard emaStart >= 0 else { throw ConfigError("ema_start must be ≥ 0, got \(emaStart)") }
        guard lecamWeight >= 0, lecamWeight.isFinite else { throw ConfigError("lecam_weight must be ≥ 0, got \(lecamWeight)") }
        guard timeLimitMinutes >= 0, timeLimitMinutes.isFinite else { throw ConfigError("time_limit_minutes must be ≥ 0, got \(timeLimitMinutes)") }
    }

    /// Instance-noise σ for an epoch: linear from `instanceNoise` at epoch 0 to 0 at `instanceNoiseEpochs`.
    public func noiseStd(epoch: Int) -> Float {
        guard instanceNoise > 0, instanceNoiseEpochs > 0, epoch < instanceNoiseEpochs else { return 0 }
        return instanceNoise * (1 - Float(epoch) / Float(instanceNoiseEpochs))
    }

    /// Named recipes. `original` is the default (the original system); `modern` is the recipe the
    /// same-wall-clock comparison in docs/results.md measured best on this machine (DiffAugment, and the
    /// checkpoint with the best in-training FID); `sngan` is the literature's SNGAN recipe (residual
    /// models, hinge loss, spectral norm, EMA) at CPU-sized widths; `cnn` is SNGAN's standard CNN at
    /// CPU-sized widths, the winner of docs/results.md's quality-versus-time study at two hours and more (measured to
    /// 230 minutes); `cnn-ada` is `cnn` with ADA steering the augmentation, the study's winner at one hour.
    public static let presetNames = ["original", "modern", "sngan", "cnn", "cnn-ada"]

    /// What a preset changes from the original recipe, as `field value` pairs in config-file spelling
    /// (`model.architecture cnn; loss hinge; …`): the README's preset table is this text (checked by a test).
    public static func presetChanges(_ name: String) throws -> String {
        func flat(_ config: RunConfig) throws -> [String: String] {
            let object = try JSONSerialization.jsonObject(with: try config.encoded()) as! [String: Any]
            var out: [String: String] = [:]
            func walk(_ prefix: String, _ value: Any) {
                if let d = value as? [String: Any] { for (k, v) in d { walk(prefix.isEmpty ? k : "\(prefix).\(k)", v) } }
                else if let a = value as? [Any] { out[prefix] = a.map { "\($0)" }.joined(separator: ",") }
                else if let n = value as? NSNumber, String(cString: n.objCType) == "c" { out[prefix] = n.boolValue ? "on" : "off" }
                else { out[prefix] = "\(value)" }
            }
            walk("", object)
            return out
        }
        let base = try flat(RunConfig()), changed = try flat(try preset(name))
        return changed.keys.sorted().filter { $0 != "preset" && base[$0] != changed[$0] }
            .map { "\($0) \(changed[$0]!)" }.joined(separator: "; ")
    }

    public static func preset(_ name: String) throws -> RunConfig {
        var c = RunConfig()
        c.preset = name
        switch name {
        case "original":
            break
        case "modern":
            // Measured (docs/results.md, 8 minutes per class): DiffAugment was the one technique that beat the
            // original on both classes; hinge, spectral norm and EMA alone did not at that length. FID every
            // epoch (1,000 samples, inside the time budget) keeps `checkpoints/best`, which sampling then uses.
            c.diffAugment = [.color, .translation, .cutout]
            c.evalEvery = 1
        case "sngan":
            c.model.architecture = .resnet
            c.model.generatorWidth = 64
            c.model.discriminatorWidth = 64
            c.model.spectralNorm = true
            c.loss = .hinge
            c.optimizer.generatorLR = 2e-4
            c.optimizer.discriminatorLR = 2e-4
            c.optimizer.beta1 = 0
            c.optimizer.beta2 = 0.9
            c.emaDecay = 0.999
        case "cnn", "cnn-ada":
            // SNGAN's standard CNN (hinge loss, spectral norm, Adam 2e-4 with β = (0.5, 0.999), one D step per
            // G step: the paper's setting C) sized for 2 cores — G 256 → 32 channels, D 32 → 256, about a
            // quarter of the published FLOPs — with DiffAugment (5,000 images a class) and an EMA of G for
            // samples. Transposed convolutions in G, as published: in docs/results.md's 2-hour study they beat
            // nearest upsampling (mean FID 1.46 against 1.58, 3.10 against 3.75 at an hour) by training 27%
            // more images in the same time, and left no visible checkerboard by then.
            c.model.architecture = .cnn
            c.model.upsampling = .transposed
            c.model.generatorWidth = 256
            c.model.discriminatorWidth = 32
            c.model.leakySlope = 0.1
            c.model.spectralNorm = true
            c.loss = .hinge
            c.optimizer.generatorLR = 2e-4
            c.optimizer.discriminatorLR = 2e-4
            c.optimizer.beta1 = 0.5
            c.optimizer.beta2 = 0.999
            c.diffAugment = [.color, .translation, .cutout]
            c.emaDecay = 0.999
            c.checkpointEvery = 1
            c.keepCheckpoints = 5
            if name == "cnn-ada" {
                // ADA (target 0.6) starts without augmentation and adds it only when D begins to tell the training
                // images apart: in docs/results.md's study it scored FID 2.54 at one hour against 3.10 and 3.48 for
                // the two seeds of `cnn` (its probability stayed at 0 that long: an hour is augmentation-free).
                c.adaTarget = 0.6
            }
        default:
            throw ConfigError("unknown preset '\(name)'; expected one of \(presetNames.joined(separator: ", "))")
        }
        return c
    }
}
