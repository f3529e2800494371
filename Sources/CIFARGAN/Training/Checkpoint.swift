import Foundation
import GANCore

/// What a checkpoint needs beyond weights and optimizer moments to continue a run exactly.
public struct TrainingState: Codable, Sendable {
    /// Epochs completed.
    public var epoch: Int
    /// The training stream (latents, smoothed targets, instance noise).
    public var rng: RandomGenerator
    /// Each dropout layer's stream.
    public var dropoutRNGs: [RandomGenerator]
    /// Auto-stop bookkeeping: consecutive epochs in which D dominated, and the last epoch before that began.
    public var dominationStreak = 0
    public var lastHealthyEpoch = 0
    /// In-training evaluation: the best FID so far, its epoch, and evaluations since it improved.
    public var bestFID: Double?
    public var bestEpoch: Int?
    public var evaluationsWithoutImprovement: Int?
    /// Options beyond the original: the augmentation's stream, the EMA's update count, and the training
    /// time so far (for `time_limit_minutes` across resumes).
    public var augmentRNG: RandomGenerator?
    public var emaUpdates: Int?
    public var trainingSeconds: Double?
    /// Iterations of the GAN (for `ema_start`), and LeCam's moving averages and update count.
    public var iterations: Int?
    public var lecam: LeCam.State?
    /// ADA's controller (its probability and the signal accumulated since its last adjustment).
    public var ada: AdaptiveAugmentation?

    /// The GAN's own streams and counters (`GAN.State`), kept in the flat fields above so that checkpoints
    /// of every version read alike (fields added later are optional).
    public var gan: GAN.State {
        get { GAN.State(dropout: dropoutRNGs, augment: augmentRNG, emaUpdates: emaUpdates, iterations: iterations ?? 0, lecam: lecam, ada: ada) }
        set {
            dropoutRNGs = newValue.dropout; augmentRNG = newValue.augment; emaUpdates = newValue.emaUpdates
            iterations = newValue.iterations; lecam = newValue.lecam; ada = newValue.ada
        }
    }

    public init(epoch: Int, rng: RandomGenerator, gan: GAN.State) {
        self.epoch = epoch; self.rng = rng; dropoutRNGs = gan.dropout
        self.gan = gan
    }
}

/// A checkpoint is a folder `checkpoints/epoch-NNNN/` holding
/// `generator.safetensors`, `discriminator.safetensors` and, with `ema_decay`, `generator_ema.safetensors` (PyTorch state dicts: `nn.Sequential` keys such as
/// `0.weight`, loadable with `load_state_dict`) and `training.safetensors` (both Adam states, with the
/// `TrainingState` as JSON in its metadata). It is written under a temporary name and renamed into place;
/// small pointer files (`latest`, `final`, `pre-domination`) name checkpoint folders and are replaced atomically.
public enum Checkpoint {
    public static func folderName(epoch: Int) -> String { String(format: "epoch-%04d", epoch) }

    public static func save(gan: GAN, state: TrainingState, in checkpoints: URL) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: checkpoints, withIntermediateDirectories: true)
        let name = folderName(epoch: state.epoch)
        let tmp = checkpoints.appendingPathComponent(".tmp-\(name)-\(getpid())")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        let meta = ["format": "pt", "epoch": String(state.epoch)]
        try SafeTensors.write(gan.generator.stateDict, metadata: meta, to: tmp.appendingPathComponent("generator.safetensors"))
        try SafeTensors.write(gan.discriminator.stateDict, metadata: meta, to: tmp.appendingPathComponent("discriminator.safetensors"))
        if let ema = gan.generatorEMA {
            try SafeTensors.write(ema.stateDict, metadata: meta, to: tmp.appendingPathComponent("generator_ema.safetensors"))
        }
        let optimizerState = gan.optimizerG.state.map { StateEntry(name: "optimizer_g.\($0.name)", tensor: $0.tensor) }
            + gan.optimizerD.state.map { StateEntry(name: "optimizer_d.\($0.name)", tensor: $0.tensor) }
        let stateJSON = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        try SafeTensors.write(optimizerState, metadata: ["training_state": stateJSON],
                              to: tmp.appendingPathComponent("training.safetensors"))
        let final = checkpoints.appendingPathComponent(name)
        if fm.fileExists(atPath: final.path) {
            // A run killed after writing this epoch but before naming it `latest`: replace it.
            let old = checkpoints.appendingPathComponent(".old-\(name)-\(getpid())")
            try fm.moveItem(at: final, to: old)
            try fm.moveItem(at: tmp, to: final)
            try? fm.removeItem(at: old)
        } else {
            try fm.moveItem(at: tmp, to: final)
        }
        return final
    }

    /// Loads weights, optimizer moments and state from a checkpoint folder into `gan`.
    public static func load(_ folder: URL, into gan: GAN, weightsOnly: Bool = false) throws -> TrainingState? {
        let g = folder.appendingPathComponent("generator.safetensors")
        try SafeTensors.load(try SafeTensors.read(from: g), into: gan.generator.stateDict, file: g.path)
        if let ema = gan.generatorEMA {
            let e = folder.appendingPathComponent("generator_ema.safetensors")
            guard FileManager.default.fileExists(atPath: e.path) else {
                throw DataError("\(e.path): missing, but the run's config keeps a moving average of G (ema_decay)")
            }
            try SafeTensors.load(try SafeTensors.read(from: e), into: ema.stateDict, file: e.path)
        }
        if weightsOnly { return nil }
        let d = folder.appendingPathComponent("discriminator.safetensors")
        try SafeTensors.load(try SafeTensors.read(from: d), into: gan.discriminator.stateDict, file: d.path)
        let t = folder.appendingPathComponent("training.safetensors")
        let entries = try SafeTensors.read(from: t)
        try SafeTensors.load(entries, into: gan.optimizerG.state, file: t.path, prefix: "optimizer_g.")
        try SafeTensors.load(entries, into: gan.optimizerD.state, file: t.path, prefix: "optimizer_d.")
        guard let json = try SafeTensors.readMetadata(from: t)["training_state"],
              let state = try? JSONDecoder().decode(TrainingState.self, from: Data(json.utf8)) else {
            throw DataError("\(t.path): missing or invalid training_state metadata")
        }
        let drops = gan.dropoutLayers
        guard state.dropoutRNGs.count == drops.count else {
            throw DataError("\(t.path): \(state.dropoutRNGs.count) dropout streams for a model with \(drops.count) dropout layers (another architecture?)")
        }
        gan.state = state.gan
        return state
    }

    public static func setPointer(_ pointer: CheckpointPointer, to folder: String, in checkpoints: URL) throws {
        try writeAtomically(Data((folder + "\n").utf8), to: checkpoints.appendingPathComponent(pointer.rawValue))
    }

    public static func pointer(_ pointer: CheckpointPointer, in checkpoints: URL) -> String? {
        guard let s = try? String(contentsOf: checkpoints.appendingPathComponent(pointer.rawValue), encoding: .utf8) else { return nil }
        let name = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return name.isEmpty ? nil : name
    }

    /// Resolves `final`, `latest`, `best`, `pre-domination`, `epoch-NNNN` or a bare epoch number to a checkpoint folder;
    /// nil means `best` when the run evaluated FID during training, else `final`, else `latest`.
    public static func resolve(_ name: String?, in checkpoints: URL) throws -> URL {
        let fm = FileManager.default
        var folder: String
        if let name {
            if let n = Int(name) { folder = folderName(epoch: n) }
            else { folder = CheckpointPointer(rawValue: name).flatMap { pointer($0, in: checkpoints) } ?? name }
        } else {
            // The best in-training FID when the run measured it, else where it ended.
            guard let p = pointer(.best, in: checkpoints) ?? pointer(.final, in: checkpoints) ?? pointer(.latest, in: checkpoints) else {
                throw DataError("\(checkpoints.path): no checkpoint yet (no 'latest' or 'final')")
            }
            folder = p
        }
        let url = checkpoints.appendingPathComponent(folder)
        guard fm.fileExists(atPath: url.appendingPathComponent("generator.safetensors").path) else {
            let have = (try? fm.contentsOfDirectory(atPath: checkpoints.path).filter { $0.hasPrefix("epoch-") }.sorted()) ?? []
            throw DataError("\(url.path): no such checkpoint (available: \(have.joined(separator: ", ")))")
        }
        return url
    }

    /// Removes checkpoint folders that are neither among the last `keep` periodic ones, nor named by a
    /// pointer file, nor in `protected`; and leftovers of interrupted writes.
    public static func prune(in checkpoints: URL, every: Int, keep: Int, protected: Set<String>) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: checkpoints.path) else { return }
        var keepSet = protected
        for p in CheckpointPointer.allCases { if let n = pointer(p, in: checkpoints) { keepSet.insert(n) } }
        let epochs = names.compactMap { n -> Int? in n.hasPrefix("epoch-") ? Int(n.dropFirst(6)) : nil }.sorted()
        for e in epochs.filter({ $0 % every == 0 }).suffix(keep) { keepSet.insert(folderName(epoch: e)) }
        for n in names {
            if n.hasPrefix(".tmp-") || n.hasPrefix(".old-") || (n.hasPrefix("epoch-") && !keepSet.contains(n)) {
                try? fm.removeItem(at: checkpoints.appendingPathComponent(n))
            }
        }
    }
}
