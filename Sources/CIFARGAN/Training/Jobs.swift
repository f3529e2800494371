import Foundation
import GANCore

/// The main jobs behind the command line: train (one class, every class, or unconditional) and generate.
public enum Jobs {
    /// Where to get training data and whether to download it.
    public struct DataOptions: Sendable {
        public var dataDir: String?
        public var allowDownload = true
        public var downloadURL = CIFARDownload.officialURL
        public var downloadMD5 = CIFARDownload.officialMD5
        public init() {}
    }

    /// The training images: the run's PNG folder, or CIFAR-10's training batches (downloaded when missing).
    public static func loadData(_ config: RunConfig, _ options: DataOptions, log: @escaping (String) -> Void) throws -> ImageDataset {
        if let folder = config.imageFolder { return try ImageFolder.load(from: URL(fileURLWithPath: folder)) }
        let dir = Locations.dataDirectory(options.dataDir)
        if !CIFAR10.isPresent(in: dir) {
            guard options.allowDownload else {
                throw DataError("\(dir.path): CIFAR-10 training files not found (data_batch_1.bin … data_batch_5.bin); "
                    + "run `cifar-gan download`, pass --data-dir, or drop --no-download")
            }
            log("CIFAR-10 not found in \(dir.path): downloading \(options.downloadURL.absoluteString) (about 163 MB)")
            try download(into: dir, options, log: log)
        }
        // One class's run needs only that class: loading just it keeps 135 MB of other images out of memory.
        let single = try config.target.className.map { try classIndex($0, in: CIFAR10.classNames) }
        return try CIFAR10.load(from: dir, split: .train, label: single)
    }

    public static func download(into dir: URL, _ options: DataOptions, log: @escaping (String) -> Void) throws {
        let tty = isatty(STDOUT_FILENO) != 0
        final class Last: @unchecked Sendable { var time = Date.distantPast }
        let last = Last()
        try CIFARDownload.fetch(url: options.downloadURL, md5: options.downloadMD5, into: dir) { done, total in
            let now = Date()
            guard now.timeIntervalSince(last.time) > (tty ? 0.2 : 5) || done == total else { return }
            last.time = now
            let text = total > 0 ? String(format: "%.1f / %.1f MB (%.0f%%)", Double(done) / 1e6, Double(total) / 1e6, 100 * Double(done) / Double(total))
                : String(format: "%.1f MB", Double(done) / 1e6)
            if tty { FileHandle.standardOutput.write(Data("\rdownloading \(text)   ".utf8)) } else { say("downloading \(text)") }
        }
        if tty { print("") }
        log("CIFAR-10 is in \(dir.path)")
    }

    /// Resolves a class name or index against the dataset's class names.
    public static func classIndex(_ name: String, in classes: [String]) throws -> Int {
        if let i = classes.firstIndex(of: name.lowercased()) ?? classes.firstIndex(of: name) { return i }
        if let i = Int(name), classes.indices.contains(i) { return i }
        throw ConfigError("--class: unknown class '\(name)'; expected one of \(classes.joined(separator: ", ")), an index 0–\(classes.count - 1), or all")
    }

    /// Trains `config.target` into `runFolder` (a new run, or the one there when `resume`).
    /// For "all", each class trains in `runFolder/<class>`, one after another.
    /// `alone`: this process trains this run by itself even under mpirun (a sweep's trial), rather than sharing it
    /// with the other ranks.
    public static func train(config: RunConfig, runFolder: URL, resume: Bool, data: ImageDataset,
                             quiet: Bool = false, alone: Bool = false, log: @escaping (String) -> Void) throws -> [String: TrainingOutcome] {
        // Under mpirun (`Communicator.world`) rank 0 owns the run folder. `--class all` is class-parallel: the
        // classes are dealt out by label modulo the number of ranks, and each rank locks the class folders it
        // trains. One model (a class, conditional, unconditional) is data-parallel: every rank trains it on its
        // shard of each batch and rank 0 writes.
        let world = alone ? nil : Communicator.world
        let rank = world?.rank ?? 0, ranks = world?.size ?? 1
        let dataParallel = ranks > 1 && config.target != .all ? world.map(DataParallel.init(world:)) : nil
        let lock = rank == 0 ? try RunLock(runFolder: runFolder) : nil
        defer { withExtendedLifetime(lock) {} }
        // The run's precision, for this process (float32 with a message where bfloat16 cannot run natively).
        let (precision, message) = Precision.resolve(config.precision)
        if let message { log(message) }
        let savedPrecision = KernelSettings.precision
        KernelSettings.precision = precision
        defer { KernelSettings.precision = savedPrecision }
        var outcomes: [String: TrainingOutcome] = [:]
        func one(_ cfg: RunConfig, _ subset: ImageDataset, _ folder: URL, _ title: String, _ resumeThis: Bool) throws {
            let trainer = try Trainer(config: cfg, data: subset, runFolder: folder, title: title, resume: resumeThis,
                                      dataParallel: dataParallel)
            let silent = dataParallel != nil && rank != 0   // the same steps as rank 0: its log says it all
            trainer.log = silent ? { _ in } : log
            trainer.progress.enabled = !quiet && !silent
            outcomes[title] = try trainer.run(epochs: cfg.epochs(forClass: title))
        }
        switch config.target {
        case .unconditional:
            try one(config, data, runFolder, "unconditional", resume)
        case .conditional:
            var cfg = config
            cfg.model.classes = data.classNames.count
            cfg.classNames = data.classNames
            try one(cfg, data, runFolder, "conditional", resume)
        case .all:
            if !resume {
                // Every rank checks before any writes (then they agree), rank 0 writes, the others wait for it.
                if RunFolder(runFolder).holdsRun {
                    throw DataError("\(runFolder.path): already holds a run; use --resume \(runFolder.path) or another --run folder")
                }
                world?.barrier()
                if rank == 0 {
                    try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)
                    try RunFolder(runFolder).saveConfig(config)
                }
                world?.barrier()
            }
            for (label, name) in data.classNames.enumerated() where world?.owns(label) ?? true {
                var cfg = config
                cfg.target = .oneClass(name)
                let folder = runFolder.appendingPathComponent(name)
                let started = RunFolder(folder).pointer(.latest) != nil
                if resume && !started { try? FileManager.default.removeItem(at: folder) }
                let classLock = ranks > 1 ? try RunLock(runFolder: folder) : nil
                try one(cfg, data.subset(label: label), folder, name, resume && started)
                withExtendedLifetime(classLock) {}
            }
            world?.barrier()   // the run is complete when every rank's classes are
        case .oneClass(let name):
            let label = try classIndex(name, in: data.classNames)
            var cfg = config
            cfg.target = .oneClass(data.classNames[label])
            try one(cfg, data.subset(label: label), runFolder, data.classNames[label], resume)
        }
        return outcomes
    }

    /// One generator to sample from: a run folder, and the class label for a conditional model.
    public struct ModelRef: Sendable {
        public var name: String
        public var folder: URL
        public var label: Int?
    }

    /// The generators inside a run: itself, its class subfolders for an "all" run, or one entry per class
    /// of a conditional run (all in the same folder). `className` picks one.
    public static func modelFolders(in runFolder: URL, className: String?) throws -> [ModelRef] {
        let config = try RunFolder(runFolder).loadConfig()
        if config.target == .conditional {
            let names = config.classNames ?? CIFAR10.classNames
            let all = names.enumerated().map { ModelRef(name: $0.element, folder: runFolder, label: $0.offset) }
            guard let className else { return all }
            return [all[try classIndex(className, in: names)]]
        }
        if config.target != .all {
            if let className, let trained = config.target.className, className != trained {
                throw ConfigError("--class: this run trained '\(trained)', not '\(className)'")
            }
            return [ModelRef(name: config.target.description, folder: runFolder)]
        }
        let fm = FileManager.default
        let trained = ((try? fm.contentsOfDirectory(atPath: runFolder.path)) ?? []).filter {
            RunFolder(runFolder).classRun($0).holdsRun
        }
        // CIFAR-10's order first, then any other class folders (an image-folder run) alphabetically.
        let all = CIFAR10.classNames.filter(trained.contains) + trained.filter { !CIFAR10.classNames.contains($0) }.sorted()
        guard !all.isEmpty else { throw DataError("\(runFolder.path): no trained class folders yet") }
        let refs = all.map { ModelRef(name: $0, folder: runFolder.appendingPathComponent($0)) }
        guard let className else { return refs }
        let index = Int(className).flatMap { CIFAR10.classNames.indices.contains($0) ? CIFAR10.classNames[$0] : nil }
        guard let ref = refs.first(where: { $0.name == className.lowercased() || $0.name == className || $0.name == index }) else {
            throw ConfigError("--class: unknown class '\(className)' for this run; it has \(all.joined(separator: ", "))")
        }
        return [ref]
    }

    public enum OutputFormat: String, Sendable, CaseIterable { case png, cifarBin = "cifar-bin", safetensors }

    /// Writes `count` new images per class into `out/<class>/NNNNN.png` and `out/<class>-grid.png`,
    /// `out/<class>.bin` in the CIFAR-10 binary layout, or `out/<class>.safetensors` with the latents
    /// (`latents` [n, d]), the class labels (`classes` [n], int64) and G's raw outputs (`images` [n, 3, 32, 32]
    /// in [−1, 1]) — for comparing with another runtime of the same generator, such as its ONNX export.
    ///
    /// `truncation` ψ draws latents inside [−ψ, ψ] (see `Sampler.drawLatents`). `interpolate` N writes latent
    /// walks instead: `out/<class>-walk.png`, min(count, 16) rows of N images spherically interpolated between
    /// two latents, and for a conditional run `out/classes-walk.png`, each class walked into the next at a fixed latent.
    public static func generate(runFolder: URL, className: String?, checkpoint: String?, count: Int, seed: UInt64,
                                out: URL, format: OutputFormat, rawGenerator: Bool = false, truncation: Float? = nil,
                                interpolate: Int? = nil, log: (String) -> Void) throws {
        var classWalkDone = false
        for model in try modelFolders(in: runFolder, className: className) {
            let name = model.name
            let sampler = try Sampler(runFolder: model.folder, checkpoint: checkpoint, rawGenerator: rawGenerator)
            if let steps = interpolate {
                let rows = min(count, 16)
                let walk = sampler.latentWalk(rows: rows, steps: steps, seed: seed, classLabel: model.label, truncation: truncation)
                try PNG.write(imageGrid(walk, columns: steps), to: out.appendingPathComponent("\(name)-walk.png"))
                log("\(name): \(rows) latent walks of \(steps) steps from \(sampler.checkpoint.lastPathComponent) in \(name)-walk.png")
                if sampler.config.model.isConditional && !classWalkDone {
                    classWalkDone = true
                    let walk = sampler.classWalk(steps: steps, seed: seed, truncation: truncation)
                    try PNG.write(imageGrid(walk, columns: steps), to: out.appendingPathComponent("classes-walk.png"))
                    log("every class walked into the next in \(steps) steps in classes-walk.png")
                }
                continue
            }
            if format == .safetensors {
                let (z, x) = sampler.sampleTensors(count: count, seed: seed, classLabel: model.label, truncation: truncation)
                let labels = Tensor(shape: [count], values: Array(repeating: Float(model.label ?? 0), count: count))
                let file = out.appendingPathComponent("\(name).safetensors")
                try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
                try SafeTensors.write([StateEntry(name: "latents", tensor: z), StateEntry(name: "classes", tensor: labels, isInteger: true),
                                       StateEntry(name: "images", tensor: x)],
                                      metadata: ["checkpoint": sampler.checkpoint.lastPathComponent, "seed": String(seed)], to: file)
                log("\(name): \(count) latents and images from \(sampler.checkpoint.lastPathComponent) in \(file.path)")
                continue
            }
            let images = sampler.sample(count: count, seed: seed, classLabel: model.label, truncation: truncation)
            switch format {
            case .png:
                let dir = out.appendingPathComponent(name)
                for (i, img) in images.enumerated() { try PNG.write(img, to: dir.appendingPathComponent(String(format: "%05d.png", i))) }
                let grid = Array(images.prefix(64))
                try PNG.write(imageGrid(grid, columns: Int(Double(grid.count).squareRoot().rounded(.up))),
                              to: out.appendingPathComponent("\(name)-grid.png"))
                log("\(name): \(count) images from \(sampler.checkpoint.lastPathComponent) in \(dir.path), grid \(name)-grid.png")
            case .cifarBin:
                let label = UInt8(CIFAR10.classNames.firstIndex(of: name) ?? 0)
                let file = out.appendingPathComponent("\(name).bin")
                try CIFAR10.write(images, labels: Array(repeating: label, count: images.count), to: file)
                log("\(name): \(count) images from \(sampler.checkpoint.lastPathComponent) in \(file.path) (CIFAR-10 binary layout, label \(label))")
            case .safetensors: break
            }
        }
    }
}
