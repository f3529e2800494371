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
        let run = RunFolder(runFolder)
        config = try run.loadConfig()
        try config.validate()
        gan = GAN(config: config)
        checkpoint = try Checkpoint.resolve(name, in: run.checkpoints)
        _ = try Checkpoint.load(checkpoint, into: gan, weightsOnly: true)
    }

    /// `count` images from latents drawn with `seed`, generated in eval mode (running batch-norm statistics)
    /// by the moving average of G when the run kept one; `classLabel` picks the class of a conditional model.
    /// `truncation` ψ redraws every latent component outside [−ψ, ψ] (BigGAN's truncation trick: fewer odd
    /// images, less variety).
    public func sample(count: Int, seed: UInt64, classLabel: Int? = nil, truncation: Float? = nil, batchSize: Int = 256) -> [RGBImage] {
        let images = sampleTensors(count: count, seed: seed, classLabel: classLabel, truncation: truncation, batchSize: batchSize).images
        return (0..<count).map { RGBImage(tensor: images.data + $0 * 3072) }
    }

    /// The latents [count, latentDim] and G's raw outputs [count, 3, 32, 32] in [−1, 1] behind `sample`.
    public func sampleTensors(count: Int, seed: UInt64, classLabel: Int? = nil, truncation: Float? = nil,
                              batchSize: Int = 256) -> (latents: Tensor, images: Tensor) {
        precondition(classLabel == nil || config.model.isConditional, "a class label for a model that is not conditional")
        var rng = RandomGenerator(seed: seed)
        let d = config.model.latentDim
        let latents = Tensor(shape: [count, d]), images = Tensor(shape: [count, 3, 32, 32])
        var done = 0
        while done < count {
            let n = min(batchSize, count - done)
            let z = Tensor(shape: [n, d])
            Sampler.drawLatents(z, &rng, truncation: truncation)
            let x = generate(z, classes: Array(repeating: classLabel ?? 0, count: n))
            (latents.data + done * d).update(from: z.data, count: n * d)
            (images.data + done * 3072).update(from: x.data, count: n * 3072)
            done += n
        }
        return (latents, images)
    }

    /// Standard normal latents; with `truncation` ψ, components outside [−ψ, ψ] are redrawn until inside.
    public static func drawLatents(_ z: Tensor, _ rng: inout RandomGenerator, truncation: Float?) {
        rng.fillNormal(z)
        guard let psi = truncation else { return }
        precondition(psi > 0, "truncation must be positive")
        let p = z.data
        var one: Float = 0
        for i in 0..<z.count where abs(p[i]) > psi {
            repeat { rng.fillNormal(&one, count: 1) } while abs(one) > psi
            p[i] = one
        }
    }

    /// `rows` walks of `steps` images each (row-major): spherical interpolation between two latents drawn
    /// with `seed` — a generator that learned a smooth map changes the image gradually, one that memorised
    /// jumps between a few training images.
    public func latentWalk(rows: Int, steps: Int, seed: UInt64, classLabel: Int? = nil, truncation: Float? = nil) -> [RGBImage] {
        var rng = RandomGenerator(seed: seed)
        let d = config.model.latentDim
        let ends = Tensor(shape: [2 * rows, d])
        Sampler.drawLatents(ends, &rng, truncation: truncation)
        let z = Tensor(shape: [rows * steps, d])
        for r in 0..<rows {
            let a = ends.data + 2 * r * d, b = ends.data + (2 * r + 1) * d
            for s in 0..<steps {
                Sampler.slerp(a, b, d, t: steps == 1 ? 0 : Float(s) / Float(steps - 1), into: z.data + (r * steps + s) * d)
            }
        }
        let x = generate(z, classes: Array(repeating: classLabel ?? 0, count: rows * steps))
        return (0..<(rows * steps)).map { RGBImage(tensor: x.data + $0 * 3072) }
    }

    /// For a conditional model: one row per class c, a fixed latent walked from class c to class c + 1 (the
    /// last to the first) in `steps` by mixing the two classes' conditioning.
    public func classWalk(steps: Int, seed: UInt64, truncation: Float? = nil) -> [RGBImage] {
        precondition(config.model.isConditional, "a class walk needs a conditional model")
        let K = config.model.classes, d = config.model.latentDim
        var rng = RandomGenerator(seed: seed)
        let row = Tensor(shape: [K, d])
        Sampler.drawLatents(row, &rng, truncation: truncation)
        let z = Tensor(shape: [K * steps, d])
        var from: [Int] = [], blend: [(label: Int, weight: Float)] = []
        for c in 0..<K {
            for s in 0..<steps {
                (z.data + (c * steps + s) * d).update(from: row.data + c * d, count: d)
                from.append(c)
                blend.append(((c + 1) % K, steps == 1 ? 0 : Float(s) / Float(steps - 1)))
            }
        }
        gan.labels?.blend = blend
        defer { gan.labels?.blend = nil }
        let x = generate(z, classes: from)
        return (0..<(K * steps)).map { RGBImage(tensor: x.data + $0 * 3072) }
    }

    /// G (or its moving average) in eval mode on `z`, all at once (eval mode treats images independently).
    private func generate(_ z: Tensor, classes: [Int]) -> Tensor {
        gan.sample(z, classes: config.model.isConditional ? classes : nil, generator: rawGenerator ? gan.generator : nil)
    }

    /// slerp(a, b; t) = sin((1−t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, Ω the angle between a and b (linear when
    /// they are nearly parallel).
    public static func slerp(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int, t: Float, into out: UnsafeMutablePointer<Float>) {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for i in 0..<d { ab += Double(a[i]) * Double(b[i]); aa += Double(a[i]) * Double(a[i]); bb += Double(b[i]) * Double(b[i]) }
        let omega = acos(max(-1, min(1, ab / max((aa * bb).squareRoot(), 1e-30))))
        let so = sin(omega), t = Double(t)
        let (wa, wb) = so < 1e-6 ? (1 - t, t) : (sin((1 - t) * omega) / so, sin(t * omega) / so)
        for i in 0..<d { out[i] = Float(wa * Double(a[i]) + wb * Double(b[i])) }
    }
}
