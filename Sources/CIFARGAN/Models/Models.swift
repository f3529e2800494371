import GANCore

/// The shape of the generator and discriminator. Defaults are the original system's models
/// (generator 738,307 parameters, discriminator 262,209); wider models, the SNGAN residual
/// architectures, spectral normalisation and class conditioning are options.
///
/// ```swift
/// var rng = RandomGenerator(seed: 1)
/// let g = ModelConfig().makeGenerator(rng: &rng)        // z [N, 100] → images [N, 3, 32, 32]
/// let d = ModelConfig().makeDiscriminator(rng: &rng)    // images → logits [N, 1]
/// ```
/// The pair of networks a model config builds.
public enum Architecture: String, ConfigChoice {
    /// The original system's convolutional pair.
    case dcgan
    /// SNGAN's "standard CNN": G's channels halve from `generatorWidth` at 4×4 to an eighth of it at 32×32,
    /// D's double from `discriminatorWidth` to eight times it.
    case cnn
    /// SNGAN's CIFAR-10 residual pair: three upsampling blocks in G, four blocks in D.
    case resnet
}

/// How G doubles its resolution (dcgan and cnn architectures).
public enum Upsampling: String, ConfigChoice {
    /// 4×4, stride-2 transposed convolutions, as published.
    case transposed
    /// Nearest-neighbour 2× upsampling then a 3×3 convolution — Odena et al. 2016's cure for the checkerboard
    /// of uneven kernel overlap; 2.25× G's FLOPs.
    case nearest
}

public struct ModelConfig: DefaultedConfig, Equatable, Sendable {
    public var architecture: Architecture = .dcgan
    /// How G doubles its resolution in the dcgan and cnn architectures.
    public var upsampling: Upsampling = .transposed
    /// Spectral normalisation of every convolution and linear layer of the discriminator.
    public var spectralNorm = false
    /// Number of classes of a class-conditional model (conditional batch norm in G, projection in D);
    /// 0 for a model of one class or of unlabelled images. Set by `target: "conditional"`.
    public var classes = 0
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

    public var isConditional: Bool { classes > 0 }

    public func validate() throws {
        guard architecture != .cnn || (generatorWidth >= 8 && generatorWidth % 8 == 0) else {
            throw ConfigError("generator_width of the cnn architecture must be a multiple of 8 (its channels halve three times), got \(generatorWidth)")
        }
        guard classes == 0 || classes >= 2 else { throw ConfigError("classes must be 0 (not conditional) or at least 2, got \(classes)") }
        guard latentDim >= 1 else { throw ConfigError("latent_dim must be at least 1, got \(latentDim)") }
        guard generatorWidth >= 1 else { throw ConfigError("generator_width must be at least 1, got \(generatorWidth)") }
        guard discriminatorWidth >= 1 else { throw ConfigError("discriminator_width must be at least 1, got \(discriminatorWidth)") }
        guard dropout >= 0 && dropout < 1 else { throw ConfigError("dropout must be in [0, 1), got \(dropout)") }
        guard leakySlope >= 0 && leakySlope < 1 else { throw ConfigError("leaky_slope must be in [0, 1), got \(leakySlope)") }
    }

    /// The generator; `labels` is required for a conditional model (its batch norms read the labels).
    public func makeGenerator(rng: inout RandomGenerator, labels: ClassLabels? = nil) -> Sequential {
        precondition(!isConditional || labels != nil, "a conditional generator needs its ClassLabels")
        let norm: (Int) -> Layer = { c in
            if let labels, self.isConditional { return ConditionalBatchNorm(numFeatures: c, labels: labels) }
            return BatchNorm2d(numFeatures: c)
        }
        switch architecture {
        case .resnet: return makeResNetGenerator(&rng, norm)
        case .cnn: return makeCNNGenerator(&rng, norm)
        case .dcgan: return makeDCGANGenerator(&rng, norm)
        }
    }

    /// The discriminator; `labels` is required for a conditional model (its projection head reads them).
    public func makeDiscriminator(rng: inout RandomGenerator, labels: ClassLabels? = nil) -> Sequential {
        precondition(!isConditional || labels != nil, "a conditional discriminator needs its ClassLabels")
        let sn = spectralNorm
        func weighted(_ layer: WeightedLayer, _ rng: inout RandomGenerator) -> Layer {
            sn ? SpectralNorm(layer, rng: &rng) : layer
        }
        func head(_ features: Int, _ rng: inout RandomGenerator) -> Layer {
            let linear = weighted(Linear(inFeatures: features, outFeatures: 1, rng: &rng), &rng)
            guard let labels, isConditional else { return linear }
            return ProjectionHead(linear: linear, features: features, labels: labels, rng: &rng)
        }
        switch architecture {
        case .resnet: return makeResNetDiscriminator(&rng, weighted, head)
        case .cnn: return makeCNNDiscriminator(&rng, weighted, head)
        case .dcgan: return makeDCGANDiscriminator(&rng, weighted, head)
        }
    }

    /// G's 2× step from `cin` to `cout` channels: ConvT(4, 2, 1), or Up2 → Conv(3, 1, 1) with `upsampling: "nearest"`.
    private func upsample(_ cin: Int, _ cout: Int, _ rng: inout RandomGenerator) -> [Layer] {
        if upsampling == .nearest {
            return [Upsample2x(), Conv2d(inChannels: cin, outChannels: cout, kernelSize: 3, stride: 1, padding: 1, rng: &rng)]
        }
        return [ConvTranspose2d(inChannels: cin, outChannels: cout, kernelSize: 4, stride: 2, padding: 1, rng: &rng)]
    }

    /// Linear → Unflatten(W,4,4) → BN → LReLU → [ConvT(4,2,1) → BN → LReLU]×2 → ConvT(W→3) → Tanh,
    /// indexed like the equivalent `nn.Sequential` (`tools/models.py`).
    private func makeDCGANGenerator(_ rng: inout RandomGenerator, _ norm: (Int) -> Layer) -> Sequential {
        let w = generatorWidth
        var layers: [Layer] = [Linear(inFeatures: latentDim, outFeatures: w * 16, rng: &rng), Reshape([w, 4, 4])]
        for _ in 0..<2 {
            layers += [norm(w), LeakyReLU(leakySlope, inPlace: true)]
            layers += upsample(w, w, &rng)
        }
        layers += [norm(w), LeakyReLU(leakySlope, inPlace: true)]
        layers += upsample(w, 3, &rng)
        layers.append(Tanh())
        return Sequential(layers)
    }

    /// SNGAN's standard CNN generator (Miyato et al. 2018, table 3a): Linear(z → W·4·4) → BN → ReLU →
    /// 3 × [2× step (W → W/2 → W/4 → W/8) → BN → ReLU] → Conv(W/8 → 3, 3, 1, 1) → Tanh.
    private func makeCNNGenerator(_ rng: inout RandomGenerator, _ norm: (Int) -> Layer) -> Sequential {
        var c = generatorWidth
        var layers: [Layer] = [Linear(inFeatures: latentDim, outFeatures: c * 16, rng: &rng), Reshape([c, 4, 4]),
                               norm(c), ReLU(inPlace: true)]
        for _ in 0..<3 {
            layers += upsample(c, c / 2, &rng)
            c /= 2
            layers += [norm(c), ReLU(inPlace: true)]
        }
        layers += [Conv2d(inChannels: c, outChannels: 3, kernelSize: 3, stride: 1, padding: 1, rng: &rng), Tanh()]
        return Sequential(layers)
    }

    /// SNGAN's standard CNN discriminator (table 3b), W = `discriminatorWidth` (64 published):
    /// [Conv3(s1) → LReLU → Conv4(s2) → LReLU] at W, 2W, 4W (32→16→8→4) → Conv3(4W → 8W) → LReLU →
    /// Flatten → Linear(8W·16 → 1). The published slope is 0.1 (`leakySlope`, set by the preset).
    private func makeCNNDiscriminator(_ rng: inout RandomGenerator, _ weighted: (WeightedLayer, inout RandomGenerator) -> Layer,
                                      _ head: (Int, inout RandomGenerator) -> Layer) -> Sequential {
        let w = discriminatorWidth
        let convs = [(3, w, 3, 1), (w, w, 4, 2), (w, 2 * w, 3, 1), (2 * w, 2 * w, 4, 2),
                     (2 * w, 4 * w, 3, 1), (4 * w, 4 * w, 4, 2), (4 * w, 8 * w, 3, 1)]
        var layers: [Layer] = []
        for (i, o, k, s) in convs {
            layers.append(weighted(Conv2d(inChannels: i, outChannels: o, kernelSize: k, stride: s, padding: 1, rng: &rng), &rng))
            layers.append(LeakyReLU(leakySlope, inPlace: true))
        }
        layers += [Flatten(8 * w * 16), head(8 * w * 16, &rng)]
        return Sequential(layers)
    }

    /// Conv(3→W, 3, 1, 1) → LReLU → Conv(W→W, s2) → LReLU → Conv(W→2W, s2) → LReLU → Conv(2W→2W, s2)
    /// → LReLU → Flatten → Dropout → Linear(2W·16 → 1), a logit.
    private func makeDCGANDiscriminator(_ rng: inout RandomGenerator, _ weighted: (WeightedLayer, inout RandomGenerator) -> Layer,
                                        _ head: (Int, inout RandomGenerator) -> Layer) -> Sequential {
        let w = discriminatorWidth
        let dropoutSeed = rng.next()
        return Sequential([
            weighted(Conv2d(inChannels: 3, outChannels: w, kernelSize: 3, stride: 1, padding: 1, rng: &rng), &rng),
            LeakyReLU(leakySlope, inPlace: true),
            weighted(Conv2d(inChannels: w, outChannels: w, kernelSize: 3, stride: 2, padding: 1, rng: &rng), &rng),
            LeakyReLU(leakySlope, inPlace: true),
            weighted(Conv2d(inChannels: w, outChannels: 2 * w, kernelSize: 3, stride: 2, padding: 1, rng: &rng), &rng),
            LeakyReLU(leakySlope, inPlace: true),
            weighted(Conv2d(inChannels: 2 * w, outChannels: 2 * w, kernelSize: 3, stride: 2, padding: 1, rng: &rng), &rng),
            LeakyReLU(leakySlope, inPlace: true),
            Flatten(2 * w * 16),
            Dropout(dropout, seed: dropoutSeed),
            head(2 * w * 16, &rng),
        ])
    }

    /// SNGAN's CIFAR-10 generator: Linear(z → W·4·4) → 3 × [BN → ReLU → Up2 → Conv3 → BN → ReLU → Conv3,
    /// shortcut Up2 → Conv1] (4→8→16→32) → BN → ReLU → Conv3(W→3) → Tanh.
    private func makeResNetGenerator(_ rng: inout RandomGenerator, _ norm: (Int) -> Layer) -> Sequential {
        let w = generatorWidth
        var layers: [Layer] = [Linear(inFeatures: latentDim, outFeatures: w * 16, rng: &rng), Reshape([w, 4, 4])]
        for _ in 0..<3 {
            let main = Sequential([
                norm(w), ReLU(inPlace: true), Upsample2x(),
                Conv2d(inChannels: w, outChannels: w, kernelSize: 3, stride: 1, padding: 1, rng: &rng),
                norm(w), ReLU(inPlace: true),
                Conv2d(inChannels: w, outChannels: w, kernelSize: 3, stride: 1, padding: 1, rng: &rng),
            ])
            let shortcut = Sequential([Upsample2x(), Conv2d(inChannels: w, outChannels: w, kernelSize: 1, rng: &rng)])
            layers.append(ResidualBlock(main: main, shortcut: shortcut, finalReLU: false))
        }
        layers += [BatchNorm2d(numFeatures: w), ReLU(inPlace: true),
                   Conv2d(inChannels: w, outChannels: 3, kernelSize: 3, stride: 1, padding: 1, rng: &rng), Tanh()]
        return Sequential(layers)
    }

    /// SNGAN's CIFAR-10 discriminator: an optimised first block (Conv3 → ReLU → Conv3 → AvgPool, shortcut
    /// AvgPool → Conv1), a downsampling block, two plain blocks (pre-activation: ReLU → Conv3 → ReLU → Conv3),
    /// then ReLU → global sum pool → Linear(W → 1). A block's first ReLU is not in place: the shortcut reads x.
    private func makeResNetDiscriminator(_ rng: inout RandomGenerator, _ weighted: (WeightedLayer, inout RandomGenerator) -> Layer,
                                         _ head: (Int, inout RandomGenerator) -> Layer) -> Sequential {
        let w = discriminatorWidth
        func conv(_ i: Int, _ o: Int, _ k: Int, _ rng: inout RandomGenerator) -> Layer {
            weighted(Conv2d(inChannels: i, outChannels: o, kernelSize: k, stride: 1, padding: k / 2, rng: &rng), &rng)
        }
        var layers: [Layer] = []
        layers.append(ResidualBlock(
            main: Sequential([conv(3, w, 3, &rng), ReLU(inPlace: true), conv(w, w, 3, &rng), AvgPool2x2()]),
            shortcut: Sequential([AvgPool2x2(), conv(3, w, 1, &rng)]), finalReLU: false))
        layers.append(ResidualBlock(
            main: Sequential([ReLU(), conv(w, w, 3, &rng), ReLU(inPlace: true), conv(w, w, 3, &rng), AvgPool2x2()]),
            shortcut: Sequential([conv(w, w, 1, &rng), AvgPool2x2()]), finalReLU: false))
        for _ in 0..<2 {
            layers.append(ResidualBlock(
                main: Sequential([ReLU(), conv(w, w, 3, &rng), ReLU(inPlace: true), conv(w, w, 3, &rng)]),
                shortcut: nil, finalReLU: false))
        }
        layers += [ReLU(inPlace: true), GlobalSumPool2d(), head(w, &rng)]
        return Sequential(layers)
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

    /// Forward FLOPs of D's convolutions and linear layers per image ("dcgan" and "cnn"; 0 for "resnet").
    public var discriminatorForwardFLOPs: Double {
        let w = Double(discriminatorWidth)
        switch architecture {
        case .dcgan: return 2 * (w * 27 * 1024 + w * w * 9 * 256 + 2 * w * w * 9 * 64 + 4 * w * w * 9 * 16 + 2 * w * 16)
        case .cnn:
            return 2 * (w * 27 * 1024 + w * w * 16 * 256 + 2 * w * w * 9 * 256 + 4 * w * w * 16 * 64
                        + 8 * w * w * 9 * 64 + 16 * w * w * 16 * 16 + 32 * w * w * 9 * 16 + 8 * w * 16)
        case .resnet: return 0
        }
    }

    /// Forward FLOPs of G's convolutions and linear layer per image ("dcgan" and "cnn"; 0 for "resnet").
    public var generatorForwardFLOPs: Double {
        // A 2× step from cin to cout channels onto an H×W output: 4 taps per output for a 4×4, stride-2
        // transposed convolution, 9 for nearest upsampling and a 3×3 convolution.
        let taps = upsampling == .nearest ? 9.0 : 4.0
        func step(_ cin: Double, _ cout: Double, _ outPixels: Double) -> Double { cin * cout * taps * outPixels }
        let w = Double(generatorWidth), z = Double(latentDim)
        switch architecture {
        case .dcgan: return 2 * (z * w * 16 + step(w, w, 64) + step(w, w, 256) + step(w, 3, 1024))
        case .cnn: return 2 * (z * w * 16 + step(w, w / 2, 64) + step(w / 2, w / 4, 256) + step(w / 4, w / 8, 1024) + w / 8 * 3 * 9 * 1024)
        case .resnet: return 0
        }
    }
}

public struct ConfigError: UserFacingError {
    public var exitCode: Int32 { 2 }
    public let description: String
    public init(_ description: String) { self.description = description }
}


