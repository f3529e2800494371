/// The rows of a batch that one rank of a data-parallel job holds: rank `index` of `count` holds rows
/// `index·n ..< (index + 1)·n` of a batch of `count·n`. Layers that draw random numbers per row (dropout,
/// augmentation, instance noise) draw for the whole batch and keep their rows, so that every rank's stream stays
/// where one process's would be and N ranks see what one process sees.
///
/// ```swift
/// let shard = BatchShard(index: 1, count: 2)
/// let rows = shard.rows(local: 32)   // 32..<64 of a batch of 64
/// ```
public struct BatchShard: Equatable, Sendable {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) {
        precondition(count >= 1 && index >= 0 && index < count, "BatchShard: rank \(index) of \(count)")
        self.index = index; self.count = count
    }

    /// One process holding the whole batch.
    public static let whole = BatchShard(index: 0, count: 1)
    public var isWhole: Bool { count == 1 }

    /// This shard's rows of the whole batch, given how many it holds.
    public func rows(local n: Int) -> Range<Int> { (index * n)..<((index + 1) * n) }
}

extension RandomGenerator {
    /// Normal values for this shard's `count` values of a whole batch of `count·shard.count` values: the stream
    /// advances past every rank's values, as one process drawing the whole batch would. `scratch` keeps the
    /// whole batch's buffer from one call to the next.
    public mutating func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int, std: Float = 1, shard: BatchShard,
                                    scratch: inout [Float]) {
        guard !shard.isWhole else { fillNormal(p, count: count, std: std); return }
        let total = count * shard.count
        if scratch.count < total { scratch = [Float](repeating: 0, count: total) }
        scratch.withUnsafeMutableBufferPointer { whole in
            fillNormal(whole.baseAddress!, count: total, std: std)
            p.update(from: whole.baseAddress! + shard.index * count, count: count)
        }
    }

    /// Skips `n` draws of `next()` (another rank's share of a per-value stream).
    public mutating func skip(_ n: Int) {
        for _ in 0..<max(0, n) { _ = next() }
    }
}
