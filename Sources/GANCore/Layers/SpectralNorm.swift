/// A layer whose weight a wrapper may replace before each forward (Linear, Conv2d).
///
/// ```swift
/// let layer: WeightedLayer = Linear(inFeatures: 4, outFeatures: 2, rng: &rng)
/// let sn = SpectralNorm(layer, rng: &rng)
/// ```
public protocol WeightedLayer: Layer {
    var weight: Parameter { get }
    var bias: Parameter? { get }
}

extension Linear: WeightedLayer {}
extension Conv2d: WeightedLayer {}

extension SpectralNorm: LeakyReLUGradientFusing {
    public var canFuseInputLeakyReLUGradient: Bool { inner is LeakyReLUGradientFusing }
    public func fuseInputLeakyReLUGradient(negativeSlope: Float) {
        (inner as? LeakyReLUGradientFusing)?.fuseInputLeakyReLUGradient(negativeSlope: negativeSlope)
    }
}

extension SpectralNorm: LeakyReLUFusing {
    public var canFuseLeakyReLU: Bool { inner is LeakyReLUFusing }
    public func fuseLeakyReLU(negativeSlope: Float) {
        (inner as? LeakyReLUFusing)?.fuseLeakyReLU(negativeSlope: negativeSlope)
    }
}

/// Spectral normalisation of a layer's weight (Miyato et al. 2018), `torch.nn.utils.spectral_norm`
/// semantics: the trained parameter is `weight_orig`; each training-mode forward runs one power
/// iteration on the buffers `weight_u` [out] and `weight_v` [in·k·k] (v ← Wᵀu/‖Wᵀu‖, u ← Wv/‖Wv‖)
/// and the wrapped layer computes with W = weight_orig / σ, σ = uᵀ W v. Eval mode reuses u and v.
///
/// The backward pass treats u and v as constants, as PyTorch does (they are computed without grad):
/// ∂L/∂W_orig = (G − ⟨G, W⟩·u vᵀ) / σ, with G = ∂L/∂W the wrapped layer's weight gradient.
///
/// ```swift
/// let conv = SpectralNorm(Conv2d(inChannels: 3, outChannels: 64, kernelSize: 3, padding: 1, rng: &rng), rng: &rng)
/// let y = conv.forward(x, training: true)   // state dict: weight_orig, bias, weight_u, weight_v
/// ```
public final class SpectralNorm: Layer {
    public let inner: WeightedLayer
    public let weightOrig: Parameter
    public let u: Tensor
    public let v: Tensor
    public let eps: Float = 1e-12
    /// σ of the last forward.
    public private(set) var sigma: Float = 1
    /// Rows (output channels) and columns (everything else) of the weight seen as a matrix.
    private let rows: Int, columns: Int

    public init(_ inner: WeightedLayer, rng: inout RandomGenerator) {
        self.inner = inner
        let w = inner.weight.value
        rows = w.shape[0]; columns = w.count / rows
        weightOrig = Parameter(w.clone())
        u = Tensor(shape: [rows]); v = Tensor(shape: [columns])
        rng.fillNormal(u); rng.fillNormal(v)
        SpectralNorm.normalize(u.data, rows, eps); SpectralNorm.normalize(v.data, columns, eps)
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight_orig", weightOrig)] + (inner.bias.map { [("bias", $0)] } ?? [])
    }
    public var namedBuffers: [StateEntry] {
        [StateEntry(name: "weight_u", tensor: u), StateEntry(name: "weight_v", tensor: v)] + inner.namedBuffers
    }

    static func normalize(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ eps: Float) {
        var s = 0.0
        for i in 0..<n { s += Double(p[i]) * Double(p[i]) }
        let k = 1 / max(Float(s.squareRoot()), eps)
        for i in 0..<n { p[i] *= k }
    }

    /// One power iteration, then W = W_orig/σ into the wrapped layer.
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let R = rows, C = columns, w = weightOrig.value.data, up = u.data, vp = v.data
        if training {
            // v = Wᵀu
            for c in 0..<C { vp[c] = 0 }
            for r in 0..<R { let k = up[r], row = w + r * C; for c in 0..<C { vp[c] += k * row[c] } }
            SpectralNorm.normalize(vp, C, eps)
            // u = Wv
            for r in 0..<R { up[r] = dot(w + r * C, vp, C) }
            SpectralNorm.normalize(up, R, eps)
        }
        divide(by: storedSigma(), into: inner.weight.value.data)
        return inner.forward(x, training: training)
    }

    /// σ = uᵀ W_orig v with the stored vectors (also kept in `sigma` for the backward pass).
    private func storedSigma() -> Float {
        let R = rows, C = columns, w = weightOrig.value.data, up = u.data, vp = v.data
        var s: Float = 0
        for r in 0..<R { s += up[r] * dot(w + r * C, vp, C) }
        sigma = s
        return s
    }

    /// out = W_orig / σ.
    private func divide(by s: Float, into out: UnsafeMutablePointer<Float>) {
        let w = weightOrig.value.data, inv = 1 / s
        for i in 0..<(rows * columns) { out[i] = w[i] * inv }
    }

    /// W_orig / σ with the stored u and v (what an eval-mode forward computes with), for export.
    public func normalizedWeight() -> Tensor {
        let out = Tensor(shape: weightOrig.value.shape)
        divide(by: storedSigma(), into: out.data)
        return out
    }

    @inline(__always) private func dot(_ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        var s: Float = 0
        for i in 0..<n { s += a[i] * b[i] }
        return s
    }

    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard weightGradients else { return inner.backward(dy, weightGradients: false, inputGradient: inputGradient) }
        // The wrapped layer accumulates into its own weight gradient; start it from zero to read G alone.
        inner.weight.grad.fill(0)
        let dx = inner.backward(dy, weightGradients: true, inputGradient: inputGradient)
        let R = rows, C = columns, g = inner.weight.grad.data, wn = inner.weight.value.data
        let out = weightOrig.grad.data, up = u.data, vp = v.data, inv = 1 / sigma
        var gw: Float = 0
        for i in 0..<(R * C) { gw += g[i] * wn[i] }
        for r in 0..<R {
            let k = gw * up[r]
            for c in 0..<C { out[r * C + c] += (g[r * C + c] - k * vp[c]) * inv }
        }
        return dx
    }
}
