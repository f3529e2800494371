import XCTest
import Foundation
import CIFARGAN
import GANCore

/// Classification Accuracy Score: the classifier learns what its training images show and nothing else.
final class CASTests: XCTestCase {
    /// Ten classes told apart by colour alone (random brightness and noise within a class).
    func colourClasses(perClass: Int, seed: UInt64) -> ImageDataset {
        var rng = RandomGenerator(seed: seed)
        var pixels = [UInt8](), labels = [UInt8]()
        for i in 0..<(perClass * 10) {
            let label = i % 10
            let base: [Float] = [Float(label % 3) * 100 + 20, Float((label / 3) % 4) * 70 + 20, label >= 5 ? 220 : 40]
            let gain = rng.uniform(0.8, 1.1)
            for c in 0..<3 { for _ in 0..<1024 { pixels.append(UInt8(max(0, min(255, base[c] * gain + rng.uniform(-20, 20))))) } }
            labels.append(UInt8(label))
        }
        return ImageDataset(pixels: pixels, labels: labels, classNames: CIFAR10.classNames)
    }

    func testScoreIsHighWhenTrainingImagesShowTheClassesAndChanceWhenNot() {
        var settings = ClassifierTraining(); settings.epochs = 6; settings.batchSize = 20; settings.peakLR = 0.05
        var config = ClassifierConfig(); config.widths = [8, 16, 16]
        let train = colourClasses(perClass: 20, seed: 1), test = colourClasses(perClass: 20, seed: 2)
        let good = ClassificationAccuracyScore.score(training: train, test: test, settings: settings, config: config)
        XCTAssertGreaterThan(good.accuracy, 0.9, "classes a generator draws faithfully are learned")
        XCTAssertEqual(good.testImages, 200)
        // A "generator" whose images do not match their labels: the classifier learns nothing about the test set.
        var rng = RandomGenerator(seed: 3)
        var shuffled = train
        shuffled.labels = rng.permutation(train.count).map { train.labels[$0] }
        let bad = ClassificationAccuracyScore.score(training: shuffled, test: test, settings: settings, config: config)
        XCTAssertLessThan(bad.accuracy, 0.35, "images that do not show their class score near chance")
        XCTAssertEqual(ClassificationAccuracyScore.score(training: train, test: test, testRange: 0..<50, settings: settings, config: config).testImages, 50)
    }

    func testGeneratedSetHasEveryClassAndRefusesAOneClassRun() throws {
        let dir = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 8, files: CIFAR10.trainFiles)
        let data = try CIFAR10.load(from: dir, split: .train)
        var cfg = tinyConfig(target: "conditional"); cfg.epochs = 1
        let run = temporaryFolder(self)
        _ = try Jobs.train(config: cfg, runFolder: run, resume: false, data: data, quiet: true, log: { _ in })
        let set = try ClassificationAccuracyScore.generatedSet(runFolder: run, checkpoint: nil, perClass: 3, seed: 0)
        XCTAssertEqual(set.count, 30)
        XCTAssertEqual(set.labels, (0..<10).flatMap { Array(repeating: UInt8($0), count: 3) })
        XCTAssertNotEqual(Array(set.pixels[0..<3072]), Array(set.pixels[(3 * 3072)..<(4 * 3072)]), "classes differ")
        let perClass = data.subset(label: 0).count
        XCTAssertEqual(try ClassificationAccuracyScore.realSet(data, perClass: perClass).count, 10 * perClass)
        XCTAssertThrowsError(try ClassificationAccuracyScore.realSet(data, perClass: perClass + 1)) { XCTAssert("\($0)".contains("--per-class")) }

        let catRun = temporaryFolder(self)
        var catCfg = tinyConfig(); catCfg.epochs = 1
        _ = try Jobs.train(config: catCfg, runFolder: catRun, resume: false, data: data, quiet: true, log: { _ in })
        XCTAssertThrowsError(try ClassificationAccuracyScore.generatedSet(runFolder: catRun, checkpoint: nil, perClass: 3, seed: 0)) {
            XCTAssert("\($0)".contains("every CIFAR-10 class"), "\($0)")
        }
    }
}
