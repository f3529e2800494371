/// The class labels of the batch a conditional model is about to process, shared by its conditional
/// layers: set `labels` before each forward; each layer keeps its own copy for its backward pass.
///
/// ```swift
/// let labels = ClassLabels(classes: 10)
/// labels.labels = [3, 3, 5, 1]
/// let images = generator.forward(z, training: true)   // its ConditionalBatchNorm layers read the labels
/// ```
public final class ClassLabels {
    public let classes: Int
    public var labels: [Int] = []
    /// Inference only, for walks between classes: image n's conditioning moves from `labels[n]` towards
    /// `blend[n].label` by `blend[n].weight` (conditional batch norm mixes the two classes' γ and β linearly).
    public var blend: [(label: Int, weight: Float)]?
    public init(classes: Int) { self.classes = classes }

    func current(batch: Int, _ who: String) -> [Int] {
        precondition(labels.count == batch, "\(who): \(labels.count) labels set for a batch of \(batch)")
        return labels
    }
}

/// Class-conditional batch normalisation (de Vries et al. 2017; Miyato & Koyama 2018): batch norm
/// without its own affine transform, then a per-class scale and shift, y = x̂·γ[label] + β[label].
/// State dict, like the PyTorch twin in `tools/models.py`: `weight` [classes, C] (ones), `bias`
/// [classes, C] (zeros), and the normalisation's buffers under `bn.`.
///
/// ```swift
/// let cbn = ConditionalBatchNorm(numFeatures: 128, labels: labels)
/// let y = cbn.forward(x, training: true)   // [N, 128, H, W], labels.labels has N entries
/// ```
public final class ConditionalBatchNorm: OutputLeakyReLUGradientFusing, BlockedLayoutNormalization {
    public let numFeatures: Int
    public let labelSource: ClassLabels
    public let weight: Parameter
    public let bias: Parameter
    /// Normalisation only: its statistics and running buffers; its own weight and bias stay 1 and 0 and are not
    /// trained.
    public let norm: BatchNorm
    private var labels: [Int] = []
    private var input: Tensor?, output: Tensor?
    /// γ[label] and β[label] of each sample, [2, N, C]: the rows `NormalizationPasses` scales with.
    private var rows: Tensor?
    /// The slope of a LeakyReLU applied to the output, and whether its gradient is applied here too (`FusionPlan`).
    public private(set) var fusedLeakyReLUSlope: Float?
    private var fusedGradientSlope: Float?
    /// As `BatchNorm.handoff`: x, y and dx in oneDNN's blocked layout when the convolution before hands over in it.
    var handoff: BlockedHandoff?
    private var block = 0
    var statisticsNorm: BatchNorm { norm }

    public init(numFeatures: Int, labels: ClassLabels) {
        self.numFeatures = numFeatures; labelSource = labels
        weight = Parameter(Tensor(shape: [labels.classes, numFeatures], repeating: 1))
        bias = Parameter(Tensor(shape: [labels.classes, numFeatures]))
        norm = BatchNorm(numFeatures: numFeatures)
    }

    public var namedParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }
    public var namedBuffers: [StateEntry] {
        norm.namedBuffers.map { StateEntry(name: "bn.\($0.name)", tensor: $0.tensor, isInteger: $0.isInteger) }
    }

    public func fuseLeakyReLU(negativeSlope: Float) { fusedLeakyReLUSlope = negativeSlope }
    public func fuseOutputLeakyReLUGradient() { fusedGradientSlope = fusedLeakyReLUSlope }

    // x [N, C, S…] → y [N, C, S…] = act(x̂·γ[label] + β[label])
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C)
        labels = labelSource.current(batch: N, "ConditionalBatchNorm")
        block = handoff?.activeBlock ?? 0
        norm.computeStatistics(x, training: training, block: block)
        let table = Tensor.reuse(rows, shape: [2, N, C]); rows = table
        let gp = weight.value.data, bp = bias.value.data, rg = table.data, rb = table.data + N * C
        let blend = labelSource.blend
        precondition(blend == nil || (!training && blend!.count == N), "ConditionalBatchNorm: class blends are for inference, one per image")
        for n in 0..<N {
            let k = labels[n] * C
            let (k2, w) = blend.map { ($0[n].label * C, $0[n].weight) } ?? (k, 0)
            for c in 0..<C {
                rg[n * C + c] = (1 - w) * gp[k + c] + w * gp[k2 + c]
                rb[n * C + c] = (1 - w) * bp[k + c] + w * bp[k2 + c]
            }
        }
        let y = Tensor.reuse(output, shape: x.shape); output = y; input = x
        NormalizationPasses.forward(x: x.data, y: y.data, N: N, C: C, S: S, block: block, mean: norm.mean.data,
                                    invStd: norm.invStd.data, affine: affine(N), slope: fusedLeakyReLUSlope)
        return y
    }

    /// This batch's rows of γ and β.
    private func affine(_ N: Int) -> NormalizationPasses.Affine {
        NormalizationPasses.Affine(gamma: rows!.data, beta: rows!.data + N * numFeatures, rowStride: numFeatures)
    }

    // dγ[label] += Σ dy′·x̂, dβ[label] += Σ dy′, then dx through the normalisation with γ[label] as its scale
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("ConditionalBatchNorm.backward before forward") }
        let N = x.shape[0], C = numFeatures
        let (sumDy, sumDyXhat) = norm.gradientSums(dy, x, affine: affine(N), slope: fusedGradientSlope, block: block)
        if weightGradients {
            let gw = weight.grad.data, gb = bias.grad.data
            for n in 0..<N {
                let k = labels[n] * C
                for c in 0..<C { gw[k + c] += sumDyXhat[n * C + c]; gb[k + c] += sumDy[n * C + c] }
            }
        }
        guard inputGradient else { return nil }
        return norm.inputGradient(dy, x, affine: affine(N), slope: fusedGradientSlope, block: block,
                                  sumDy: sumDy, sumDyXhat: sumDyXhat)
    }
}

/// The projection discriminator's output (Miyato & Koyama 2018): logit = ψ(φ) + ⟨embed[label], φ⟩
/// for features φ [N, F], with ψ a linear layer to one output (possibly spectrally normalised).
/// State dict like the PyTorch twin: `linear.*` and `embed.weight` [classes, F]. With spectral norm, ψ is
/// normalised (wrap `linear` in `SpectralNorm`) but the embedding is not, unlike Miyato & Koyama, who
/// normalise it too; it starts small (std 1/√F) so the projection term does not dominate early training.
///
/// ```swift
/// let head = ProjectionHead(linear: Linear(inFeatures: 128, outFeatures: 1, rng: &rng), features: 128, labels: labels, rng: &rng)
/// let logits = head.forward(features, training: true)   // [N, 128] → [N, 1]
/// ```
public final class ProjectionHead: Layer {
    public let linear: Layer
    public let embed: Parameter
    public let labelSource: ClassLabels
    private let features: Int
    private var labels: [Int] = []
    private var input: Tensor?, output: Tensor?, inputGrad: Tensor?

    public init(linear: Layer, features: Int, labels: ClassLabels, rng: inout RandomGenerator) {
        self.linear = linear; self.features = features; labelSource = labels
        // nn.Embedding's default initialisation, N(0, 1), scaled down like a linear layer's so the
        // projection term starts no larger than ψ.
        embed = Parameter(Tensor(shape: [labels.classes, features]))
        rng.fillNormal(embed.value, std: 1 / Float(features).squareRoot())
    }

    public var namedParameters: [(String, Parameter)] {
        linear.namedParameters.map { ("linear.\($0.0)", $0.1) } + [("embed.weight", embed)]
    }
    public var namedBuffers: [StateEntry] {
        linear.namedBuffers.map { StateEntry(name: "linear.\($0.name)", tensor: $0.tensor, isInteger: $0.isInteger) }
    }

    // φ [N, F] → logits [N, 1]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == features, "ProjectionHead expects [N, \(features)], got \(x.shape)")
        let N = x.shape[0], F = features
        labels = labelSource.current(batch: N, "ProjectionHead")
        input = x
        let psi = linear.forward(x, training: training)
        let y = Tensor.reuse(output, shape: [N, 1]); output = y
        let xp = x.data, ep = embed.value.data
        for n in 0..<N {
            var s: Float = 0
            let row = xp + n * F, e = ep + labels[n] * F
            for f in 0..<F { s += row[f] * e[f] }
            y[n] = psi[n] + s
        }
        return y
    }

    // dφ = dψ-path + dy·embed[label]; dembed[label] += dy·φ
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("ProjectionHead.backward before forward") }
        let N = x.shape[0], F = features, xp = x.data, ep = embed.value.data
        if weightGradients {
            let gp = embed.grad.data
            for n in 0..<N {
                let g = dy[n], row = xp + n * F, e = gp + labels[n] * F
                for f in 0..<F { e[f] += g * row[f] }
            }
        }
        let dPsi = linear.backward(dy, weightGradients: weightGradients, inputGradient: inputGradient)
        guard inputGradient, let dPsi else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: x.shape); inputGrad = dx
        let dp = dx.data, lp = dPsi.data
        for n in 0..<N {
            let g = dy[n], e = ep + labels[n] * F
            for f in 0..<F { dp[n * F + f] = lp[n * F + f] + g * e[f] }
        }
        return dx
    }
}
