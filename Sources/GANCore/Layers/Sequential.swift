import Foundation

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
    /// Which neighbours run as one and how; decided here, once, and the only place layers learn of each other.
    public let plan: FusionPlan

    public init(_ layers: [Layer]) {
        self.layers = layers
        plan = FusionPlan(layers)
        plan.apply(to: layers)
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

    /// The fusion plan of this model and of each model inside it, and every convolution's kernel path for the
    /// input size of its last forward pass: what `cifar-gan bench --profile` prints, one line each.
    public func kernelReport(label: String) -> [String] {
        var lines = ["\(label) fusions: \(plan)"]
        for (i, layer) in layers.enumerated() {
            let inner = (layer as? SpectralNorm)?.inner ?? layer
            if let conv = inner as? Conv2d, let path = conv.lastKernelPath {
                let variant = conv.lastKernelVariant.map { " (\($0))" } ?? ""
                lines.append("\(label).\(i) Conv2d \(conv.inChannels)→\(conv.outChannels): \(path.rawValue)\(variant)")
            }
            if let conv = inner as? ConvTranspose2d, let path = conv.lastKernelPath {
                let variant = path == .oneDNN && KernelSettings.precision == .bf16 ? " (bf16, as its mirror convolution)" : ""
                lines.append("\(label).\(i) ConvTranspose2d \(conv.inChannels)→\(conv.outChannels): \(path.rawValue)\(variant)")
            }
            if let model = layer as? Sequential { lines += model.kernelReport(label: "\(label).\(i)") }
            if let block = layer as? ResidualBlock {
                lines += block.main.kernelReport(label: "\(label).\(i).main")
                if let shortcut = block.shortcut { lines += shortcut.kernelReport(label: "\(label).\(i).shortcut") }
            }
        }
        return lines
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
