import Foundation
import GANCore

/// pytorch-fid's Inception-v3 for FID (`pytorch_fid.inception.InceptionV3`, block 3): the 2048 pool features
/// of images in [0, 1], resized to 299×299 bilinearly (`F.interpolate(mode="bilinear", align_corners=False)`)
/// and scaled to [−1, 1] as pytorch-fid does. Inference only: each BasicConv2d (convolution, batch norm with
/// eps 1e-3, ReLU) is folded into one convolution with a bias at load time; the FID blocks average-pool
/// without the padding (`count_include_pad=False`) and Mixed_7c pools its last branch by max, as in
/// pytorch-fid's FIDInceptionA/C/E_1/E_2. Weights by pytorch-fid's state-dict names, from the .pth file users
/// have (`TorchCheckpoint`) or safetensors.
///
/// ```swift
/// let inception = try InceptionFID(weights: TorchCheckpoint.read(from: URL(fileURLWithPath: "pt_inception-2015-12-05-6726825d.pth")))
/// let features = inception.features(images)   // [N, 3, 32, 32] in [0, 1] → [N, 2048]
/// ```
public final class InceptionFID {
    public struct WeightsError: UserFacingError {
        public let description: String
    }

    /// A folded BasicConv2d: weight [out][in·kh·kw] and bias [out].
    struct Conv {
        let cin, cout, kh, kw, stride, ph, pw: Int
        let weight: [Float], bias: [Float]
    }

    /// Activations of `n` images, NCHW (one image unless said otherwise).
    struct Map {
        var n = 1
        var c, h, w: Int
        var data: [Float]
        init(n: Int = 1, c: Int, h: Int, w: Int, data: [Float]) { self.n = n; self.c = c; self.h = h; self.w = w; self.data = data }
        var imageSize: Int { c * h * w }
        func image(_ i: Int) -> Map { Map(c: c, h: h, w: w, data: Array(data[(i * imageSize)..<((i + 1) * imageSize)])) }
    }

    /// Images per pass through the network: enough for oneDNN to fill both cores, few enough that the largest
    /// activation (64 × 147 × 147 floats an image) stays small.
    public var batchSize = 8
    /// oneDNN's primitives per (layer, batch size), made on first use; empty where oneDNN is not installed.
    private var oneDNN: [String: OneDNNConvolution] = [:]

    public static let featureCount = 2048
    public static let inputSize = 299
    private let convs: [String: Conv]

    /// Every BasicConv2d: name, in, out, kernel (h, w), stride, padding (h, w).
    static let layout: [(String, Int, Int, Int, Int, Int, Int, Int)] = {
        var l: [(String, Int, Int, Int, Int, Int, Int, Int)] = [
            ("Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0), ("Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0),
            ("Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1), ("Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0),
            ("Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0),
        ]
        for (m, cin, pool) in [("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)] {
            l += [("\(m).branch1x1", cin, 64, 1, 1, 1, 0, 0), ("\(m).branch5x5_1", cin, 48, 1, 1, 1, 0, 0),
                  ("\(m).branch5x5_2", 48, 64, 5, 5, 1, 2, 2), ("\(m).branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0),
                  ("\(m).branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1), ("\(m).branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1),
                  ("\(m).branch_pool", cin, pool, 1, 1, 1, 0, 0)]
        }
        l += [("Mixed_6a.branch3x3", 288, 384, 3, 3, 2, 0, 0), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1, 1, 0, 0),
              ("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0)]
        for (m, c7) in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)] {
            l += [("\(m).branch1x1", 768, 192, 1, 1, 1, 0, 0), ("\(m).branch7x7_1", 768, c7, 1, 1, 1, 0, 0),
                  ("\(m).branch7x7_2", c7, c7, 1, 7, 1, 0, 3), ("\(m).branch7x7_3", c7, 192, 7, 1, 1, 3, 0),
                  ("\(m).branch7x7dbl_1", 768, c7, 1, 1, 1, 0, 0), ("\(m).branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0),
                  ("\(m).branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3), ("\(m).branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0),
                  ("\(m).branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3), ("\(m).branch_pool", 768, 192, 1, 1, 1, 0, 0)]
        }
        l += [("Mixed_7a.branch3x3_1", 768, 192, 1, 1, 1, 0, 0), ("Mixed_7a.branch3x3_2", 192, 320, 3, 3, 2, 0, 0),
              ("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1, 1, 0, 0), ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3),
              ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0), ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0)]
        for (m, cin) in [("Mixed_7b", 1280), ("Mixed_7c", 2048)] {
            l += [("\(m).branch1x1", cin, 320, 1, 1, 1, 0, 0), ("\(m).branch3x3_1", cin, 384, 1, 1, 1, 0, 0),
                  ("\(m).branch3x3_2a", 384, 384, 1, 3, 1, 0, 1), ("\(m).branch3x3_2b", 384, 384, 3, 1, 1, 1, 0),
                  ("\(m).branch3x3dbl_1", cin, 448, 1, 1, 1, 0, 0), ("\(m).branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1),
                  ("\(m).branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1), ("\(m).branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0),
                  ("\(m).branch_pool", cin, 192, 1, 1, 1, 0, 0)]
        }
        return l
    }()

    /// Folds every BasicConv2d of `weights` (pytorch-fid's names; other entries such as `fc.*` are ignored).
    public init(weights: [String: SafeTensors.Entry], file: String = "the Inception weights") throws {
        var convs: [String: Conv] = [:]
        for (name, cin, cout, kh, kw, stride, ph, pw) in Self.layout {
            func entry(_ suffix: String, _ shape: [Int]) throws -> [Float] {
                guard let e = weights["\(name).\(suffix)"] else {
                    throw WeightsError(description: "\(file): missing '\(name).\(suffix)' (not pytorch-fid's FID Inception weights?)")
                }
                guard e.shape == shape else {
                    throw WeightsError(description: "\(file): '\(name).\(suffix)' has shape \(e.shape), expected \(shape)")
                }
                return e.values
            }
            let w = try entry("conv.weight", [cout, cin, kh, kw])
            let gamma = try entry("bn.weight", [cout]), beta = try entry("bn.bias", [cout])
            let mean = try entry("bn.running_mean", [cout]), variance = try entry("bn.running_var", [cout])
            let k = cin * kh * kw
            var folded = [Float](repeating: 0, count: cout * k), bias = [Float](repeating: 0, count: cout)
            for o in 0..<cout {
                // BN(conv(x)) = γ (conv(x) − μ) / √(σ² + ε) + β, ε = 1e-3, in double for the fold
                let scale = Double(gamma[o]) / (Double(variance[o]) + 1e-3).squareRoot()
                for i in 0..<k { folded[o * k + i] = Float(Double(w[o * k + i]) * scale) }
                bias[o] = Float(Double(beta[o]) - Double(mean[o]) * scale)
            }
            convs[name] = Conv(cin: cin, cout: cout, kh: kh, kw: kw, stride: stride, ph: ph, pw: pw, weight: folded, bias: bias)
        }
        self.convs = convs
    }

    /// The 2048 pool features [N, 2048] of images [N, 3, H, W] with values in [0, 1], `batchSize` images a pass.
    public func features(_ images: Tensor) -> Tensor {
        let n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3]
        precondition(c == 3, "InceptionFID: RGB images expected, got \(c) channels")
        let out = Tensor(shape: [n, Self.featureCount])
        var start = 0
        while start < n {
            let count = min(batchSize, n - start), size = 3 * h * w
            let batch = Map(n: count, c: 3, h: h, w: w, data: Array(UnsafeBufferPointer(start: images.data + start * size, count: count * size)))
            let f = forward(batch)
            (out.data + start * Self.featureCount).update(from: f, count: count * Self.featureCount)
            start += count
        }
        return out
    }

    /// A batch through the network: resize, scale, the blocks, the global average → [n · 2048].
    func forward(_ images: Map) -> [Float] {
        var x = Self.eachImage(images) { Self.resizeBilinear($0, to: Self.inputSize) }
        for i in x.data.indices { x.data[i] = 2 * x.data[i] - 1 }
        x = conv("Conv2d_1a_3x3", x); x = conv("Conv2d_2a_3x3", x); x = conv("Conv2d_2b_3x3", x)
        x = Self.eachImage(x) { Self.maxPool($0, kernel: 3, stride: 2, padding: 0) }
        x = conv("Conv2d_3b_1x1", x); x = conv("Conv2d_4a_3x3", x)
        x = Self.eachImage(x) { Self.maxPool($0, kernel: 3, stride: 2, padding: 0) }
        for m in ["Mixed_5b", "Mixed_5c", "Mixed_5d"] {                      // FIDInceptionA
            let b1 = conv("\(m).branch1x1", x)
            let b5 = conv("\(m).branch5x5_2", conv("\(m).branch5x5_1", x))
            let b3 = conv("\(m).branch3x3dbl_3", conv("\(m).branch3x3dbl_2", conv("\(m).branch3x3dbl_1", x)))
            let bp = conv("\(m).branch_pool", Self.eachImage(x, Self.averagePoolExcludingPadding))
            x = Self.concatenate([b1, b5, b3, bp])
        }
        do {                                                                  // InceptionB
            let b3 = conv("Mixed_6a.branch3x3", x)
            let bd = conv("Mixed_6a.branch3x3dbl_3", conv("Mixed_6a.branch3x3dbl_2", conv("Mixed_6a.branch3x3dbl_1", x)))
            x = Self.concatenate([b3, bd, Self.eachImage(x) { Self.maxPool($0, kernel: 3, stride: 2, padding: 0) }])
        }
        for m in ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"] {           // FIDInceptionC
            let b1 = conv("\(m).branch1x1", x)
            let b7 = conv("\(m).branch7x7_3", conv("\(m).branch7x7_2", conv("\(m).branch7x7_1", x)))
            var bd = conv("\(m).branch7x7dbl_1", x)
            for k in 2...5 { bd = conv("\(m).branch7x7dbl_\(k)", bd) }
            let bp = conv("\(m).branch_pool", Self.eachImage(x, Self.averagePoolExcludingPadding))
            x = Self.concatenate([b1, b7, bd, bp])
        }
        do {                                                                  // InceptionD
            let b3 = conv("Mixed_7a.branch3x3_2", conv("Mixed_7a.branch3x3_1", x))
            var b7 = conv("Mixed_7a.branch7x7x3_1", x)
            for k in 2...4 { b7 = conv("Mixed_7a.branch7x7x3_\(k)", b7) }
            x = Self.concatenate([b3, b7, Self.eachImage(x) { Self.maxPool($0, kernel: 3, stride: 2, padding: 0) }])
        }
        for m in ["Mixed_7b", "Mixed_7c"] {                                   // FIDInceptionE_1, FIDInceptionE_2
            let b1 = conv("\(m).branch1x1", x)
            let t = conv("\(m).branch3x3_1", x)
            let b3 = Self.concatenate([conv("\(m).branch3x3_2a", t), conv("\(m).branch3x3_2b", t)])
            let u = conv("\(m).branch3x3dbl_2", conv("\(m).branch3x3dbl_1", x))
            let bd = Self.concatenate([conv("\(m).branch3x3dbl_3a", u), conv("\(m).branch3x3dbl_3b", u)])
            let pooled = m == "Mixed_7b" ? Self.eachImage(x, Self.averagePoolExcludingPadding) : Self.eachImage(x) { Self.maxPool($0, kernel: 3, stride: 1, padding: 1) }
            x = Self.concatenate([b1, b3, bd, conv("\(m).branch_pool", pooled)])
        }
        return Self.eachImage(x) { Map(c: Self.featureCount, h: 1, w: 1, data: Self.globalAverage($0)) }.data
    }

    // MARK: - Layers on a batch

    /// A folded BasicConv2d on every image: oneDNN's convolution for the whole batch where it is installed,
    /// else `convolveImage` on each image (the reference the tests hold oneDNN's path to).
    func conv(_ name: String, _ x: Map) -> Map {
        let p = convs[name]!
        guard let plan = oneDNNPlan(name, p, x) else { return Self.eachImage(x) { self.convolveImage(name, $0) } }   // the fallback
        let oh = (x.h + 2 * p.ph - p.kh) / p.stride + 1, ow = (x.w + 2 * p.pw - p.kw) / p.stride + 1
        var out = Map(n: x.n, c: p.cout, h: oh, w: ow, data: [Float](repeating: 0, count: x.n * p.cout * oh * ow))
        x.data.withUnsafeBufferPointer { xp in
            p.weight.withUnsafeBufferPointer { wp in
                p.bias.withUnsafeBufferPointer { bp in
                    out.data.withUnsafeMutableBufferPointer { yp in
                        plan.forward(x: xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress!, y: yp.baseAddress!)
                    }
                }
            }
        }
        return out
    }

    /// oneDNN's primitives for this layer and batch size, or nil to use `convolveImage` (oneDNN missing, switched
    /// off with `CIFAR_GAN_CONVOLUTION=blas`, or refusing the shape).
    private func oneDNNPlan(_ name: String, _ p: Conv, _ x: Map) -> OneDNNConvolution? {
        guard KernelSettings.convolution != .blas else { return nil }
        let key = "\(name)-\(x.n)"
        if let plan = oneDNN[key] { return plan }
        guard let plan = OneDNNConvolution(inferenceInput: [x.n, x.c, x.h, x.w], outChannels: p.cout, kernelHeight: p.kh,
                                           kernelWidth: p.kw, stride: p.stride, paddingHeight: p.ph, paddingWidth: p.pw,
                                           reluAfter: true) else { return nil }
        oneDNN[key] = plan
        return plan
    }

    /// `body` on each image of a batch, images in parallel, the results stacked in order.
    static func eachImage(_ x: Map, _ body: (Map) -> Map) -> Map {
        var results = [Map?](repeating: nil, count: x.n)
        results.withUnsafeMutableBufferPointer { r in
            let r = r   // each index is written by one worker
            Parallel.forEachChunk(count: x.n) { range, _ in for i in range { r[i] = body(x.image(i)) } }
        }
        let first = results[0]!
        return Map(n: x.n, c: first.c, h: first.h, w: first.w, data: results.flatMap { $0!.data })
    }

    // MARK: - Layers on one image

    /// A folded BasicConv2d: im2col (skipped for 1×1 stride-1), one GEMM, bias and ReLU.
    func convolveImage(_ name: String, _ x: Map) -> Map {
        let p = convs[name]!
        precondition(x.c == p.cin, "InceptionFID \(name): \(x.c) input channels, expected \(p.cin)")
        let oh = (x.h + 2 * p.ph - p.kh) / p.stride + 1, ow = (x.w + 2 * p.pw - p.kw) / p.stride + 1
        let positions = oh * ow, k = p.cin * p.kh * p.kw
        var out = [Float](repeating: 0, count: p.cout * positions)
        let direct = p.kh == 1 && p.kw == 1 && p.stride == 1
        var columns = direct ? [] : [Float](repeating: 0, count: k * positions)
        if !direct {
            // columns[(c, ky, kx)][(oy, ox)] = x[c][oy·s + ky − ph][ox·s + kx − pw] (0 outside)
            x.data.withUnsafeBufferPointer { src in
                columns.withUnsafeMutableBufferPointer { col in
                    for c in 0..<p.cin {
                        for ky in 0..<p.kh {
                            for kx in 0..<p.kw {
                                let row = ((c * p.kh + ky) * p.kw + kx) * positions
                                for oy in 0..<oh {
                                    let iy = oy * p.stride + ky - p.ph
                                    let base = row + oy * ow
                                    if iy < 0 || iy >= x.h { continue }
                                    let line = (c * x.h + iy) * x.w
                                    for ox in 0..<ow {
                                        let ix = ox * p.stride + kx - p.pw
                                        if ix >= 0 && ix < x.w { col[base + ox] = src[line + ix] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let b: [Float] = direct ? x.data : columns
        p.weight.withUnsafeBufferPointer { w in
            b.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { o in
                    gemm(transA: false, transB: false, m: p.cout, n: positions, k: k,
                         a: w.baseAddress!, lda: k, b: bp.baseAddress!, ldb: positions, c: o.baseAddress!, ldc: positions)
                    for ch in 0..<p.cout {
                        let bias = p.bias[ch]
                        for q in (ch * positions)..<((ch + 1) * positions) { o[q] = max(o[q] + bias, 0) }
                    }
                }
            }
        }
        return Map(c: p.cout, h: oh, w: ow, data: out)
    }

    /// `F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)`: source = (dst + ½)·in/out − ½,
    /// clamped at 0, in float as PyTorch's CPU kernel computes it.
    static func resizeBilinear(_ x: Map, to s: Int) -> Map {
        func taps(_ n: Int) -> [(Int, Int, Float)] {
            let scale = Float(n) / Float(s)
            return (0..<s).map { d in
                let src = max(scale * (Float(d) + 0.5) - 0.5, 0)
                let i0 = Int(src), i1 = i0 < n - 1 ? i0 + 1 : i0
                return (i0, i1, src - Float(i0))
            }
        }
        let ys = taps(x.h), xs = taps(x.w)
        var out = [Float](repeating: 0, count: x.c * s * s)
        for c in 0..<x.c {
            for (oy, (y0, y1, ly)) in ys.enumerated() {
                for (ox, (x0, x1, lx)) in xs.enumerated() {
                    let at = { (y: Int, xx: Int) in x.data[(c * x.h + y) * x.w + xx] }
                    out[(c * s + oy) * s + ox] = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1))
                        + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1))
                }
            }
        }
        return Map(c: x.c, h: s, w: s, data: out)
    }

    static func maxPool(_ x: Map, kernel k: Int, stride s: Int, padding p: Int) -> Map {
        let oh = (x.h + 2 * p - k) / s + 1, ow = (x.w + 2 * p - k) / s + 1
        var out = [Float](repeating: -.infinity, count: x.c * oh * ow)
        for c in 0..<x.c {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var m = -Float.infinity
                    for ky in 0..<k {
                        let iy = oy * s + ky - p
                        if iy < 0 || iy >= x.h { continue }
                        for kx in 0..<k {
                            let ix = ox * s + kx - p
                            if ix >= 0 && ix < x.w { m = max(m, x.data[(c * x.h + iy) * x.w + ix]) }
                        }
                    }
                    out[(c * oh + oy) * ow + ox] = m
                }
            }
        }
        return Map(c: x.c, h: oh, w: ow, data: out)
    }

    /// 3×3 average pooling, stride 1, padding 1, dividing by the number of pixels inside the image.
    static func averagePoolExcludingPadding(_ x: Map) -> Map {
        var out = [Float](repeating: 0, count: x.data.count)
        for c in 0..<x.c {
            for y in 0..<x.h {
                for xx in 0..<x.w {
                    var s: Float = 0, n: Float = 0
                    for iy in max(0, y - 1)...min(x.h - 1, y + 1) {
                        for ix in max(0, xx - 1)...min(x.w - 1, xx + 1) { s += x.data[(c * x.h + iy) * x.w + ix]; n += 1 }
                    }
                    out[(c * x.h + y) * x.w + xx] = s / n
                }
            }
        }
        return Map(c: x.c, h: x.h, w: x.w, data: out)
    }

    /// Maps of one size and batch, stacked along the channels (`torch.cat(…, 1)`).
    static func concatenate(_ maps: [Map]) -> Map {
        let n = maps[0].n
        var data = [Float](); data.reserveCapacity(maps.reduce(0) { $0 + $1.data.count })
        for i in 0..<n { for m in maps { data += m.data[(i * m.imageSize)..<((i + 1) * m.imageSize)] } }
        return Map(n: n, c: maps.reduce(0) { $0 + $1.c }, h: maps[0].h, w: maps[0].w, data: data)
    }

    static func globalAverage(_ x: Map) -> [Float] {
        let hw = x.h * x.w
        return (0..<x.c).map { c in
            var s: Double = 0
            for q in 0..<hw { s += Double(x.data[c * hw + q]) }
            return Float(s / Double(hw))
        }
    }
}
