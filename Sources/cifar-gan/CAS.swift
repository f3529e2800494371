import ArgumentParser
import CIFARGAN
import Foundation
import GANCore

/// `cifar-gan cas`: Classification Accuracy Score of a run, beside the real-data baseline of the same size.
struct CASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cas",
        abstract: "Classification Accuracy Score: train the judge's classifier on generated images only, test it on real ones.",
        discussion: """
        Samples --per-class images of every class from a --conditional run (or a --class all run with every class),
        trains the judge's classifier architecture on them (its augmentation and one-cycle schedule, --epochs), and
        reports its accuracy on the real CIFAR-10 test set; beside it the same classifier trained on the first
        --per-class real training images of each class (skip with --no-real-baseline).
        --test exact uses test records 0–999 (the exact ones on machines whose test records 1000–9999 are
        JPEG-decoded approximations); --test all uses all 10,000.
        Example:
          cifar-gan cas --run runs/conditional --per-class 1000 --epochs 15
        """)

    enum TestRecords: String, ExpressibleByArgument, CaseIterable { case exact, all }

    @Option(name: .customLong("run"), help: "A run folder with a generator for every class.") var runFolder: String
    @Option(help: "Checkpoint (default: best when the run measured FID, else final, else latest).") var checkpoint: String?
    @Option(help: "Images per class to train on (generated, and real for the baseline).") var perClass = 1000
    @Option(help: "Classifier training epochs.") var epochs = 15
    @Option(help: "Test records: exact (0–999) or all.") var test: TestRecords = .exact
    @Option(help: "Seed of the latents and of the classifier's training.") var seed: UInt64 = 0
    @Flag(help: "Skip the classifier trained on real images.") var noRealBaseline = false
    @Flag(name: .customLong("no-ema"), help: "Sample from G itself, not from the moving average of its weights.") var noEMA = false
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var data: DataFlags

    func validate() throws {
        guard (1...5000).contains(perClass) else { throw ValidationError("--per-class must be in 1…5000, got \(perClass)") }
        guard (1...1000).contains(epochs) else { throw ValidationError("--epochs must be in 1…1000, got \(epochs)") }
    }

    func run() throws {
        let quiet = json
        let log: (String) -> Void = { if !quiet { say($0) } }
        var settings = ClassifierTraining()
        settings.epochs = epochs; settings.seed = seed
        settings.batchSize = min(settings.batchSize, perClass * 10)
        let testSet = try CIFAR10.load(from: Locations.dataDirectory(data.dataDir), split: .test)
        let range = test == .exact ? 0..<min(1000, testSet.count) : nil
        log("sampling \(perClass) images per class from \(runFolder)")
        let generated = try ClassificationAccuracyScore.generatedSet(runFolder: URL(fileURLWithPath: runFolder), checkpoint: checkpoint,
                                                                     perClass: perClass, seed: seed, rawGenerator: noEMA)
        var results = [ClassificationAccuracyScore.score(training: generated, test: testSet, testRange: range, settings: settings, log: log)]
        if !noRealBaseline {
            var runConfig = RunConfig(); runConfig.target = "all"
            let train = try Jobs.loadData(runConfig, try data.options(), log: log)
            let real = try ClassificationAccuracyScore.realSet(train, perClass: perClass)
            results.append(ClassificationAccuracyScore.score(training: real, test: testSet, testRange: range, trainedOn: "real",
                                                             settings: settings, log: log))
        }
        if json {
            let enc = JSONEncoder(); enc.keyEncodingStrategy = .convertToSnakeCase; enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(results), as: UTF8.self))
        } else {
            for r in results {
                print(String(format: "CAS, trained on %@ (%d images, %d epochs): accuracy %.4f on %d real test images", r.trainedOn,
                             r.trainImages, r.epochs, r.accuracy, r.testImages))
                print("  per class: " + CIFAR10.classNames.map { String(format: "%@ %.2f", $0, r.perClass[$0] ?? .nan) }.joined(separator: ", "))
            }
        }
    }
}
