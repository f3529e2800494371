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
public final class BatchNorm: LeakyReLUFusing {
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
    private let mean: Tensor
    private let invStd: Tensor

    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        self.numFeatures = numFeatures; self.eps = eps; self.momentum = momentum
        weight = Parameter(Tensor(shape: [numFeatures], repeating: 1))
        bias = Parameter(Tensor(shape: [numFeatures]))
        runningMean = Tensor(shape: [numFeatures])
        runningVar = Tensor(shape: [numFeatures], repeating: 1)
        mean = Tensor(shape: [numFeatures]); invStd = Tensor(shape: [numFeatures])
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
        precondition(x.shape.count >= 2 && x.shape[1] == numFeatures, "BatchNorm expects [N, \(numFeatures), …], got \(x.shape)")
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C), M = N * S
        precondition(!training || M > 1, "BatchNorm in training mode needs more than one value per channel, got input \(x.shape)")
        passedThrough = !training && appliedByPreviousLayerInEval
        if passedThrough { wasTraining = false; return x }
        let y = Tensor.reuse(output, shape: x.shape)
        output = y; input = x; wasTraining = training
        let xp = x.data, yp = y.data, gp = weight.value.data, bp = bias.value.data
        let mp = mean.data, ip = invStd.data, rm = runningMean.data, rv = runningVar.data
        let eps = self.eps, mom = cumulative ? 1 / (numBatchesTracked[0] + 1) : momentum, slope = fusedLeakyReLUSlope
        // Synchronised: the statistics of every rank's rows first (two exchanges, the same two passes as below),
        // then the normalisation with them.
        var synchronised = false
        if training, let world = crossReplica { synchroniseStatistics(x, world, momentum: mom); synchronised = true }
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                var mu: Float, istd: Float
                if synchronised {
                    mu = mp[c]; istd = ip[c]
                } else if training {
                    var s = 0.0, ss = 0.0
                    for n in 0..<N { s += Double(vectorSum(xp + (n * C + c) * S, S)) }
                    let m = s / Double(M)
                    for n in 0..<N { ss += Double(vectorSumOfSquaredDeviations(xp + (n * C + c) * S, S, from: Float(m))) }
                    (mu, istd) = Self.statistics(sum: s, squaredDeviations: ss, count: M, eps: eps,
                                                  momentum: mom, runningMean: rm + c, runningVar: rv + c)
                } else {
                    mu = rm[c]
                    istd = 1 / (rv[c] + eps).squareRoot()
                }
                mp[c] = mu; ip[c] = istd
                let scale = gp[c] * istd, shift = bp[c] - mu * scale
                for n in 0..<N {
                    let p = xp + (n * C + c) * S, o = yp + (n * C + c) * S
                    if let a = slope {
                        for q in 0..<S { o[q] = leakyReLU(p[q] * scale + shift, slope: a) }
                    } else {
                        for q in 0..<S { o[q] = p[q] * scale + shift }
                    }
                }
            }
        }
        if training { numBatchesTracked[0] += 1 }
        return y
    }

    public func fuseLeakyReLU(negativeSlope: Float) { fusedLeakyReLUSlope = negativeSlope }

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

    // dy → dx = γ·istd/M·(M·dy − Σdy − x̂·Σ(dy·x̂)) in training mode, γ·istd·dy in eval mode
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("BatchNorm.backward before forward") }
        precondition(!passedThrough, "BatchNorm.backward after an eval-mode forward that the layer before applied; run that pass in training mode")
        let N = x.shape[0], C = numFeatures, S = x.count / max(1, N * C), M = Float(N * S)
        let dx: Tensor? = inputGradient ? Tensor.reuse(inputGrad, shape: x.shape) : nil
        if let dx { inputGrad = dx }
        let xp = x.data, dyp = dy.data, dxp = dx?.data, gp = weight.value.data
        let gw = weight.grad.data, gb = bias.grad.data, mp = mean.data, ip = invStd.data
        let training = wasTraining
        // Synchronised (training mode across ranks): this rank's Σdy and Σdy·x̂ go into its weight gradients (the
        // gradient average sums them over the ranks), the sums over every rank's rows into dx.
        let world = training && inputGradient ? crossReplica : nil
        let sums = replicaSums, totalM = M * Float(world?.size ?? 1)
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                var sumDy: Float = 0, sumDyXhat: Float = 0
                for n in 0..<N {
                    let (s, dot) = vectorSumAndCenteredDot(dyp + (n * C + c) * S, xp + (n * C + c) * S, S, mean: mp[c])
                    sumDy += s; sumDyXhat += dot * ip[c]
                }
                if weightGradients { gw[c] += sumDyXhat; gb[c] += sumDy }
                sums[c] = Double(sumDy); sums[C + c] = Double(sumDyXhat)
            }
        }
        world?.allreduceSum(sums, count: 2 * C)
        guard let dxp else { return dx }
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                let mu = mp[c], istd = ip[c], k = gp[c] * istd
                if training {
                    let a = Float(sums[c]) / totalM, b = Float(sums[C + c]) / totalM
                    for n in 0..<N {
                        let p = xp + (n * C + c) * S, d = dyp + (n * C + c) * S, o = dxp + (n * C + c) * S
                        for q in 0..<S { o[q] = k * (d[q] - a - (p[q] - mu) * istd * b) }
                    }
                } else {
                    for n in 0..<N {
                        let d = dyp + (n * C + c) * S, o = dxp + (n * C + c) * S
                        for q in 0..<S { o[q] = k * d[q] }
                    }
                }
            }
        }
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
