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

    /// Builds the result from the data, its mean and the top eigenpairs (vectors as rows, any sign).
    init(data x: Matrix, mean: [Float], vectors: Matrix, values: [Float]) {
        let d = x.columns
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
        // (x - mean) V = x V - mean V: no centred copy of the data.
        var scores = BLAS.multiply(x, transposed)
        for r in 0..<2 {
            var shift = 0.0
            for j in 0..<d { shift += Double(mean[j]) * Double(components[r, j]) }
            for i in 0..<x.rows { scores[i, r] -= Float(shift) }
        }
        self.mean = mean
        self.components = components
        self.explainedVariance = values.prefix(2).map { max($0, 0) }
        self.scores = PlanarPoints(scores)
    }

    /// The per-feature mean, taken in double precision.
    static func mean(of x: Matrix) throws -> [Float] {
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
        return sums.map { Float($0 / Double(n)) }
    }

    /// The covariance `(x - mean)^T (x - mean) / (N - 1)`, centred a block of rows at a time so
    /// that no centred copy of the whole matrix is needed.
    static func covariance(of x: Matrix, mean: [Float]) -> Matrix {
        let n = x.rows, d = x.columns, blockRows = 1024
        var covariance = Matrix(zeros: d, d)
        var block = [Float](repeating: 0, count: min(n, blockRows) * d)
        x.storage.withUnsafeBufferPointer { p in
            block.withUnsafeMutableBufferPointer { b in
                covariance.storage.withUnsafeMutableBufferPointer { c in
                    for start in stride(from: 0, to: n, by: blockRows) {
                        let rows = min(blockRows, n - start)
                        for i in 0..<rows {
                            for j in 0..<d { b[i * d + j] = p[(start + i) * d + j] - mean[j] }
                        }
                        BLAS.accumulateGram(b.baseAddress!, rows: rows, columns: d, alpha: 1 / Float(n - 1),
                                            beta: start == 0 ? 0 : 1, into: c.baseAddress!)
                    }
                }
            }
        }
        // Mirror the upper triangle so the matrix reads the same in either layout.
        for i in 0..<d { for j in 0..<i { covariance[i, j] = covariance[j, i] } }
        return covariance
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
