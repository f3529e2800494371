import XCTest
import Foundation
import CIFARGAN
import GANCore

/// The options beyond the original recipe, trained end to end on synthetic data: presets, resnet models,
/// EMA, DiffAugment, losses, the class-conditional model, and the time limit.
final class RecipeTests: XCTestCase {
    func syntheticData() throws -> ImageDataset {
        let dir = temporaryFolder(self)
        try writeSyntheticCIFAR(to: dir, perClass: 8, files: CIFAR10.trainFiles)
        return try CIFAR10.load(from: dir, split: .train)
    }

    /// Every option at once, at toy sizes.
    func modernTiny(target: RunTarget = "cat", architecture: Architecture = .dcgan) throws -> RunConfig {
        var c = tinyConfig(target: target)
        c.model.architecture = architecture
        if architecture == .cnn { c.model.upsampling = .nearest }
        c.loss = .hinge; c.model.spectralNorm = true; c.emaDecay = 0.9; c.diffAugment = [.color, .translation, .cutout]
        c.emaStart = 3; c.lecamWeight = 0.3; c.adaTarget = 0.6
        return c
    }

    func train(_ config: RunConfig, _ data: ImageDataset, _ folder: URL, resume: Bool = false) throws -> TrainingOutcome {
        try Jobs.train(config: config, runFolder: folder, resume: resume, data: data, quiet: true, log: { _ in }).values.first!
    }

    func weights(_ folder: URL, _ file: String) throws -> [String: [Float]] {
        let ck = try Checkpoint.resolve("latest", in: folder.appendingPathComponent("checkpoints"))
        return try SafeTensors.read(from: ck.appendingPathComponent(file)).mapValues(\.values)
    }

    func testResumeIsExactWithEveryOption() throws {
        let data = try syntheticData()
        for arch in Architecture.allCases {
            let cfg = try modernTiny(architecture: arch)
            let whole = temporaryFolder(self), split = temporaryFolder(self)
            _ = try train(cfg, data, whole)
            var first = cfg; first.epochs = 1
            _ = try train(first, data, split)
            _ = try train(cfg, data, split, resume: true)
            for file in ["generator.safetensors", "generator_ema.safetensors", "discriminator.safetensors"] {
                XCTAssertEqual(try weights(whole, file), try weights(split, file), "\(arch) \(file)")
            }
            let d = try weights(whole, "discriminator.safetensors")
            XCTAssert(d.keys.contains { $0.hasSuffix("weight_orig") } && d.keys.contains { $0.hasSuffix("weight_u") }, "spectral norm state saved")
            XCTAssertNotEqual(try weights(whole, "generator.safetensors"), try weights(whole, "generator_ema.safetensors"), "EMA differs from G")
        }
    }

    /// Several D steps per G step: G and its average stand still on D-only iterations, and the choice of
    /// iteration follows the run's position, so that a resume (10 batches an epoch, 3 D steps per G step:
    /// G steps straddle the epochs) ends where the unbroken run does.
    func testSeveralDiscriminatorStepsPerGeneratorStep() throws {
        var model = ModelConfig(); model.generatorWidth = 8; model.discriminatorWidth = 4; model.latentDim = 4
        let gan = GAN(model: model, optimizer: OptimizerConfig(), seed: 1, emaDecay: 0.9)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor(shape: [4, 3, 32, 32]), z1 = Tensor(shape: [4, 4]), z2 = Tensor(shape: [4, 4])
        rng.fillNormal(x); rng.fillNormal(z1); rng.fillNormal(z2)
        let t1 = Tensor(shape: [4, 1]), t0 = Tensor(shape: [4, 1]); t1.fill(1); t0.fill(0)
        func snapshot(_ m: Sequential) -> [[Float]] { m.parameters.map { $0.value.toArray() } }
        let g0 = snapshot(gan.generator), ema0 = snapshot(gan.generatorEMA!), d0 = snapshot(gan.discriminator)
        let dOnly = gan.iteration(real: x, latentForD: z1, latentForG: z2, realTargets: t1, fakeTargets: t0, updateGenerator: false)
        XCTAssertFalse(dOnly.generatorStepped)
        XCTAssertEqual(snapshot(gan.generator), g0, "no G step")
        XCTAssertEqual(snapshot(gan.generatorEMA!), ema0, "no EMA update")
        XCTAssertEqual(gan.iterations, 0, "iterations count G steps")
        let d1 = snapshot(gan.discriminator)
        XCTAssertNotEqual(d1, d0, "D stepped")
        let both = gan.iteration(real: x, latentForD: z1, latentForG: z2, realTargets: t1, fakeTargets: t0)
        XCTAssert(both.generatorStepped)
        XCTAssertNotEqual(snapshot(gan.generator), g0)
        XCTAssertNotEqual(snapshot(gan.discriminator), d1, "the second D step happens too")
        XCTAssertEqual(gan.iterations, 1)

        let data = try syntheticData()
        var cfg = try modernTiny(target: "conditional"); cfg.emaStart = 0
        cfg.discriminatorSteps = 3
        let whole = temporaryFolder(self), split = temporaryFolder(self), alternate = temporaryFolder(self)
        _ = try train(cfg, data, whole)
        var first = cfg; first.epochs = 1
        _ = try train(first, data, split)
        _ = try train(cfg, data, split, resume: true)
        for file in ["generator.safetensors", "generator_ema.safetensors", "discriminator.safetensors"] {
            XCTAssertEqual(try weights(whole, file), try weights(split, file), file)
        }
        var once = cfg; once.discriminatorSteps = 1
        _ = try train(once, data, alternate)
        XCTAssertNotEqual(try weights(whole, "generator.safetensors"), try weights(alternate, "generator.safetensors"))
        let m = Report.readMetrics(whole.appendingPathComponent("metrics.jsonl"))
        XCTAssert(m.allSatisfy { $0.lossG.isFinite && $0.lossG != 0 }, "lossG averages the G steps: \(m.map(\.lossG))")
    }

    func testEveryLossAndArchitectureTrainsToFiniteLosses() throws {
        let data = try syntheticData()
        for loss in GANLoss.allCases {
            for arch in Architecture.allCases {
                var cfg = tinyConfig(); cfg.loss = loss; cfg.model.architecture = arch; cfg.epochs = 2
                let folder = temporaryFolder(self)
                XCTAssertEqual(try train(cfg, data, folder), .finished(epochs: 2))
                let m = Report.readMetrics(folder.appendingPathComponent("metrics.jsonl"))
                XCTAssert(m.allSatisfy { $0.lossD.isFinite && $0.lossG.isFinite }, "\(loss) \(arch): \(m.map(\.lossD))")
            }
        }
    }

    /// `precision: bf16` trains (on oneDNN's bfloat16 kernels where the CPU has them, else float32 after a message),
    /// keeps float32 checkpoints, resumes in the same precision, and a wrong value names the field.
    func testBFloat16TrainingKeepsFloat32CheckpointsAndResumes() throws {
        let data = try syntheticData()
        var cfg = tinyConfig(); cfg.model.architecture = .cnn; cfg.loss = .hinge; cfg.model.spectralNorm = true
        cfg.precision = .bf16; cfg.epochs = 2
        var messages: [String] = []
        let folder = temporaryFolder(self), fp32 = temporaryFolder(self)
        _ = try Jobs.train(config: cfg, runFolder: folder, resume: false, data: data, quiet: true, log: { messages.append($0) })
        XCTAssertEqual(KernelSettings.precision, .fp32, "the run's precision does not outlive it")
        XCTAssertEqual(messages.contains { $0.contains("--precision bf16") }, Precision.resolve(.bf16).0 == .fp32, "\(messages)")
        XCTAssertEqual(try RunFolder(folder).loadConfig().precision, .bf16)
        var plain = cfg; plain.precision = .fp32
        XCTAssertEqual(try train(plain, data, fp32), .finished(epochs: 2))
        let g = try weights(folder, "generator.safetensors"), g32 = try weights(fp32, "generator.safetensors")
        XCTAssertEqual(Set(g.keys), Set(g32.keys), "same float32 tensors")
        if Precision.resolve(.bf16).0 == .bf16 { XCTAssertNotEqual(g, g32, "bfloat16 products change the weights") }
        XCTAssert(g.values.allSatisfy { $0.allSatisfy(\.isFinite) })
        cfg.epochs = 3
        XCTAssertEqual(try train(cfg, data, folder, resume: true), .finished(epochs: 3))
        let bad = temporaryFolder(self).appendingPathComponent("c.json")
        try Data(#"{"precision": "fp16"}"#.utf8).write(to: bad)
        XCTAssertThrowsError(try RunConfig.load(from: bad)) { XCTAssert("\($0)".contains("precision"), "\($0)") }
    }

    func testConditionalModelTrainsAndGeneratesPerClass() throws {
        let data = try syntheticData()
        let folder = temporaryFolder(self)
        let cfg = try modernTiny(target: "conditional")
        XCTAssertEqual(try train(cfg, data, folder), .finished(epochs: 3))
        let saved = try RunConfig.load(from: folder.appendingPathComponent("config.json"))
        XCTAssertEqual(saved.model.classes, 10)
        XCTAssertEqual(saved.classNames, CIFAR10.classNames)
        let g = try weights(folder, "generator.safetensors")
        XCTAssertEqual(g["2.weight"]?.count, 10 * 8, "conditional batch norm: one scale per class and channel")
        XCTAssertNotNil(try weights(folder, "discriminator.safetensors")["10.embed.weight"], "projection embedding")
        // One model, sampled per class: `generate --class` works like a per-class run, and classes differ.
        let out = temporaryFolder(self)
        try Jobs.generate(runFolder: folder, className: "cat", checkpoint: nil, count: 3, seed: 1, out: out, format: .png, log: { _ in })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("cat").path).count, 3)
        let sampler = try Sampler(runFolder: folder, checkpoint: nil)
        let cats = sampler.sample(count: 2, seed: 1, classLabel: 3), planes = sampler.sample(count: 2, seed: 1, classLabel: 0)
        XCTAssertNotEqual(cats[0].pixels, planes[0].pixels)
        let raw = try Sampler(runFolder: folder, checkpoint: nil, rawGenerator: true).sample(count: 2, seed: 1, classLabel: 3)
        XCTAssertNotEqual(raw[0].pixels, cats[0].pixels, "samples come from the moving average unless asked otherwise")
        XCTAssertEqual(try Jobs.modelFolders(in: folder, className: nil).map(\.label), Array(0..<10).map { Optional($0) })
        XCTAssertThrowsError(try Jobs.modelFolders(in: folder, className: "unicorn"))
    }

    func testLearningRateDecaysLinearlyFromItsStart() {
        var c = RunConfig()
        XCTAssertEqual(c.learningRateFactor(iteration: 90, total: 100), 1, "no decay unless asked")
        c.lrDecayStart = 0.5
        XCTAssertEqual(c.learningRateFactor(iteration: 0, total: 100), 1)
        XCTAssertEqual(c.learningRateFactor(iteration: 50, total: 100), 1)
        XCTAssertEqual(c.learningRateFactor(iteration: 75, total: 100), 0.5, accuracy: 1e-6)
        XCTAssertEqual(c.learningRateFactor(iteration: 100, total: 100), 0)
        c.lrDecayStart = 1
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("lr_decay_start")) }
    }

    /// The schedule reaches the optimizers: a run decayed from its start ends elsewhere than a constant one,
    /// and repeats itself exactly (it depends on the iteration, not the clock).
    func testLearningRateDecayTrainsDeterministically() throws {
        let data = try syntheticData()
        var cfg = tinyConfig(); cfg.epochs = 2
        let constant = temporaryFolder(self), decayed = temporaryFolder(self), again = temporaryFolder(self)
        _ = try train(cfg, data, constant)
        cfg.lrDecayStart = 0
        _ = try train(cfg, data, decayed)
        _ = try train(cfg, data, again)
        XCTAssertNotEqual(try weights(constant, "generator.safetensors"), try weights(decayed, "generator.safetensors"))
        XCTAssertEqual(try weights(decayed, "generator.safetensors"), try weights(again, "generator.safetensors"))
    }

    func testTimeLimitStopsWithAFinalCheckpoint() throws {
        let data = try syntheticData()
        var cfg = tinyConfig(); cfg.epochs = 10_000; cfg.timeLimitMinutes = 0.02   // 1.2 s
        let folder = temporaryFolder(self)
        let started = Date()
        guard case .timeLimit(let epoch) = try train(cfg, data, folder) else { return XCTFail("expected the time limit to stop the run") }
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
        XCTAssertEqual(Checkpoint.pointer(.final, in: folder.appendingPathComponent("checkpoints")), Checkpoint.folderName(epoch: epoch))
        XCTAssertEqual(Report.readMetrics(folder.appendingPathComponent("metrics.jsonl")).count, epoch)
        // The budget is kept across a resume: spent means no more epochs; a larger one continues.
        XCTAssertEqual(try train(cfg, data, folder, resume: true), .timeLimit(atEpoch: epoch))
        XCTAssertEqual(Report.readMetrics(folder.appendingPathComponent("metrics.jsonl")).count, epoch)
        cfg.timeLimitMinutes = 0.04
        guard case .timeLimit(let later) = try train(cfg, data, folder, resume: true) else { return XCTFail("expected the time limit again") }
        XCTAssertGreaterThan(later, epoch)
    }

    /// The README's preset table is what the code sets: each row is `RunConfig.presetChanges`.
    func testReadmePresetTableMatchesTheCode() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let rows = try RunConfig.presetNames.map { "| `\($0)` | \(try RunConfig.presetChanges($0).isEmpty ? "(the original system: nothing changed)" : RunConfig.presetChanges($0)) |" }
        for row in rows {
            XCTAssert(text.contains(row), "README.md lacks the row\n\(row)\nthe table the code implies:\n\(rows.joined(separator: "\n"))")
        }
    }

    func testPresetsAndBadOptionsAreValidated() throws {
        for name in RunConfig.presetNames { XCTAssertNoThrow(try RunConfig.preset(name).validate(), name) }
        XCTAssertEqual(try RunConfig.preset("original"), { var c = RunConfig(); c.preset = "original"; return c }())
        XCTAssertThrowsError(try RunConfig.preset("fancy")) { XCTAssert("\($0)".contains("fancy")) }
        // A value outside a choice cannot be built in code any more; from a file it is an error naming the field.
        for (json, field) in [(#"{"loss": "wasserstein"}"#, "loss': 'wasserstein' is not one of bce, non_saturating, hinge"),
                              (#"{"diff_augment": ["color", "rotate"]}"#, "diff_augment.1"),
                              (#"{"model": {"architecture": "vit"}}"#, "model.architecture': 'vit' is not one of dcgan, cnn, resnet"),
                              (#"{"model": {"upsampling": "bilinear"}}"#, "model.upsampling")] {
            XCTAssertThrowsError(try RunConfig.decode(json: Data(json.utf8))) { XCTAssert("\($0)".contains(field), "\($0)") }
        }
        for (edit, field) in [({ (c: inout RunConfig) in c.emaDecay = 1 }, "ema_decay"),
                              ({ $0.timeLimitMinutes = -1 }, "time_limit_minutes"),
                              ({ $0.discriminatorSteps = 0 }, "discriminator_steps")] as [((inout RunConfig) -> Void, String)] {
            var c = RunConfig(); edit(&c)
            XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains(field), "\($0)") }
        }
    }

    /// Whole models through finite differences: the residual pairs with spectral norm and class conditioning.
    func testResNetModelsGradients() throws {
        var model = ModelConfig()
        model.architecture = .resnet; model.generatorWidth = 4; model.discriminatorWidth = 4; model.latentDim = 5
        model.spectralNorm = true; model.classes = 3
        let labels = ClassLabels(classes: 3)
        labels.labels = [0, 2, 1, 2]
        var rng = RandomGenerator(seed: 3)
        let g = model.makeGenerator(rng: &rng, labels: labels)
        let d = model.makeDiscriminator(rng: &rng, labels: labels)
        let z = Tensor(shape: [4, 5]); rng.fillNormal(z)
        let x = Tensor(shape: [4, 3, 32, 32]); rng.fillNormal(x)
        for _ in 0..<5 { _ = d.forward(x, training: true) }   // power iterations: σ near its value, W/σ well conditioned
        for (net, input, what, training) in [(g, z, "resnet G", true), (d, x, "resnet D", false)] {
            let failures = modelGradientMismatches(net, input: input, training: training)
            XCTAssert(failures.isEmpty, "\(what): \(failures.prefix(5))")
        }
    }
}

/// Central differences of L = Σ y·w against backward for a few entries of the input and of every parameter.
/// ReLUs behind batch norm make L piecewise linear on the scale of a step, so each entry is measured at two
/// steps; where the two quotients disagree the step crossed kinks and the entry is not measurable (at most a
/// quarter of the entries may be; the rest must match).
func modelGradientMismatches(_ net: Sequential, input x: Tensor, training: Bool) -> [String] {
    var rng = RandomGenerator(seed: 5)
    let y0 = net.forward(x, training: training)
    let w = Tensor(shape: y0.shape); rng.fillNormal(w)
    for p in net.parameters { p.grad.fill(0) }
    _ = net.forward(x, training: training)
    guard let dx = net.backward(w.clone(), weightGradients: true, inputGradient: true)?.clone() else { return ["no input gradient"] }
    func loss() -> Double {
        let y = net.forward(x, training: training)
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(w[i]) }
        return s
    }
    var failures: [String] = [], checked = 0, unmeasurable: [String] = []
    func check(_ t: Tensor, _ g: Tensor, _ name: String) {
        let scale = max(1.0, Double(g.maxAbs())), tolerance = 3e-2 * scale
        for k in 0..<3 {
            let i = (k * 7919 + 13) % t.count, old = t[i]
            func quotient(_ h: Float) -> Double {
                t[i] = old + h; let lp = loss()
                t[i] = old - h; let lm = loss()
                t[i] = old
                return (lp - lm) / Double(2 * h)
            }
            let coarse = quotient(1e-3), fine = quotient(3e-4)
            checked += 1
            if abs(coarse - fine) > tolerance { unmeasurable.append("\(name)[\(i)]"); continue }
            if abs(coarse - Double(g[i])) > tolerance { failures.append("\(name)[\(i)]: \(g[i]) vs \(coarse)") }
        }
    }
    check(x, dx, "dx")
    for (name, p) in net.namedParameters { check(p.value, p.grad.clone(), name) }
    if unmeasurable.count * 4 > checked { failures.append("\(unmeasurable.count) of \(checked) entries not measurable: \(unmeasurable)") }
    return failures
}
