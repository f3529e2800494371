/// `NormalizationPasses` for activations in oneDNN's channel-blocked layout (nChw8c / nChw16c: value (n, c, s) at
/// ((n·C/B + c/B)·S + s)·B + c%B), where a normalisation sits between two convolutions that hand activations over
/// in that layout (`BlockedHandoff`). B consecutive values are B channels of one position, so each pass runs over
/// 8-channel vectors with per-lane γ/σ and shifts; the arithmetic per value is the NCHW passes', so the results
/// agree to float32 rounding of the sums' order.
///
/// ```swift
/// let input = Tensor(shape: [2, 16, 4, 4]), output = Tensor(shape: [2, 16, 4, 4])
/// let mean = Tensor(shape: [16]), invStd = Tensor(shape: [16], repeating: 1)
/// let gamma = Tensor(shape: [16], repeating: 1), beta = Tensor(shape: [16])
/// NormalizationPasses.forwardBlocked(x: input.data, y: output.data, N: 2, C: 16, S: 16, block: 16, mean: mean.data,
///     invStd: invStd.data, affine: NormalizationPasses.Affine(gamma: gamma.data, beta: beta.data, rowStride: 0), slope: 0)
/// ```
extension NormalizationPasses {
    /// k = γ/σ and shift = β − μ·k for the 8 channels c..<c+8 of sample n (`Affine.scaleAndShift`, 8 lanes at once).
    @inline(__always)
    static func scaleAndShift8(_ affine: Affine, n: Int, c: Int, mean: UnsafePointer<Float>,
                               invStd: UnsafePointer<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
        let i = n &* affine.rowStride &+ c
        let k = load8(affine.gamma, i) * load8(invStd, c)
        return (k, load8(affine.beta, i) - load8(mean, c) * k)
    }

    /// Where the 8 channels c..<c+8 of sample n start at position 0 (position s at offset + s·B); c a multiple of 8.
    @inline(__always)
    static func groupOffset(n: Int, c: Int, C: Int, S: Int, block B: Int) -> Int {
        (n &* (C / B) &+ c / B) &* S &* B &+ c % B
    }

    /// Calls `body(n, c, offset)` for every sample n and 8-channel group c..<c+8, `offset` from `groupOffset`; the
    /// channel groups are split over the workers.
    @inline(__always)
    static func forEachGroup(N: Int, C: Int, S: Int, block B: Int, _ body: (Int, Int, Int) -> Void) {
        Parallel.forEachChunk(count: C / 8) { groups, _ in
            for g in groups {
                let c = g &* 8
                for n in 0..<N { body(n, c, groupOffset(n: n, c: c, C: C, S: S, block: B)) }
            }
        }
    }

    // Σ x and Σ (x − μ)² per channel over [N, ·, S] blocked: what `BatchNorm.computeStatistics` needs.
    static func channelSumsBlocked(x: UnsafePointer<Float>, N: Int, C: Int, S: Int, block B: Int,
                                   mean: UnsafePointer<Float>?, into sums: UnsafeMutablePointer<Double>) {
        Parallel.forEachChunk(count: C / 8) { groups, _ in
            for g in groups {
                let c = g &* 8
                let m = mean.map { load8($0, c) } ?? .zero
                var total = SIMD8<Double>.zero
                for n in 0..<N {
                    var acc = SIMD8<Float>.zero
                    let p = x + groupOffset(n: n, c: c, C: C, S: S, block: B)
                    for s in 0..<S {
                        let v = load8(p, s &* B)
                        if mean == nil { acc += v } else { let d = v - m; acc += d * d }
                    }
                    for l in 0..<8 { total[l] += Double(acc[l]) }
                }
                for l in 0..<8 { sums[c &+ l] = total[l] }
            }
        }
    }

    // x → y = act(x̂·γ + β), blocked in and out
    public static func forwardBlocked(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, N: Int, C: Int, S: Int,
                                      block B: Int, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
                                      affine: Affine, slope: Float?) {
        forEachGroup(N: N, C: C, S: S, block: B) { n, c, offset in
            let (k, shift) = scaleAndShift8(affine, n: n, c: c, mean: mean, invStd: invStd)
            let p = x + offset, o = y + offset
            if let a = slope {
                for s in 0..<S { store8(leakyReLU(load8(p, s &* B) * k + shift, slope: a), o, s &* B) }
            } else {
                for s in 0..<S { store8(load8(p, s &* B) * k + shift, o, s &* B) }
            }
        }
    }

    // dy, x → Σ_s dy′ and Σ_s dy′·x̂ per (n, c), [N, C] (not blocked)
    public static func gradientSumsBlocked(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, N: Int, C: Int, S: Int,
                                           block B: Int, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
                                           affine: Affine, slope: Float?, sumDy: UnsafeMutablePointer<Float>,
                                           sumDyXhat: UnsafeMutablePointer<Float>) {
        forEachGroup(N: N, C: C, S: S, block: B) { n, c, offset in
            let (k, shift) = scaleAndShift8(affine, n: n, c: c, mean: mean, invStd: invStd)
            let m = load8(mean, c), d = dy + offset, p = x + offset
            var sum = SIMD8<Float>.zero, dot = SIMD8<Float>.zero
            for s in 0..<S {
                let xv = load8(p, s &* B), dv = load8(d, s &* B)
                let g = slope.map { dv.replacing(with: dv * $0, where: xv * k + shift .<= 0) } ?? dv
                sum += g; dot += g * (xv - m)
            }
            store8(sum, sumDy, n &* C &+ c)
            store8(dot * load8(invStd, c), sumDyXhat, n &* C &+ c)
        }
    }

    // dy, x → dx = (γ·dy′ − a − x̂·b)/σ, blocked in and out
    public static func inputGradientBlocked(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                            N: Int, C: Int, S: Int, block B: Int, mean: UnsafePointer<Float>,
                                            invStd: UnsafePointer<Float>, affine: Affine, slope: Float?,
                                            centre: (a: UnsafePointer<Float>, b: UnsafePointer<Float>)?) {
        forEachGroup(N: N, C: C, S: S, block: B) { n, c, offset in
            let (k, shift) = scaleAndShift8(affine, n: n, c: c, mean: mean, invStd: invStd)
            let istd = load8(invStd, c), mu = load8(mean, c)
            let a = centre.map { load8($0.a, c) } ?? .zero, b = centre.map { load8($0.b, c) } ?? .zero
            let c1 = -istd * istd * b, c0 = -istd * a - mu * c1
            let d = dy + offset, p = x + offset, o = dx + offset
            for s in 0..<S {
                let xv = load8(p, s &* B), dv = load8(d, s &* B)
                let g = slope.map { dv.replacing(with: dv * $0, where: xv * k + shift .<= 0) } ?? dv
                store8(k * g + (c0 + xv * c1), o, s &* B)
            }
        }
    }
}
