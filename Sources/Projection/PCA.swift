import LinearAlgebra

/// A principal component analysis to two dimensions, with scikit-learn's semantics.
///
/// Equal to `sklearn.decomposition.PCA(n_components=2, svd_solver="covariance_eigh")`:
/// the data are centred (not scaled), the top eigenvectors of the `D x D` covariance
/// `Xc^T Xc / (N - 1)` are the components, and each component's sign is chosen so its
/// largest-magnitude loading is positive (scikit-learn's `svd_flip`). Computed in float32,
/// so scores agree with scikit-learn's to float32 precision (about 1e-6 relative to the spread).
public struct PrincipalComponents: Sendable {
    /// The per-feature mean that was subtracted.
    public let mean: [Float]
    /// The components as rows (`2 x D`).
    public let components: Matrix
    /// The variance along each component (the covariance eigenvalues), decreasing.
    public let explainedVariance: [Float]
    /// The centred data projected on the components: the PCA scores.
    public let scores: PlanarPoints

    /// The exact PCA of `x` (the covariance eigendecomposition).
    public init(fitting x: Matrix) throws {
        var pca = IncrementalPCA()
        self = try pca.fit(x)
    }

    /// Builds the result from the centred data and the top eigenpairs (vectors as rows, any sign).
    init(centred: Matrix, mean: [Float], vectors: Matrix, values: [Float]) {
        let d = centred.columns
        var components = Matrix(zeros: 2, d)
        for r in 0..<2 {
            for j in 0..<d { components[r, j] = vectors[r, j] }
            // svd_flip: the entry of largest magnitude (first one on ties) becomes positive.
            var best = 0
            for j in 1..<d where abs(components[r, j]) > abs(components[r, best]) { best = j }
            if components[r, best] < 0 {
                for j in 0..<d { components[r, j] = -components[r, j] }
            }
        }
        let transposed = Matrix(rows: d, columns: 2, storage: (0..<d).flatMap { [components[0, $0], components[1, $0]] })
        self.mean = mean
        self.components = components
        self.explainedVariance = values.prefix(2).map { max($0, 0) }
        self.scores = PlanarPoints(BLAS.multiply(centred, transposed))
    }

    /// The data minus its per-feature mean (the mean taken in double precision).
    static func centre(_ x: Matrix) throws -> (Matrix, [Float]) {
        guard x.rows >= 2, x.columns >= 2 else { throw ProjectionError.tooFewSamples(x.rows, x.columns) }
        let n = x.rows, d = x.columns
        // Rows are summed in float32 in chunks of 32, chunks in double: the mean keeps double
        // precision (embeddings often share a large offset) at float32 speed.
        var sums = [Double](repeating: 0, count: d)
        var partial = [Float](repeating: 0, count: d)
        x.storage.withUnsafeBufferPointer { p in
            sums.withUnsafeMutableBufferPointer { total in
                partial.withUnsafeMutableBufferPointer { chunk in
                    for start in stride(from: 0, to: n, by: 32) {
                        for j in 0..<d { chunk[j] = 0 }
                        for i in start..<min(start + 32, n) {
                            let row = p.baseAddress! + i * d
                            for j in 0..<d { chunk[j] += row[j] }
                        }
                        for j in 0..<d { total[j] += Double(chunk[j]) }
                    }
                }
            }
        }
        let mean = sums.map { Float($0 / Double(n)) }
        var centred = x
        centred.storage.withUnsafeMutableBufferPointer { p in
            mean.withUnsafeBufferPointer { m in
                for i in 0..<n {
                    let row = p.baseAddress! + i * d
                    for j in 0..<d { row[j] -= m[j] }
                }
            }
        }
        return (centred, mean)
    }
}

public enum ProjectionError: Error, Equatable, CustomStringConvertible {
    case tooFewSamples(Int, Int)
    case degenerate

    public var description: String {
        switch self {
        case .tooFewSamples(let n, let d):
            return "need at least 2 samples of at least 2 features for PCA, got \(n) x \(d)"
        case .degenerate:
            return "all points coincide: the projection has no spread to align"
        }
    }
}
