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
