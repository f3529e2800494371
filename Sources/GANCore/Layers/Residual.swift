/// A residual block, y = ReLU(main(x) + shortcut(x)) (or main(x) + shortcut(x) without `finalReLU`, the
/// pre-activation blocks of SNGAN), with the shortcut the identity when `shortcut` is nil.
/// Parameters are named `main.N.*` and `shortcut.N.*`, like a PyTorch module with two `nn.Sequential`
/// attributes of those names (`tools/models.py`).
///
/// ```swift
/// let block = ResidualBlock(main: Sequential([conv1, bn1, ReLU(), conv2, bn2]), shortcut: nil)
/// ```
public final class ResidualBlock: Layer {
    public let main: Sequential
    public let shortcut: Sequential?
    private let add = Add()
    private let relu: ReLU?
    private var inputGrad: Tensor?

    /// Whether a ReLU follows the sum (false for SNGAN's pre-activation blocks).
    public var hasFinalReLU: Bool { relu != nil }

    public init(main: Sequential, shortcut: Sequential?, finalReLU: Bool = true) {
        self.main = main; self.shortcut = shortcut
        relu = finalReLU ? ReLU() : nil
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let a = main.forward(x, training: training)
        let b = shortcut?.forward(x, training: training) ?? x
        let sum = add.forward(a, b)
        return relu?.forward(sum, training: training) ?? sum
    }

    // d(sum) flows into both branches; their input gradients add up
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        var dsum = dy
        if let relu {
            guard let d = relu.backward(dy, weightGradients: weightGradients, inputGradient: true) else { return nil }
            dsum = d
        }
        let dMain = main.backward(dsum, weightGradients: weightGradients, inputGradient: inputGradient)
        let dShort: Tensor? = shortcut.map { $0.backward(dsum, weightGradients: weightGradients, inputGradient: inputGradient) } ?? dsum
        guard inputGradient, let dMain, let dShort else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: dMain.shape); inputGrad = dx
        let ap = dMain.data, bp = dShort.data, op = dx.data
        for i in 0..<dx.count { op[i] = ap[i] + bp[i] }
        return dx
    }

    public var namedParameters: [(String, Parameter)] {
        main.namedParameters.map { ("main.\($0.0)", $0.1) } + (shortcut?.namedParameters.map { ("shortcut.\($0.0)", $0.1) } ?? [])
    }

    public var namedBuffers: [StateEntry] {
        main.namedBuffers.map { StateEntry(name: "main.\($0.name)", tensor: $0.tensor, isInteger: $0.isInteger) }
            + (shortcut?.namedBuffers.map { StateEntry(name: "shortcut.\($0.name)", tensor: $0.tensor, isInteger: $0.isInteger) } ?? [])
    }
}

extension ResidualBlock {
    /// The ResNet basic block: 3×3 conv (stride) → BN → ReLU → 3×3 conv → BN, plus a 1×1 conv → BN shortcut
    /// when the stride or the width changes (`tools/models.py` `basic_block`).
    public static func basic(inChannels: Int, outChannels: Int, stride: Int, rng: inout RandomGenerator) -> ResidualBlock {
        let main = Sequential([
            Conv2d(inChannels: inChannels, outChannels: outChannels, kernelSize: 3, stride: stride, padding: 1, bias: false, rng: &rng),
            BatchNorm2d(numFeatures: outChannels),
            ReLU(inPlace: true),
            Conv2d(inChannels: outChannels, outChannels: outChannels, kernelSize: 3, stride: 1, padding: 1, bias: false, rng: &rng),
            BatchNorm2d(numFeatures: outChannels),
        ])
        var shortcut: Sequential?
        if stride != 1 || inChannels != outChannels {
            shortcut = Sequential([
                Conv2d(inChannels: inChannels, outChannels: outChannels, kernelSize: 1, stride: stride, padding: 0, bias: false, rng: &rng),
                BatchNorm2d(numFeatures: outChannels),
            ])
        }
        return ResidualBlock(main: main, shortcut: shortcut)
    }
}
