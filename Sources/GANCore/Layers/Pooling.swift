/// Global average pooling, `nn.AdaptiveAvgPool2d(1)` followed by `nn.Flatten()`: [N, C, H, W] → [N, C].
///
/// ```swift
/// let pool = GlobalAvgPool2d()
/// let features = pool.forward(x, training: true)   // [N, 128, 8, 8] → [N, 128]
/// ```
public final class GlobalAvgPool2d: Layer {
    private var inputShape: [Int] = [], output: Tensor?, inputGrad: Tensor?
    public init() {}

    // y[n, c] = mean over h, w of x[n, c, h, w]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4, "GlobalAvgPool2d expects [N, C, H, W], got \(x.shape)")
        inputShape = x.shape
        let NC = x.shape[0] * x.shape[1], S = x.shape[2] * x.shape[3]
        let y = Tensor.reuse(output, shape: [x.shape[0], x.shape[1]]); output = y
        let xp = x.data, yp = y.data, scale = 1 / Float(S)
        for i in 0..<NC {
            var acc: Float = 0
            let p = xp + i * S
            for q in 0..<S { acc += p[q] }
            yp[i] = acc * scale
        }
        return y
    }

    // dx[n, c, h, w] = dy[n, c] / (H·W)
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: inputShape); inputGrad = dx
        let S = inputShape[2] * inputShape[3], scale = 1 / Float(S), dp = dy.data, op = dx.data
        for i in 0..<dy.count { let v = dp[i] * scale; let o = op + i * S; for q in 0..<S { o[q] = v } }
        return dx
    }
}


/// Global sum pooling, `x.sum(dim=(2, 3))` as in the SNGAN discriminator: [N, C, H, W] → [N, C].
///
/// ```swift
/// let features = GlobalSumPool2d().forward(x, training: true)   // [N, 64, 8, 8] → [N, 64]
/// ```
public final class GlobalSumPool2d: Layer {
    private let average = GlobalAvgPool2d()
    private var area: Float = 1, output: Tensor?, inputGrad: Tensor?
    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        area = Float(x.shape.count == 4 ? x.shape[2] * x.shape[3] : 1)
        let m = average.forward(x, training: training)
        let y = Tensor.reuse(output, shape: m.shape); output = y
        for i in 0..<y.count { y[i] = m[i] * area }
        return y
    }

    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient, let dx = average.backward(dy, weightGradients: false, inputGradient: true) else { return nil }
        dx.scale(by: area)
        return dx
    }
}

/// 2×2 average pooling with stride 2, `nn.AvgPool2d(2)`: [N, C, H, W] → [N, C, H/2, W/2] (H, W even).
///
/// ```swift
/// let down = AvgPool2x2().forward(x, training: true)   // [N, 64, 32, 32] → [N, 64, 16, 16]
/// ```
public final class AvgPool2x2: Layer {
    private var inputShape: [Int] = [], output: Tensor?, inputGrad: Tensor?
    public init() {}

    // y[i, j] = ¼ Σ x[2i + a, 2j + b]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[2] % 2 == 0 && x.shape[3] % 2 == 0, "AvgPool2x2 expects [N, C, even H, even W], got \(x.shape)")
        inputShape = x.shape
        let y = Tensor.reuse(output, shape: [x.shape[0], x.shape[1], x.shape[2] / 2, x.shape[3] / 2]); output = y
        sum2x2(x.data, into: y.data, planes: x.shape[0] * x.shape[1], height: x.shape[2] / 2, width: x.shape[3] / 2, scale: 0.25)
        return y
    }

    // dx[2i + a, 2j + b] = ¼ dy[i, j]
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: inputShape); inputGrad = dx
        spread2x2(dy.data, into: dx.data, planes: inputShape[0] * inputShape[1], height: inputShape[2] / 2, width: inputShape[3] / 2, scale: 0.25)
        return dx
    }
}

/// Nearest-neighbour 2× upsampling, `nn.Upsample(scale_factor=2)`: [N, C, H, W] → [N, C, 2H, 2W].
///
/// ```swift
/// let up = Upsample2x().forward(x, training: true)   // [N, 64, 8, 8] → [N, 64, 16, 16]
/// ```
public final class Upsample2x: Layer {
    private var inputShape: [Int] = [], output: Tensor?, inputGrad: Tensor?
    public init() {}

    // y[2i + a, 2j + b] = x[i, j]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 4, "Upsample2x expects [N, C, H, W], got \(x.shape)")
        inputShape = x.shape
        let y = Tensor.reuse(output, shape: [x.shape[0], x.shape[1], 2 * x.shape[2], 2 * x.shape[3]]); output = y
        spread2x2(x.data, into: y.data, planes: x.shape[0] * x.shape[1], height: x.shape[2], width: x.shape[3], scale: 1)
        return y
    }

    // dx[i, j] = Σ dy[2i + a, 2j + b]
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: inputShape); inputGrad = dx
        sum2x2(dy.data, into: dx.data, planes: inputShape[0] * inputShape[1], height: inputShape[2], width: inputShape[3], scale: 1)
        return dx
    }
}

// Average pooling and nearest upsampling are each other's adjoints up to a factor of 4, so both layers
// are made of these two loops. `height`/`width` are the small side's; each plane is done by one worker.

/// small[i, j] = scale · Σ large[2i + a, 2j + b]
private func sum2x2(_ large: UnsafeMutablePointer<Float>, into small: UnsafeMutablePointer<Float>,
                    planes: Int, height H: Int, width W: Int, scale: Float) {
    Parallel.forEachChunk(count: planes) { range, _ in
        for p in range {
            let src = large + p * 4 * H * W, dst = small + p * H * W
            for i in 0..<H {
                let r0 = src + 2 * i * 2 * W, r1 = r0 + 2 * W
                for j in 0..<W { dst[i * W + j] = scale * (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]) }
            }
        }
    }
}

/// large[2i + a, 2j + b] = scale · small[i, j]
private func spread2x2(_ small: UnsafeMutablePointer<Float>, into large: UnsafeMutablePointer<Float>,
                       planes: Int, height H: Int, width W: Int, scale: Float) {
    Parallel.forEachChunk(count: planes) { range, _ in
        for p in range {
            let src = small + p * H * W, dst = large + p * 4 * H * W
            for i in 0..<H {
                let r0 = dst + 2 * i * 2 * W, r1 = r0 + 2 * W
                for j in 0..<W {
                    let v = scale * src[i * W + j]
                    r0[2 * j] = v; r0[2 * j + 1] = v; r1[2 * j] = v; r1[2 * j + 1] = v
                }
            }
        }
    }
}
