import GANCore

/// What one training iteration measured.
public struct IterationStats: Sendable {
    public var lossD = 0.0, lossG = 0.0
    /// Mean σ(D(x)) on the real batch and σ(D(G(z))) on the generated batch of the D step.
    public var dReal = 0.0, dFake = 0.0
    /// Share of real images D scored above 0.5, and of generated images below 0.5.
    public var accuracyReal = 0.0, accuracyFake = 0.0
    public var isFinite: Bool { lossD.isFinite && lossG.isFinite }
}

/// A generator, a discriminator and their optimizers, with the original system's iteration:
/// a D step on a real and a generated batch with smoothed targets, then a G step on a fresh latent
/// batch with target 1 (the non-saturating loss), during which D's weight gradients are not computed.
///
/// ```swift
/// let gan = GAN(model: ModelConfig(), optimizer: OptimizerConfig(), seed: 1)
/// let stats = gan.iteration(real: x, latentForD: z1, latentForG: z2, realTargets: t1, fakeTargets: t0)
/// ```
public final class GAN {
    public let model: ModelConfig
    public let generator: Sequential
    public let discriminator: Sequential
    public let optimizerG: Adam
    public let optimizerD: Adam
    private let lossD = BCEWithLogitsLoss(), lossG = BCEWithLogitsLoss()
    private var ones: Tensor?
    private var noisyReal: Tensor?, noisyFake: Tensor?

    public init(model: ModelConfig, optimizer: OptimizerConfig, seed: UInt64) {
        self.model = model
        var rng = RandomGenerator(seed: seed)
        generator = model.makeGenerator(rng: &rng)
        discriminator = model.makeDiscriminator(rng: &rng)
        generator.name = "G"; discriminator.name = "D"
        optimizerG = Adam(parameters: generator.parameters, lr: optimizer.generatorLR,
                          betas: (optimizer.beta1, optimizer.beta2))
        optimizerD = Adam(parameters: discriminator.parameters, lr: optimizer.discriminatorLR,
                          betas: (optimizer.beta1, optimizer.beta2))
    }

    /// The discriminator's dropout layers, whose random streams a checkpoint saves.
    public var dropoutLayers: [Dropout] { discriminator.layers.compactMap { $0 as? Dropout } }

    /// One D step then one G step. `instanceNoise` (σ, with its generator) is added to every D input.
    @discardableResult
    public func iteration(real: Tensor, latentForD: Tensor, latentForG: Tensor,
                          realTargets: Tensor, fakeTargets: Tensor,
                          instanceNoise: (std: Float, rng: UnsafeMutablePointer<RandomGenerator>)? = nil) -> IterationStats {
        var stats = IterationStats()
        let N = real.shape[0]

        // D step: gradients of the real and the fake batch accumulate, then one Adam step.
        optimizerD.zeroGrad()
        let realIn = addNoise(real, &noisyReal, instanceNoise)
        let realLogits = discriminator.forward(realIn, training: true)
        let lossReal = lossD.forward(realLogits, realTargets)
        stats.dReal = meanSigmoid(realLogits)
        stats.accuracyReal = share(realLogits) { $0 > 0 }
        discriminator.backward(lossD.backward(), weightGradients: true, inputGradient: false)

        let fake = generator.forward(latentForD, training: true)
        let fakeIn = addNoise(fake, &noisyFake, instanceNoise)
        let fakeLogits = discriminator.forward(fakeIn, training: true)
        let lossFake = lossD.forward(fakeLogits, fakeTargets)
        stats.dFake = meanSigmoid(fakeLogits)
        stats.accuracyFake = share(fakeLogits) { $0 < 0 }
        discriminator.backward(lossD.backward(), weightGradients: true, inputGradient: false)
        optimizerD.step()
        stats.lossD = lossReal + lossFake

        // G step: the gradient flows through D (input gradients only) into G.
        optimizerG.zeroGrad()
        let fake2 = generator.forward(latentForG, training: true)
        let fake2In = addNoise(fake2, &noisyFake, instanceNoise)
        let logits = discriminator.forward(fake2In, training: true)
        let target = Tensor.reuse(ones, shape: [N, 1]); ones = target; target.fill(1)
        stats.lossG = lossG.forward(logits, target)
        if let dFake = discriminator.backward(lossG.backward(), weightGradients: false, inputGradient: true) {
            generator.backward(dFake, weightGradients: true, inputGradient: false)
        }
        optimizerG.step()
        return stats
    }

    private func addNoise(_ x: Tensor, _ cache: inout Tensor?,
                          _ noise: (std: Float, rng: UnsafeMutablePointer<RandomGenerator>)?) -> Tensor {
        guard let noise, noise.std > 0 else { return x }
        let y = Tensor.reuse(cache, shape: x.shape); cache = y
        noise.rng.pointee.fillNormal(y, std: noise.std)
        y.add(x)
        return y
    }

    private func meanSigmoid(_ logits: Tensor) -> Double {
        var s = 0.0
        for i in 0..<logits.count { s += Double(sigmoid(logits[i])) }
        return s / Double(logits.count)
    }

    private func share(_ logits: Tensor, _ pred: (Float) -> Bool) -> Double {
        var c = 0
        for i in 0..<logits.count where pred(logits[i]) { c += 1 }
        return Double(c) / Double(logits.count)
    }
}

/// Adam settings of the two players.
public struct OptimizerConfig: Codable, Equatable, Sendable {
    public var generatorLR: Float = 1e-4
    public var discriminatorLR: Float = 2e-4
    public var beta1: Float = 0.5
    public var beta2: Float = 0.999
    public init() {}

    // Spelled so that JSON's snake_case conversion maps them to generator_lr / discriminator_lr both ways.
    enum CodingKeys: String, CodingKey {
        case generatorLR = "generatorLr", discriminatorLR = "discriminatorLr", beta1, beta2
    }

    public func validate() throws {
        guard generatorLR > 0, generatorLR.isFinite else { throw ConfigError("generator_lr must be positive, got \(generatorLR)") }
        guard discriminatorLR > 0, discriminatorLR.isFinite else { throw ConfigError("discriminator_lr must be positive, got \(discriminatorLR)") }
        guard beta1 >= 0 && beta1 < 1 else { throw ConfigError("beta1 must be in [0, 1), got \(beta1)") }
        guard beta2 >= 0 && beta2 < 1 else { throw ConfigError("beta2 must be in [0, 1), got \(beta2)") }
    }
}

/// Missing fields in a config file take their defaults.
extension OptimizerConfig {
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        generatorLR = try c.decodeIfPresent(Float.self, forKey: .generatorLR) ?? generatorLR
        discriminatorLR = try c.decodeIfPresent(Float.self, forKey: .discriminatorLR) ?? discriminatorLR
        beta1 = try c.decodeIfPresent(Float.self, forKey: .beta1) ?? beta1
        beta2 = try c.decodeIfPresent(Float.self, forKey: .beta2) ?? beta2
    }
}

