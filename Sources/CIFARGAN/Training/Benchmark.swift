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
        /// Data-parallel (under mpirun): the ranks sharing each batch, and per training iteration the collectives'
        /// calls, megabytes each rank contributed, and milliseconds inside them (transfer and waiting). Generation
        /// is not measured then (0).
        public var ranks = 1
        public var collectiveCalls = 0.0
        public var collectiveMegabytes = 0.0
        public var collectiveMilliseconds = 0.0
        /// One allreduce of both models' gradients (the per-iteration volume) started together on every rank
        /// (after a barrier, so without waiting for a slower rank): the transfer alone, in milliseconds.
        public var gradientAllreduceMilliseconds = 0.0

        enum CodingKeys: String, CodingKey {
            case batchSize = "batch_size", threads, iterations
            case trainImagesPerSec = "train_images_per_sec", trainGFLOPs = "train_gflops"
            case generateBatchSize = "generate_batch_size", generateImagesPerSec = "generate_images_per_sec"
            case peakRSSMegabytes = "peak_rss_mb", trainPeakRSSMegabytes = "train_peak_rss_mb"
            case ranks, collectiveCalls = "collective_calls", collectiveMegabytes = "collective_mb", collectiveMilliseconds = "collective_ms"
            case gradientAllreduceMilliseconds = "gradient_allreduce_ms"
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
    /// `train_gflops` counts the original architecture's FLOPs and is 0 for the residual one. With `dataParallel`
    /// every rank runs its share of each batch of `batchSize` (which the ranks must divide) and the throughput is
    /// the job's.
    public static func run(config: RunConfig, batchSize: Int, seconds: Double, generateBatchSize: Int = 256,
                           dataParallel: DataParallel? = nil) -> Result {
        let model = config.model
        let savedPrecision = KernelSettings.precision
        KernelSettings.precision = Precision.resolve(config.precision).0   // (`bench` prints the fallback's message)
        defer { KernelSettings.precision = savedPrecision }
        let gan = GAN(config: config, dataParallel: dataParallel)
        var rng = RandomGenerator(seed: 2)
        let K = model.classes
        let rows = batchSize / (dataParallel?.world.size ?? 1)   // this process's share of each batch
        func classes(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % UInt64(max(K, 1))) } }
        let real = Tensor(shape: [rows, 3, 32, 32]); rng.fillUniform(real, -1, 1)
        let z1 = Tensor(shape: [rows, model.latentDim]), z2 = Tensor(shape: [rows, model.latentDim])
        let tReal = Tensor(shape: [rows, 1]), tFake = Tensor(shape: [rows, 1])
        func step() {
            rng.fillNormal(z1); rng.fillNormal(z2)
            rng.fillUniform(tReal, 0.8, 1.0); rng.fillUniform(tFake, 0, 0.1)
            gan.iteration(real: real, latentForD: z1, latentForG: z2, realTargets: tReal, fakeTargets: tFake,
                          classes: model.isConditional ? (classes(rows), classes(rows), classes(rows)) : nil)
        }
        step(); step()
        Profiler.reset()
        var iterations = 0
        let trafficBefore = dataParallel?.world.traffic ?? Communicator.Traffic()
        let start = Date()
        // Under mpirun every rank must run the same number of iterations: the time is up when it is on any rank.
        repeat { step(); iterations += 1 } while !(dataParallel?.anyRank(Date().timeIntervalSince(start) >= seconds)
                                                   ?? (Date().timeIntervalSince(start) >= seconds))
        let trainRate = Double(iterations * batchSize) / Date().timeIntervalSince(start)
        let trainSeconds = Date().timeIntervalSince(start)
        trainProfile = Profiler.report().map { ($0.0, $0.1 / Double(iterations), $0.2 / iterations) }
        trainProfileTotal = trainSeconds / Double(iterations)
        kernelReport = gan.generator.kernelReport(label: "G") + gan.discriminator.kernelReport(label: "D")

        let trainPeak = peakResidentMegabytes()
        var result = Result(batchSize: batchSize, threads: Parallel.workerCount, iterations: iterations,
                            trainImagesPerSec: trainRate, trainGFLOPs: model.architecture != .resnet ? trainRate * model.trainFLOPsPerImage / 1e9 : 0,
                            generateBatchSize: generateBatchSize, generateImagesPerSec: 0,
                            trainPeakRSSMegabytes: trainPeak, peakRSSMegabytes: trainPeak)
        if let dataParallel {   // the collectives per iteration instead of generation (which no rank shares)
            let t = dataParallel.world.traffic, n = Double(iterations)
            result.ranks = dataParallel.world.size
            // The counters include the per-iteration agreement on the time budget (one 8-byte call).
            result.collectiveCalls = Double(t.calls - trafficBefore.calls) / n
            result.collectiveMegabytes = Double(t.bytes - trafficBefore.bytes) / n / 1e6
            result.collectiveMilliseconds = (t.seconds - trafficBefore.seconds) / n * 1000
            result.gradientAllreduceMilliseconds = allreduceMilliseconds(
                floats: (gan.generator.parameters + gan.discriminator.parameters).reduce(0) { $0 + $1.grad.count }, world: dataParallel.world)
            return result
        }
        let z = Tensor(shape: [generateBatchSize, model.latentDim]); rng.fillNormal(z)
        let zClasses = model.isConditional ? classes(generateBatchSize) : nil
        _ = gan.sample(z, classes: zClasses, generator: gan.generator)
        var batches = 0
        Profiler.reset()
        let genStart = Date()
        repeat { _ = gan.sample(z, classes: zClasses, generator: gan.generator); batches += 1 } while Date().timeIntervalSince(genStart) < max(1, seconds / 3)
        let genSeconds = Date().timeIntervalSince(genStart)
        result.generateImagesPerSec = Double(batches * generateBatchSize) / genSeconds
        generateProfile = Profiler.report().map { ($0.0, $0.1 / Double(batches), $0.2 / batches) }
        generateProfileTotal = genSeconds / Double(batches)
        result.peakRSSMegabytes = peakResidentMegabytes()
        return result
    }
}

extension Benchmark {
    /// Milliseconds per allreduce of `floats` values, every rank starting together: the median of 20.
    static func allreduceMilliseconds(floats: Int, world: Communicator) -> Double {
        var buffer = [Float](repeating: 1, count: floats)
        var times: [Double] = []
        world.barrier()
        buffer.withUnsafeMutableBufferPointer { b in
            for _ in 0..<20 {
                let start = Date()
                world.allreduceSum(b.baseAddress!, count: floats)
                times.append(Date().timeIntervalSince(start) * 1000)
                world.barrier()
            }
        }
        return times.sorted()[times.count / 2]
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
