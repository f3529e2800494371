import Foundation

/// Binary cross-entropy on logits against soft targets, `torch.nn.BCEWithLogitsLoss` (mean reduction):
/// ℓ = mean(max(x, 0) − x·y + log(1 + e^(−|x|))), ∂ℓ/∂x = (σ(x) − y)/N.
///
/// ```swift
/// let loss = BCEWithLogitsLoss()
/// let value = loss.forward(logits, targets)   // logits and targets [N, 1]
/// let dLogits = loss.backward()
/// ```
public final class BCEWithLogitsLoss {
    private var logits: Tensor?, targets: Tensor?, grad: Tensor?
    public init() {}

    public func forward(_ x: Tensor, _ y: Tensor) -> Double {
        precondition(x.count == y.count, "BCEWithLogitsLoss: \(x.count) logits and \(y.count) targets")
        logits = x; targets = y
        var s = 0.0
        for i in 0..<x.count {
            let v = Double(x[i]), t = Double(y[i])
            s += max(v, 0) - v * t + log1p(exp(-abs(v)))
        }
        return s / Double(x.count)
    }

    /// The gradient of the last `forward`'s loss with respect to its logits, times `scale`.
    public func backward(scale: Float = 1) -> Tensor {
        guard let x = logits, let y = targets else { preconditionFailure("BCEWithLogitsLoss.backward before forward") }
        let g = Tensor.reuse(grad, shape: x.shape); grad = g
        let k = scale / Float(x.count)
        for i in 0..<x.count { g[i] = (sigmoid(x[i]) - y[i]) * k }
        return g
    }
}
