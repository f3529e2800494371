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
        precondition(classLabel == nil || config.model.isConditional, "a class label for a model that is not conditional")
        var rng = RandomGenerator(seed: seed)
        var out: [RGBImage] = []
        out.reserveCapacity(count)
        var done = 0
        while done < count {
            let n = min(batchSize, count - done)
            let z = Tensor(shape: [n, config.model.latentDim])
            rng.fillNormal(z)
            let x = gan.sample(z, classes: config.model.isConditional ? Array(repeating: classLabel ?? 0, count: n) : nil,
                               generator: rawGenerator ? gan.generator : nil)
            for i in 0..<n { out.append(RGBImage(tensor: x.data + i * 3072)) }
            done += n
        }
        return out
    }
}
