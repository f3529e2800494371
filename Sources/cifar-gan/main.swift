import ArgumentParser
import CIFARGAN
import Foundation
import GANCore

struct CIFARGANCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cifar-gan",
        abstract: "Train GANs on CIFAR-10, one model per class, and generate new images.",
        subcommands: [Train.self, Generate.self, Export.self, Evaluate.self, CASCommand.self, Download.self, Bench.self, ClassifierCommand.self, Sweep.self]
    )
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training and generation throughput of the original models on synthetic data.")

    @Option(help: "Images per batch (real images per iteration).")
    var batchSize = 64
    @Option(help: "Seconds to time training for.")
    var seconds = 10.0
    @Option(help: "Generator channels (128 is the original).")
    var generatorWidth = 128
    @Option(help: "Discriminator base channels (64 is the original).")
    var discriminatorWidth = 64
    @Flag(help: "Print one JSON object.")
    var json = false
    @Flag(help: "Print a per-layer time table of the training iteration.")
    var profile = false
    @Option(help: "Benchmark a named recipe's iteration instead of the original (\(RunConfig.presetNames.joined(separator: ", "))).")
    var preset: String?
    @Flag(help: "With --preset: the class-conditional model (10 classes).")
    var conditional = false
    @Option(help: "G's 2× steps (dcgan, cnn): transposed or nearest (default: the preset's).")
    var upsampling: Upsampling?
    @Option(help: "Number format of convolution inputs: fp32 or bf16 (float32 with a message where the CPU lacks AVX512-BF16 and AMX).")
    var precision: Precision = .fp32
    @Flag(help: "Print the recipe's configuration (a run's config.json) and stop: what bench/pytorch_bench.py --config reads to build the PyTorch peer.")
    var printConfig = false
    @Option(help: "Instead: the throughput of pytorch-fid's Inception-v3 features with these weights (.pth or safetensors), on --images random 32×32 images.")
    var inceptionWeights: String?
    @Option(help: "With --inception-weights: images to time (after a warm-up batch).")
    var images = 100

    func validate() throws {
        guard batchSize >= 2 else { throw ValidationError("--batch-size must be at least 2 (batch norm needs two samples), got \(batchSize)") }
        guard batchSize <= 4096 else { throw ValidationError("--batch-size must be at most 4096, got \(batchSize)") }
        guard seconds > 0 && seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600], got \(seconds)") }
        guard generatorWidth >= 1, discriminatorWidth >= 1 else { throw ValidationError("--generator-width and --discriminator-width must be positive") }
    }

    func run() throws {
        if let path = inceptionWeights {
            let inception = try InceptionFID(weights: TorchCheckpoint.read(from: URL(fileURLWithPath: path)), file: path)
            var rng = RandomGenerator(seed: 0)
            let batch = Tensor(shape: [min(images, 50), 3, 32, 32]); rng.fillUniform(batch, 0, 1)
            _ = inception.features(batch)   // warm-up: first-touch of buffers, BLAS start-up
            let started = Date()
            var done = 0
            while done < images { _ = inception.features(batch); done += batch.shape[0] }
            let seconds = Date().timeIntervalSince(started)
            print("{\"inception_images_per_sec\": \(Double(done) / seconds), \"images\": \(done), \"seconds\": \(seconds), \"threads\": \(Parallel.workerCount)}")
            return
        }
        var config = RunConfig()
        if let preset {
            do { config = try RunConfig.preset(preset) } catch { throw ValidationError("--preset: \(error)") }
        } else {
            config.model.generatorWidth = generatorWidth
            config.model.discriminatorWidth = discriminatorWidth
        }
        if conditional { config.model.classes = CIFAR10.classNames.count }
        if let upsampling { config.model.upsampling = upsampling }
        config.precision = precision
        do { try config.validate() } catch { throw ValidationError("\(error)") }
        if printConfig {
            print(String(decoding: try config.encoded(), as: UTF8.self))
            return
        }
        Profiler.enabled = profile
        let (resolved, message) = Precision.resolve(precision)
        if let message { FileHandle.standardError.write(Data((message + "\n").utf8)) }
        KernelSettings.precision = resolved   // (so that the summary printed below names what ran)
        // Under mpirun: data-parallel training of one model, each rank with its share of every batch.
        let dataParallel = Communicator.world.map(DataParallel.init(world:))
        _ = try dataParallel?.rowsPerRank(batchSize: batchSize)
        let r = Benchmark.run(config: config, batchSize: batchSize, seconds: seconds, dataParallel: dataParallel)
        guard (dataParallel?.world.rank ?? 0) == 0 else { return }
        if profile {
            print("fusions and kernel paths (training)")
            for line in Benchmark.kernelReport { print("  " + line) }
            print(KernelSettings.summary + "\n")
            func pad(_ s: String) -> String { s.padding(toLength: 46, withPad: " ", startingAt: 0) }
            print(pad("layer and pass (per training iteration)") + "       ms  share")
            for (label, s, calls) in Benchmark.trainProfile {
                print(pad(label) + String(format: "%9.2f %5.1f%%  (%d calls)", s * 1000, 100 * s / Benchmark.trainProfileTotal, calls))
            }
            let covered = Benchmark.trainProfile.reduce(0) { $0 + $1.1 }
            print(pad("other (loss, optimizer, data)") + String(format: "%9.2f %5.1f%%",
                         (Benchmark.trainProfileTotal - covered) * 1000, 100 * (1 - covered / Benchmark.trainProfileTotal)))
            print(pad("\nlayer (per generation batch of 256)") + "       ms  share")
            for (label, s, _) in Benchmark.generateProfile {
                print(pad(label) + String(format: "%9.2f %5.1f%%", s * 1000, 100 * s / Benchmark.generateProfileTotal))
            }
        }
        if json {
            let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(String(format: "train:    %.1f images/s at batch %d (%.1f GFLOP/s, %d iterations, %d threads)",
                         r.trainImagesPerSec, r.batchSize, r.trainGFLOPs, r.iterations, r.threads))
            if r.ranks > 1 {
                print(String(format: "data-parallel over %d ranks: per iteration %.0f collective calls, %.2f MB per rank, %.2f ms inside them "
                             + "(the gradients' allreduce alone: %.2f ms)",
                             r.ranks, r.collectiveCalls, r.collectiveMegabytes, r.collectiveMilliseconds, r.gradientAllreduceMilliseconds))
            } else {
                print(String(format: "generate: %.1f images/s at batch %d (eval mode)", r.generateImagesPerSec, r.generateBatchSize))
            }
            print(KernelSettings.summary)
            print(String(format: "peak resident memory: %.0f MB after training, %.0f MB after generating", r.trainPeakRSSMegabytes, r.peakRSSMegabytes))
        }
    }
}


#if os(Linux)
// Layers keep their buffers across steps, so big allocations are rare (checkpoints, sample grids); serving each
// from its own mapping returns it to the system when freed. glibc's default raises this threshold after the
// first big free, and later ones then stay in the heap for good (measured: +23 MB of peak memory per run).
// mallopt is not in Swift's Glibc module, hence the lookup; M_MMAP_THRESHOLD is -3 in <malloc.h>.
if let mallopt = dlsym(nil, "mallopt") {
    _ = unsafeBitCast(mallopt, to: (@convention(c) (Int32, Int32) -> Int32).self)(-3, 1 << 20)
}
#endif
// Errors from the library (bad files, bad configs) are one line naming the file, field or flag, and carry their
// exit status (`UserFacingError`); the argument parser reports its own (usage, --help).
// Under mpirun each rank names itself in its errors; a rank that exits with an error ends the whole job (mpirun
// stops the others), so no rank waits forever for it.
var world: Communicator?
do {
    world = try Communicator.joinWorld()
    var command = try CIFARGANCommand.parseAsRoot()
    try command.run()
    world?.finalize()
} catch let error as UserFacingError {
    let who = world.map { "rank \($0.rank) of \($0.size): " } ?? ""
    FileHandle.standardError.write(Data("error: \(who)\(error.description)\n".utf8)); exit(error.exitCode)
} catch {
    if let world { FileHandle.standardError.write(Data("error: rank \(world.rank) of \(world.size):\n".utf8)) }
    CIFARGANCommand.exit(withError: error)
}
