/// One model trained by every rank of an `mpirun` job together (data parallelism): each rank holds a shard of
/// every batch and a full copy of the weights; after each backward pass the gradients are averaged over the
/// ranks — one allreduce of one flattened buffer per model and step, as DDP's buckets and Horovod's fusion buffer
/// do for small models — so every rank takes the same optimizer step and the copies stay equal.
///
/// What makes the result independent of the number of ranks is set up by `distribute`: batch norm takes its
/// statistics over the whole batch (synchronised, `BatchNorm.crossReplica`), and layers that draw per-row
/// random numbers draw for the whole batch and keep their rows (`BatchShard`).
///
/// ```swift
/// var rng = RandomGenerator(seed: 1)
/// let model = Sequential([Linear(inFeatures: 4, outFeatures: 2, rng: &rng), BatchNorm1d(numFeatures: 2)])
/// let parallel = Communicator.world.map(DataParallel.init(world:))   // nil when running alone
/// parallel?.distribute(model)
/// // forward and backward on this rank's rows, then:
/// parallel?.averageGradients(model.parameters)
/// ```
public final class DataParallel {
    public let world: Communicator
    public var shard: BatchShard { BatchShard(index: world.rank, count: world.size) }
    /// The flattened gradients of one model: grown once to the largest model's parameter count.
    private var flat: [Float] = []

    public init(world: Communicator) { self.world = world }

    /// Synchronised batch norm and whole-batch random draws for every layer of `model` that needs them.
    public func distribute(_ model: Layer) {
        for bn in batchNorms(in: model) { bn.crossReplica = world }
        for dropout in (model as? Sequential)?.layers.compactMap({ $0 as? Dropout }) ?? [] { dropout.shard = shard }
    }

    /// Augmentation draws for the whole batch, each rank applying its rows'.
    public func distribute(_ augment: DiffAugment) { augment.shard = shard }

    /// Every parameter's gradient ← the mean over the ranks, with one allreduce over one flattened buffer.
    /// Each rank's loss is a mean over its rows, so the mean over ranks is the whole batch's gradient.
    public func averageGradients(_ parameters: [Parameter]) {
        let total = parameters.reduce(0) { $0 + $1.grad.count }
        if flat.count < total { flat = [Float](repeating: 0, count: total) }
        let scale = 1 / Float(world.size)
        flat.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            var offset = 0
            for p in parameters {
                (base + offset).update(from: p.grad.data, count: p.grad.count)
                offset += p.grad.count
            }
            world.allreduceSum(base, count: total)
            offset = 0
            for p in parameters {
                let g = p.grad.data, src = base + offset
                for i in 0..<p.grad.count { g[i] = src[i] * scale }
                offset += p.grad.count
            }
        }
    }

    /// The mean over the ranks of a few per-step figures (losses, statistics), in place.
    public func average(_ values: inout [Double]) {
        world.allreduceSum(&values)
        for i in values.indices { values[i] /= Double(world.size) }
    }

    /// Whether any rank says yes: decisions that must not differ between ranks (a time budget read from each
    /// rank's clock), or one rank would stop while the others wait for it.
    public func anyRank(_ flag: Bool) -> Bool {
        var v = [flag ? 1.0 : 0]
        sum(&v)
        return v[0] > 0
    }

    /// Rank 0's values on every rank (what only rank 0 computes, such as an evaluation).
    public func fromFirstRank(_ values: inout [Double]) {
        values.withUnsafeMutableBytes { world.broadcast($0.baseAddress!, bytes: $0.count, root: 0) }
    }

    /// The sum over the ranks of a few per-step figures, in place.
    public func sum(_ values: inout [Double]) { world.allreduceSum(&values) }
}
