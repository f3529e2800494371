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

/// Cross-entropy on logits against class indices, `torch.nn.CrossEntropyLoss` (mean reduction, optional
/// `label_smoothing` ε: the target distribution is (1 − ε)·one-hot + ε/K).
/// ∂ℓ/∂x = (softmax(x) − q)/N.
///
/// ```swift
/// let loss = CrossEntropyLoss(labelSmoothing: 0.1)
/// let value = loss.forward(logits, classes)   // logits [N, K], classes: N indices
/// let dLogits = loss.backward()
/// ```
public final class CrossEntropyLoss {
    public let labelSmoothing: Float
    private var probabilities: Tensor?, labels: [Int] = [], grad: Tensor?
    public init(labelSmoothing: Float = 0) { self.labelSmoothing = labelSmoothing }

    public func forward(_ x: Tensor, _ labels: [Int]) -> Double {
        precondition(x.shape.count == 2 && x.shape[0] == labels.count, "CrossEntropyLoss: logits \(x.shape) for \(labels.count) labels")
        let N = x.shape[0], K = x.shape[1]
        let p = Tensor.reuse(probabilities, shape: x.shape); probabilities = p
        self.labels = labels
        let eps = Double(labelSmoothing)
        var total = 0.0
        for n in 0..<N {
            let row = x.data + n * K, prow = p.data + n * K
            var m = -Float.infinity
            for k in 0..<K { m = max(m, row[k]) }
            var z = 0.0
            for k in 0..<K { z += exp(Double(row[k] - m)) }
            let logZ = log(z) + Double(m)
            var sumLogP = 0.0
            for k in 0..<K {
                let logp = Double(row[k]) - logZ
                prow[k] = Float(exp(logp))
                sumLogP += logp
            }
            total += -(1 - eps) * (Double(row[labels[n]]) - logZ) - eps / Double(K) * sumLogP
        }
        return total / Double(N)
    }

    public func backward() -> Tensor {
        guard let p = probabilities else { preconditionFailure("CrossEntropyLoss.backward before forward") }
        let N = p.shape[0], K = p.shape[1]
        let g = Tensor.reuse(grad, shape: p.shape); grad = g
        let eps = labelSmoothing, inv = 1 / Float(N)
        for n in 0..<N {
            for k in 0..<K {
                let q = (k == labels[n] ? 1 - eps : 0) + eps / Float(K)
                g[n * K + k] = (p[n * K + k] - q) * inv
            }
        }
        return g
    }
}

/// The hinge loss of SNGAN/BigGAN on discriminator logits (mean over the batch):
/// `.real` mean(relu(1 − x)), `.fake` mean(relu(1 + x)) for D; `.generator` −mean(x) for G.
///
/// ```swift
/// let loss = HingeLoss()
/// let value = loss.forward(logits, .real)
/// let dLogits = loss.backward()
/// ```
public final class HingeLoss {
    public enum Term: Sendable { case real, fake, generator }
    private var logits: Tensor?, term = Term.real, grad: Tensor?
    public init() {}

    public func forward(_ x: Tensor, _ term: Term) -> Double {
        logits = x; self.term = term
        var s = 0.0
        for i in 0..<x.count {
            let v = Double(x[i])
            switch term {
            case .real: s += max(0, 1 - v)
            case .fake: s += max(0, 1 + v)
            case .generator: s -= v
            }
        }
        return s / Double(x.count)
    }

    public func backward() -> Tensor {
        guard let x = logits else { preconditionFailure("HingeLoss.backward before forward") }
        let g = Tensor.reuse(grad, shape: x.shape); grad = g
        let k = 1 / Float(x.count)
        for i in 0..<x.count {
            switch term {
            case .real: g[i] = x[i] < 1 ? -k : 0
            case .fake: g[i] = x[i] > -1 ? k : 0
            case .generator: g[i] = -k
            }
        }
        return g
    }
}
