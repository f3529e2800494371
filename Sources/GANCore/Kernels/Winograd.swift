import Foundation

// Winograd's minimal filtering F(2×2, 2×2) for the generator's transposed convolutions (and, as their mirrors, the
// discriminator's 4×4 stride-2 convolutions: `Conv2d+Winograd.swift`).
//
// A 4×4, stride-2 transposed convolution is four ordinary 2×2 convolutions, one per output phase (see
// `ConvTranspose2d`). For a 2-tap filter g, two outputs y0 = g0·d0 + g1·d1, y1 = g0·d1 + g1·d2 take three
// products instead of four:
//
//     m0 = (d0 − d1)·g0,  m1 = d1·(g0 + g1),  m2 = (d2 − d1)·g1,  y0 = m0 + m1,  y1 = m1 + m2
//
// that is y = Aᵀ[(G g) ⊙ (Bᵀ d)] with Bᵀ = [1 −1 0; 0 1 0; 0 −1 1], G = A = [1 0; 1 1; 0 1]. In two dimensions
// a 2×2 output tile takes 9 products instead of 16, and across channels each of the 9 products becomes one
// GEMM: M[ξ] = V[ξ]·U[ξ] with V the transformed input tiles [tiles][in] and U the transformed filters
// [in][out]. The GEMMs do 9/16 of the FLOPs of the phase GEMMs they replace. Every transform matrix holds only
// 0 and ±1, so the rounding is that of a few extra additions (no divisions, unlike larger Winograd tiles).
//
// The same three maps serve all three passes:
// - `expand` (2×2 → 3×3, G·g·Gᵀ): filters, and the output gradient of a tile in the weight gradient;
// - `inputTiles` (3×3 → 3×3, Bᵀ·d·B): input tiles;
// - `reduce` (3×3 → 2×2, Aᵀ·m·A): output tiles, and the filter gradient from its 3×3 transform.
// The weight gradient is the transpose of the forward product: dU[ξ] = Σ_tiles V[ξ]ᵀ·(A·dy·Aᵀ)[ξ], dg = Gᵀ·dU·G.

/// What the transforms add: a weight (Float) or 8 channels of a tile (SIMD8<Float>), so that the filter and
/// the tile paths share one spelling of each map.
protocol WinogradValue { static func + (a: Self, b: Self) -> Self }
extension Float: WinogradValue {}
extension SIMD8: WinogradValue where Scalar == Float {}

/// Nine values of a 3×3 tile in row-major order.
typealias WinogradTile<V> = (V, V, V, V, V, V, V, V, V)

/// G·g·Gᵀ for one 2×2 tile g = [g00 g01; g10 g11] (a filter, or an output gradient's A·dy·Aᵀ: G = A).
@inline(__always)
func winogradExpand<V: WinogradValue>(_ g00: V, _ g01: V, _ g10: V, _ g11: V) -> WinogradTile<V> {
    let h10 = g00 + g10, h11 = g01 + g11
    return (g00, g00 + g01, g01, h10, h10 + h11, h11, g10, g10 + g11, g11)
}

/// Aᵀ·m·A for one 3×3 tile m (an output tile, or a filter gradient's Gᵀ·dU·G): (y00, y01, y10, y11).
@inline(__always)
func winogradReduce<V: WinogradValue>(_ m: WinogradTile<V>) -> (V, V, V, V) {
    let r00 = m.0 + m.3, r01 = m.1 + m.4, r02 = m.2 + m.5
    let r10 = m.3 + m.6, r11 = m.4 + m.7, r12 = m.5 + m.8
    return (r00 + r01, r01 + r02, r10 + r11, r11 + r12)
}

/// Stores a tile's nine 8-channel values at o + ξ·xiStride + c.
@inline(__always)
func store9(_ t: WinogradTile<SIMD8<Float>>, _ o: UnsafeMutablePointer<Float>, xiStride: Int, _ c: Int) {
    store8(t.0, o, c); store8(t.1, o + xiStride, c); store8(t.2, o + 2 &* xiStride, c)
    store8(t.3, o + 3 &* xiStride, c); store8(t.4, o + 4 &* xiStride, c); store8(t.5, o + 5 &* xiStride, c)
    store8(t.6, o + 6 &* xiStride, c); store8(t.7, o + 7 &* xiStride, c); store8(t.8, o + 8 &* xiStride, c)
}

/// Pixels of a plane of channel vectors: pixel (r, c) at base + r·rowStep + c·columnStep, present for
/// 0 ≤ r < rows, 0 ≤ c < columns (zero elsewhere). A channels-last image, or one output phase of one.
struct WinogradPlane {
    var base: UnsafePointer<Float>
    var rowStep, columnStep, rows, columns: Int

    @inline(__always)
    func pixel(_ r: Int, _ c: Int, zeros: UnsafePointer<Float>) -> UnsafePointer<Float> {
        r >= 0 && r < rows && c >= 0 && c < columns ? base + (r &* rowStep &+ c &* columnStep) : zeros
    }
}

/// Input tiles: for tile (ty, tx) of a tilesY×tilesX grid, the 3×3 pixels at rows originRow + 2·ty + {0,1,2}
/// (columns likewise), transformed: out[ξ·ξStride + tile·tileStride + c] = (Bᵀ d B)[ξ] for channel c < C
/// (C a multiple of 8; `zeros` holds C zeros). Tiles are numbered from `firstTile`, row-major.
func winogradInputTiles(_ plane: WinogradPlane, channels C: Int, originRow: Int, originColumn: Int,
                        tilesY: Int, tilesX: Int, zeros: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>, firstTile: Int, tileStride: Int, xiStride: Int) {
    for ty in 0..<tilesY {
        let r = originRow &+ 2 &* ty
        for tx in 0..<tilesX {
            let q = originColumn &+ 2 &* tx
            let p00 = plane.pixel(r, q, zeros: zeros), p01 = plane.pixel(r, q &+ 1, zeros: zeros), p02 = plane.pixel(r, q &+ 2, zeros: zeros)
            let p10 = plane.pixel(r &+ 1, q, zeros: zeros), p11 = plane.pixel(r &+ 1, q &+ 1, zeros: zeros), p12 = plane.pixel(r &+ 1, q &+ 2, zeros: zeros)
            let p20 = plane.pixel(r &+ 2, q, zeros: zeros), p21 = plane.pixel(r &+ 2, q &+ 1, zeros: zeros), p22 = plane.pixel(r &+ 2, q &+ 2, zeros: zeros)
            let o = out + (firstTile &+ ty &* tilesX &+ tx) &* tileStride
            var c = 0
            while c < C {
                // Bᵀ d over rows, then over columns.
                let d10 = load8(p10, c), d11 = load8(p11, c), d12 = load8(p12, c)
                let e00 = load8(p00, c) - d10, e01 = load8(p01, c) - d11, e02 = load8(p02, c) - d12
                let e20 = load8(p20, c) - d10, e21 = load8(p21, c) - d11, e22 = load8(p22, c) - d12
                store9((e00 - e01, e01, e02 - e01, d10 - d11, d11, d12 - d11, e20 - e21, e21, e22 - e21), o, xiStride: xiStride, c)
                c &+= 8
            }
        }
    }
}

/// Output tiles: for tile (ty, tx), the 2×2 values Aᵀ m A (+ bias, then LeakyReLU with `slope`) written to the
/// plane's pixels (2·ty + a, 2·tx + b) that exist; m[ξ] read at ξ·ξStride + tile·tileStride.
func winogradOutputTiles(_ m: UnsafePointer<Float>, channels C: Int, tilesY: Int, tilesX: Int, firstTile: Int,
                         tileStride: Int, xiStride: Int, bias: UnsafePointer<Float>?, slope: Float?,
                         into plane: WinogradPlane) {
    writeOutputTiles(m, channels: C, tilesY: tilesY, tilesX: tilesX, firstTile: firstTile, tileStride: tileStride,
                     bias: bias, slope: slope, into: plane) { s in
        winogradReduce((load8(s, 0), load8(s, xiStride), load8(s, 2 &* xiStride),
                        load8(s, 3 &* xiStride), load8(s, 4 &* xiStride), load8(s, 5 &* xiStride),
                        load8(s, 6 &* xiStride), load8(s, 7 &* xiStride), load8(s, 8 &* xiStride)))
    }
}

/// The output pass both Winograd kinds share: for tile (ty, tx) and each 8 channels c, `reduce` turns the tile's
/// products (read from s = m + tile·tileStride + c onwards) into its 2×2 values (y00, y01, y10, y11); + bias, then
/// LeakyReLU with `slope`, stored to the plane's pixels (2·ty + a, 2·tx + b) that exist.
@inline(__always)
func writeOutputTiles(_ m: UnsafePointer<Float>, channels C: Int, tilesY: Int, tilesX: Int, firstTile: Int, tileStride: Int,
                      bias: UnsafePointer<Float>?, slope: Float?, into plane: WinogradPlane,
                      _ reduce: (UnsafePointer<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
    let out = UnsafeMutablePointer(mutating: plane.base)
    for ty in 0..<tilesY {
        let r = 2 &* ty, secondRow = r &+ 1 < plane.rows
        for tx in 0..<tilesX {
            let q = 2 &* tx, secondColumn = q &+ 1 < plane.columns
            let t = m + (firstTile &+ ty &* tilesX &+ tx) &* tileStride
            let d0 = out + (r &* plane.rowStep &+ q &* plane.columnStep)
            var c = 0
            while c < C {
                var (y00, y01, y10, y11) = reduce(t + c)
                if let bias { let b = load8(bias, c); y00 += b; y01 += b; y10 += b; y11 += b }
                if let slope {
                    y00 = leakyReLU(y00, slope: slope); y01 = leakyReLU(y01, slope: slope)
                    y10 = leakyReLU(y10, slope: slope); y11 = leakyReLU(y11, slope: slope)
                }
                store8(y00, d0, c)
                if secondColumn { store8(y01, d0 + plane.columnStep, c) }
                if secondRow {
                    store8(y10, d0 + plane.rowStep, c)
                    if secondColumn { store8(y11, d0 + (plane.rowStep &+ plane.columnStep), c) }
                }
                c &+= 8
            }
        }
    }
}

/// For each 2×2 tile (ty, tx) of a plane's gradient: its four pixels (zero where the plane ends) and the address of
/// its row in a tile matrix (out + tile·tileStride). Both Winograd kinds expand these the same way, each with its A.
@inline(__always)
func forEachGradientTile(_ plane: WinogradPlane, tilesY: Int, tilesX: Int, zeros: UnsafePointer<Float>,
                         out: UnsafeMutablePointer<Float>, firstTile: Int, tileStride: Int,
                         _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                  UnsafeMutablePointer<Float>) -> Void) {
    for ty in 0..<tilesY {
        let r = 2 &* ty
        for tx in 0..<tilesX {
            let q = 2 &* tx
            body(plane.pixel(r, q, zeros: zeros), plane.pixel(r, q &+ 1, zeros: zeros),
                 plane.pixel(r &+ 1, q, zeros: zeros), plane.pixel(r &+ 1, q &+ 1, zeros: zeros),
                 out + (firstTile &+ ty &* tilesX &+ tx) &* tileStride)
        }
    }
}

/// Output-gradient tiles for the weight gradient: for tile (ty, tx), the 2×2 values dy at (2·ty + a, 2·tx + b)
/// (zero where the plane ends) expanded to A·dy·Aᵀ, written like `winogradInputTiles`.
func winogradGradientTiles(_ plane: WinogradPlane, channels C: Int, tilesY: Int, tilesX: Int, zeros: UnsafePointer<Float>,
                           out: UnsafeMutablePointer<Float>, firstTile: Int, tileStride: Int, xiStride: Int) {
    forEachGradientTile(plane, tilesY: tilesY, tilesX: tilesX, zeros: zeros, out: out, firstTile: firstTile,
                        tileStride: tileStride) { p00, p01, p10, p11, o in
        var c = 0
        while c < C {
            store9(winogradExpand(load8(p00, c), load8(p01, c), load8(p10, c), load8(p11, c)), o, xiStride: xiStride, c)
            c &+= 8
        }
    }
}
