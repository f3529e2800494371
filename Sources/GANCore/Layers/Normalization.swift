/// A batch norm that reads and writes oneDNN's blocked layout between two convolutions
/// (`.blockedHandoffThroughNormalization`): `BatchNorm`, and `ConditionalBatchNorm` through its inner one.
protocol BlockedLayoutNormalization: AnyObject {
    /// Set by the model's `FusionPlan`; the convolution before decides the layout per forward pass.
    var handoff: BlockedHandoff? { get set }
    /// The batch norm whose statistics this layer normalises with (itself, or a conditional one's inner).
    var statisticsNorm: BatchNorm { get }
}

/// Batch normalisation over the channel axis (axis 1) of [N, C] or [N, C, …] inputs:
/// `torch.nn.BatchNorm1d` / `BatchNorm2d` semantics.
///
/// Training mode normalises with the biased batch variance and updates the running statistics with
/// the unbiased one (momentum 0.1 by default); eval mode uses the running statistics. In a data-parallel job
/// (`crossReplica`, set by `DataParallel`) the batch is every rank's rows together: PyTorch's `SyncBatchNorm`.
///
/// ```swift
/// let bn = BatchNorm(numFeatures: 128)
/// let y = bn.forward(x, training: true)   // [N, 128, 4, 4] → same shape
/// ```
public final class BatchNorm: OutputLeakyReLUGradientFusing, BlockedLayoutNormalization {
    public let numFeatures: Int
    public let eps: Float
    public var momentum: Float
    /// A cumulative average of every batch's statistics instead of a moving one (PyTorch's
    /// `momentum=None`), for re-estimating the statistics of a finished model.
    public var cumulative = false
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Tensor
    public let runningVar: Tensor
    /// Stored as int64 in PyTorch's state dict; a float holds every count below 2²⁴ exactly.
    public let numBatchesTracked = Tensor(shape: [])

    private var input: Tensor?
    private var output: Tensor?
    private var inputGrad: Tensor?
    private var wasTraining = true
    /// Set by the model's `FusionPlan` (`.batchNormIntoTransposedConvolution`): in eval mode the transposed
    /// convolution before this layer has already applied it (folded into its weights), so this layer passes its
    /// input through.
    var appliedByPreviousLayerInEval = false
    private var passedThrough = false
    /// The slope of a LeakyReLU applied to the output (set by `Sequential`, see `LeakyReLUFusing`).
    public private(set) var fusedLeakyReLUSlope: Float?
    /// The ranks whose rows make up the batch (synchronised batch norm); nil: this process's batch alone.
    public var crossReplica: Communicator?
    /// Per-channel sums exchanged with the other ranks, [2C].
    private let replicaSums: UnsafeMutablePointer<Double>
    /// μ and 1/σ of each channel from the last forward pass (`computeStatistics`).
    let mean: Tensor, invStd: Tensor
    /// The per-channel a and b of `inputGradient`, [2C].
    private let centreTerms: Tensor
    private var perSampleSums: Tensor?
    /// The slope of the fused activation whose gradient this layer applies to dy (`fuseOutputLeakyReLUGradient`).
    private(set) var fusedGradientSlope: Float?
    /// Set by the model's `FusionPlan` between two convolutions (`.blockedHandoffThroughNormalization`): when the
    /// convolution before hands its output over in oneDNN's blocked layout, this layer reads x and writes y (and dx)
    /// in that layout too.
    var handoff: BlockedHandoff?
    /// The layout of the last forward pass's x and y (0: NCHW, else the channel block).
    private var block = 0
    var statisticsNorm: BatchNorm { self }

    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        self.numFeatures = numFeatures; self.eps = eps; self.momentum = momentum
        weight = Parameter(Tensor(shape: [numFeatures], repeating: 1))
        bias = Parameter(Tensor(shape: [numFeatures]))
        runningMean = Tensor(shape: [numFeatures])
        runningVar = Tensor(shape: [numFeatures], repeating: 1)
        mean = Tensor(shape: [numFeatures]); invStd = Tensor(shape: [numFeatures])
        centreTerms = Tensor(shape: [2 * numFeatures])
        replicaSums = .allocate(capacity: 2 * numFeatures)
    }

    deinit { replicaSums.deallocate() }

    public var namedParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }
    public var namedBuffers: [StateEntry] {
        [StateEntry(name: "running_mean", tensor: runningMean), StateEntry(name: "running_var", tensor: runningVar),
         StateEntry(name: "num_batches_tracked", tensor: numBatchesTracked, isInteger: true)]
    }

    // x [N, C, S…] → y [N, C, S…]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        passedThrough = !training && appliedByPreviousLayerInEval
        if passedThrough { wasTraining = false; return x }
        block = handoff?.activeBlock ?? 0
        computeStatistics(x, training: training, block: block)
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C)
        let y = Tensor.reuse(output, shape: x.shape)
        output = y; input = x
        NormalizationPasses.forward(x: x.data, y: y.data, N: N, C: C, S: S, block: block, mean: mean.data,
                                    invStd: invStd.data, affine: ownAffine, slope: fusedLeakyReLUSlope)
        return y
    }

    /// This layer's own γ and β, one per channel.
    private var ownAffine: NormalizationPasses.Affine {
        NormalizationPasses.Affine(gamma: weight.value.data, beta: bias.value.data, rowStride: 0)
    }

    /// μ and 1/σ of each channel into `mean` and `invStd`: the batch's (moving the running statistics, and
    /// counting the batch) in training mode, synchronised across `crossReplica`'s ranks; the running ones in eval
    /// mode. x is NCHW, or in oneDNN's layout with channel block `block` (never synchronised). `ConditionalBatchNorm`
    /// normalises with these too.
    func computeStatistics(_ x: Tensor, training: Bool, block: Int = 0) {
        precondition(x.shape.count >= 2 && x.shape[1] == numFeatures, "BatchNorm expects [N, \(numFeatures), …], got \(x.shape)")
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C), M = N * S
        precondition(!training || M > 1, "BatchNorm in training mode needs more than one value per channel, got input \(x.shape)")
        let xp = x.data, mp = mean.data, ip = invStd.data, rm = runningMean.data, rv = runningVar.data
        let eps = self.eps, mom = cumulative ? 1 / (numBatchesTracked[0] + 1) : momentum
        if training, let world = crossReplica {
            precondition(block == 0, "BatchNorm: a synchronised batch norm takes NCHW input")
            synchroniseStatistics(x, world, momentum: mom)
        } else if training && block > 0 {
            // Σx per channel, then Σ(x − μ)² around μ (parked in `mean` until `statistics` sets it for good).
            let sums = replicaSums
            NormalizationPasses.channelSumsBlocked(x: xp, N: N, C: C, S: S, block: block, mean: nil, into: sums)
            for c in 0..<C { mp[c] = Float(sums[c] / Double(M)) }
            NormalizationPasses.channelSumsBlocked(x: xp, N: N, C: C, S: S, block: block, mean: mp, into: sums + C)
            for c in 0..<C {
                (mp[c], ip[c]) = Self.statistics(sum: sums[c], squaredDeviations: sums[C + c], count: M, eps: eps,
                                                 momentum: mom, runningMean: rm + c, runningVar: rv + c)
            }
        } else {
            Parallel.forEachChunk(count: C) { channels, _ in
                for c in channels {
                    if training {
                        var s = 0.0, ss = 0.0
                        for n in 0..<N { s += Double(vectorSum(xp + (n * C + c) * S, S)) }
                        let m = s / Double(M)
                        for n in 0..<N { ss += Double(vectorSumOfSquaredDeviations(xp + (n * C + c) * S, S, from: Float(m))) }
                        (mp[c], ip[c]) = Self.statistics(sum: s, squaredDeviations: ss, count: M, eps: eps,
                                                         momentum: mom, runningMean: rm + c, runningVar: rv + c)
                    } else {
                        mp[c] = rm[c]
                        ip[c] = 1 / (rv[c] + eps).squareRoot()
                    }
                }
            }
        }
        if training { numBatchesTracked[0] += 1 }
        wasTraining = training
    }

    public func fuseLeakyReLU(negativeSlope: Float) { fusedLeakyReLUSlope = negativeSlope }
    public func fuseOutputLeakyReLUGradient() { fusedGradientSlope = fusedLeakyReLUSlope }

    /// μ and 1/σ of one channel from its sum and sum of squared deviations over `count` values; the running
    /// statistics move towards μ and the unbiased variance.
    @inline(__always)
    private static func statistics(sum: Double, squaredDeviations ss: Double, count M: Int, eps: Float, momentum mom: Float,
                                   runningMean rm: UnsafeMutablePointer<Float>, runningVar rv: UnsafeMutablePointer<Float>) -> (Float, Float) {
        let mu = Float(sum / Double(M))
        let istd = Float(1 / (ss / Double(M) + Double(eps)).squareRoot())
        rm.pointee = (1 - mom) * rm.pointee + mom * mu
        rv.pointee = (1 - mom) * rv.pointee + mom * Float(ss / Double(M - 1))
        return (mu, istd)
    }

    /// Synchronised batch norm's forward statistics: Σx over every rank's rows, then Σ(x − μ)² around the
    /// common μ, into `mean` and `invStd` (and the running statistics, equal on every rank).
    private func synchroniseStatistics(_ x: Tensor, _ world: Communicator, momentum mom: Float) {
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C), M = N * S * world.size
        let xp = x.data, mp = mean.data, ip = invStd.data, rm = runningMean.data, rv = runningVar.data, eps = self.eps
        let sums = replicaSums
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                var s = 0.0
                for n in 0..<N { s += Double(vectorSum(xp + (n * C + c) * S, S)) }
                sums[c] = s
            }
        }
        world.allreduceSum(sums, count: C)
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                let m = Float(sums[c] / Double(M))
                var ss = 0.0
                for n in 0..<N { ss += Double(vectorSumOfSquaredDeviations(xp + (n * C + c) * S, S, from: m)) }
                sums[C + c] = ss
            }
        }
        world.allreduceSum(sums + C, count: C)
        for c in 0..<C {
            (mp[c], ip[c]) = Self.statistics(sum: sums[c], squaredDeviations: sums[C + c], count: M, eps: eps,
                                             momentum: mom, runningMean: rm + c, runningVar: rv + c)
        }
    }

    // dy → dx = γ·istd/M·(M·dy′ − Σdy′ − x̂·Σ(dy′·x̂)) in training mode, γ·istd·dy′ in eval mode, where dy′ is dy
    // through the fused activation's gradient (`fuseOutputLeakyReLUGradient`), else dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("BatchNorm.backward before forward") }
        precondition(!passedThrough, "BatchNorm.backward after an eval-mode forward that the layer before applied; run that pass in training mode")
        let N = x.shape[0], C = numFeatures
        let (sumDy, sumDyXhat) = gradientSums(dy, x, affine: ownAffine, slope: fusedGradientSlope, block: block)
        if weightGradients {
            let gw = weight.grad.data, gb = bias.grad.data
            for c in 0..<C {
                var s: Float = 0, dot: Float = 0
                for n in 0..<N { s += sumDy[n * C + c]; dot += sumDyXhat[n * C + c] }
                gw[c] += dot; gb[c] += s
            }
        }
        return inputGradient ? self.inputGradient(dy, x, affine: ownAffine, slope: fusedGradientSlope, block: block,
                                                  sumDy: sumDy, sumDyXhat: sumDyXhat) : nil
    }

    /// Per (sample, channel): Σ dy′ and Σ dy′·x̂ over the positions, [N·C] each; dy′ is dy through the gradient of a
    /// LeakyReLU(`slope`) applied after the normalisation (nil: none).
    func gradientSums(_ dy: Tensor, _ x: Tensor, affine: NormalizationPasses.Affine, slope: Float?, block: Int)
        -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C)
        let sums = Tensor.reuse(perSampleSums, shape: [2, N * C]); perSampleSums = sums
        NormalizationPasses.gradientSums(dy: dy.data, x: x.data, N: N, C: C, S: S, block: block, mean: mean.data,
                                         invStd: invStd.data, affine: affine, slope: slope, sumDy: sums.data,
                                         sumDyXhat: sums.data + N * C)
        return (sums.data, sums.data + N * C)
    }

    /// dx from `gradientSums`' sums: the centring terms a = Σ γ·Σdy′ / M and b = Σ γ·Σdy′x̂ / M per channel,
    /// summed over every rank's rows when synchronised; none after an eval-mode forward.
    func inputGradient(_ dy: Tensor, _ x: Tensor, affine: NormalizationPasses.Affine, slope: Float?, block: Int,
                       sumDy: UnsafePointer<Float>, sumDyXhat: UnsafePointer<Float>) -> Tensor {
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C)
        let dx = Tensor.reuse(inputGrad, shape: x.shape); inputGrad = dx
        let sums = replicaSums, training = wasTraining
        if training {
            for c in 0..<C {
                var a = 0.0, b = 0.0
                for n in 0..<N {
                    let g = Double(affine.gamma[n * affine.rowStride + c])
                    a += g * Double(sumDy[n * C + c]); b += g * Double(sumDyXhat[n * C + c])
                }
                sums[c] = a; sums[C + c] = b
            }
            crossReplica?.allreduceSum(sums, count: 2 * C)
            let total = Double(N * S * (crossReplica?.size ?? 1)), centre = centreTerms.data
            for c in 0..<2 * C { centre[c] = Float(sums[c] / total) }
        }
        let centre = training ? (UnsafePointer(centreTerms.data), UnsafePointer(centreTerms.data + C)) : nil
        NormalizationPasses.inputGradient(dy: dy.data, x: x.data, dx: dx.data, N: N, C: C, S: S, block: block,
                                          mean: mean.data, invStd: invStd.data, affine: affine, slope: slope, centre: centre)
        return dx
    }
}

/// `torch.nn.BatchNorm1d` ([N, C] or [N, C, L] inputs).
public typealias BatchNorm1d = BatchNorm
/// `torch.nn.BatchNorm2d` ([N, C, H, W] inputs).
public typealias BatchNorm2d = BatchNorm

/// Every batch norm inside a layer (through Sequential, residual blocks and conditional batch norms).
public func batchNorms(in layer: Layer) -> [BatchNorm] {
    switch layer {
    case let bn as BatchNorm: return [bn]
    case let cbn as ConditionalBatchNorm: return [cbn.norm]
    case let seq as Sequential: return seq.layers.flatMap(batchNorms(in:))
    case let block as ResidualBlock: return batchNorms(in: block.main) + (block.shortcut.map(batchNorms(in:)) ?? [])
    default: return []
    }
}
