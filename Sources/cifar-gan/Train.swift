import ArgumentParser
import CIFARGAN
import Foundation
import GANCore

/// Flags of the run configuration; each overrides the config file (or the original recipe's default).
struct RecipeOptions: ParsableArguments {
    @Option(help: "Epochs per class (default 150).") var epochs: Int?
    @Option(help: "Per-class epochs, e.g. cat=120,dog=90.") var classEpochs: String?
    @Option(help: "Images per batch (default 64).") var batchSize: Int?
    @Option(help: "Latent vector length (default 100).") var latentDim: Int?
    @Option(help: "Generator channels (default 128; larger models: 256).") var generatorWidth: Int?
    @Option(help: "Discriminator base channels (default 64; larger models: 128).") var discriminatorWidth: Int?
    @Option(help: "Dropout before D's last layer (default 0.4).") var dropout: Float?
    @Option(help: "Generator learning rate (default 1e-4).") var generatorLR: Float?
    @Option(help: "Discriminator learning rate (default 2e-4).") var discriminatorLR: Float?
    @Option(help: "Adam beta1 (default 0.5).") var beta1: Float?
    @Option(help: "Adam beta2 (default 0.999).") var beta2: Float?
    @Option(help: "Real-target smoothing range lo,hi (default 0.8,1.0).") var realTargets: String?
    @Option(help: "Fake-target smoothing range lo,hi (default 0.0,0.1).") var fakeTargets: String?
    @Option(help: "Instance noise σ at epoch 0, annealed to 0 (default 0: off).") var instanceNoise: Float?
    @Option(help: "Epochs over which instance noise anneals to 0.") var instanceNoiseEpochs: Int?
    @Option(help: "Keep a checkpoint every N epochs (default 5).") var checkpointEvery: Int?
    @Option(help: "How many periodic checkpoints to keep (default 3).") var keepCheckpoints: Int?
    @Option(help: "Auto-stop after D recognises generated images for N epochs in a row (default 0: off).") var autoStopPatience: Int?
    @Option(help: "D accuracy on generated images that counts as dominating (default 0.95).") var autoStopAccuracy: Double?
    @Option(help: "Seed of all randomness (default 0).") var seed: UInt64?
    @Option(help: "Every N epochs, FID and recognition rate on the judge's features (default 0: off); keeps checkpoints/best.") var evalEvery: Int?
    @Option(help: "Samples per in-training evaluation (default 1000).") var evalCount: Int?
    @Option(help: "Stop when FID has not improved for N evaluations (default 0: never).") var evalPatience: Int?
    @Option(help: "Judge folder for in-training evaluation (default: the built-in judge).") var judge: String?
    @Option(help: "Loss: bce (original, smoothed targets), non_saturating or hinge.") var loss: GANLoss?
    @Option(help: "Differentiable augmentation of D's inputs: any of color,translation,cutout ('none' for off).") var diffAugment: String?
    @Option(help: "Keep a moving average of G's weights with this decay for samples and evaluation (e.g. 0.999; 0: off).") var emaDecay: Float?
    @Option(help: "Iterations before the moving average of G starts averaging (it copies G until then; default 0).") var emaStart: Int?
    @Option(help: "Decay both learning rates linearly to 0 at the last epoch, from this fraction of the run on (e.g. 0.5; default: constant).") var lrDecayStart: Double?
    @Option(help: "Number format of convolution inputs: fp32 (default) or bf16 (bfloat16 products, float32 sums and weights; needs AVX512-BF16 or AMX, else float32 with a message).") var precision: Precision?
    @Option(help: "ADA: steer the probability of the --diff-augment operations towards this E[sign(D(real))] (e.g. 0.6; default 0: off).") var adaTarget: Double?
    @Option(help: "D steps per G step, each on the next real batch (SNGAN's n_dis; default 1).") var dSteps: Int?
    @Option(help: "LeCam regularisation of D with this weight λ (e.g. 0.3; default 0: off).") var lecam: Float?
    @Option(help: "Model architecture: dcgan (original), cnn (SNGAN's standard CNN) or resnet (SNGAN's residual blocks).") var architecture: Architecture?
    @Option(help: "How G doubles its resolution (dcgan, cnn): transposed (4×4 stride-2 transposed convolutions) or nearest (nearest upsampling then a 3×3 convolution: no checkerboard).") var upsampling: Upsampling?
    @Option(help: "Spectral normalisation of D's layers: on or off.") var spectralNorm: String?
    @Option(help: "Stop each model after this many minutes of training (the last epoch is then partial).") var timeLimit: Double?

    func apply(to c: inout RunConfig) throws {
        if let v = epochs { c.epochs = v }
        if let v = classEpochs {
            for pair in v.split(separator: ",") {
                let kv = pair.split(separator: "=")
                guard kv.count == 2, let n = Int(kv[1]) else { throw ValidationError("--class-epochs: expected name=epochs, got '\(pair)'") }
                c.classEpochs[String(kv[0])] = n
            }
        }
        if let v = batchSize { c.batchSize = v }
        if let v = latentDim { c.model.latentDim = v }
        if let v = generatorWidth { c.model.generatorWidth = v }
        if let v = discriminatorWidth { c.model.discriminatorWidth = v }
        if let v = dropout { c.model.dropout = v }
        if let v = generatorLR { c.optimizer.generatorLR = v }
        if let v = discriminatorLR { c.optimizer.discriminatorLR = v }
        if let v = beta1 { c.optimizer.beta1 = v }
        if let v = beta2 { c.optimizer.beta2 = v }
        if let v = realTargets { c.realTargetRange = try range(v, "--real-targets") }
        if let v = fakeTargets { c.fakeTargetRange = try range(v, "--fake-targets") }
        if let v = instanceNoise { c.instanceNoise = v }
        if let v = instanceNoiseEpochs { c.instanceNoiseEpochs = v }
        if let v = checkpointEvery { c.checkpointEvery = v }
        if let v = keepCheckpoints { c.keepCheckpoints = v }
        if let v = autoStopPatience { c.autoStopPatience = v }
        if let v = autoStopAccuracy { c.autoStopAccuracy = v }
        if let v = seed { c.seed = v }
        if let v = evalEvery { c.evalEvery = v }
        if let v = evalCount { c.evalCount = v }
        if let v = evalPatience { c.evalPatience = v }
        if let v = judge { c.judge = v }
        if let v = loss { c.loss = v }
        if let v = diffAugment { c.diffAugment = try augmentOperations(v) }
        if let v = emaDecay { c.emaDecay = v }
        if let v = emaStart { c.emaStart = v }
        if let v = lecam { c.lecamWeight = v }
        if let v = dSteps { c.discriminatorSteps = v }
        if let v = lrDecayStart { c.lrDecayStart = v }
        if let v = adaTarget { c.adaTarget = v }
        if let v = precision { c.precision = v }
        if let v = architecture { c.model.architecture = v }
        if let v = upsampling { c.model.upsampling = v }
        if let v = spectralNorm {
            guard ["on", "off"].contains(v) else { throw ValidationError("--spectral-norm: expected on or off, got '\(v)'") }
            c.model.spectralNorm = v == "on"
        }
        if let v = timeLimit { c.timeLimitMinutes = v }
    }

    private func range(_ s: String, _ flag: String) throws -> [Float] {
        let parts = s.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2 else { throw ValidationError("\(flag): expected lo,hi, got '\(s)'") }
        return parts
    }
}

struct DataFlags: ParsableArguments {
    @Option(help: "Folder with the CIFAR-10 binary files (default: $CIFAR10_DIR, else the per-user cache).")
    var dataDir: String?
    @Flag(help: "Fail instead of downloading CIFAR-10 when it is missing.") var noDownload = false
    @Option(help: "Archive URL to download CIFAR-10 from.") var downloadURL: String?
    @Option(help: "Expected MD5 of the archive.") var downloadMD5: String?

    func options() throws -> Jobs.DataOptions {
        var o = Jobs.DataOptions()
        o.dataDir = dataDir
        o.allowDownload = !noDownload
        if let s = downloadURL {
            guard let u = URL(string: s), u.scheme == "http" || u.scheme == "https" else { throw ValidationError("--download-url: not an http(s) URL: \(s)") }
            o.downloadURL = u
        }
        if let m = downloadMD5 { o.downloadMD5 = m }
        return o
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train GANs: one class, every class (one model each), or one unconditional model.",
        discussion: """
        Examples:
          cifar-gan train --class cat --epochs 5
          cifar-gan train --class all                  # the original recipe: 150 epochs, ten models
          cifar-gan train --class cat --preset modern  # the recipe docs/results.md measured best
          cifar-gan train --conditional --preset modern --time-limit 60   # one model for all ten classes
          cifar-gan train --resume runs/cat            # continue a stopped or killed run
        """)

    @Option(name: .customLong("class"), help: "A class name or index, or 'all' for one model per class.") var className: String?
    @Flag(help: "One model on every image, ignoring labels.") var unconditional = false
    @Flag(help: "One class-conditional model for every class (conditional batch norm in G, projection D).") var conditional = false
    @Option(help: "Start from a named recipe (\(RunConfig.presetNames.joined(separator: ", "))); other flags override it.") var preset: String?
    @Option(name: .customLong("run"), help: "Run folder (default runs/<class>).") var runFolder: String?
    @Option(help: "Continue the run in this folder exactly where it stopped.") var resume: String?
    @Option(help: "JSON run configuration (the format of a run's config.json; missing fields take defaults).") var config: String?
    @Option(help: "Train on a folder of 32×32 PNGs with one subfolder per class instead of CIFAR-10.") var imageFolder: String?
    @Flag(help: "No progress bar.") var quiet = false
    @Flag(help: "Also log every epoch's scalars and sample grid as a TensorBoard events file in the run folder (tensorboard --logdir runs/).") var tensorboard = false
    @OptionGroup var recipe: RecipeOptions
    @OptionGroup var data: DataFlags

    func run() throws {
        let world = Communicator.world
        let log: (String) -> Void = world.map { w in { say("rank \(w.rank): \($0)") } } ?? say
        let leader = (world?.rank ?? 0) == 0   // under mpirun, the rank that writes the run folder's own files
        var cfg: RunConfig
        let folder: URL
        let resuming = resume != nil
        var runLock: RunLock?
        defer { withExtendedLifetime(runLock) {} }
        if let resume {
            folder = URL(fileURLWithPath: resume)
            let run = RunFolder(folder)
            guard run.holdsRun else { throw ValidationError("--resume: \(resume) is not a run folder (no config.json)") }
            cfg = try run.loadConfig()
            if leader { runLock = try RunLock(runFolder: folder) }   // before the config may change; Jobs.train re-enters it
            // Only the length of a run (epochs, time limit) and its logging may change on resume; anything else
            // would make it another run.
            let before = cfg
            if let e = recipe.epochs { cfg.epochs = e }
            if let t = recipe.timeLimit { cfg.timeLimitMinutes = t }
            if tensorboard { cfg.tensorboard = true }
            if cfg != before {
                try cfg.validate()
                if leader { try run.saveConfig(cfg) }   // so a later resume keeps the new length
            }
        } else {
            guard config == nil || preset == nil else { throw ValidationError("--config and --preset exclude each other") }
            if let preset {
                do { cfg = try RunConfig.preset(preset) } catch { throw ValidationError("--preset: \(error)") }
            } else {
                cfg = try config.map { try RunConfig.load(from: URL(fileURLWithPath: $0)) } ?? RunConfig()
            }
            try recipe.apply(to: &cfg)
            if tensorboard { cfg.tensorboard = true }
            if let imageFolder { cfg.imageFolder = imageFolder }
            guard [className != nil, unconditional, conditional].filter({ $0 }).count <= 1 else {
                throw ValidationError("--class, --unconditional and --conditional exclude each other")
            }
            if unconditional {
                cfg.target = .unconditional
            } else if conditional {
                cfg.target = .conditional
            } else if let className {
                cfg.target = RunTarget(className)
            } else if config == nil {
                throw ValidationError("give --class NAME (or all), --unconditional, --conditional, or --resume RUN")
            }
            folder = URL(fileURLWithPath: runFolder ?? "runs/\(cfg.target)")
        }
        do { try cfg.validate() } catch { throw ValidationError("\(error)") }
        let dataset = try Jobs.loadData(cfg, try data.options(), log: log)
        if let name = cfg.target.className {   // a class index or any spelling → the dataset's name
            cfg.target = .oneClass(dataset.classNames[try Jobs.classIndex(name, in: dataset.classNames)])
        }
        log("training \(cfg.target) on \(dataset.count) images into \(folder.path) (\(Parallel.workerCount) threads)")
        let outcomes = try Jobs.train(config: cfg, runFolder: folder, resume: resuming, data: dataset, quiet: quiet, log: log)
        if outcomes.count > 1 || world != nil { log("done: \(outcomes.count) models in \(folder.path)") }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write new images from a trained run (no training data needed).")

    @Option(name: .customLong("run"), help: "Run folder.") var runFolder: String
    @Option(name: .customLong("class"), help: "Only this class (for a run of all classes or a conditional run).") var className: String?
    @Option(help: "Images per class.") var count = 64
    @Option(help: "Output folder.") var out: String
    @Option(help: "Seed of the latent vectors.") var seed: UInt64 = 0
    @Option(help: "Checkpoint: best, final, latest, pre-domination, or an epoch number (default: best when the run measured FID, else final, else latest).") var checkpoint: String?
    @Option(help: "png, cifar-bin, or safetensors (latents, classes and G's raw outputs in [-1, 1]).") var format = "png"
    @Flag(name: .customLong("no-ema"), help: "Sample from G itself, not from the moving average of its weights that a run with --ema-decay keeps.") var noEMA = false
    @Option(help: "Truncation ψ: redraw latent components outside [-ψ, ψ] (e.g. 1.0; fewer odd images, less variety).") var truncation: Float?
    @Option(help: "Number format of G's convolution inputs: fp32 (default, whatever the run trained in) or bf16 (float32 with a message where the CPU lacks AVX512-BF16 and AMX).") var precision: Precision = .fp32
    @Option(help: "Write latent walks of this many steps instead of samples: <class>-walk.png (min(count, 16) rows), and classes-walk.png for a conditional run.") var interpolate: Int?

    func validate() throws {
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be in 1…1000000, got \(count)") }
        if let t = truncation { guard t > 0 && t.isFinite else { throw ValidationError("--truncation must be a positive number, got \(t)") } }
        if let n = interpolate { guard (2...64).contains(n) else { throw ValidationError("--interpolate must be in 2…64 steps, got \(n)") } }
        guard Jobs.OutputFormat(rawValue: format) != nil else { throw ValidationError("--format must be png, cifar-bin or safetensors, got '\(format)'") }
    }

    func run() throws {
        usePrecision(precision) { say($0) }
        try Jobs.generate(runFolder: URL(fileURLWithPath: runFolder), className: className, checkpoint: checkpoint, count: count,
                          seed: seed, out: URL(fileURLWithPath: out), format: Jobs.OutputFormat(rawValue: format)!,
                          rawGenerator: noEMA, truncation: truncation, interpolate: interpolate) { say($0) }
    }
}

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download CIFAR-10 (binary version), check its MD5 and unpack it.")
    @OptionGroup var data: DataFlags

    func run() throws {
        let options = try data.options()
        let dir = Locations.dataDirectory(options.dataDir)
        if CIFAR10.isPresent(in: dir) && CIFAR10.isPresent(in: dir, split: .test) {
            print("CIFAR-10 is already in \(dir.path)")
            return
        }
        print("downloading \(options.downloadURL.absoluteString) (about 163 MB) into \(dir.path)")
        try Jobs.download(into: dir, options) { say($0) }
    }
}
