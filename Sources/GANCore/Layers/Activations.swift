import Foundation

/// Elementwise activation layers. Each keeps the tensor its gradient rule needs:
/// LeakyReLU and ReLU their input, Tanh and Sigmoid their output.
///
/// ```swift
/// let act = LeakyReLU(0.2)
/// let y = act.forward(x, training: true)
/// ```
public final class LeakyReLU: FusableActivation {
    public let negativeSlope: Float
    /// Like PyTorch's `inplace=True`: the output overwrites the input and dx overwrites dy, saving two
    /// activation-sized buffers. The gradient rule reads the sign from the output, which equals the input's
    /// sign for a non-negative slope. Only for inputs that nothing else reads afterwards.
    public let inPlace: Bool
    /// Set by the model's `FusionPlan` when the layer before applies this activation to its own output
    /// (`LeakyReLUFusing`): the forward pass then only records its output.
    public internal(set) var inputArrivesActivated = false
    /// Set by the model's `FusionPlan` when the layer after (`LeakyReLUGradientFusing`) or the one before
    /// (`OutputLeakyReLUGradientFusing`) applies the gradient rule: the backward pass then passes dy through.
    public internal(set) var gradientAppliedByNeighbour = false
    private var input: Tensor?, output: Tensor?, inputGrad: Tensor?
    public init(_ negativeSlope: Float = 0.01, inPlace: Bool = false) {
        precondition(negativeSlope >= 0, "LeakyReLU: negative slope must be ≥ 0")
        self.negativeSlope = negativeSlope; self.inPlace = inPlace
    }

    // y = x > 0 ? x : slope·x
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        if inputArrivesActivated { output = x; input = x; return x }
        let y = inPlace ? x : Tensor.reuse(output, shape: x.shape); output = y; input = x
        let a = negativeSlope, xp = x.data, yp = y.data
        Parallel.forEachChunk(count: x.count, minimumPerWorker: 1 << 15) { r, _ in
            for i in r { yp[i] = leakyReLU(xp[i], slope: a) }
        }
        return y
    }

    // dx = dy · (x > 0 ? 1 : slope)
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient, let x = input, let y = output else { return nil }
        let dx = inPlace ? dy : Tensor.reuse(inputGrad, shape: x.shape)
        if !inPlace { inputGrad = dx }
        if gradientAppliedByNeighbour { return dy }
        let a = negativeSlope, sp = (inPlace ? y : x).data, dp = dy.data, op = dx.data
        Parallel.forEachChunk(count: x.count, minimumPerWorker: 1 << 15) { r, _ in
            leakyReLUGradient(dy: dp + r.lowerBound, sign: sp + r.lowerBound, into: op + r.lowerBound, count: r.count, slope: a)
        }
        return dx
    }
}

/// A layer that can apply an in-place LeakyReLU following it to its own output as it writes that output,
/// saving a pass over the activation. The model's `FusionPlan` arranges it; the LeakyReLU layer stays in place
/// (its backward pass, and state-dict numbering, are unchanged).
///
/// ```swift
/// let d = Sequential([Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, rng: &rng), LeakyReLU(0.2, inPlace: true)])
/// // d.layers[0] now writes LeakyReLU(conv(x)); d.layers[1] passes it on.
/// ```
public protocol LeakyReLUFusing: Layer {
    /// Whether this layer can (a wrapper answers for what it wraps).
    var canFuseLeakyReLU: Bool { get }
    /// Applies LeakyReLU(negativeSlope) to every later forward output.
    func fuseLeakyReLU(negativeSlope: Float)
}

extension LeakyReLUFusing {
    public var canFuseLeakyReLU: Bool { true }
}

/// A layer whose backward-data pass can apply the gradient rule of the in-place LeakyReLU before it — its input is
/// that LeakyReLU's output, whose sign is the rule's — while dx is still in cache. `FusionPlan` arranges it. Like
/// the in-place LeakyReLU itself, the layer then writes dx over its input, which nothing else reads.
///
/// ```swift
/// let d = Sequential([LeakyReLU(0.2, inPlace: true), Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, rng: &rng)])
/// // d.layers[1]'s dx is already the gradient with respect to d.layers[0]'s input.
/// ```
public protocol LeakyReLUGradientFusing: Layer {
    /// Whether this layer can (a wrapper answers for what it wraps).
    var canFuseInputLeakyReLUGradient: Bool { get }
    /// Multiplies every later dx by LeakyReLU′ read from the input's sign.
    func fuseInputLeakyReLUGradient(negativeSlope: Float)
}

extension LeakyReLUGradientFusing {
    public var canFuseInputLeakyReLUGradient: Bool { true }
}

/// A layer that writes a fused LeakyReLU (`LeakyReLUFusing`) and can also apply that LeakyReLU's gradient rule to
/// dy in its own backward pass, recomputing the sign from what it kept of the forward pass — for where the layer
/// after the activation cannot (`LeakyReLUGradientFusing`). `FusionPlan` arranges it; batch norms do it.
///
/// ```swift
/// let g = Sequential([BatchNorm(numFeatures: 8), ReLU(inPlace: true), Upsample2x()])
/// // g.layers[0] writes ReLU(bn(x)) and its backward pass takes the gradient with respect to that output.
/// ```
public protocol OutputLeakyReLUGradientFusing: LeakyReLUFusing {
    /// Applies the fused LeakyReLU's gradient to every later dy (call after `fuseLeakyReLU`).
    func fuseOutputLeakyReLUGradient()
}

/// LeakyReLU and ReLU (a LeakyReLU of slope 0) as `FusionPlan` sees them: what may fuse into a neighbour, and the
/// flags through which the plan tells the activation its part.
protocol FusableActivation: Layer {
    var negativeSlope: Float { get }
    /// Only in-place activations fuse: then nothing else can read the pre-activation values or dy.
    var inPlace: Bool { get }
    /// The layer before applies the activation to its own output; the forward pass only records it.
    var inputArrivesActivated: Bool { get set }
    /// A neighbour (the consumer's dx, or the producer's backward pass) applies the gradient rule; the backward
    /// pass passes dy through.
    var gradientAppliedByNeighbour: Bool { get set }
}

/// LeakyReLU of one value: the rule every fused output pass (convolution, batch norm, phase write) applies.
@inline(__always)
func leakyReLU(_ v: Float, slope a: Float) -> Float { v > 0 ? v : v * a }

/// The same rule on 8 values at once (the Winograd output tiles).
@inline(__always)
func leakyReLU(_ v: SIMD8<Float>, slope a: Float) -> SIMD8<Float> { v.replacing(with: v * a, where: v .<= 0) }

/// dx = dy · (sign > 0 ? 1 : slope) over `count` values; `into` may be `dy`.
@inline(__always)
func leakyReLUGradient(dy: UnsafePointer<Float>, sign: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>,
                       count: Int, slope a: Float) {
    for i in 0..<count { dx[i] = sign[i] > 0 ? dy[i] : dy[i] * a }
}

/// `torch.nn.ReLU`: y = max(x, 0); the gradient at 0 is 0, as in PyTorch. `inPlace` and the fusion flags as for
/// `LeakyReLU`, whose slope-0 case it is for `FusionPlan`.
public final class ReLU: FusableActivation {
    public let inPlace: Bool
    public var negativeSlope: Float { 0 }
    public internal(set) var inputArrivesActivated = false
    public internal(set) var gradientAppliedByNeighbour = false
    private var output: Tensor?, inputGrad: Tensor?
    public init(inPlace: Bool = false) { self.inPlace = inPlace }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        if inputArrivesActivated { output = x; return x }
        let y = inPlace ? x : Tensor.reuse(output, shape: x.shape); output = y
        let xp = x.data, yp = y.data
        Parallel.forEachChunk(count: x.count, minimumPerWorker: 1 << 15) { r, _ in
            for i in r { yp[i] = max(xp[i], 0) }
        }
        return y
    }
    // dx = dy · (y > 0), the output's sign being the input's
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient, let y = output else { return nil }
        if gradientAppliedByNeighbour { return dy }
        let dx = inPlace ? dy : Tensor.reuse(inputGrad, shape: y.shape)
        if !inPlace { inputGrad = dx }
        let yp = y.data, dp = dy.data, op = dx.data
        Parallel.forEachChunk(count: y.count, minimumPerWorker: 1 << 15) { r, _ in
            for i in r { op[i] = yp[i] > 0 ? dp[i] : 0 }
        }
        return dx
    }
}

/// `torch.nn.Tanh`: dx = dy·(1 − y²).
public final class Tanh: Layer {
    private var output: Tensor?, inputGrad: Tensor?
    public init() {}
    /// The function the layer applies to each value (a polynomial tanh within 2·10⁻⁷ of libm's, ~5× faster).
    public static func evaluate(_ x: Float) -> Float { fastTanh(x) }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = Tensor.reuse(output, shape: x.shape); output = y
        let xp = x.data, yp = y.data
        Parallel.forEachChunk(count: x.count, minimumPerWorker: 1 << 14) { r, _ in
            for i in r { yp[i] = fastTanh(xp[i]) }
        }
        return y
    }
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient, let y = output else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: y.shape); inputGrad = dx
        let yp = y.data, dp = dy.data, op = dx.data
        for i in 0..<y.count { op[i] = dp[i] * (1 - yp[i] * yp[i]) }
        return dx
    }
}

/// `torch.nn.Sigmoid`: dx = dy·y·(1 − y).
public final class Sigmoid: Layer {
    private var output: Tensor?, inputGrad: Tensor?
    public init() {}
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = Tensor.reuse(output, shape: x.shape); output = y
        let xp = x.data, yp = y.data
        for i in 0..<x.count { yp[i] = sigmoid(xp[i]) }
        return y
    }
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient, let y = output else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: y.shape); inputGrad = dx
        let yp = y.data, dp = dy.data, op = dx.data
        for i in 0..<y.count { op[i] = dp[i] * yp[i] * (1 - yp[i]) }
        return dx
    }
}

/// A numerically stable logistic function.
@inline(__always)
public func sigmoid(_ x: Float) -> Float {
    x >= 0 ? 1 / (1 + Foundation.exp(-x)) : { let e = Foundation.exp(x); return e / (1 + e) }()
}

/// `torch.nn.Dropout`: in training, zeroes each value with probability p and scales the rest by 1/(1−p);
/// identity in eval mode.
///
/// Its random stream `rng` is public so a checkpoint can save and restore it.
/// ```swift
/// let drop = Dropout(0.4, seed: 7)
/// ```
public final class Dropout: Layer {
    public let p: Float
    public var rng: RandomGenerator
    /// Masks (values 0 or 1) to use, in order, instead of random ones: lets tests replay PyTorch's masks.
    public var presetMasks: [Tensor] = []
    /// This rank's rows of a data-parallel batch (`DataParallel`): masks are drawn for the whole batch, so the
    /// stream and every row's mask are what one process would draw.
    public var shard = BatchShard.whole
    private var mask: Tensor?, output: Tensor?, inputGrad: Tensor?, wasTraining = false

    public init(_ p: Float = 0.5, seed: UInt64 = 0) {
        precondition(p >= 0 && p < 1, "Dropout probability must be in [0, 1), got \(p)")
        self.p = p; rng = RandomGenerator(seed: seed)
    }

    // y = x · mask / (1 − p)
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        wasTraining = training && p > 0
        guard wasTraining else { return x }
        let y = Tensor.reuse(output, shape: x.shape); output = y
        let m = Tensor.reuse(mask, shape: x.shape); mask = m
        let scale = 1 / (1 - p), mp = m.data
        if !presetMasks.isEmpty {
            let preset = presetMasks.removeFirst()
            precondition(preset.count == x.count, "Dropout preset mask has \(preset.count) values for input \(x.shape)")
            for i in 0..<x.count { mp[i] = preset[i] * scale }
        } else {
            // A local copy of the generator: mutating the stored property per element costs an exclusivity
            // check each time. Same stream, same masks.
            var r = rng
            r.skip(shard.index * x.count)
            for i in 0..<x.count { mp[i] = r.uniform() < p ? 0 : scale }
            r.skip((shard.count - 1 - shard.index) * x.count)
            rng = r
        }
        let xp = x.data, yp = y.data
        for i in 0..<x.count { yp[i] = xp[i] * mp[i] }
        return y
    }

    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        guard wasTraining, let m = mask else { return dy }
        let dx = Tensor.reuse(inputGrad, shape: dy.shape); inputGrad = dx
        let mp = m.data, dp = dy.data, op = dx.data
        for i in 0..<dy.count { op[i] = dp[i] * mp[i] }
        return dx
    }
}

/// Reshapes [N, …] to [N] + `shape` (a copy, so the producer's buffer keeps its own shape).
/// `Reshape([2048])` is `torch.nn.Flatten`; `Reshape([128, 4, 4])` is `torch.nn.Unflatten(1, (128, 4, 4))`.
public final class Reshape: Layer {
    public let shape: [Int]
    private var inputShape: [Int] = [], output: Tensor?, inputGrad: Tensor?
    public init(_ shape: [Int]) { self.shape = shape }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.count == x.shape[0] * shape.reduce(1, *), "Reshape: \(x.shape) cannot become [N] + \(shape)")
        inputShape = x.shape
        let y = Tensor.reuse(output, shape: [x.shape[0]] + shape); output = y
        y.copy(from: x)
        return y
    }

    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: inputShape); inputGrad = dx
        dx.copy(from: dy)
        return dx
    }
}

/// `torch.nn.Flatten()`: [N, …] → [N, rest].
public func Flatten(_ features: Int) -> Reshape { Reshape([features]) }

/// Multiplies by a constant: y = s·x, dx = s·dy.
public final class Scale: Layer {
    public let factor: Float
    private var output: Tensor?, inputGrad: Tensor?
    public init(_ factor: Float) { self.factor = factor }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = Tensor.reuse(output, shape: x.shape); output = y
        let s = factor, xp = x.data, yp = y.data
        for i in 0..<x.count { yp[i] = s * xp[i] }
        return y
    }
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: dy.shape); inputGrad = dx
        let s = factor, dp = dy.data, op = dx.data
        for i in 0..<dy.count { op[i] = s * dp[i] }
        return dx
    }
}

/// Elementwise sum of two tensors of one shape: y = a + b; both inputs receive dy.
///
/// ```swift
/// let add = Add()
/// let y = add.forward(a, b)   // residual connection
/// let (da, db) = add.backward(dy)
/// ```
public final class Add {
    private var output: Tensor?
    public init() {}
    public func forward(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "Add: shapes \(a.shape) and \(b.shape) differ")
        let y = Tensor.reuse(output, shape: a.shape); output = y
        let ap = a.data, bp = b.data, yp = y.data
        for i in 0..<a.count { yp[i] = ap[i] + bp[i] }
        return y
    }
    public func backward(_ dy: Tensor) -> (Tensor, Tensor) { (dy, dy) }
}
