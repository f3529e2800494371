import Foundation
import GANCore

/// A set of feature vectors (one row per image), as a row-major n×d matrix in double precision.
public struct FeatureSet: Sendable {
    public var count: Int
    public var dim: Int
    public var values: [Double]

    public init(count: Int, dim: Int, values: [Double]) {
        precondition(values.count == count * dim)
        self.count = count; self.dim = dim; self.values = values
    }

    public init(_ t: Tensor) {
        precondition(t.shape.count == 2)
        self.init(count: t.shape[0], dim: t.shape[1], values: t.toArray().map(Double.init))
    }

    public func row(_ i: Int) -> ArraySlice<Double> { values[(i * dim)..<((i + 1) * dim)] }

    public func subset(_ indices: [Int]) -> FeatureSet {
        var v = [Double](); v.reserveCapacity(indices.count * dim)
        for i in indices { v.append(contentsOf: row(i)) }
        return FeatureSet(count: indices.count, dim: dim, values: v)
    }

    /// Mean and unbiased covariance (n − 1), as numpy's `np.cov(rowvar=False)`.
    public func statistics() -> GaussianStatistics {
        let n = count, d = dim
        var mu = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mu[j] += values[i * d + j] } }
        for j in 0..<d { mu[j] /= Double(n) }
        var centered = values
        for i in 0..<n { for j in 0..<d { centered[i * d + j] -= mu[j] } }
        var cov = [Double](repeating: 0, count: d * d)
        // cov = Xcᵀ·Xc / (n − 1), via BLAS in double precision would need dgemm; d ≤ a few hundred, so loops do.
        for i in 0..<n {
            let r = i * d
            for a in 0..<d {
                let xa = centered[r + a]
                if xa == 0 { continue }
                for b in a..<d { cov[a * d + b] += xa * centered[r + b] }
            }
        }
        let denom = Double(max(n - 1, 1))
        for a in 0..<d { for b in a..<d { cov[a * d + b] /= denom; cov[b * d + a] = cov[a * d + b] } }
        return GaussianStatistics(mean: mu, covariance: cov, dim: d, count: n)
    }
}

/// Mean and covariance of a feature set: what FID compares, and what reference statistics cache.
public struct GaussianStatistics: Codable, Sendable {
    public var mean: [Double]
    public var covariance: [Double]
    public var dim: Int
    public var count: Int
    public init(mean: [Double], covariance: [Double], dim: Int, count: Int) {
        self.mean = mean; self.covariance = covariance; self.dim = dim; self.count = count
    }
}

/// Sample-quality metrics on feature vectors.
///
/// ```swift
/// let fid = try Metrics.fid(real.statistics(), fake.statistics())
/// let (kid, kidStd) = Metrics.kid(real, fake, subsets: 100, subsetSize: 1000, seed: 0)
/// let (precision, recall) = Metrics.precisionRecall(real: real, fake: fake, k: 3)
/// ```
public enum Metrics {
    /// Fréchet distance between two Gaussians: |μ₁ − μ₂|² + tr(Σ₁) + tr(Σ₂) − 2·tr((Σ₁Σ₂)^½), with
    /// tr((Σ₁Σ₂)^½) = Σ √λ(Σ₁^½ Σ₂ Σ₁^½), a symmetric matrix, so LAPACK's symmetric eigensolver does all of it.
    public static func fid(_ a: GaussianStatistics, _ b: GaussianStatistics) throws -> Double {
        precondition(a.dim == b.dim, "FID: feature dimensions \(a.dim) and \(b.dim) differ")
        let d = a.dim
        var diff = 0.0
        for j in 0..<d { let t = a.mean[j] - b.mean[j]; diff += t * t }
        var traces = 0.0
        for j in 0..<d { traces += a.covariance[j * d + j] + b.covariance[j * d + j] }
        let s = try symmetricSquareRoot(a.covariance, n: d)
        let m = multiply(multiply(s, b.covariance, d), s, d)
        var sym = m
        for i in 0..<d { for j in 0..<d { sym[i * d + j] = 0.5 * (m[i * d + j] + m[j * d + i]) } }
        let (eigen, _) = try symmetricEigen(sym, n: d)
        let traceSqrt = eigen.reduce(0) { $0 + max($1, 0).squareRoot() }
        return max(0, diff + traces - 2 * traceSqrt)
    }

    static func multiply(_ x: [Double], _ y: [Double], _ d: Int) -> [Double] {
        var out = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for k in 0..<d { let v = x[i * d + k]; if v == 0 { continue }; for j in 0..<d { out[i * d + j] += v * y[k * d + j] } } }
        return out
    }

    /// A·Bᵀ for two feature sets (n×m), by BLAS.
    static func gram(_ a: FeatureSet, _ b: FeatureSet) -> [Double] {
        var out = [Double](repeating: 0, count: a.count * b.count)
        a.values.withUnsafeBufferPointer { ap in
            b.values.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in
                    dgemm(transA: false, transB: true, m: a.count, n: b.count, k: a.dim, a: ap.baseAddress!, lda: a.dim,
                          b: bp.baseAddress!, ldb: b.dim, c: op.baseAddress!, ldc: b.count)
                }
            }
        }
        return out
    }

    /// Unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³ between two sets (KID's estimator).
    public static func mmd2(_ x: FeatureSet, _ y: FeatureSet) -> Double {
        let d = Double(x.dim), m = x.count, n = y.count
        func kernelSum(_ g: [Double], skipDiagonalOf size: Int?) -> Double {
            var s = 0.0
            for (i, v) in g.enumerated() {
                if let size, i / size == i % size { continue }
                let t = v / d + 1
                s += t * t * t
            }
            return s
        }
        let sxx = kernelSum(gram(x, x), skipDiagonalOf: m), syy = kernelSum(gram(y, y), skipDiagonalOf: n)
        let sxy = kernelSum(gram(x, y), skipDiagonalOf: nil)
        return sxx / Double(m * (m - 1)) + syy / Double(n * (n - 1)) - 2 * sxy / Double(m * n)
    }

    /// KID: the mean and standard deviation of `mmd2` over `subsets` random subsets of `subsetSize` from each set
    /// (sizes capped at the smaller set), as torch-fidelity computes it.
    public static func kid(_ real: FeatureSet, _ fake: FeatureSet, subsets: Int = 100, subsetSize: Int = 1000, seed: UInt64 = 0) -> (Double, Double) {
        let m = min(subsetSize, real.count, fake.count)
        var rng = RandomGenerator(seed: seed)
        var values: [Double] = []
        for _ in 0..<subsets {
            let a = Array(rng.permutation(real.count).prefix(m)), b = Array(rng.permutation(fake.count).prefix(m))
            values.append(mmd2(real.subset(a), fake.subset(b)))
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(values.count - 1, 1))
        return (mean, variance.squareRoot())
    }

    /// ‖aᵢ − bⱼ‖² for all pairs, as ‖aᵢ‖² + ‖bⱼ‖² − 2·aᵢ·bⱼ with the products by BLAS.
    static func squaredDistances(_ a: FeatureSet, _ b: FeatureSet) -> [Double] {
        var out = gram(a, b)
        let na = (0..<a.count).map { a.row($0).reduce(0) { $0 + $1 * $1 } }, nb = (0..<b.count).map { b.row($0).reduce(0) { $0 + $1 * $1 } }
        for i in 0..<a.count { for j in 0..<b.count { out[i * b.count + j] = max(0, na[i] + nb[j] - 2 * out[i * b.count + j]) } }
        return out
    }

    /// Squared distance of each point to its k-th nearest other point of the same set.
    static func kthNeighbourRadii(_ a: FeatureSet, k: Int) -> [Double] {
        let d = squaredDistances(a, a)
        return (0..<a.count).map { i in
            var row = Array(d[(i * a.count)..<((i + 1) * a.count)])
            row.remove(at: i)
            row.sort()
            return row[min(k - 1, row.count - 1)]
        }
    }

    /// Improved precision and recall (Kynkäänniemi et al. 2019): precision is the share of generated points
    /// inside the real manifold (the union of balls around real points reaching their k-th nearest real
    /// neighbour); recall is the share of real points inside the generated manifold.
    public static func precisionRecall(real: FeatureSet, fake: FeatureSet, k: Int = 3) -> (precision: Double, recall: Double) {
        let m = manifolds(real: real, fake: fake, k: k)
        return (share(m.fakeInsideReal), share(m.realInsideFake))
    }

    /// Which generated images lie inside the real images' k-NN manifold (precision, and the realism gate of
    /// `recognitionRate`) and which real images lie inside the generated ones' (recall).
    public static func manifolds(real: FeatureSet, fake: FeatureSet, k: Int = 3) -> (fakeInsideReal: [Bool], realInsideFake: [Bool]) {
        (insideManifold(real, fake, k: k), insideManifold(fake, real, k: k))
    }

    /// The share of `true` flags.
    public static func share(_ flags: [Bool]) -> Double { Double(flags.filter { $0 }.count) / Double(max(flags.count, 1)) }

    /// For each probe: does it lie inside the manifold's k-NN balls (within the distance from some manifold
    /// point to that point's k-th nearest neighbour)? Precision is the share of generated probes inside the
    /// real images' balls (Kynkäänniemi et al. 2019).
    public static func insideManifold(_ manifold: FeatureSet, _ probes: FeatureSet, k: Int = 3) -> [Bool] {
        let radii = kthNeighbourRadii(manifold, k: k)
        let d = squaredDistances(probes, manifold)
        return (0..<probes.count).map { i in (0..<manifold.count).contains { d[i * manifold.count + $0] <= radii[$0] } }
    }

    /// An Inception-Score-style score from class probabilities [n, K]: exp(E KL(p(y|x) ‖ p(y))), averaged over
    /// `splits` equal parts (mean and standard deviation), as the Inception Score is reported.
    public static func inceptionScore(probabilities p: [Double], classes K: Int, splits: Int = 10) -> (Double, Double) {
        let n = p.count / K, parts = max(1, min(splits, n))
        var scores: [Double] = []
        for s in 0..<parts {
            let lo = n * s / parts, hi = n * (s + 1) / parts
            var marginal = [Double](repeating: 0, count: K)
            for i in lo..<hi { for k in 0..<K { marginal[k] += p[i * K + k] } }
            for k in 0..<K { marginal[k] /= Double(hi - lo) }
            var kl = 0.0
            for i in lo..<hi { for k in 0..<K where p[i * K + k] > 0 { kl += p[i * K + k] * (log(p[i * K + k]) - log(marginal[k])) } }
            scores.append(exp(kl / Double(hi - lo)))
        }
        let mean = scores.reduce(0, +) / Double(scores.count)
        let variance = scores.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(scores.count)
        return (mean, variance.squareRoot())
    }

    /// The judge's confidence a recognised image needs: label smoothing (0.1) caps the judge at about 0.91,
    /// and a probability of 0.5 is more than all nine other classes together.
    public static let recognitionConfidence = 0.5

    /// Share of rows the judge recognises as `label`: the most probable class is `label`, with probability at
    /// least `minimumConfidence`, and — when `realistic` is given — the image lies inside the real images'
    /// k-NN manifold (`insideManifold`). A classifier alone is credulous: it calls textures, blobs and
    /// shuffled patches of a class that class (tests/JudgeTests); the two gates make it refuse them.
    public static func recognitionRate(probabilities p: [Double], classes K: Int, label: Int,
                                       minimumConfidence: Double = recognitionConfidence, realistic: [Bool]? = nil) -> Double {
        let n = p.count / K
        precondition(realistic == nil || realistic!.count == n, "recognitionRate: \(realistic!.count) realism flags for \(n) rows")
        var hits = 0
        for i in 0..<n {
            var best = 0
            for k in 1..<K where p[i * K + k] > p[i * K + best] { best = k }
            if best == label && p[i * K + best] >= minimumConfidence && (realistic?[i] ?? true) { hits += 1 }
        }
        return Double(hits) / Double(max(n, 1))
    }
}
