import ArgumentParser
import CIFARGAN
import Foundation
import GANCore

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "FID, KID, precision/recall, recognition rate and an IS-style score of generated images, on the judge's features.")

    @Option(name: .customLong("run"), help: "A run folder: sample from its checkpoint, per class.") var runFolder: String?
    @Option(help: "A folder of 32×32 PNGs (flat, or one subfolder per class).") var images: String?
    @Option(name: .customLong("class"), help: "Only this class (for --run), or the class of a flat --images folder.") var className: String?
    @Option(help: "Reference images: train (exact everywhere) or test.") var reference = "train"
    @Option(help: "Images per class (default: 5,000 or the reference size, whichever is smaller).") var count: Int?
    @Option(help: "Checkpoint of the run (default: best when the run measured FID, else final, else latest).") var checkpoint: String?
    @Option(help: "Judge folder (default: the built-in one).") var judge: String?
    @Option(help: "Seed of the sampled latents and KID subsets.") var seed: UInt64 = 0
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "With --run: evaluate every kept checkpoint (epoch-NNNN), not only the final one.") var allCheckpoints = false
    @Flag(help: "Add a row per class for real CIFAR-10 test images against the reference: the floor a generator can reach.") var floor = false
    @Option(help: "Folder with the CIFAR-10 binary files.") var dataDir: String?
    @Flag(name: .customLong("no-ema"), help: "With --run: sample from G itself, not from the moving average of its weights (runs with --ema-decay).") var noEMA = false
    @Option(help: "Features for FID: judge (the built-in classifier; every metric) or inception (pytorch-fid's Inception-v3: FID comparable with papers; needs --inception-weights).") var features: FeatureKind = .judge
    @Option(help: "pytorch-fid's weights, pt_inception-2015-12-05-6726825d.pth (torch.save legacy or zip format, or safetensors).") var inceptionWeights: String?

    @Option(help: "With --features inception: compare with these statistics (pytorch-fid's .npz, mu and sigma) instead of CIFAR-10's images.") var referenceStats: String?
    @Option(help: "With --features inception: write the generated images' statistics as pytorch-fid's .npz (FILE.npz; FILE-CLASS.npz for several classes).") var saveStats: String?

    enum FeatureKind: String, ExpressibleByArgument, CaseIterable { case judge, inception }

    func validate() throws {
        if features == .inception && inceptionWeights == nil {
            throw ValidationError("--features inception needs --inception-weights FILE (pytorch-fid's pt_inception-2015-12-05-6726825d.pth)")
        }
        if features != .inception && (referenceStats != nil || saveStats != nil) {
            throw ValidationError("--reference-stats and --save-stats go with --features inception")
        }
        guard (runFolder == nil) != (images == nil) else { throw ValidationError("give exactly one of --run DIR or --images DIR") }
        guard reference == "train" || reference == "test" else { throw ValidationError("--reference must be train or test, got '\(reference)'") }
        if let count { guard (2...50_000).contains(count) else { throw ValidationError("--count must be in 2…50000, got \(count)") } }
    }

    func run() throws {
        let j = try Judge(folder: judge.map { URL(fileURLWithPath: $0) } ?? Judge.defaultFolder)
        let split: CIFAR10.Split = reference == "train" ? .train : .test
        // Under mpirun the groups (classes, checkpoints) are dealt out to the ranks by index; rank 0 reports.
        let world = Communicator.world, rank = world?.rank ?? 0
        // Groups are sampled (or loaded) when evaluated, so that under mpirun each rank makes only its own.
        var groups: [(name: String, pixels: () throws -> [UInt8])] = []
        var labels: [String: String] = [:]   // group name → class
        if let runFolder {
            for model in try Jobs.modelFolders(in: URL(fileURLWithPath: runFolder), className: className) {
                let name = model.name, folder = model.folder
                let n = count ?? 5000
                var names: [String?] = [checkpoint]
                if allCheckpoints {
                    names = RunFolder(folder).checkpointFolders
                }
                for ckName in names {
                    let label = allCheckpoints ? "\(name)@\(ckName ?? "")" : name
                    labels[label] = name
                    let (seed, noEMA, classLabel) = (seed, noEMA, model.label)
                    groups.append((label, {
                        try Sampler(runFolder: folder, checkpoint: ckName, rawGenerator: noEMA)
                            .sample(count: n, seed: seed, classLabel: classLabel).flatMap(\.planar)
                    }))
                }
                if floor {
                    let test = try CIFAR10.load(from: Locations.dataDirectory(dataDir), split: .test)
                    let label = "\(name)@test-images"
                    labels[label] = name
                    let subset = name == "unconditional" ? test : test.subset(label: try Jobs.classIndex(name, in: test.classNames))
                    let pixels = Array(subset.pixels.prefix((count ?? 5000) * 3072))
                    groups.append((label, { pixels }))
                }
            }
        } else if let images {
            for (name, pixels) in try Evaluator.imageGroups(folder: URL(fileURLWithPath: images)) {
                groups.append((name ?? className ?? "all", { pixels }))
            }
        }
        if features == .inception {
            try inceptionFID(groups: groups, labels: labels, split: split)
            return
        }
        var results: [EvaluationResult] = []
        for (index, (name, makePixels)) in groups.enumerated() where world?.owns(index) ?? true {
            let pixels = try makePixels()
            let cls = referenceClass(name, labels)
            let label = try cls.map { try Jobs.classIndex($0, in: CIFAR10.classNames) }
            let reference = try Evaluator.referenceFeatures(judge: j, split: split, className: label.map { CIFAR10.classNames[$0] },
                                                            dataDir: dataDir, limit: count ?? 5000)
            var px = pixels
            if let count, px.count / 3072 > count { px = Array(px.prefix(count * 3072)) }
            results.append(try Evaluator.evaluate(name: name, pixels: px, reference: reference, judge: j, classLabel: label, seed: seed))
        }
        results = EvaluationResult.gathered(results, names: groups.map(\.name), world: world)
        guard rank == 0 else { return }   // rank 0 reports for the job
        if json {
            let enc = JSONEncoder(); enc.keyEncodingStrategy = .convertToSnakeCase; enc.outputFormatting = [.sortedKeys]
            if results.count == 1 {
                print(String(decoding: try enc.encode(results[0]), as: UTF8.self))
            } else {
                let body = try results.map { "\"\($0.name)\":" + String(decoding: try enc.encode($0), as: UTF8.self) }.joined(separator: ",")
                print("{\"classes\":{\(body)}}")
            }
        } else {
            print("class         count     FID       KID (± std)        precision  recall  recognition  IS")
            for r in results {
                print(r.name.padding(toLength: max(12, r.name.count), withPad: " ", startingAt: 0)
                      + String(format: " %6d  %8.3f  %8.5f ± %.5f  %8.3f  %6.3f  %@  %6.3f", r.count, r.fid, r.kid, r.kidStd,
                               r.precision, r.recall, r.recognitionRate.map { String(format: "%11.3f", $0) } ?? "          -", r.inceptionScore))
            }
            print("judge \(j.folder.path) (\(j.fingerprint)); reference: CIFAR-10 \(reference) images of each class")
        }
    }

    /// FID on pytorch-fid's Inception features per group, against the class's reference images.
    func inceptionFID(groups: [(name: String, pixels: () throws -> [UInt8])], labels: [String: String], split: CIFAR10.Split) throws {
        let url = URL(fileURLWithPath: inceptionWeights!)
        let inception = try InceptionFID(weights: TorchCheckpoint.read(from: url), file: url.path)
        var fixedReference: GaussianStatistics?
        if let path = referenceStats {
            let arrays = try NumpyArchive.read(from: URL(fileURLWithPath: path))
            guard let mu = arrays["mu"], let sigma = arrays["sigma"], mu.shape == [InceptionFID.featureCount],
                  sigma.shape == [InceptionFID.featureCount, InceptionFID.featureCount] else {
                throw ValidationError("--reference-stats \(path): needs mu [2048] and sigma [2048, 2048] (pytorch-fid's statistics)")
            }
            fixedReference = GaussianStatistics(mean: mu.values, covariance: sigma.values, dim: InceptionFID.featureCount, count: 0)
        }
        var rows: [(String, Int, Double)] = []
        let world = Communicator.world, rank = world?.rank ?? 0
        for (index, (name, makePixels)) in groups.enumerated() where world?.owns(index) ?? true {
            let pixels = try makePixels()
            let cls = referenceClass(name, labels)
            let n = min(pixels.count / 3072, count ?? 5000)
            let generated = InceptionEvaluation.features(pixels: Array(pixels.prefix(n * 3072)), inception: inception).statistics()
            if let path = saveStats {
                let file = groups.count == 1 ? path : (path.hasSuffix(".npz") ? String(path.dropLast(4)) : path) + "-\(name).npz"
                try NumpyArchive.write(["mu": ([generated.dim], generated.mean), "sigma": ([generated.dim, generated.dim], generated.covariance)],
                                       to: URL(fileURLWithPath: file))
            }
            let reference = try fixedReference ?? {
                let real = try Evaluator.referencePixels(split: split, className: cls, dataDir: dataDir).pixels
                return InceptionEvaluation.features(pixels: Array(real.prefix((count ?? 5000) * 3072)), inception: inception).statistics()
            }()
            rows.append((name, n, try Metrics.fid(generated, reference)))
        }
        if let world, world.size > 1 {   // every group's (count, FID) to every rank, in group order
            let local = rows.compactMap { row in groups.firstIndex { $0.name == row.0 }.map { (index: $0, values: [Double(row.1), row.2]) } }
            rows = world.gatherRows(local, rows: groups.count, width: 2).enumerated().compactMap { i, row in
                row.map { (groups[i].name, Int($0[0]), $0[1]) }
            }
        }
        guard rank == 0 else { return }
        if json {
            let body = rows.map { "\"\($0.0)\":{\"count\":\($0.1),\"features\":\"inception\",\"fid\":\($0.2)}" }.joined(separator: ",")
            print(rows.count == 1 ? "{\"count\":\(rows[0].1),\"features\":\"inception\",\"fid\":\(rows[0].2)}" : "{\"classes\":{\(body)}}")
        } else {
            print("class         count     Inception-FID")
            for (name, n, fid) in rows { print(name.padding(toLength: max(12, name.count), withPad: " ", startingAt: 0) + String(format: " %6d  %8.3f", n, fid)) }
            print("features: pytorch-fid's Inception-v3 (\(url.lastPathComponent)); reference: "
                  + (referenceStats.map { "statistics \($0)" } ?? "CIFAR-10 \(reference) images of each class"))
        }
    }

    /// The class whose real images a group is compared with (nil: every class).
    func referenceClass(_ group: String, _ labels: [String: String]) -> String? {
        let base = labels[group] ?? group
        return base == "all" || base == "unconditional" ? nil : base
    }
}
