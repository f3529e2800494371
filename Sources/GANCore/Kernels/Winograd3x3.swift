import Foundation

// Winograd's minimal filtering F(2×2, 3×3) for 3×3, stride-1, padding-1 convolutions (`Conv2d+Winograd.swift`).
//
// For a 3-tap filter g, two outputs y0 = g0·d0 + g1·d1 + g2·d2, y1 = g0·d1 + g1·d2 + g2·d3 take four products
// instead of six: y = Aᵀ[(G g) ⊙ (Bᵀ d)] with
//
//     Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],  Aᵀ = [1 1 1 0; 0 1 −1 −1]
//
// In two dimensions a 2×2 output tile takes 16 products instead of 36 (2.25× fewer); across channels each of the
// 16 becomes one GEMM M[ξ] = V[ξ]·U[ξ] (V: input tiles [tiles][in], U: filters [in][out]). G's halves are exact in
// binary, so the rounding is that of a few extra additions. The weight gradient is the transpose of the forward
// product: dU[ξ] = Σ_tiles V[ξ]ᵀ·(A·dy·Aᵀ)[ξ], then dg = Gᵀ·dU·G. dx is the forward pass run on dy with each
// kernel flipped and the channel roles swapped (at stride 1 and padding 1 that is again a 3×3 correlation).
//
// Each 2-d map is the 1-d map applied down the columns of a tile, then along its rows.

/// Bᵀ·d for one line of a 4×4 input tile.
@inline(__always)
func winograd3x3InputLine(_ d0: SIMD8<Float>, _ d1: SIMD8<Float>, _ d2: SIMD8<Float>, _ d3: SIMD8<Float>)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
}

/// G·g for one line of a filter: (g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2).
@inline(__always)
func winograd3x3FilterLine(_ g0: Float, _ g1: Float, _ g2: Float) -> (Float, Float, Float, Float) {
    let h = 0.5 * (g0 + g2)
    return (g0, h + 0.5 * g1, h - 0.5 * g1, g2)
}

/// Aᵀ·m for one line of a 4×4 product tile: (m0 + m1 + m2, m1 − m2 − m3).
@inline(__always)
func winograd3x3OutputLine(_ m0: SIMD8<Float>, _ m1: SIMD8<Float>, _ m2: SIMD8<Float>, _ m3: SIMD8<Float>)
    -> (SIMD8<Float>, SIMD8<Float>) {
    (m0 + m1 + m2, m1 - m2 - m3)
}

/// A·y for one line of a 2×2 output-gradient tile: (y0, y0 + y1, y0 − y1, −y1).
@inline(__always)
func winograd3x3GradientLine(_ y0: SIMD8<Float>, _ y1: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    (y0, y0 + y1, y0 - y1, SIMD8<Float>.zero - y1)
}

/// Gᵀ·u for one line of a 4×4 filter-gradient tile: (u0 + (u1 + u2)/2, (u1 − u2)/2, (u1 + u2)/2 + u3).
@inline(__always)
func winograd3x3FilterGradientLine(_ u0: Float, _ u1: Float, _ u2: Float, _ u3: Float) -> (Float, Float, Float) {
    let s = 0.5 * (u1 + u2)
    return (u0 + s, 0.5 * (u1 - u2), s + u3)
}

/// U = (G g Gᵀ) for every filter (the output channels split between the workers) g = w[o][c] of a [O][C][3][3] weight, into u[ξ·C·O + c·O + o]; with `flipped`,
/// g[a][b] = w[o][c][2 − a][2 − b] into u[ξ·C·O + o·C + c] (dx's filters: dy's O channels in, C out).
func winograd3x3Filters(_ w: UnsafePointer<Float>, outs O: Int, ins C: Int, flipped: Bool, into u: UnsafeMutablePointer<Float>) {
    let CO = C * O
    Parallel.forEachChunk(count: O) { outs, _ in for o in outs {
        for c in 0..<C {
            let g = w + (o * C + c) * 9
            @inline(__always) func tap(_ a: Int, _ b: Int) -> Float { flipped ? g[(2 - a) * 3 + 2 - b] : g[a * 3 + b] }
            let k0 = winograd3x3FilterLine(tap(0, 0), tap(1, 0), tap(2, 0))   // column 0, down its rows
            let k1 = winograd3x3FilterLine(tap(0, 1), tap(1, 1), tap(2, 1))
            let k2 = winograd3x3FilterLine(tap(0, 2), tap(1, 2), tap(2, 2))
            let d = u + (flipped ? o * C + c : c * O + o)
            @inline(__always) func row(_ i: Int, _ a: Float, _ b: Float, _ e: Float) {
                let r = winograd3x3FilterLine(a, b, e)
                d[4 * i * CO] = r.0; d[(4 * i + 1) * CO] = r.1; d[(4 * i + 2) * CO] = r.2; d[(4 * i + 3) * CO] = r.3
            }
            row(0, k0.0, k1.0, k2.0); row(1, k0.1, k1.1, k2.1); row(2, k0.2, k1.2, k2.2); row(3, k0.3, k1.3, k2.3)
        }
    } }
}

/// Input tiles of a channels-last plane (zero outside it): tile (ty, tx) reads rows 2·ty − 1 … 2·ty + 2 and the same
/// columns; out[ξ·xiStride + tile·tileStride + c] = (Bᵀ d B)[ξ] for c < C (a multiple of 8). `pixels` is scratch
/// for 16 pointers.
func winograd3x3InputTiles(_ plane: WinogradPlane, channels C: Int, tilesY: Int, tilesX: Int, zeros: UnsafePointer<Float>,
                           pixels p: UnsafeMutablePointer<UnsafePointer<Float>>,
                           out: UnsafeMutablePointer<Float>, firstTile: Int, tileStride: Int, xiStride: Int) {
    for ty in 0..<tilesY {
        let r = 2 &* ty &- 1
        for tx in 0..<tilesX {
            let q = 2 &* tx &- 1
            for i in 0..<4 { for j in 0..<4 { p[i &* 4 &+ j] = plane.pixel(r &+ i, q &+ j, zeros: zeros) } }
            let o = out + (firstTile &+ ty &* tilesX &+ tx) &* tileStride
            var c = 0
            while c < C {
                @inline(__always) func column(_ j: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
                    winograd3x3InputLine(load8(p[j], c), load8(p[4 &+ j], c), load8(p[8 &+ j], c), load8(p[12 &+ j], c))
                }
                let k0 = column(0), k1 = column(1), k2 = column(2), k3 = column(3)
                @inline(__always) func row(_ i: Int, _ a: SIMD8<Float>, _ b: SIMD8<Float>, _ d: SIMD8<Float>, _ e: SIMD8<Float>) {
                    let l = winograd3x3InputLine(a, b, d, e), base = o + 4 &* i &* xiStride
                    store8(l.0, base, c); store8(l.1, base + xiStride, c)
                    store8(l.2, base + 2 &* xiStride, c); store8(l.3, base + 3 &* xiStride, c)
                }
                row(0, k0.0, k1.0, k2.0, k3.0); row(1, k0.1, k1.1, k2.1, k3.1)
                row(2, k0.2, k1.2, k2.2, k3.2); row(3, k0.3, k1.3, k2.3, k3.3)
                c &+= 8
            }
        }
    }
}

/// Output tiles: for tile (ty, tx), the 2×2 values Aᵀ m A (+ bias, then LeakyReLU with `slope`) written to the
/// plane's pixels (2·ty + a, 2·tx + b) that exist; m[ξ] read at ξ·xiStride + tile·tileStride.
func winograd3x3OutputTiles(_ m: UnsafePointer<Float>, channels C: Int, tilesY: Int, tilesX: Int, firstTile: Int,
                            tileStride: Int, xiStride: Int, bias: UnsafePointer<Float>?, slope: Float?, into plane: WinogradPlane) {
    writeOutputTiles(m, channels: C, tilesY: tilesY, tilesX: tilesX, firstTile: firstTile, tileStride: tileStride,
                     bias: bias, slope: slope, into: plane) { s in
        @inline(__always) func column(_ j: Int) -> (SIMD8<Float>, SIMD8<Float>) {
            winograd3x3OutputLine(load8(s, j &* xiStride), load8(s, (4 &+ j) &* xiStride),
                                  load8(s, (8 &+ j) &* xiStride), load8(s, (12 &+ j) &* xiStride))
        }
        let k0 = column(0), k1 = column(1), k2 = column(2), k3 = column(3)
        let (y00, y01) = winograd3x3OutputLine(k0.0, k1.0, k2.0, k3.0)
        let (y10, y11) = winograd3x3OutputLine(k0.1, k1.1, k2.1, k3.1)
        return (y00, y01, y10, y11)
    }
}

/// Output-gradient tiles for the weight gradient: for tile (ty, tx), dy's 2×2 values at (2·ty + a, 2·tx + b)
/// (zero where the plane ends) expanded to A·dy·Aᵀ, written like `winograd3x3InputTiles`.
func winograd3x3GradientTiles(_ plane: WinogradPlane, channels C: Int, tilesY: Int, tilesX: Int, zeros: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>, firstTile: Int, tileStride: Int, xiStride: Int) {
    forEachGradientTile(plane, tilesY: tilesY, tilesX: tilesX, zeros: zeros, out: out, firstTile: firstTile,
                        tileStride: tileStride) { p00, p01, p10, p11, o in
        var c = 0
        while c < C {
            let k0 = winograd3x3GradientLine(load8(p00, c), load8(p10, c))   // column 0, down its rows
            let k1 = winograd3x3GradientLine(load8(p01, c), load8(p11, c))
            @inline(__always) func row(_ i: Int, _ a: SIMD8<Float>, _ b: SIMD8<Float>) {
                let l = winograd3x3GradientLine(a, b), base = o + 4 &* i &* xiStride
                store8(l.0, base, c); store8(l.1, base + xiStride, c)
                store8(l.2, base + 2 &* xiStride, c); store8(l.3, base + 3 &* xiStride, c)
            }
            row(0, k0.0, k1.0); row(1, k0.1, k1.1); row(2, k0.2, k1.2); row(3, k0.3, k1.3)
            c &+= 8
        }
    }
}

/// dg = Gᵀ·dU·G for every filter (the input channels split between the workers): dU[ξ·C·O + c·O + o] (16 values per filter) added to dW[o][c][3][3].
func winograd3x3AddFilterGradients(_ du: UnsafePointer<Float>, outs O: Int, ins C: Int, into dw: UnsafeMutablePointer<Float>) {
    let CO = C * O
    Parallel.forEachChunk(count: C) { ins, _ in for c in ins {
        for o in 0..<O {
            let t = du + c * O + o
            @inline(__always) func column(_ j: Int) -> (Float, Float, Float) {
                winograd3x3FilterGradientLine(t[j * CO], t[(4 + j) * CO], t[(8 + j) * CO], t[(12 + j) * CO])
            }
            let k0 = column(0), k1 = column(1), k2 = column(2), k3 = column(3)
            let d = dw + (o * C + c) * 9
            let r0 = winograd3x3FilterGradientLine(k0.0, k1.0, k2.0, k3.0)
            let r1 = winograd3x3FilterGradientLine(k0.1, k1.1, k2.1, k3.1)
            let r2 = winograd3x3FilterGradientLine(k0.2, k1.2, k2.2, k3.2)
            d[0] += r0.0; d[1] += r0.1; d[2] += r0.2
            d[3] += r1.0; d[4] += r1.1; d[5] += r1.2
            d[6] += r2.0; d[7] += r2.1; d[8] += r2.2
        }
    } }
}

/// The output pass of F(2×2, 3×3) (F(2×2, 2×2)'s runs in `CWinograd`, in the same order): for tile (ty, tx) and each
/// 8 channels c, `reduce` turns the tile's products (read from s = m + tile·tileStride + c onwards) into its 2×2
/// values (y00, y01, y10, y11); + bias, then LeakyReLU with `slope`, stored to the plane's pixels (2·ty + a, 2·tx + b)
/// that exist.
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
/// its row in a tile matrix (out + tile·tileStride), for F(2×2, 3×3)'s A.
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
