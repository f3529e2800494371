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
        // Rows split over the workers (BLAS runs single-threaded inside each): G's first layer at batch 256 was
        // 2.4% of a generation batch on one core.
        let xp = x.data, yp = y.data, wp = weight.value.data, bp = bias?.value.data
        Parallel.forEachChunk(count: N, minimumPerWorker: 16) { rows, _ in
            let n0 = rows.lowerBound
            if let bp { for n in rows { (yp + n * O).update(from: bp, count: O) } }
            gemm(transA: false, transB: true, m: rows.count, n: O, k: I, a: xp + n0 * I, lda: I, b: wp, ldb: I,
                 beta: bp == nil ? 0 : 1, c: yp + n0 * O, ldc: O)
        }
        return y
    }

    // dy [N, out] → dx [N, in]; dW [out, in] += dyᵀ·x; db += Σₙ dy
    public func backward(_ dy: Tensor, weightGradients: Bool, inputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        let N = x.shape[0], O = outFeatures, I = inFeatures
        let xp = x.data, dyp = dy.data
        if weightGradients {
            // Output features split over the workers: each owns its rows of dW and entries of db.
            let gw = weight.grad.data, gb = bias?.grad.data
            Parallel.forEachChunk(count: O, minimumPerWorker: 64) { outs, _ in
                let o0 = outs.lowerBound
                gemm(transA: true, transB: false, m: outs.count, n: I, k: N, a: dyp + o0, lda: O, b: xp, ldb: I,
                     beta: 1, c: gw + o0 * I, ldc: I)
                if let gb { for n in 0..<N { let row = dyp + n * O; for o in outs { gb[o] += row[o] } } }
            }
        }
        guard inputGradient else { return nil }
        let dx = Tensor.reuse(inputGrad, shape: x.shape)
        inputGrad = dx
        let dxp = dx.data, wp = weight.value.data
        Parallel.forEachChunk(count: N, minimumPerWorker: 16) { rows, _ in
            let n0 = rows.lowerBound
            gemm(transA: false, transB: false, m: rows.count, n: I, k: O, a: dyp + n0 * O, lda: O, b: wp, ldb: I,
                 c: dxp + n0 * I, ldc: I)
        }
        return dx
    }
}
