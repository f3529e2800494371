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

