#if canImport(Accelerate)
import Accelerate
#else
import COpenBLAS
#endif

/// Eigenvalues (ascending) and eigenvectors (columns of a row-major n×n matrix, i.e. `vectors[i*n + j]` is
/// component i of eigenvector j) of a symmetric matrix, by LAPACK's `dsyevd`.
///
/// ```swift
/// let (values, vectors) = try symmetricEigen([2, 1, 1, 2], n: 2)   // values [1, 3]
/// ```
public func symmetricEigen(_ matrix: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
    precondition(matrix.count == n * n, "symmetricEigen: \(matrix.count) values for \(n)×\(n)")
    if n == 0 { return ([], []) }
    // LAPACK is column-major; a symmetric matrix is its own transpose, and the eigenvector matrix comes back
    // column-major, which read row-major is its transpose — so transpose it back below.
    var a = matrix
    var w = [Double](repeating: 0, count: n)
    var info: Int32 = 0
    var nn = Int32(n), lda = Int32(n)
    var jobz = CChar(UInt8(ascii: "V")), uplo = CChar(UInt8(ascii: "U"))
    var lwork: Int32 = -1, liwork: Int32 = -1
    var workSize = 0.0
    var iworkSize: Int32 = 0
    dsyevd_(&jobz, &uplo, &nn, &a, &lda, &w, &workSize, &lwork, &iworkSize, &liwork, &info)   // workspace query
    lwork = Int32(workSize); liwork = iworkSize
    var work = [Double](repeating: 0, count: Int(lwork))
    var iwork = [Int32](repeating: 0, count: Int(liwork))
    dsyevd_(&jobz, &uplo, &nn, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
    guard info == 0 else { throw LinearAlgebraError(description: "dsyevd failed (info \(info))") }
    var vectors = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { vectors[i * n + j] = a[j * n + i] } }
    return (w, vectors)
}

public struct LinearAlgebraError: UserFacingError {
    public let description: String
}

/// The symmetric positive semi-definite square root S (S·S = A) of a symmetric matrix, by eigendecomposition;
/// negative eigenvalues from rounding are clamped to 0.
public func symmetricSquareRoot(_ matrix: [Double], n: Int) throws -> [Double] {
    let (values, v) = try symmetricEigen(matrix, n: n)
    let roots = values.map { max($0, 0).squareRoot() }
    var s = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        for j in i..<n {
            var acc = 0.0
            for k in 0..<n { acc += v[i * n + k] * roots[k] * v[j * n + k] }
            s[i * n + j] = acc; s[j * n + i] = acc
        }
    }
    return s
}
