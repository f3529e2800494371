/// The three passes over an activation that batch norm and conditional batch norm share, with the LeakyReLU (or
/// ReLU, slope 0) after them fused both ways. For x [N, C, S] with per-channel μ and 1/σ, and a scale γ and
/// shift β per (sample, channel) — one row for every sample (`BatchNorm`) or a row per sample picked by its class
/// (`ConditionalBatchNorm`):
///
///     forward   y = act(x̂·γ + β),  x̂ = (x − μ)/σ
///     sums      Σ_s dy′ and Σ_s dy′·x̂ for each (n, c), dy′ = dy·act′
///     dx        dx = (γ·dy′ − a − x̂·b)/σ, a and b per channel from the sums (0 in eval mode)
///
/// act′ is recomputed from x (the sign of x·k + shift, the same arithmetic as the forward pass), so the backward
/// pass needs neither the output nor a separate activation pass: forward reads x three times and writes y once,
/// backward reads dy and x twice and writes dx once (unfused, batch norm, its activation and the conditional
/// scale took eight passes forward and twelve backward).
///
/// ```swift
/// let input = Tensor(shape: [8, 16, 8, 8]), output = Tensor(shape: [8, 16, 8, 8])
/// let mean = Tensor(shape: [16]), invStd = Tensor(shape: [16], repeating: 1)
/// let gamma = Tensor(shape: [16], repeating: 1), beta = Tensor(shape: [16])
/// let affine = NormalizationPasses.Affine(gamma: gamma.data, beta: beta.data, rowStride: 0)
/// NormalizationPasses.forward(x: input.data, y: output.data, N: 8, C: 16, S: 64, mean: mean.data,
///                             invStd: invStd.data, affine: affine, slope: 0)   // a fused ReLU
/// ```
public enum NormalizationPasses {
    /// γ[n·rowStride + c] and β likewise: rowStride 0 for one γ per channel, C for a row per sample.
    public struct Affine {
        public let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, rowStride: Int
        public init(gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, rowStride: Int) {
            self.gamma = gamma; self.beta = beta; self.rowStride = rowStride
        }
    }

    // x [N, C, S] → y [N, C, S]: y = act(x·k + shift), k = γ/σ, shift = β − μ·k. `block` > 0: x and y in oneDNN's
    // blocked layout with that channel block (`NormalizationPasses+Blocked.swift`), as in the two passes below.
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, N: Int, C: Int, S: Int, block: Int = 0,
                               mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>, affine: Affine, slope: Float?) {
        if block > 0 {
            return forwardBlocked(x: x, y: y, N: N, C: C, S: S, block: block, mean: mean, invStd: invStd, affine: affine, slope: slope)
        }
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                for n in 0..<N {
                    let (k, shift) = affine.scaleAndShift(n: n, c: c, mean: mean, invStd: invStd)
                    let p = x + (n &* C &+ c) &* S, o = y + (n &* C &+ c) &* S
                    let kv = SIMD8<Float>(repeating: k), sv = SIMD8<Float>(repeating: shift)
                    var q = 0
                    if let a = slope {
                        while q &+ 8 <= S { store8(leakyReLU(load8(p, q) * kv + sv, slope: a), o, q); q &+= 8 }
                        while q < S { o[q] = leakyReLU(p[q] * k + shift, slope: a); q &+= 1 }
                    } else {
                        while q &+ 8 <= S { store8(load8(p, q) * kv + sv, o, q); q &+= 8 }
                        while q < S { o[q] = p[q] * k + shift; q &+= 1 }
                    }
                }
            }
        }
    }

    // dy, x [N, C, S] → sumDy, sumDyXhat [N, C]: Σ_s dy′ and Σ_s dy′·x̂
    public static func gradientSums(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, N: Int, C: Int, S: Int, block: Int = 0,
                                    mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>, affine: Affine,
                                    slope: Float?, sumDy: UnsafeMutablePointer<Float>,
                                    sumDyXhat: UnsafeMutablePointer<Float>) {
        if block > 0 {
            return gradientSumsBlocked(dy: dy, x: x, N: N, C: C, S: S, block: block, mean: mean, invStd: invStd,
                                       affine: affine, slope: slope, sumDy: sumDy, sumDyXhat: sumDyXhat)
        }
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                let mu = mean[c], m = SIMD8<Float>(repeating: mu)
                for n in 0..<N {
                    let (k, shift) = affine.scaleAndShift(n: n, c: c, mean: mean, invStd: invStd)
                    let d = dy + (n &* C &+ c) &* S, p = x + (n &* C &+ c) &* S
                    let kv = SIMD8<Float>(repeating: k), sv = SIMD8<Float>(repeating: shift)
                    var s = SIMD8<Float>.zero, dot = SIMD8<Float>.zero, q = 0
                    var total: Float = 0, totalDot: Float = 0
                    if let a = slope {
                        while q &+ 8 <= S {
                            let xv = load8(p, q), dv = load8(d, q)
                            let g = dv.replacing(with: dv * a, where: xv * kv + sv .<= 0)
                            s += g; dot += g * (xv - m); q &+= 8
                        }
                        while q < S { let g = p[q] * k + shift > 0 ? d[q] : d[q] * a; total += g; totalDot += g * (p[q] - mu); q &+= 1 }
                    } else {
                        while q &+ 8 <= S { let dv = load8(d, q); s += dv; dot += dv * (load8(p, q) - m); q &+= 8 }
                        while q < S { total += d[q]; totalDot += d[q] * (p[q] - mu); q &+= 1 }
                    }
                    sumDy[n &* C &+ c] = s.sum() + total
                    sumDyXhat[n &* C &+ c] = (dot.sum() + totalDot) * invStd[c]
                }
            }
        }
    }

    // dy, x [N, C, S] → dx [N, C, S]: dx = (γ·dy′ − a − x̂·b)/σ, a = b = 0 when `centre` is nil (eval mode)
    public static func inputGradient(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                     N: Int, C: Int, S: Int, block: Int = 0, mean: UnsafePointer<Float>,
                                     invStd: UnsafePointer<Float>, affine: Affine, slope: Float?,
                                     centre: (a: UnsafePointer<Float>, b: UnsafePointer<Float>)?) {
        if block > 0 {
            return inputGradientBlocked(dy: dy, x: x, dx: dx, N: N, C: C, S: S, block: block, mean: mean, invStd: invStd,
                                        affine: affine, slope: slope, centre: centre)
        }
        Parallel.forEachChunk(count: C) { channels, _ in
            for c in channels {
                let mu = mean[c], istd = invStd[c]
                // dx = γ/σ·dy′ + (c0 + x·c1): the centring terms expanded so that the loop does two FMAs' worth.
                let a = centre?.a[c] ?? 0, b = centre?.b[c] ?? 0
                let c1 = -istd * istd * b, c0 = -istd * a - mu * c1
                let c0v = SIMD8<Float>(repeating: c0), c1v = SIMD8<Float>(repeating: c1)
                for n in 0..<N {
                    let (k, shift) = affine.scaleAndShift(n: n, c: c, mean: mean, invStd: invStd)
                    let d = dy + (n &* C &+ c) &* S, p = x + (n &* C &+ c) &* S, o = dx + (n &* C &+ c) &* S
                    let kv = SIMD8<Float>(repeating: k), sv = SIMD8<Float>(repeating: shift)
                    var q = 0
                    if let sl = slope {
                        while q &+ 8 <= S {
                            let xv = load8(p, q), dv = load8(d, q)
                            let g = dv.replacing(with: dv * sl, where: xv * kv + sv .<= 0)
                            store8(kv * g + (c0v + xv * c1v), o, q); q &+= 8
                        }
                        while q < S { let g = p[q] * k + shift > 0 ? d[q] : d[q] * sl; o[q] = k * g + (c0 + p[q] * c1); q &+= 1 }
                    } else {
                        while q &+ 8 <= S { store8(kv * load8(d, q) + (c0v + load8(p, q) * c1v), o, q); q &+= 8 }
                        while q < S { o[q] = k * d[q] + (c0 + p[q] * c1); q &+= 1 }
                    }
                }
            }
        }
    }
}

extension NormalizationPasses.Affine {
    /// k = γ/σ and shift = β − μ·k for sample n, channel c: the one place both passes get them from, so that the
    /// backward pass's sign of x·k + shift is the forward pass's bit for bit.
    @inline(__always)
    func scaleAndShift(n: Int, c: Int, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>) -> (Float, Float) {
        let i = n &* rowStride &+ c
        let k = gamma[i] * invStd[c]
        return (k, beta[i] - mean[c] * k)
    }
}
