import Foundation
import GANCore

/// Classification Accuracy Score (Ravuri & Vinyals 2019): train the judge's classifier architecture on
/// generated images only, `perClass` of each class, and measure its accuracy on real test images; beside it,
/// the same classifier trained on as many real training images. A generator that covers each class's variety
/// scores near the real baseline; one that draws a few textures per class, however convincing to a fixed
/// classifier, does not — the classifier never saw the rest of the class.
///
/// ```swift
/// let generated = try ClassificationAccuracyScore.generatedSet(runFolder: url, checkpoint: nil, perClass: 1000, seed: 0)
/// let score = ClassificationAccuracyScore.score(training: generated, test: testSet, testRange: 0..<1000) { print($0) }
/// ```
public enum ClassificationAccuracyScore {
    public struct Result: Codable, Sendable {
        /// What the classifier trained on ("generated" or "real").
        public var trainedOn: String
        public var trainImages: Int
        public var epochs: Int
        public var testImages: Int
        public var accuracy: Double
        public var perClass: [String: Double]
    }

    /// `perClass` images of every class from a conditional run or a run of all ten classes, labelled by class.
    public static func generatedSet(runFolder: URL, checkpoint: String?, perClass: Int, seed: UInt64,
                                    rawGenerator: Bool = false) throws -> ImageDataset {
        let models = try Jobs.modelFolders(in: runFolder, className: nil)
        let names = models.map(\.name)
        guard Set(names).isSuperset(of: CIFAR10.classNames) else {
            throw DataError("\(runFolder.path): CAS needs a generator for every CIFAR-10 class (a --conditional run, or "
                + "--class all with every class trained); this run has \(names.joined(separator: ", "))")
        }
        var pixels = [UInt8](), labels = [UInt8]()
        pixels.reserveCapacity(perClass * 10 * ImageDataset.imageBytes)
        for (label, name) in CIFAR10.classNames.enumerated() {
            let model = models.first { $0.name == name }!
            let sampler = try Sampler(runFolder: model.folder, checkpoint: checkpoint, rawGenerator: rawGenerator)
            // Another latent stream per class, so classes of a conditional model do not share latents.
            for image in sampler.sample(count: perClass, seed: seed &+ UInt64(label) &* 1_000_003, classLabel: model.label) {
                pixels.append(contentsOf: image.planar)
            }
            labels.append(contentsOf: Array(repeating: UInt8(label), count: perClass))
        }
        return ImageDataset(pixels: pixels, labels: labels, classNames: CIFAR10.classNames)
    }

    /// The first `perClass` training images of every class: the real baseline of the same size.
    public static func realSet(_ train: ImageDataset, perClass: Int) throws -> ImageDataset {
        var pixels = [UInt8](), labels = [UInt8]()
        for label in 0..<train.classNames.count {
            let subset = train.subset(label: label)
            guard subset.count >= perClass else {
                throw DataError("the training set has \(subset.count) images of \(train.classNames[label]); --per-class asks for \(perClass)")
            }
            pixels.append(contentsOf: subset.pixels.prefix(perClass * ImageDataset.imageBytes))
            labels.append(contentsOf: Array(repeating: UInt8(label), count: perClass))
        }
        return ImageDataset(pixels: pixels, labels: labels, classNames: train.classNames)
    }

    /// Trains `ClassifierConfig()` on `training` (with the judge's augmentation and schedule) and measures its
    /// accuracy on `test` (records `testRange`, or all).
    public static func score(training: ImageDataset, test: ImageDataset, testRange: Range<Int>? = nil, trainedOn: String = "generated",
                             settings: ClassifierTraining = ClassifierTraining(), config: ClassifierConfig = ClassifierConfig(),
                             log: (String) -> Void = { _ in }) -> Result {
        let net = ClassifierJob.train(config: config, training: settings, data: training) { epoch, loss, accuracy, seconds in
            log(String(format: "  %@: epoch %d/%d, loss %.4f, train accuracy %.3f, %.0f s", trainedOn, epoch, settings.epochs, loss, accuracy, seconds))
        }
        let e = ClassifierJob.evaluate(net, on: test, range: testRange)
        return Result(trainedOn: trainedOn, trainImages: training.count, epochs: settings.epochs, testImages: e.count,
                      accuracy: e.accuracy, perClass: e.perClass)
    }
}
