import Foundation

/// What every optimizer offers: a step over its parameters' gradients and a way to clear them.
public protocol Optimizer: AnyObject {
    var parameters: [Parameter] { get }
    func step()
    /// Named state tensors (moments, step count) for checkpoints.
    var state: [StateEntry] { get }
}

extension Optimizer {
    public func zeroGrad() { for p in parameters { p.grad.fill(0) } }
}

/// `torch.optim.Adam` (and L2 `weight_decay`): m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ),
/// p −= lr·m̂/(√v̂ + eps), with eps added after the square root as in PyTorch.
///
/// ```swift
/// let opt = Adam(parameters: net.parameters, lr: 2e-4, betas: (0.5, 0.999))
/// opt.zeroGrad()
/// // … forward and backward passes accumulate the gradients …
/// opt.step()
/// ```
public final class Adam: Optimizer {
    public let parameters: [Parameter]
    public var lr: Float
    public let beta1, beta2, eps, weightDecay: Float
    /// Steps taken so far (PyTorch's per-parameter `step`, shared here since all step together).
    public let stepCount = Tensor(shape: [])
    public let expAvg: [Tensor]
    public let expAvgSq: [Tensor]

    public init(parameters: [Parameter], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 0) {
        self.parameters = parameters; self.lr = lr
        beta1 = betas.0; beta2 = betas.1; self.eps = eps; self.weightDecay = weightDecay
        expAvg = parameters.map { Tensor(shape: $0.value.shape) }
        expAvgSq = parameters.map { Tensor(shape: $0.value.shape) }
    }

    public func step() {
        stepCount[0] += 1
        let t = Double(stepCount[0])
        let bc1 = 1 - pow(Double(beta1), t), bc2 = 1 - pow(Double(beta2), t)
        let stepSize = Float(Double(lr) / bc1), bc2Sqrt = Float(bc2.squareRoot())
        let b1 = beta1, b2 = beta2, eps = self.eps, wd = weightDecay
        for (i, p) in parameters.enumerated() {
            let w = p.value.data, g = p.grad.data, m = expAvg[i].data, v = expAvgSq[i].data
            // Elementwise, so any split over workers gives the same result.
            Parallel.forEachChunk(count: p.value.count, minimumPerWorker: 1 << 15) { r, _ in
                // Eight at a time with explicit SIMD (the compiler leaves this loop scalar, with a libm sqrtf
                // call); the same operations per element, so the same results as the scalar tail.
                var j = r.lowerBound
                let vb1 = SIMD8<Float>(repeating: b1), vb2 = SIMD8<Float>(repeating: b2)
                while j + 8 <= r.upperBound {
                    var gj = load8(g, j)
                    let wj = load8(w, j)
                    if wd != 0 { gj = gj + wd * wj }
                    let mj = vb1 * load8(m, j) + (1 - b1) * gj
                    let vj = vb2 * load8(v, j) + (1 - b2) * gj * gj
                    store8(mj, m, j); store8(vj, v, j)
                    store8(wj - stepSize * mj / (vj.squareRoot() / bc2Sqrt + eps), w, j)
                    j += 8
                }
                while j < r.upperBound {
                    let gj = wd == 0 ? g[j] : g[j] + wd * w[j]
                    m[j] = b1 * m[j] + (1 - b1) * gj
                    v[j] = b2 * v[j] + (1 - b2) * gj * gj
                    w[j] -= stepSize * m[j] / (v[j].squareRoot() / bc2Sqrt + eps)
                    j += 1
                }
            }
        }
    }

    public var state: [StateEntry] {
        [StateEntry(name: "step", tensor: stepCount)]
            + expAvg.enumerated().map { StateEntry(name: "\($0.offset).exp_avg", tensor: $0.element) }
            + expAvgSq.enumerated().map { StateEntry(name: "\($0.offset).exp_avg_sq", tensor: $0.element) }
    }
}

/// `torch.optim.SGD`: with momentum μ, b = μ·b + (1 − dampening)·g (b = g on the first step),
/// then p −= lr·b (or lr·(g + μ·b) with Nesterov).
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var lr: Float
    public let momentum, dampening, weightDecay: Float
    public let nesterov: Bool
    public let momentumBuffers: [Tensor]
    public let stepCount = Tensor(shape: [])

    public init(parameters: [Parameter], lr: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        self.parameters = parameters; self.lr = lr; self.momentum = momentum
        self.dampening = dampening; self.weightDecay = weightDecay; self.nesterov = nesterov
        momentumBuffers = parameters.map { Tensor(shape: $0.value.shape) }
    }

    public func step() {
        let first = stepCount[0] == 0
        stepCount[0] += 1
        let mu = momentum, damp = dampening, wd = weightDecay, lr = self.lr
        for (i, p) in parameters.enumerated() {
            let w = p.value.data, g = p.grad.data, b = momentumBuffers[i].data
            for j in 0..<p.value.count {
                var d = wd == 0 ? g[j] : g[j] + wd * w[j]
                if mu != 0 {
                    b[j] = first ? d : mu * b[j] + (1 - damp) * d
                    d = nesterov ? d + mu * b[j] : b[j]
                }
                w[j] -= lr * d
            }
        }
    }

    public var state: [StateEntry] {
        [StateEntry(name: "step", tensor: stepCount)]
            + momentumBuffers.enumerated().map { StateEntry(name: "\($0.offset).momentum_buffer", tensor: $0.element) }
    }
}
