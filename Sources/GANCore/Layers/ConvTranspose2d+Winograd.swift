import Foundation

extension ConvTranspose2d {
    /// One output phase (ry, rx): its rows y0 + s·i (i < ny), columns x0 + s·j (j < nx), first input row and column.
    struct WinogradPhase {
        var index, ry, rx, y0, x0, ny, nx, qy0, qx0: Int
        /// The forward pass's 2×2 output tiles of this phase, per image.
        var tilesY: Int { (ny + 1) / 2 }
        var tilesX: Int { (nx + 1) / 2 }

        /// Offsets in one k×k kernel of this phase's 2×2 taps g[a][b] = w[ry + s·a'][rx + s·b'] as
        /// (g00, g01, g10, g11): a' = 1 − a when `flipped` (the forward correlation over x), a' = a otherwise
        /// (dx's correlation over dy).
        func taps(kernel k: Int, stride s: Int, flipped: Bool) -> (Int, Int, Int, Int) {
            let near = ry * k + rx, down = s * k
            return flipped ? (near + down + s, near + down, near + s, near) : (near, near + s, near + down, near + down + s)
        }
    }

    /// `hasWinogradShape`, and every output phase non-empty.
    func usesWinograd(outputHeight: Int, outputWidth: Int) -> Bool {
        KernelSettings.winograd && hasWinogradShape && outputHeight >= stride && outputWidth >= stride
    }

    /// The output phases for an output of OH×OW, kept between calls (no allocation per step), and the most
    /// forward tiles one image has in any phase.
    func winogradPhases(outputHeight OH: Int, outputWidth OW: Int) -> (phases: [WinogradPhase], tilesPerImage: Int) {
        if let plan = winogradPlan, plan.height == OH, plan.width == OW { return (plan.phases, plan.tilesPerImage) }
        var phases: [WinogradPhase] = [], tilesPerImage = 0
        for ry in 0..<stride { for rx in 0..<stride {
            let (y0, ny, qy0) = phaseRange(phase: ry, stride: stride, padding: padding, size: OH)
            let (x0, nx, qx0) = phaseRange(phase: rx, stride: stride, padding: padding, size: OW)
            let phase = WinogradPhase(index: ry * stride + rx, ry: ry, rx: rx, y0: y0, x0: x0, ny: ny, nx: nx, qy0: qy0, qx0: qx0)
            phases.append(phase)
            tilesPerImage = max(tilesPerImage, phase.tilesY * phase.tilesX)
        } }
        winogradPlan = (OH, OW, phases, tilesPerImage)
        return (phases, tilesPerImage)
    }

    /// The forward pass's input tiles for phase `ph` of `nb` channels-last images x [H][W][C]: a tile matrix
    /// [9][nb · tiles per image][C], sample-major.
    func forwardInputTiles(_ images: UnsafePointer<Float>, count nb: Int, height H: Int, width W: Int, phase ph: WinogradPhase,
                           zeros: UnsafePointer<Float>, into v: UnsafeMutablePointer<Float>) {
        let C = inChannels, perImage = ph.tilesY * ph.tilesX
        for j in 0..<nb {
            winogradInputTiles(WinogradPlane(base: images + j * H * W * C, rowStep: W * C, columnStep: C, rows: H, columns: W),
                               channels: C, originRow: ph.qy0 - 1, originColumn: ph.qx0 - 1, tilesY: ph.tilesY, tilesX: ph.tilesX,
                               zeros: zeros, out: v, firstTile: j * perImage, tileStride: C, xiStride: nb * perImage * C)
        }
    }

    /// Channels-last copies [P][C] of samples n..<n + nb of a [N][C][P] tensor, in the worker's `slot`.
    func channelsLastGroup(_ src: UnsafePointer<Float>, samples n: Int, count nb: Int, channels C: Int, positions P: Int,
                           worker: Int, slot: Int) -> UnsafeMutablePointer<Float> {
        let images = workspace.buffer(worker: worker, slot: slot, count: nb * C * P)
        for j in 0..<nb { channelsLast(src + (n + j) * C * P, images + j * C * P, channels: C, positions: P) }
        return images
    }

    /// Samples per group: about 128 tiles per GEMM, so that a group's 9 tile matrices (9·128·128 floats) are about
    /// the size of a core's L2; 64 to 512 tiles measured the same within noise.
    func winogradGroup(tilesPerImage: Int) -> Int { max(1, 128 / max(1, tilesPerImage)) }

    // x [N, Cin, H, W] → y [N, Cout, OH, OW]. Phase (ry, rx) is a 2×2 correlation of x (rows from qy0 − 1) with
    // g[a][b] = w[·, ·, ry + s·(1 − a), rx + s·(1 − b)]; per group of samples and phase: input tiles, 9 GEMMs,
    // output tiles into a channels-last y, then one transpose per sample.
    func forwardWinograd(_ x: Tensor, _ y: Tensor, foldingBatchNorm bn: BatchNorm?) {
        let N = x.shape[0], C = inChannels, O = outChannels, H = x.shape[2], W = x.shape[3]
        let OH = y.shape[2], OW = y.shape[3], s = stride, k = kernelSize
        let slope = foldAffine(bn), scale = foldedScale.data, bp = foldedBias.data
        let (phases, tilesPerImage) = winogradPhases(outputHeight: OH, outputWidth: OW)
        let filters = Tensor.reuse(winogradWeightScratch, shape: [s * s * 9 * C * O])
        winogradWeightScratch = filters
        // U[phase][ξ][c][o] = (G g Gᵀ)[ξ] · scale[o]
        let w = weight.value.data, u = filters.data, CO = C * O
        Parallel.forEachChunk(count: phases.count) { range, _ in for ph in phases[range] {
            let base = u + ph.index * 9 * CO
            let (i00, i01, i10, i11) = ph.taps(kernel: k, stride: s, flipped: true)
            for c in 0..<C {
                for o in 0..<O {
                    let src = w + (c * O + o) * k * k, sc = scale[o]
                    let e = winogradExpand(src[i00], src[i01], src[i10], src[i11])
                    let d = base + c * O + o
                    d[0] = e.0 * sc; d[CO] = e.1 * sc; d[2 * CO] = e.2 * sc
                    d[3 * CO] = e.3 * sc; d[4 * CO] = e.4 * sc; d[5 * CO] = e.5 * sc
                    d[6 * CO] = e.6 * sc; d[7 * CO] = e.7 * sc; d[8 * CO] = e.8 * sc
                }
            }
        } }
        let group = winogradGroup(tilesPerImage: tilesPerImage)
        let xp = x.data, yp = y.data, ws = workspace, outImage = OH * OW * O
        Parallel.forEachChunk(count: N) { range, worker in
            let zeros = ws.buffer(worker: worker, slot: 5, count: C)
            zeros.update(repeating: 0, count: C)
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n)
                let images = self.channelsLastGroup(xp, samples: n, count: nb, channels: C, positions: H * W, worker: worker, slot: 3)
                let outImages = ws.buffer(worker: worker, slot: 4, count: nb * outImage)
                let v = ws.buffer(worker: worker, slot: 0, count: 9 * nb * tilesPerImage * C)
                let m = ws.buffer(worker: worker, slot: 1, count: 9 * nb * tilesPerImage * O)
                for ph in phases {
                    let tilesY = ph.tilesY, tilesX = ph.tilesX, perImage = tilesY * tilesX, tiles = nb * perImage
                    forwardInputTiles(images, count: nb, height: H, width: W, phase: ph, zeros: zeros, into: v)
                    for xi in 0..<9 {
                        gemm(transA: false, transB: false, m: tiles, n: O, k: C, a: v + xi * tiles * C, lda: C,
                             b: u + (ph.index * 9 + xi) * CO, ldb: O, c: m + xi * tiles * O, ldc: O)
                    }
                    for j in 0..<nb {
                        let plane = WinogradPlane(base: outImages + j * outImage + (ph.y0 * OW + ph.x0) * O,
                                                  rowStep: s * OW * O, columnStep: s * O, rows: ph.ny, columns: ph.nx)
                        winogradOutputTiles(m, channels: O, tilesY: tilesY, tilesX: tilesX, firstTile: j * perImage,
                                            tileStride: O, xiStride: tiles * O, bias: bp, slope: slope, into: plane)
                    }
                }
                for j in 0..<nb { channelsFirst(outImages + j * outImage, yp + (n + j) * outImage, channels: O, positions: OH * OW) }
                n += nb
            }
        }
    }

    // dy [N, Cout, OH, OW] → dx [N, Cin, H, W]; dW, db accumulated.
    // dx: phase (ry, rx) contributes a 2×2 correlation of its dy plane (rows from −qy0) with
    // g'[t][u] = w[·, ·, ry + s·t, rx + s·u]; the phases are summed inside one GEMM per ξ (k = phases·Cout).
    // dW: per phase, dU[ξ] += V[ξ]ᵀ·(A dy Aᵀ)[ξ] over the tiles of the forward pass, then dg = Gᵀ dU G.
    // `dxBias` and `dxSlope` (bias, then LeakyReLU, on dx) serve `Conv2d`, whose forward pass this dx is.
    func backwardWinograd(_ x: Tensor, _ dy: Tensor, _ dx: Tensor?, weightGradients: Bool,
                          dxBias: UnsafePointer<Float>? = nil, dxSlope: Float? = nil) {
        let N = x.shape[0], C = inChannels, O = outChannels, H = x.shape[2], W = x.shape[3]
        let OH = dy.shape[2], OW = dy.shape[3], s = stride, k = kernelSize, S = s * s
        let (phases, forwardTiles) = winogradPhases(outputHeight: OH, outputWidth: OW)
        let CO = C * O, SO = S * O
        let w = weight.value.data
        var u = w  // the dx filters, when needed
        if dx != nil {
            // U'[ξ][(phase, o)][c] = (G g' Gᵀ)[ξ]
            let filters = Tensor.reuse(winogradWeightScratch, shape: [S * 9 * CO])
            winogradWeightScratch = filters
            let uf = filters.data
            u = uf
            Parallel.forEachChunk(count: phases.count) { range, _ in for ph in phases[range] {
                let (i00, i01, i10, i11) = ph.taps(kernel: k, stride: s, flipped: false)
                for o in 0..<O {
                    let row = uf + (ph.index * O + o) * C, step = SO * C
                    for c in 0..<C {
                        let src = w + (c * O + o) * k * k
                        let e = winogradExpand(src[i00], src[i01], src[i10], src[i11])
                        let d = row + c
                        d[0] = e.0; d[step] = e.1; d[2 * step] = e.2
                        d[3 * step] = e.3; d[4 * step] = e.4; d[5 * step] = e.5
                        d[6 * step] = e.6; d[7 * step] = e.7; d[8 * step] = e.8
                    }
                }
            } }
        }
        let dataTilesY = (H + 1) / 2, dataTilesX = (W + 1) / 2, dataTiles = dataTilesY * dataTilesX
        let group = winogradGroup(tilesPerImage: forwardTiles), dataGroup = max(1, 64 / dataTiles)
        let xp = x.data, dyp = dy.data, dxp = dx?.data, uf = u, ws = workspace, hasBias = bias != nil
        let HWC = H * W * C, outImage = OH * OW * O, gradientCount = S * 9 * CO + O
        Parallel.forEachChunk(count: N) { range, worker in
            let zeros = ws.buffer(worker: worker, slot: 5, count: max(C, O))
            zeros.update(repeating: 0, count: max(C, O))
            let dU = ws.buffer(worker: worker, slot: 2, count: gradientCount)
            if weightGradients { dU.update(repeating: 0, count: gradientCount) }
            var n = range.lowerBound
            while n < range.upperBound {
                let nb = min(group, range.upperBound - n)
                let dyImages = self.channelsLastGroup(dyp, samples: n, count: nb, channels: O, positions: OH * OW, worker: worker, slot: 4)
                func dyPlane(_ j: Int, _ ph: WinogradPhase) -> WinogradPlane {
                    WinogradPlane(base: dyImages + j * outImage + (ph.y0 * OW + ph.x0) * O,
                                  rowStep: s * OW * O, columnStep: s * O, rows: ph.ny, columns: ph.nx)
                }
                if weightGradients {
                    let images = self.channelsLastGroup(xp, samples: n, count: nb, channels: C, positions: H * W, worker: worker, slot: 3)
                    let v = ws.buffer(worker: worker, slot: 0, count: 9 * nb * forwardTiles * C)
                    let g = ws.buffer(worker: worker, slot: 1, count: 9 * nb * forwardTiles * O)
                    for ph in phases {
                        let tilesY = ph.tilesY, tilesX = ph.tilesX, perImage = tilesY * tilesX, tiles = nb * perImage
                        forwardInputTiles(images, count: nb, height: H, width: W, phase: ph, zeros: zeros, into: v)
                        for j in 0..<nb {
                            winogradGradientTiles(dyPlane(j, ph), channels: O, tilesY: tilesY, tilesX: tilesX, zeros: zeros,
                                                  out: g, firstTile: j * perImage, tileStride: O, xiStride: tiles * O)
                        }
                        for xi in 0..<9 {
                            gemm(transA: true, transB: false, m: C, n: O, k: tiles, a: v + xi * tiles * C, lda: C,
                                 b: g + xi * tiles * O, ldb: O, beta: 1, c: dU + (ph.index * 9 + xi) * CO, ldc: O)
                        }
                    }
                }
                if let dxp {
                    // In sub-groups of about 64 tiles: each tile row of V' is phases·Cout long.
                    var j0 = 0
                    while j0 < nb {
                        let mb = min(dataGroup, nb - j0), tiles = mb * dataTiles
                        let v = ws.buffer(worker: worker, slot: 0, count: 9 * tiles * SO)
                        let m = ws.buffer(worker: worker, slot: 1, count: 9 * tiles * C)
                        for ph in phases {
                            for j in 0..<mb {
                                winogradInputTiles(dyPlane(j0 + j, ph), channels: O, originRow: -ph.qy0, originColumn: -ph.qx0,
                                                   tilesY: dataTilesY, tilesX: dataTilesX, zeros: zeros,
                                                   out: v + ph.index * O, firstTile: j * dataTiles, tileStride: SO, xiStride: tiles * SO)
                            }
                        }
                        for xi in 0..<9 {
                            gemm(transA: false, transB: false, m: tiles, n: C, k: SO, a: v + xi * tiles * SO, lda: SO,
                                 b: uf + xi * SO * C, ldb: C, c: m + xi * tiles * C, ldc: C)
                        }
                        // The x images of this group (slot 3) are no longer needed: dx goes there channels-last.
                        let images = ws.buffer(worker: worker, slot: 3, count: nb * HWC)
                        for j in 0..<mb {
                            winogradOutputTiles(m, channels: C, tilesY: dataTilesY, tilesX: dataTilesX, firstTile: j * dataTiles,
                                                tileStride: C, xiStride: tiles * C, bias: dxBias, slope: dxSlope,
                                                into: WinogradPlane(base: images + j * HWC, rowStep: W * C, columnStep: C, rows: H, columns: W))
                            channelsFirst(images + j * HWC, dxp + (n + j0 + j) * C * H * W, channels: C, positions: H * W)
                        }
                        j0 += mb
                    }
                }
                n += nb
            }
            if weightGradients && hasBias {
                let db = dU + S * 9 * CO
                for n in range { for o in 0..<O { db[o] += vectorSum(dyp + (n * O + o) * OH * OW, OH * OW) } }
            }
        }
        guard weightGradients else { return }
        // The workers' sums in worker order (a fixed order, so results do not depend on timing) into worker 0's
        // buffer, then dg = Gᵀ dU G; the phases write disjoint taps of dW, so they split between the workers.
        let workers = max(1, min(Parallel.workerCount, N))
        let total = ws.buffer(worker: 0, slot: 2, count: gradientCount)
        let dw = weight.grad.data
        Parallel.forEachChunk(count: phases.count) { range, _ in
            for ph in phases[range] {
                let base = total + ph.index * 9 * CO
                for wk in 1..<workers {
                    let other = ws.buffer(worker: wk, slot: 2, count: gradientCount) + ph.index * 9 * CO
                    for i in 0..<9 * CO { base[i] += other[i] }
                }
                let (i00, i01, i10, i11) = ph.taps(kernel: k, stride: s, flipped: true)
                for c in 0..<C {
                    for o in 0..<O {
                        let t = base + c * O + o
                        let (g00, g01, g10, g11) = winogradReduce((t[0], t[CO], t[2 * CO], t[3 * CO], t[4 * CO],
                                                                   t[5 * CO], t[6 * CO], t[7 * CO], t[8 * CO]))
                        let d = dw + (c * O + o) * k * k
                        d[i00] += g00; d[i01] += g01; d[i10] += g10; d[i11] += g11
                    }
                }
            }
        }
        for wk in 1..<workers {
            let other = ws.buffer(worker: wk, slot: 2, count: gradientCount)
            for o in 0..<O { total[S * 9 * CO + o] += other[S * 9 * CO + o] }
        }
        if let db = bias?.grad.data { for o in 0..<O { db[o] += total[S * 9 * CO + o] } }
    }
}
