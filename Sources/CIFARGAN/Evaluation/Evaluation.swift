import Foundation
import GANCore

/// The trained classifier used as a feature network: penultimate-layer features (after global average
/// pooling) for FID, KID and precision/recall, and softmax probabilities for recognition and the IS-style score.
///
/// ```swift
/// let judge = try Judge(folder: Judge.defaultFolder)
/// let (features, probabilities) = judge.embed(pixels: pixels)   // 3,072 bytes an image
/// ```
public final class Judge {
    public let config: ClassifierConfig
    public let network: Sequential
    public let folder: URL
    /// A fingerprint of the weights, naming cached reference statistics.
    public let fingerprint: String

    /// The judge shipped with the toolkit (`Sources/CIFARGAN/Resources/judge`), or `$CIFAR_GAN_JUDGE`.
    public static var defaultFolder: URL {
        if let env = ProcessInfo.processInfo.environment["CIFAR_GAN_JUDGE"], !env.isEmpty { return URL(fileURLWithPath: env) }
        // Bundle layouts differ by platform (resourceURL is the bundle itself on Linux, Contents/Resources on macOS).
        if let url = Bundle.module.url(forResource: "judge", withExtension: nil, subdirectory: "Resources") { return url }
        return Bundle.module.bundleURL.appendingPathComponent("Resources/judge")
    }

    public init(folder: URL) throws {
        self.folder = folder
        let meta = folder.appendingPathComponent("classifier.json"), weights = folder.appendingPathComponent("classifier.safetensors")
        guard let data = try? Data(contentsOf: meta), FileManager.default.fileExists(atPath: weights.path) else {
            throw DataError("\(folder.path): no judge (classifier.json and classifier.safetensors); train one with "
                + "`cifar-gan classifier train --out DIR` and pass --judge DIR or set CIFAR_GAN_JUDGE=DIR")
        }
        struct Meta: Decodable { var config: ClassifierConfig }
        let dec = JSONDecoder(); dec.keyDecodingStrategy = .convertFromSnakeCase
        guard let m = try? dec.decode(Meta.self, from: data) else { throw DataError("\(meta.path): not a classifier description") }
        config = m.config
        var rng = RandomGenerator(seed: 0)
        network = config.makeNetwork(rng: &rng)
        let weightData = try Data(contentsOf: weights)
        try SafeTensors.load(try SafeTensors.decode(weightData, file: weights.path), into: network.stateDict, file: weights.path)
        fingerprint = String(MD5.hex(weightData).prefix(12))
    }

    /// Features [n, d] and class probabilities [n, K] of images given as CIFAR-layout bytes (n × 3072).
    public func embed(pixels: [UInt8], batchSize: Int = 250) -> (FeatureSet, [Double]) {
        let n = pixels.count / 3072, K = config.classes, d = config.featureDim
        var features = [Double](), probs = [Double]()
        features.reserveCapacity(n * d); probs.reserveCapacity(n * K)
        let data = ImageDataset(pixels: pixels, labels: [UInt8](repeating: 0, count: n), classNames: [])
        var start = 0
        while start < n {
            let m = min(batchSize, n - start)
            let x = Tensor(shape: [m, 3, 32, 32])
            data.fillBatch(indices: Array(start..<(start + m))[...], into: x)
            var h = x
            for layer in network.layers.dropLast() { h = layer.forward(h, training: false) }
            features.append(contentsOf: h.toArray().map(Double.init))
            let logits = network.layers.last!.forward(h, training: false)
            for i in 0..<m {
                let row = (0..<K).map { Double(logits[i * K + $0]) }
                let mx = row.max()!, z = row.reduce(0) { $0 + exp($1 - mx) }
                probs.append(contentsOf: row.map { exp($0 - mx) / z })
            }
            start += m
        }
        return (FeatureSet(count: n, dim: d, values: features), probs)
    }
}

/// One evaluation: the metrics of a set of generated (or any) images against reference images.
public struct EvaluationResult: Codable, Sendable {
    public var name: String
    public var count: Int
    public var referenceCount: Int
    public var fid: Double
    public var kid: Double
    public var kidStd: Double
    public var precision: Double
    public var recall: Double
    /// Share of the images the judge recognises as `name` (nil when `name` is not a class): assigned to it with
    /// probability ≥ 0.5 and inside the reference images' k-NN manifold (`Metrics.recognitionRate`).
    public var recognitionRate: Double?
    public var inceptionScore: Double
}

public enum Evaluator {
    /// Reference images: one class (or all) of the CIFAR-10 train or test split.
    public static func referencePixels(split: CIFAR10.Split, className: String?, dataDir: String?) throws -> (pixels: [UInt8], classes: [String]) {
        let data = try CIFAR10.load(from: Locations.dataDirectory(dataDir), split: split)
        guard let className else { return (data.pixels, data.classNames) }
        let label = try Jobs.classIndex(className, in: data.classNames)
        return (data.subset(label: label).pixels, data.classNames)
    }

    /// Reference features, computed once per judge, split and class and cached in the per-user cache folder.
    public static func referenceFeatures(judge: Judge, split: CIFAR10.Split, className: String?, dataDir: String?,
                                         limit: Int) throws -> FeatureSet {
        let key = "\(judge.fingerprint)-\(split.rawValue)-\(className ?? "all")"
        let cache = Locations.cacheFolder.appendingPathComponent("reference-features").appendingPathComponent("\(key).safetensors")
        var features: FeatureSet
        if let entry = (try? SafeTensors.read(from: cache))?["features"], entry.shape.count == 2 {
            features = FeatureSet(count: entry.shape[0], dim: entry.shape[1], values: entry.values.map(Double.init))
        } else {
            let (pixels, _) = try referencePixels(split: split, className: className, dataDir: dataDir)
            features = judge.embed(pixels: pixels).0
            let t = Tensor(shape: [features.count, features.dim], values: features.values.map(Float.init))
            try? SafeTensors.write([StateEntry(name: "features", tensor: t)], to: cache)
        }
        if features.count > limit { features = features.subset(Array(0..<limit)) }
        return features
    }

    /// All metrics of `pixels` (n × 3072 bytes) against `reference` features.
    public static func evaluate(name: String, pixels: [UInt8], reference: FeatureSet, judge: Judge, classLabel: Int?,
                                kidSubsets: Int = 100, seed: UInt64 = 0) throws -> EvaluationResult {
        let (features, probs) = judge.embed(pixels: pixels)
        let fid = try Metrics.fid(reference.statistics(), features.statistics())
        let (kid, kidStd) = Metrics.kid(reference, features, subsets: kidSubsets, subsetSize: 1000, seed: seed)
        let manifolds = Metrics.manifolds(real: reference, fake: features, k: 3)
        let (p, r) = (Metrics.share(manifolds.fakeInsideReal), Metrics.share(manifolds.realInsideFake))
        let recognition = classLabel.map {
            Metrics.recognitionRate(probabilities: probs, classes: judge.config.classes, label: $0, realistic: manifolds.fakeInsideReal)
        }
        let (isMean, _) = Metrics.inceptionScore(probabilities: probs, classes: judge.config.classes)
        return EvaluationResult(name: name, count: features.count, referenceCount: reference.count, fid: fid, kid: kid,
                                kidStd: kidStd, precision: p, recall: r, recognitionRate: recognition, inceptionScore: isMean)
    }

    /// PNG images to evaluate: a flat folder, or one subfolder per class. Returns (name, pixels) groups.
    public static func imageGroups(folder: URL) throws -> [(String?, [UInt8])] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else { throw DataError("\(folder.path): no such folder") }
        let entries = try fm.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }.sorted()
        let pngs = entries.filter { $0.lowercased().hasSuffix(".png") }
        func load(_ dir: URL, _ files: [String]) throws -> [UInt8] {
            var out = [UInt8]()
            for f in files {
                let url = dir.appendingPathComponent(f)
                let img = try PNG.read(from: url)
                guard img.width == 32 && img.height == 32 else {
                    throw DataError("\(url.path): image is \(img.width)×\(img.height); evaluation needs 32×32 images")
                }
                out.append(contentsOf: img.planar)
            }
            return out
        }
        if !pngs.isEmpty { return [(nil, try load(folder, pngs))] }
        var groups: [(String?, [UInt8])] = []
        for sub in entries {
            let dir = folder.appendingPathComponent(sub)
            var d: ObjCBool = false
            guard fm.fileExists(atPath: dir.path, isDirectory: &d), d.boolValue else { continue }
            let files = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.lowercased().hasSuffix(".png") }.sorted()
            if !files.isEmpty { groups.append((sub, try load(dir, files))) }
        }
        guard !groups.isEmpty else { throw DataError("\(folder.path): no .png images (flat, or in one subfolder per class)") }
        return groups
    }
}
