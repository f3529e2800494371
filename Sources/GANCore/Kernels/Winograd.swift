import CWinograd
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
// The filters' maps are here; the tiles' run in C (`CWinograd`, AVX-512 or AVX2 chosen at run time), since GANCore's
// Swift is built for baseline x86-64, where the same loops ran 4 lanes wide.
// The weight gradient is the transpose of the forward product: dU[ξ] = Σ_tiles V[ξ]ᵀ·(A·dy·Aᵀ)[ξ], dg = Gᵀ·dU·G.

/// Nine values of a 3×3 tile in row-major order.
typealias WinogradTile = (Float, Float, Float, Float, Float, Float, Float, Float, Float)

/// G·g·Gᵀ for one 2×2 filter g = [g00 g01; g10 g11] (the tiles' own maps are `CWinograd`'s, in the same order).
@inline(__always)
func winogradExpand(_ g00: Float, _ g01: Float, _ g10: Float, _ g11: Float) -> WinogradTile {
    let h10 = g00 + g10, h11 = g01 + g11
    return (g00, g00 + g01, g01, h10, h10 + h11, h11, g10, g10 + g11, g11)
}

/// Aᵀ·m·A for one 3×3 tile m, here a filter gradient's Gᵀ·dU·G: (g00, g01, g10, g11).
@inline(__always)
func winogradReduce(_ m: WinogradTile) -> (Float, Float, Float, Float) {
    let r00 = m.0 + m.3, r01 = m.1 + m.4, r02 = m.2 + m.5
    let r10 = m.3 + m.6, r11 = m.4 + m.7, r12 = m.5 + m.8
    return (r00 + r01, r01 + r02, r10 + r11, r11 + r12)
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

    /// The same plane for `CWinograd`'s kernels.
    var c: winograd_plane {
        winograd_plane(base: UnsafeMutablePointer(mutating: base), row_step: rowStep, column_step: columnStep, rows: rows, columns: columns)
    }
}

/// Input tiles: for tile (ty, tx) of a tilesY×tilesX grid, the 3×3 pixels at rows originRow + 2·ty + {0,1,2}
/// (columns likewise), transformed: out[ξ·ξStride + tile·tileStride + c] = (Bᵀ d B)[ξ] for channel c < C
/// (C a multiple of 8; `zeros` holds C zeros). Tiles are numbered from `firstTile`, row-major. The loops are C
/// (`CWinograd`: AVX-512 or AVX2 where the CPU has them; GANCore's own Swift would run them 4 lanes wide).
@inline(__always)
func winogradInputTiles(_ plane: WinogradPlane, channels C: Int, originRow: Int, originColumn: Int,
                        tilesY: Int, tilesX: Int, zeros: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>, firstTile: Int, tileStride: Int, xiStride: Int) {
    winograd_f2_input_tiles(plane.c, C, originRow, originColumn, tilesY, tilesX, zeros, out, firstTile, tileStride, xiStride)
}

/// Output tiles: for tile (ty, tx), the 2×2 values Aᵀ m A (+ bias, then LeakyReLU with `slope`) written to the
/// plane's pixels (2·ty + a, 2·tx + b) that exist; m[ξ] read at ξ·ξStride + tile·tileStride (`CWinograd`).
@inline(__always)
func winogradOutputTiles(_ m: UnsafePointer<Float>, channels C: Int, tilesY: Int, tilesX: Int, firstTile: Int,
                         tileStride: Int, xiStride: Int, bias: UnsafePointer<Float>?, slope: Float?,
                         into plane: WinogradPlane) {
    winograd_f2_output_tiles(m, C, tilesY, tilesX, firstTile, tileStride, xiStride, bias, slope == nil ? 0 : 1, slope ?? 0, plane.c)
}

/// Output-gradient tiles for the weight gradient: for tile (ty, tx), the 2×2 values dy at (2·ty + a, 2·tx + b)
/// (zero where the plane ends) expanded to A·dy·Aᵀ, written like `winogradInputTiles` (`CWinograd`).
@inline(__always)
func winogradGradientTiles(_ plane: WinogradPlane, channels C: Int, tilesY: Int, tilesX: Int, zeros: UnsafePointer<Float>,
                           out: UnsafeMutablePointer<Float>, firstTile: Int, tileStride: Int, xiStride: Int) {
    winograd_f2_gradient_tiles(plane.c, C, tilesY, tilesX, zeros, out, firstTile, tileStride, xiStride)
}
