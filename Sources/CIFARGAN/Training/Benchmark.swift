import Foundation
import GANCore

/// Training and generation throughput of a model configuration on synthetic data.
///
/// ```swift
/// let result = Benchmark.run(model: ModelConfig(), batchSize: 64, seconds: 10)
/// print(result.trainImagesPerSec)
/// ```
public enum Benchmark {
    /// With `Profiler.enabled`: per-layer seconds and calls per training iteration, and the iteration's seconds.
    nonisolated(unsafe) public static var trainProfile: [(String, Double, Int)] = []
    nonisolated(unsafe) public static var trainProfileTotal = 0.0
    /// The same for one generation batch (eval mode).
    nonisolated(unsafe) public static var generateProfile: [(String, Double, Int)] = []
    nonisolated(unsafe) public static var generateProfileTotal = 0.0
    /// G's and D's fusion plans and kernel paths during the timed training (`Sequential.kernelReport`).
    nonisolated(unsafe) public static var kernelReport: [String] = []

    public struct Result: Codable, Sendable {
        public var batchSize: Int
        public var threads: Int
        public var iterations: Int
        public var trainImagesPerSec: Double
        public var trainGFLOPs: Double
        public var generateBatchSize: Int
        public var generateImagesPerSec: Double
        /// Peak resident memory when training ends (before the generation benchmark), and at the end.
        public var trainPeakRSSMegabytes: Double
        public var peakRSSMegabytes: Double

        enum CodingKeys: String, CodingKey {
            case batchSize = "batch_size", threads, iterations
            case trainImagesPerSec = "train_images_per_sec", trainGFLOPs = "train_gflops"
            case generateBatchSize = "generate_batch_size", generateImagesPerSec = "generate_images_per_sec"
            case peakRSSMegabytes = "peak_rss_mb", trainPeakRSSMegabytes = "train_peak_rss_mb"
        }
    }

    /// One iteration = D step on a real and a generated batch, then a G step on a fresh latent batch;
    /// throughput counts real images. Timed for about `seconds` after two warm-up iterations.
    public static func run(model: ModelConfig, batchSize: Int, seconds: Double, generateBatchSize: Int = 256) -> Result {
        var config = RunConfig()
        config.model = model
        return run(config: config, batchSize: batchSize, seconds: seconds, generateBatchSize: generateBatchSize)
    }

    /// The same for a whole recipe (loss, augmentation, EMA, spectral norm, architecture, classes, precision).
    /// `train_gflops` counts the original architecture's FLOPs and is 0 for the residual one.
    public static func run(config: RunConfig, batchSize: Int, seconds: Double, generateBatchSize: Int = 256) -> Result {
        let model = config.model
        let savedPrecision = KernelSettings.precision
        KernelSettings.precision = Precision.resolve(config.precision).0   // (`bench` prints the fallback's message)
        defer { KernelSettings.precision = savedPrecision }
        let gan = GAN(config: config)
        var rng = RandomGenerator(seed: 2)
        let K = model.classes
        func classes(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % UInt64(max(K, 1))) } }
        let real = Tensor(shape: [batchSize, 3, 32, 32]); rng.fillUniform(real, -1, 1)
        let z1 = Tensor(shape: [batchSize, model.latentDim]), z2 = Tensor(shape: [batchSize, model.latentDim])
        let tReal = Tensor(shape: [batchSize, 1]), tFake = Tensor(shape: [batchSize, 1])
        func step() {
            rng.fillNormal(z1); rng.fillNormal(z2)
            rng.fillUniform(tReal, 0.8, 1.0); rng.fillUniform(tFake, 0, 0.1)
            gan.iteration(real: real, latentForD: z1, latentForG: z2, realTargets: tReal, fakeTargets: tFake,
                          classes: model.isConditional ? (classes(batchSize), classes(batchSize), classes(batchSize)) : nil)
        }
        step(); step()
        Profiler.reset()
        var iterations = 0
        let start = Date()
        repeat { step(); iterations += 1 } while Date().timeIntervalSince(start) < seconds
        let trainRate = Double(iterations * batchSize) / Date().timeIntervalSince(start)
        let trainSeconds = Date().timeIntervalSince(start)
        trainProfile = Profiler.report().map { ($0.0, $0.1 / Double(iterations), $0.2 / iterations) }
        trainProfileTotal = trainSeconds / Double(iterations)
        kernelReport = gan.generator.kernelReport(label: "G") + gan.discriminator.kernelReport(label: "D")

        let trainPeak = peakResidentMegabytes()
        let z = Tensor(shape: [generateBatchSize, model.latentDim]); rng.fillNormal(z)
        let zClasses = model.isConditional ? classes(generateBatchSize) : nil
        _ = gan.sample(z, classes: zClasses, generator: gan.generator)
        var batches = 0
        Profiler.reset()
        let genStart = Date()
        repeat { _ = gan.sample(z, classes: zClasses, generator: gan.generator); batches += 1 } while Date().timeIntervalSince(genStart) < max(1, seconds / 3)
        let genSeconds = Date().timeIntervalSince(genStart)
        let genRate = Double(batches * generateBatchSize) / genSeconds
        generateProfile = Profiler.report().map { ($0.0, $0.1 / Double(batches), $0.2 / batches) }
        generateProfileTotal = genSeconds / Double(batches)

        return Result(batchSize: batchSize, threads: Parallel.workerCount, iterations: iterations,
                      trainImagesPerSec: trainRate, trainGFLOPs: model.architecture != .resnet ? trainRate * model.trainFLOPsPerImage / 1e9 : 0,
                      generateBatchSize: generateBatchSize, generateImagesPerSec: genRate,
                      trainPeakRSSMegabytes: trainPeak, peakRSSMegabytes: peakResidentMegabytes())
    }
}

/// Peak resident memory of this process (VmHWM on Linux, ru_maxrss elsewhere).
public func peakResidentMegabytes() -> Double {
    #if os(Linux)
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kb = Double(line.split(separator: " ").dropFirst().first ?? "") {
        return kb / 1024
    }
    return 0
    #else
    var usage = rusage()
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1_048_576
    #endif
}
