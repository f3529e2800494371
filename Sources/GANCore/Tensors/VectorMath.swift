// Elementwise and reduction helpers for the hot loops of the normalisation and activation layers.
//
// GANCore is compiled for baseline x86-64 (no AVX or FMA flags, so the binary runs anywhere), where the
// compiler neither vectorises a float sum kept in one accumulator (it may not reorder the additions) nor
// libm's tanhf. These helpers spell out the independent partial sums and a polynomial tanh instead.

@inline(__always)
func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Σ p[0..<count], in eight interleaved partial sums.
@inline(__always)
func vectorSum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = SIMD8<Float>.zero, i = 0
    while i &+ 8 <= count { acc += load8(p, i); i &+= 8 }
    var total = acc.sum()
    while i < count { total += p[i]; i &+= 1 }
    return total
}

/// Σ (p[i] − mean)² over 0..<count.
@inline(__always)
func vectorSumOfSquaredDeviations(_ p: UnsafePointer<Float>, _ count: Int, from mean: Float) -> Float {
    var acc = SIMD8<Float>.zero, i = 0
    let m = SIMD8<Float>(repeating: mean)
    while i &+ 8 <= count { let d = load8(p, i) - m; acc += d * d; i &+= 8 }
    var total = acc.sum()
    while i < count { let d = p[i] - mean; total += d * d; i &+= 1 }
    return total
}

/// tanh(x) to within 2·10⁻⁷ relative error (Cephes `tanhf`: an odd polynomial below |x| = 0.625, else
/// 1 − 2/(e^{2|x|} + 1) with a polynomial exp), about 5× faster than libm's here and free of branches.
@inline(__always)
func fastTanh(_ x: Float) -> Float {
    let ax = abs(x), z = x * x
    var p: Float = -5.70498872745e-3
    p = p * z + 2.06390887954e-2
    p = p * z - 5.37397155531e-2
    p = p * z + 1.33314422036e-1
    p = p * z - 3.33332819422e-1
    let small = p * z * x + x
    // e^t for t = 2|x| ≤ 88: t = n·ln2 + r, e^t = 2ⁿ·e^r, ln2 split in two for an exact n·ln2.
    let t = min(2 * ax, 88)
    let n = (t * 1.44269504088896341 + 12582912) - 12582912  // round to nearest: 1.5·2²³ pushes the fraction out
    let r = t - n * 0.693359375 + n * 2.12194440e-4
    var q: Float = 1.9875691500e-4
    q = q * r + 1.3981999507e-3
    q = q * r + 8.3334519073e-3
    q = q * r + 4.1665795894e-2
    q = q * r + 1.6666665459e-1
    q = q * r + 5.0000001201e-1
    q = q * r * r + r + 1
    let e = q * Float(bitPattern: UInt32(truncatingIfNeeded: (Int32(n) &+ 127) &<< 23))
    let large = 1 - 2 / (e + 1)
    return ax < 0.625 ? small : (x < 0 ? -large : large)
}
