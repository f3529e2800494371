/// Which neighbouring layers of a `Sequential` run as one, decided once when the model is built: the plan is
/// worked out from the layer list alone (`init`), then `apply(to:)` tells each layer its part. No layer sets
/// another's state; this file is the one place where layers learn about their neighbours. `cifar-gan bench
/// --profile` prints every model's plan beside the kernel path of each convolution.
///
/// Each fusion saves one pass over an activation-sized tensor and changes no result: the fused and unfused
/// paths are both checked against PyTorch (`KernelTests`, `FusionPlanTests`).
///
/// ```swift
/// var rng = RandomGenerator(seed: 0)
/// let d = Sequential([Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, rng: &rng), LeakyReLU(0.2, inPlace: true),
///                     Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, rng: &rng)])
/// print(d.plan)   // 0 Conv2d writes LeakyReLU(0.2) of its output (1 LeakyReLU passes it on); …
/// ```
public struct FusionPlan: Equatable, CustomStringConvertible {
    public enum Fusion: Equatable, Sendable {
        /// `producer` applies the in-place LeakyReLU at `activation` to its own output as it writes it; the
        /// activation's forward pass only records that output.
        case activationIntoProducer(producer: Int, activation: Int, slope: Float)
        /// `consumer`'s backward-data pass applies the gradient rule of the in-place LeakyReLU at `activation`
        /// (whose output is its input); the activation's backward pass passes dy through.
        case activationGradientIntoConsumer(activation: Int, consumer: Int, slope: Float)
        /// `producer`, which already writes the activation at `activation`, also applies its gradient rule to dy in its
        /// backward pass (`OutputLeakyReLUGradientFusing`); the activation's backward pass passes dy through.
        case activationGradientIntoProducer(producer: Int, activation: Int)
        /// In eval mode the transposed convolution `convolution` folds the batch norm `batchNorm` (running
        /// statistics) into its weights and bias; the batch norm passes its input through. Training mode is unfused.
        case batchNormIntoTransposedConvolution(convolution: Int, batchNorm: Int)
        /// The convolutions around a LeakyReLU fused both ways hand the activation (and its gradient) over in
        /// oneDNN's channel-blocked layout (`block` channels) whenever both run on oneDNN for the input at hand.
        case blockedHandoff(producer: Int, consumer: Int, block: Int)
        /// The same through a batch norm that writes the activation after it: producer → `normalization` →
        /// activation → consumer, the batch norm reading and writing the blocked layout (G's conv → BN → ReLU →
        /// conv). Not when the batch norm is synchronised across ranks, and not where the producer folds it (eval).
        case blockedHandoffThroughNormalization(producer: Int, normalization: Int, consumer: Int, block: Int)
    }

    public let fusions: [Fusion]

    /// Works out the fusions of `layers` (by index) without touching them.
    public init(_ layers: [Layer]) {
        var fusions: [Fusion] = []
        var activatedByProducer = Set<Int>(), gradientByConsumer = Set<Int>()
        for i in layers.indices.dropLast() {
            let layer = layers[i], next = layers[i + 1]
            // Only in-place activations: then nothing else can read the pre-activation values or dy. A ReLU is a
            // LeakyReLU of slope 0.
            if let fusing = layer as? LeakyReLUFusing, fusing.canFuseLeakyReLU, let act = next as? FusableActivation, act.inPlace {
                fusions.append(.activationIntoProducer(producer: i, activation: i + 1, slope: act.negativeSlope))
                activatedByProducer.insert(i + 1)
            }
            if let conv = layer as? ConvTranspose2d, conv.foldsBatchNorm, next is BatchNorm {
                fusions.append(.batchNormIntoTransposedConvolution(convolution: i, batchNorm: i + 1))
            }
            if let act = layer as? FusableActivation, act.inPlace, let fusing = next as? LeakyReLUGradientFusing,
               fusing.canFuseInputLeakyReLUGradient {
                fusions.append(.activationGradientIntoConsumer(activation: i, consumer: i + 1, slope: act.negativeSlope))
                gradientByConsumer.insert(i)
            }
        }
        // Where the layer after an activation cannot take its gradient, a batch norm before it can (it recomputes
        // the sign from its input).
        for i in layers.indices.dropLast() where activatedByProducer.contains(i + 1) && !gradientByConsumer.contains(i + 1) {
            if layers[i] is OutputLeakyReLUGradientFusing {
                fusions.append(.activationGradientIntoProducer(producer: i, activation: i + 1))
            }
        }
        // conv → LeakyReLU fused both ways → conv: only those two layers ever read the activation, which is what
        // makes a private layout safe.
        let block = ConvolutionKernels.oneDNNAvailable ? OneDNNConvolution.preferredChannelBlock : 0
        for i in layers.indices.dropFirst().dropLast() where block > 0 {
            guard activatedByProducer.contains(i), gradientByConsumer.contains(i),
                  FusionPlan.convolution(in: layers[i - 1]) != nil, FusionPlan.convolution(in: layers[i + 1]) != nil
            else { continue }
            fusions.append(.blockedHandoff(producer: i - 1, consumer: i + 1, block: block))
        }
        // conv → batch norm → activation (written by the batch norm; its gradient applied by either neighbour) →
        // conv: the same, through the batch norm.
        for i in layers.indices where block > 0 && i + 3 < layers.count {
            guard FusionPlan.blockedLayoutConvolution(in: layers[i]) != nil, activatedByProducer.contains(i + 2),
                  layers[i + 1] is BlockedLayoutNormalization,
                  FusionPlan.blockedLayoutConvolution(in: layers[i + 3]) != nil else { continue }
            fusions.append(.blockedHandoffThroughNormalization(producer: i, normalization: i + 1, consumer: i + 3, block: block))
        }
        self.fusions = fusions
    }

    /// Tells each layer its part. Call once, on the layers the plan was made from.
    func apply(to layers: [Layer]) {
        for fusion in fusions {
            switch fusion {
            case let .activationIntoProducer(producer, activation, slope):
                (layers[producer] as! LeakyReLUFusing).fuseLeakyReLU(negativeSlope: slope)
                let act = layers[activation] as! FusableActivation
                act.inputArrivesActivated = true
            case let .activationGradientIntoConsumer(activation, consumer, slope):
                (layers[consumer] as! LeakyReLUGradientFusing).fuseInputLeakyReLUGradient(negativeSlope: slope)
                let act = layers[activation] as! FusableActivation
                act.gradientAppliedByNeighbour = true
            case let .activationGradientIntoProducer(producer, activation):
                (layers[producer] as! OutputLeakyReLUGradientFusing).fuseOutputLeakyReLUGradient()
                let act = layers[activation] as! FusableActivation
                act.gradientAppliedByNeighbour = true
            case let .batchNormIntoTransposedConvolution(convolution, batchNorm):
                let bn = layers[batchNorm] as! BatchNorm
                (layers[convolution] as! ConvTranspose2d).foldedBatchNorm = bn
                bn.appliedByPreviousLayerInEval = true
            case let .blockedHandoff(producer, consumer, block):
                let handoff = BlockedHandoff(block: block, consumer: FusionPlan.blockedLayoutConvolution(in: layers[consumer])!)
                FusionPlan.link(layers[producer], layers[consumer], handoff)
            case let .blockedHandoffThroughNormalization(producer, normalization, consumer, block):
                let norm = layers[normalization] as! BlockedLayoutNormalization
                let handoff = BlockedHandoff(block: block, consumer: FusionPlan.blockedLayoutConvolution(in: layers[consumer])!,
                                             normalization: norm.statisticsNorm)
                FusionPlan.link(layers[producer], layers[consumer], handoff)
                norm.handoff = handoff
            }
        }
    }

    /// The convolution a layer is, or wraps (spectral norm).
    static func convolution(in layer: Layer) -> Conv2d? {
        (layer as? Conv2d) ?? ((layer as? SpectralNorm)?.inner as? Conv2d)
    }

    /// The convolution, plain or transposed, a layer is or wraps: what can take part in a blocked hand-over.
    static func blockedLayoutConvolution(in layer: Layer) -> BlockedLayoutConvolution? {
        (convolution(in: layer) as BlockedLayoutConvolution?) ?? (layer as? ConvTranspose2d)
            ?? ((layer as? SpectralNorm)?.inner as? ConvTranspose2d)
    }

    /// Joins the convolutions in (or wrapped by) `producer` and `consumer` by `handoff`.
    private static func link(_ producer: Layer, _ consumer: Layer, _ handoff: BlockedHandoff) {
        blockedLayoutConvolution(in: producer)!.outputHandoff = handoff
        blockedLayoutConvolution(in: consumer)!.inputHandoff = handoff
    }

    public var description: String {
        if fusions.isEmpty { return "no fusions" }
        return fusions.map { fusion -> String in
            switch fusion {
            case let .activationIntoProducer(p, a, slope):
                return "\(p) writes \(slope == 0 ? "ReLU" : "LeakyReLU(\(slope))") of its output (\(a) passes it on)"
            case let .activationGradientIntoConsumer(a, c, _): return "\(c)'s dx applies \(a)'s LeakyReLU gradient (\(a) passes dy on)"
            case let .activationGradientIntoProducer(p, a): return "\(p)'s backward applies \(a)'s LeakyReLU gradient (\(a) passes dy on)"
            case let .batchNormIntoTransposedConvolution(c, b): return "\(c) folds batch norm \(b) in eval mode"
            case let .blockedHandoff(p, c, block): return "\(p) → \(c) in oneDNN's \(block)-channel blocked layout when both run on oneDNN"
            case let .blockedHandoffThroughNormalization(p, n, c, block):
                return "\(p) → \(n) → \(c) in oneDNN's \(block)-channel blocked layout when both convolutions run on oneDNN"
            }
        }.joined(separator: "; ")
    }
}
