import GANCore

/// The shape of the generator and discriminator. Defaults are the original system's models
/// (generator 738,307 parameters, discriminator 262,209); wider models are one option away.
///
/// ```swift
/// var rng = RandomGenerator(seed: 1)
/// let g = ModelConfig().makeGenerator(rng: &rng)        // z [N, 100] → images [N, 3, 32, 32]
/// let d = ModelConfig().makeDiscriminator(rng: &rng)    // images → logits [N, 1]
/// ```
public struct ModelConfig: Codable, Equatable, Sendable {
    /// Length of the latent vector z ~ N(0, 1).
    public var latentDim = 100
    /// Channels of every generator feature map (4×4, 8×8, 16×16).
    public var generatorWidth = 128
    /// Channels of the discriminator's first two convolutions; the last two have twice as many.
    public var discriminatorWidth = 64
    /// Dropout probability before the discriminator's final linear layer.
    public var dropout: Float = 0.4
    /// Negative slope of every LeakyReLU.
    public var leakySlope: Float = 0.2

    public init() {}

    public func validate() throws {
        guard latentDim >= 1 else { throw ConfigError("latent_dim must be at least 1, got \(latentDim)") }
        guard generatorWidth >= 1 else { throw ConfigError("generator_width must be at least 1, got \(generatorWidth)") }
        guard discriminatorWidth >= 1 else { throw ConfigError("discriminator_width must be at least 1, got \(discriminatorWidth)") }
        guard dropout >= 0 && dropout < 1 else { throw ConfigError("dropout must be in [0, 1), got \(dropout)") }
        guard leakySlope >= 0 && leakySlope < 1 else { throw ConfigError("leaky_slope must be in [0, 1), got \(leakySlope)") }
    }

    /// Linear → Unflatten(W,4,4) → BN → LReLU → [ConvT(4,2,1) → BN → LReLU]×2 → ConvT(W→3) → Tanh,
    /// indexed like the equivalent `nn.Sequential` (`tools/models.py`).
    public func makeGenerator(rng: inout RandomGenerator) -> Sequential {
        let w = generatorWidth
        return Sequential([
            Linear(inFeatures: latentDim, outFeatures: w * 16, rng: &rng),
            Reshape([w, 4, 4]),
            BatchNorm2d(numFeatures: w),
            LeakyReLU(leakySlope, inPlace: true),
            ConvTranspose2d(inChannels: w, outChannels: w, kernelSize: 4, stride: 2, padding: 1, rng: &rng),
            BatchNorm2d(numFeatures: w),
            LeakyReLU(leakySlope, inPlace: true),
            ConvTranspose2d(inChannels: w, outChannels: w, kernelSize: 4, stride: 2, padding: 1, rng: &rng),
            BatchNorm2d(numFeatures: w),
            LeakyReLU(leakySlope, inPlace: true),
            ConvTranspose2d(inChannels: w, outChannels: 3, kernelSize: 4, stride: 2, padding: 1, rng: &rng),
            Tanh(),
        ])
    }

    /// Conv(3→W, 3, 1, 1) → LReLU → Conv(W→W, s2) → LReLU → Conv(W→2W, s2) → LReLU → Conv(2W→2W, s2)
    /// → LReLU → Flatten → Dropout → Linear(2W·16 → 1), a logit.
    public func makeDiscriminator(rng: inout RandomGenerator) -> Sequential {
        let w = discriminatorWidth
        let dropoutSeed = rng.next()
        return Sequential([
            Conv2d(inChannels: 3, outChannels: w, kernelSize: 3, stride: 1, padding: 1, rng: &rng),
            LeakyReLU(leakySlope, inPlace: true),
            Conv2d(inChannels: w, outChannels: w, kernelSize: 3, stride: 2, padding: 1, rng: &rng),
            LeakyReLU(leakySlope, inPlace: true),
            Conv2d(inChannels: w, outChannels: 2 * w, kernelSize: 3, stride: 2, padding: 1, rng: &rng),
            LeakyReLU(leakySlope, inPlace: true),
            Conv2d(inChannels: 2 * w, outChannels: 2 * w, kernelSize: 3, stride: 2, padding: 1, rng: &rng),
            LeakyReLU(leakySlope, inPlace: true),
            Flatten(2 * w * 16),
            Dropout(dropout, seed: dropoutSeed),
            Linear(inFeatures: 2 * w * 16, outFeatures: 1, rng: &rng),
        ])
    }

    /// Training FLOPs per real image of one iteration (conv and linear layers only, forward and backward
    /// as executed): D on real and fake with weight and input gradients (none into the image), two G
    /// forwards, a G step through D without D's weight gradients.
    public var trainFLOPsPerImage: Double {
        let d = discriminatorForwardFLOPs, g = generatorForwardFLOPs
        let dFirstConv = 2.0 * Double(discriminatorWidth * 27 * 1024)
        let gLinear = 2.0 * Double(latentDim * generatorWidth * 16)
        let dStep = 2 * (d + (2 * d - dFirstConv)) + g
        let gStep = g + d + (d - dFirstConv) + (2 * g - gLinear)
        return dStep + gStep
    }

    public var discriminatorForwardFLOPs: Double {
        let w = Double(discriminatorWidth)
        return 2 * (w * 27 * 1024 + w * w * 9 * 256 + 2 * w * w * 9 * 64 + 4 * w * w * 9 * 16 + 2 * w * 16)
    }

    public var generatorForwardFLOPs: Double {
        let w = Double(generatorWidth)
        return 2 * (Double(latentDim) * w * 16 + w * w * 16 * 16 + w * w * 16 * 64 + w * 3 * 16 * 256)
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Missing fields in a config file take their defaults.
extension ModelConfig {
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        latentDim = try c.decodeIfPresent(Int.self, forKey: .latentDim) ?? latentDim
        generatorWidth = try c.decodeIfPresent(Int.self, forKey: .generatorWidth) ?? generatorWidth
        discriminatorWidth = try c.decodeIfPresent(Int.self, forKey: .discriminatorWidth) ?? discriminatorWidth
        dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? dropout
        leakySlope = try c.decodeIfPresent(Float.self, forKey: .leakySlope) ?? leakySlope
    }
}

