/// Fully connected layer, `torch.nn.Linear` semantics: y = x·Wᵀ + b, weight [out, in], bias [out].
///
/// ```swift
/// let fc = Linear(inFeatures: 100, outFeatures: 2048, rng: &rng)
/// let y = fc.forward(z, training: true)   // [N, 100] → [N, 2048]
/// ```
public final class Linear: Layer {
    public let inFeatures, outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?
    private var output: Tensor?
    private var inputGrad: Tensor?

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, rng: inout RandomGenerator) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        weight = Parameter(Tensor(shape: [outFeatures, inFeatures]))
        self.bias = bias ? Parameter(Tensor(shape: [outFeatures])) : nil
        pytorchDefaultInit(weight.value, self.bias?.value, fanIn: inFeatures, rng: &rng)
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    // x [N, in] → y [N, out]
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == inFeatures, "Linear expects [N, \(inFeatures)], got \(x.shape)")
        let N = x.shape[0], O = outFeatures, I = inFeatures
        let y = Tensor.reuse(output, shape: [N, O])
        output = y; input = x
        if let b = bias?.value.data {
            let yp = y.data
            for n in 0..<N { (yp + n * O).update(from: b, count: O) }
        }
        gemm(transA: false, transB: true, m: N, n: O, k: I, a: x.data, lda: I, b: weight.value.data, ldb: I,
             beta: bias == nil ? 0 : 1, c: y.data, ldc: O)
        return y
    }

    // dy [N, out] → dx [N, in]; dW [out, in] += dyᵀ·x; db += Σₙ dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        let N = x.shape[0], O = outFeatures, I = inFeatures
        if weightGradients {
            gemm(transA: true, transB: false, m: O, n: I, k: N, a: dy.data, lda: O, b: x.data, ldb: I,
                 beta: 1, c: weight.grad.data, ldc: I)
            if let gb = bias?.grad.data {
                let d = dy.data
                for n in 0..<N { let row = d + n * O; for o in 0..<O { gb[o] += row[o] } }
            }
        }
        guard inputGradient else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: x.shape)
        inputGrad = dx
        gemm(transA: false, transB: false, m: N, n: I, k: O, a: dy.data, lda: O, b: weight.value.data, ldb: I,
             c: dx.data, ldc: I)
        return dx
    }
}
