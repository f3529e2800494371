import Foundation

/// A small, fast, seedable generator (xoshiro256**) whose whole state is four integers,
/// so it can be saved in a checkpoint and restored exactly.
///
/// ```swift
/// var rng = RandomGenerator(seed: 42)
/// let z = Tensor(shape: [64, 100]); rng.fillNormal(z)
/// ```
public struct RandomGenerator: RandomNumberGenerator, Sendable, Codable, Equatable {
    public var state: [UInt64]

    public init(seed: UInt64) {
        // SplitMix64 spreads a small seed over the 256-bit state.
        var x = seed
        var s: [UInt64] = []
        for _ in 0..<4 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            s.append(z ^ (z >> 31))
        }
        state = s
    }

    /// Derives an independent stream (for example one per purpose: data order, latents, dropout).
    public func derived(_ salt: UInt64) -> RandomGenerator {
        RandomGenerator(seed: state[0] ^ (salt &* 0x9E37_79B9_7F4A_7C15) ^ state[3])
    }

    public mutating func next() -> UInt64 {
        let result = ((state[1] &* 5) << 7 | (state[1] &* 5) >> 57) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = (state[3] << 45) | (state[3] >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * uniform() }

    /// Standard normal values by the Box–Muller transform, two per pair of uniforms.
    public mutating func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1) {
        var i = 0
        while i < count {
            let u1 = max(Double(next() >> 11) * 0x1p-53, 1e-300)
            let u2 = Double(next() >> 11) * 0x1p-53
            let r = (-2 * log(u1)).squareRoot()
            p[i] = mean + std * Float(r * cos(2 * .pi * u2))
            if i + 1 < count { p[i + 1] = mean + std * Float(r * sin(2 * .pi * u2)) }
            i += 2
        }
    }

    public mutating func fillNormal(_ t: Tensor, mean: Float = 0, std: Float = 1) {
        fillNormal(t.data, count: t.count, mean: mean, std: std)
    }

    public mutating func fillUniform(_ t: Tensor, _ lo: Float, _ hi: Float) {
        let p = t.data
        for i in 0..<t.count { p[i] = uniform(lo, hi) }
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        if n < 2 { return a }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            a.swapAt(i, j)
        }
        return a
    }
}
