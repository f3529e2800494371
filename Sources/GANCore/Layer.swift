/// A trainable tensor and the gradient accumulated for it.
///
/// Gradients accumulate (`+=`) across backward calls until an optimizer's `zeroGrad`,
/// as in PyTorch, so a discriminator step can sum the gradients of a real and a fake batch.
public final class Parameter: @unchecked Sendable {
    public let value: Tensor
    public let grad: Tensor
    public init(_ value: Tensor) {
        self.value = value
        self.grad = Tensor(shape: value.shape)
    }
}

/// One entry of a state dict: a parameter (`weight`, `bias`) or a buffer (`running_mean`, …).
public struct StateEntry {
    public var name: String
    public var tensor: Tensor
    /// Stored as int64 in PyTorch (only `num_batches_tracked`).
    public var isInteger: Bool
    public init(name: String, tensor: Tensor, isInteger: Bool = false) {
        self.name = name; self.tensor = tensor; self.isInteger = isInteger
    }
}

/// A module with a forward pass and a hand-written backward pass.
///
/// `forward` keeps what `backward` needs; `backward` must follow the `forward` it belongs to.
/// Layers own their output tensors and reuse them on the next call of the same shape.
///
/// ```swift
/// let layer = Linear(inFeatures: 4, outFeatures: 2, rng: &rng)
/// let y = layer.forward(x, training: true)
/// let dx = layer.backward(dy, weightGradients: true, inputGradient: true)
/// ```
public protocol Layer: AnyObject {
    /// x → y. `training` selects batch statistics (BatchNorm) and active dropout.
    func forward(_ x: Tensor, training: Bool) -> Tensor
    /// dy → dx. With `weightGradients` false, parameter gradients are left untouched (a G step
    /// through a frozen D); with `inputGradient` false, dx is not computed and nil is returned.
    func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor?
    /// Parameters under their PyTorch local names (`weight`, `bias`).
    var namedParameters: [(String, Parameter)] { get }
    /// Non-trainable state under PyTorch names (`running_mean`, …).
    var namedBuffers: [StateEntry] { get }
}

extension Layer {
    public var namedParameters: [(String, Parameter)] { [] }
    public var namedBuffers: [StateEntry] { [] }
}

/// The convolution a layer is, or wraps (spectral norm).
private func convolution(in layer: Layer) -> Conv2d? {
    (layer as? Conv2d) ?? ((layer as? SpectralNorm)?.inner as? Conv2d)
}

/// Layers applied in order, named "0", "1", … exactly like `torch.nn.Sequential`,
/// so state-dict keys read `3.weight`, `2.running_mean`.
///
/// ```swift
/// let net = Sequential([Linear(inFeatures: 2, outFeatures: 8, rng: &rng), LeakyReLU(0.2), …])
/// let y = net.forward(x, training: true)
/// ```
public final class Sequential: Layer {
    public let layers: [Layer]
    /// A label for profiles ("G", "D").
    public var name = ""
    public init(_ layers: [Layer]) {
        self.layers = layers
        // A layer followed by an in-place LeakyReLU writes the activated output itself, and a layer after one
        // applies its gradient rule in its own backward pass (one memory pass fewer each way); only in-place
        // ones, because then nothing else can read the pre-activation values.
        for (layer, next) in zip(layers, layers.dropFirst()) {
            if let fusing = layer as? LeakyReLUFusing, let act = next as? LeakyReLU, act.inPlace,
               fusing.fuseLeakyReLU(negativeSlope: act.negativeSlope) {
                act.inputArrivesActivated = true
            }
            if let conv = layer as? ConvTranspose2d, let bn = next as? BatchNorm { conv.followingBatchNorm = bn }
            if let act = layer as? LeakyReLU, act.inPlace, let fusing = next as? LeakyReLUGradientFusing,
               fusing.fuseInputLeakyReLUGradient(negativeSlope: act.negativeSlope) {
                act.gradientAppliedByNext = true
            }
        }
        // conv → LeakyReLU fused both ways → conv: the two convolutions may pass the activation in oneDNN's layout.
        for i in layers.indices.dropFirst().dropLast() {
            guard let act = layers[i] as? LeakyReLU, act.inputArrivesActivated, act.gradientAppliedByNext,
                  let producer = convolution(in: layers[i - 1]), let consumer = convolution(in: layers[i + 1]),
                  ConvolutionKernels.oneDNNAvailable, OneDNNConvolution.preferredChannelBlock > 0 else { continue }
            let handoff = BlockedHandoff(block: OneDNNConvolution.preferredChannelBlock, consumer: consumer)
            producer.outputHandoff = handoff
            consumer.inputHandoff = handoff
        }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var h = x
        if Profiler.enabled {
            for (i, layer) in layers.enumerated() {
                let t = Profiler.now()
                h = layer.forward(h, training: training)
                Profiler.record("\(name).\(i) \(type(of: layer)) forward\(training ? "" : " (eval)")", since: t)
            }
            return h
        }
        for layer in layers { h = layer.forward(h, training: training) }
        return h
    }

    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        var g = dy
        for (i, layer) in layers.enumerated().reversed() {
            let needInput = i > 0 || inputGradient
            let t = Profiler.enabled ? Profiler.now() : 0
            let next = layer.backward(g, weightGradients: weightGradients, inputGradient: needInput)
            if Profiler.enabled {
                let what = [weightGradients ? "weights" : nil, needInput ? "data" : nil].compactMap { $0 }.joined(separator: "+")
                Profiler.record("\(name).\(i) \(type(of: layer)) backward \(what)", since: t)
            }
            guard let next else { return nil }
            g = next
        }
        return g
    }

    public var namedParameters: [(String, Parameter)] {
        layers.enumerated().flatMap { i, l in l.namedParameters.map { ("\(i).\($0.0)", $0.1) } }
    }

    public var namedBuffers: [StateEntry] {
        layers.enumerated().flatMap { i, l in
            l.namedBuffers.map { StateEntry(name: "\(i).\($0.name)", tensor: $0.tensor, isInteger: $0.isInteger) }
        }
    }

    public var parameters: [Parameter] { namedParameters.map(\.1) }

    /// Parameters then buffers, in PyTorch's `state_dict()` order per layer.
    public var stateDict: [StateEntry] {
        layers.enumerated().flatMap { i, l in
            l.namedParameters.map { StateEntry(name: "\(i).\($0.0)", tensor: $0.1.value) }
                + l.namedBuffers.map { StateEntry(name: "\(i).\($0.name)", tensor: $0.tensor, isInteger: $0.isInteger) }
        }
    }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    public func zeroGrad() { for p in parameters { p.grad.fill(0) } }
}
