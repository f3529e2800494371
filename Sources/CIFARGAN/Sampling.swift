import Foundation
import GANCore

/// Loads a trained generator from a run folder's checkpoint and draws new images; needs no training data.
///
/// ```swift
/// let sampler = try Sampler(runFolder: url, checkpoint: nil)
/// let images = sampler.sample(count: 100, seed: 0)
/// ```
public final class Sampler {
    public let config: RunConfig
    public let gan: GAN
    public let checkpoint: URL
    /// Sample from G itself even when the run kept a moving average of it.
    public let rawGenerator: Bool

    public init(runFolder: URL, checkpoint name: String?, rawGenerator: Bool = false) throws {
        self.rawGenerator = rawGenerator
        let configURL = runFolder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw DataError("\(runFolder.path): not a run folder (no config.json)")
        }
        config = try RunConfig.load(from: configURL)
        try config.validate()
        gan = GAN(config: config)
        checkpoint = try Checkpoint.resolve(name, in: runFolder.appendingPathComponent("checkpoints"))
        _ = try Checkpoint.load(checkpoint, into: gan, weightsOnly: true)
    }

    /// `count` images from latents drawn with `seed`, generated in eval mode (running batch-norm statistics)
    /// by the moving average of G when the run kept one; `classLabel` picks the class of a conditional model.
    public func sample(count: Int, seed: UInt64, classLabel: Int? = nil, batchSize: Int = 256) -> [RGBImage] {
        let images = sampleTensors(count: count, seed: seed, classLabel: classLabel, batchSize: batchSize).images
        return (0..<count).map { RGBImage(tensor: images.data + $0 * 3072) }
    }

    /// The latents [count, latentDim] and G's raw outputs [count, 3, 32, 32] in [−1, 1] behind `sample`.
    public func sampleTensors(count: Int, seed: UInt64, classLabel: Int? = nil, batchSize: Int = 256) -> (latents: Tensor, images: Tensor) {
        precondition(classLabel == nil || config.model.isConditional, "a class label for a model that is not conditional")
        var rng = RandomGenerator(seed: seed)
        let d = config.model.latentDim
        let latents = Tensor(shape: [count, d]), images = Tensor(shape: [count, 3, 32, 32])
        var done = 0
        while done < count {
            let n = min(batchSize, count - done)
            let z = Tensor(shape: [n, d])
            rng.fillNormal(z)
            let x = gan.sample(z, classes: config.model.isConditional ? Array(repeating: classLabel ?? 0, count: n) : nil,
                               generator: rawGenerator ? gan.generator : nil)
            (latents.data + done * d).update(from: z.data, count: n * d)
            (images.data + done * 3072).update(from: x.data, count: n * 3072)
            done += n
        }
        return (latents, images)
    }
}
