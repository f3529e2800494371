import ArgumentParser
import CIFARGAN
import Foundation
import GANCore

struct ClassifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Train and evaluate the toolkit's own CIFAR-10 classifier (the judge for evaluation).",
        subcommands: [ClassifierTrain.self, ClassifierEvaluate.self])
}

struct ClassifierTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train",
        abstract: "Train the classifier on the CIFAR-10 training set with crop-and-flip augmentation.")
    @Option(help: "Epochs.") var epochs = 30
    @Option(help: "Batch size.") var batchSize = 128
    @Option(help: "Peak learning rate of the one-cycle schedule.") var lr: Float = 0.2
    @Option(help: "Channels of the three stages, e.g. 32,64,128.") var widths = "32,64,128"
    @Option(help: "Residual blocks per stage.") var blocks = 1
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Train on only the first N training images (for quick checks).") var limit: Int?
    @Option(help: "Output folder for classifier.safetensors and classifier.json.") var out = "judge"
    @Flag(help: "Print a per-layer time table after training.") var profile = false
    @OptionGroup var data: DataFlags

    func run() throws {
        var config = ClassifierConfig()
        let w = widths.split(separator: ",").compactMap { Int($0) }
        guard w.count >= 1, w.allSatisfy({ $0 > 0 }) else { throw ValidationError("--widths: expected positive integers like 32,64,128") }
        guard (1...8).contains(blocks) else { throw ValidationError("--blocks must be in 1…8") }
        guard (1...1000).contains(epochs) else { throw ValidationError("--epochs must be in 1…1000") }
        guard (2...4096).contains(batchSize) else { throw ValidationError("--batch-size must be in 2…4096") }
        config.widths = w; config.blocks = blocks
        var training = ClassifierTraining()
        training.epochs = epochs; training.batchSize = batchSize; training.peakLR = lr; training.seed = seed
        var runConfig = RunConfig(); runConfig.target = "all"
        var train = try Jobs.loadData(runConfig, try data.options(), log: say)
        if let limit { train.pixels = Array(train.pixels.prefix(limit * 3072)); train.labels = Array(train.labels.prefix(limit)) }
        let test = try CIFAR10.load(from: Locations.dataDirectory(data.dataDir), split: .test)
        say(String(format: "training a classifier (%.0f MFLOP per image forward) on %d images for %d epochs",
                   config.forwardFLOPs / 1e6, train.count, epochs))
        let started = Date()
        Profiler.enabled = profile
        let net = ClassifierJob.train(config: config, training: training, data: train) { epoch, loss, acc, seconds in
            say(String(format: "epoch %d/%d: loss %.4f, train accuracy %.4f, %.0f images/s, %.0f s",
                       epoch, epochs, loss, acc, Double(train.count) / seconds, seconds))
        }
        let elapsed = Date().timeIntervalSince(started)
        if profile {
            let rows = Profiler.report()
            for (label, s, calls) in rows.sorted(by: { $0.1 > $1.1 }).prefix(25) {
                say(label.padding(toLength: 46, withPad: " ", startingAt: 0) + String(format: "%8.2f s %5.1f%% (%d calls)", s, 100 * s / elapsed, calls))
            }
            Profiler.enabled = false
        }
        let exact = ClassifierJob.evaluate(net, on: test, range: 0..<min(1000, test.count))
        let full = ClassifierJob.evaluate(net, on: test)
        say(String(format: "test accuracy: %.4f on records 0–999 (exact pixels), %.4f on all %d; %@ of training",
                   exact.accuracy, full.accuracy, full.count, formatDuration(elapsed)))
        let folder = URL(fileURLWithPath: out)
        try SafeTensors.write(net.stateDict, metadata: ["format": "pt"], to: folder.appendingPathComponent("classifier.safetensors"))
        let report = ClassifierReport(config: config, training: training, trainImages: train.count,
                                      accuracyExact: exact.accuracy, accuracyFull: full.accuracy, seconds: elapsed,
                                      command: CommandLine.arguments.dropFirst().joined(separator: " "))
        let enc = JSONEncoder(); enc.keyEncodingStrategy = .convertToSnakeCase; enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try enc.encode(report), to: folder.appendingPathComponent("classifier.json"))
        say("saved \(folder.path)/classifier.safetensors and classifier.json")
    }
}

struct ClassifierReport: Codable {
    var config: ClassifierConfig
    var training: ClassifierTraining
    var trainImages: Int
    var accuracyExact: Double
    var accuracyFull: Double
    var seconds: Double
    var command: String
}

struct ClassifierEvaluate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "evaluate",
        abstract: "Accuracy of a trained classifier on the CIFAR-10 test set.")
    @Option(help: "Folder with classifier.safetensors and classifier.json (default: the built-in judge).") var weights: String?
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var data: DataFlags

    func run() throws {
        let judge = try Judge(folder: weights.map { URL(fileURLWithPath: $0) } ?? Judge.defaultFolder)
        let net = judge.network
        let test = try CIFAR10.load(from: Locations.dataDirectory(data.dataDir), split: .test)
        let exact = ClassifierJob.evaluate(net, on: test, range: 0..<min(1000, test.count))
        let full = ClassifierJob.evaluate(net, on: test)
        if json {
            let obj: [String: Any] = ["accuracy": exact.accuracy, "accuracy_exact_count": exact.count,
                                      "accuracy_full": full.accuracy, "count_full": full.count, "per_class_full": full.perClass]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "accuracy %.4f on test records 0–999 (exact pixels), %.4f on all %d test images", exact.accuracy, full.accuracy, full.count))
            for name in test.classNames { print("  " + name.padding(toLength: 11, withPad: " ", startingAt: 0) + String(format: "%.4f", full.perClass[name] ?? 0)) }
        }
    }
}
