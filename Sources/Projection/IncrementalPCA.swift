#if canImport(Glibc)
import Glibc
#endif
private import CSubspaceProduct
import Dispatch
import LinearAlgebra
import Synchronization

/// PCA to two components for a sequence of checkpoints, warm-started from the previous one.
///
/// Consecutive checkpoints have nearly the same principal subspace, so a few steps of block
/// subspace iteration from the previous basis (eight vectors: the two wanted and six guards)
/// reach it without forming the `D x D` covariance. Each step is one pass over the data
/// (`CSubspaceProduct`: `Xc^T Xc V`, each row centred as it is read, so no centred copy exists). After each step a Rayleigh-Ritz projection gives the components and their residuals;
/// the result is accepted only when, for both components, `|C v - lambda v| / gap` (an upper
/// bound on the angle to the true eigenvector, with the gap to the nearest other eigenvalue)
/// is below `tolerance`. Otherwise, for the first checkpoint, and for embeddings of at most 192
/// dimensions (where forming the covariance is cheaper than iterating), the exact covariance
/// eigendecomposition is used. Either way the result is the exact PCA within float32 precision.
public struct IncrementalPCA: Sendable {
    public enum Method: String, Sendable { case exact, warmStart = "warm-start" }

    /// Largest accepted bound on each component's angle error (radians).
    public var tolerance = 1e-5
    public var maxIterations = 12
    /// Cores a subspace step may use.
    public var threads = 1
    /// How the last fit was made, and with how many subspace iterations.
    public private(set) var lastMethod = Method.exact
    public private(set) var lastIterations = 0
    private var basis: [Float]?  // D x 4, row-major
    static let blockSize = 8
    static let exactBelowDimension = 192

    public init() {}

    public mutating func fit(_ x: Matrix) throws -> PrincipalComponents {
        let mean = try PrincipalComponents.mean(of: x)
        // Each iteration costs about 4 N D b flops against N D^2 for the covariance: below this
        // width the exact route is the faster one.
        if let start = basis, x.columns > Self.exactBelowDimension, start.count == x.columns * Self.blockSize,
           let warm = warmStart(x, mean: mean, from: start) {
            lastMethod = .warmStart
            return warm
        }
        let covariance = PrincipalComponents.covariance(of: x, mean: mean)
        let block = min(Self.blockSize, x.columns)
        let eigen = try SymmetricEigen(largest: block, of: covariance)
        if block == Self.blockSize {
            var seed = [Float](repeating: 0, count: x.columns * block)
            for j in 0..<x.columns { for c in 0..<block { seed[j * block + c] = eigen.vectors[c, j] } }
            basis = seed
        }
        lastMethod = .exact
        lastIterations = 0
        return PrincipalComponents(data: x, mean: mean, vectors: eigen.vectors, values: eigen.values)
    }

    private mutating func warmStart(_ x: Matrix, mean: [Float], from start: [Float]) -> PrincipalComponents? {
        let d = x.columns, b = Self.blockSize
        var v = orthonormalised(start, rows: d, columns: b)
        var previousBound = Double.infinity
        for iteration in 1...maxIterations {
            let z = covarianceTimes(v, data: x, mean: mean)
            // Rayleigh-Ritz: H = V^T C V, in double.
            var h = [Double](repeating: 0, count: b * b)
            for r in 0..<b { for c in 0..<b {
                var sum = 0.0
                for j in 0..<d { sum += Double(v[j * b + r]) * Double(z[j * b + c]) }
                h[r * b + c] = sum
            } }
            for r in 0..<b { for c in 0..<r { let s = (h[r * b + c] + h[c * b + r]) / 2; h[r * b + c] = s; h[c * b + r] = s } }
            let (values, q) = JacobiEigen.decompose(h, size: b)
            // Ritz vectors V Q and their images C V Q.
            var ritz = [Double](repeating: 0, count: d * b), image = [Double](repeating: 0, count: d * b)
            for j in 0..<d { for c in 0..<b {
                var a = 0.0, m = 0.0
                for k in 0..<b { a += Double(v[j * b + k]) * q[k * b + c]; m += Double(z[j * b + k]) * q[k * b + c] }
                ritz[j * b + c] = a
                image[j * b + c] = m
            } }
            var bound = 0.0
            for c in 0..<2 {
                var residual = 0.0
                for j in 0..<d { let r = image[j * b + c] - values[c] * ritz[j * b + c]; residual += r * r }
                let gap = c == 0 ? values[0] - values[1] : min(values[0] - values[1], values[1] - values[2])
                bound = max(bound, gap > 0 ? residual.squareRoot() / gap : .infinity)
            }
            // Give up early when the bound shrinks too slowly to reach the tolerance in the
            // iterations left: the exact route is then cheaper than finishing.
            let rate = bound / previousBound
            if bound > tolerance, iteration > 1,
               !(rate < 1) || bound * pow(rate, Double(maxIterations - iteration)) > tolerance {
                lastIterations = iteration
                return nil
            }
            previousBound = bound
            if bound <= tolerance {
                lastIterations = iteration
                basis = ritz.map(Float.init)
                var vectors = Matrix(zeros: 2, d)
                for c in 0..<2 { for j in 0..<d { vectors[c, j] = Float(ritz[j * b + c]) } }
                return PrincipalComponents(data: x, mean: mean, vectors: vectors, values: [Float(values[0]), Float(values[1])])
            }
            v = orthonormalised(image.map(Float.init), rows: d, columns: b)
        }
        lastIterations = maxIterations
        return nil
    }

    /// `C V = Xc^T (Xc V) / (N - 1)` for the `D x 8` basis `v` (row-major), in double, each row
    /// centred as it is read; the rows are split among threads.
    private func covarianceTimes(_ v: [Float], data x: Matrix, mean: [Float]) -> [Double] {
        let n = x.rows, d = x.columns, b = Self.blockSize
        precondition(b == Int(SP_BLOCK))
        let workers = max(1, min(threads, n / 256))
        let chunk = (n + workers - 1) / workers
        var partials: [[Double]] = []
        x.storage.withUnsafeBufferPointer { px in
            v.withUnsafeBufferPointer { pv in
                mean.withUnsafeBufferPointer { pm in
                    let inputs = Inputs(x: px.baseAddress!, v: pv.baseAddress!, mean: pm.baseAddress!)
                    let results = Mutex([[Double]](repeating: [], count: workers))
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        var z = [Double](repeating: 0, count: d * b)
                        var scratch = [Float](repeating: 0, count: Int(sp_scratch_count(Int64(d))))
                        sp_centred_product(inputs.x, Int64(worker * chunk), Int64(min(n, (worker + 1) * chunk)), Int64(d),
                                           inputs.v, inputs.mean, &z, &scratch)
                        results.withLock { $0[worker] = z }
                    }
                    partials = results.withLock { $0 }
                }
            }
        }
        var z = [Double](repeating: 0, count: d * b)
        for partial in partials { for e in 0..<d * b { z[e] += partial[e] } }
        let scale = 1 / Double(n - 1)
        return z.map { $0 * scale }
    }

    /// Read-only pointers for the workers of one pass; the arrays outlive the pass.
    private struct Inputs: @unchecked Sendable {
        let x: UnsafePointer<Float>
        let v: UnsafePointer<Float>
        let mean: UnsafePointer<Float>
    }

    /// Modified Gram-Schmidt on the columns of a row-major `rows x columns` block, in double.
    private func orthonormalised(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        var q = m.map(Double.init)
        for c in 0..<columns {
            for p in 0..<c {
                var dot = 0.0
                for j in 0..<rows { dot += q[j * columns + c] * q[j * columns + p] }
                for j in 0..<rows { q[j * columns + c] -= dot * q[j * columns + p] }
            }
            var norm = 0.0
            for j in 0..<rows { norm += q[j * columns + c] * q[j * columns + c] }
            norm = norm.squareRoot()
            for j in 0..<rows { q[j * columns + c] = norm > 0 ? q[j * columns + c] / norm : 0 }
        }
        return q.map(Float.init)
    }
}

/// Eigenvalues (decreasing) and eigenvectors (columns of a row-major matrix) of a small
/// symmetric matrix by cyclic Jacobi rotations, in double precision.
enum JacobiEigen {
    static func decompose(_ matrix: [Double], size n: Int) -> (values: [Double], vectors: [Double]) {
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<50 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
            if off < 1e-30 { break }
            for p in 0..<n { for q in (p + 1)..<n where a[p * n + q] != 0 {
                let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n {
                    let akp = a[k * n + p], akq = a[k * n + q]
                    a[k * n + p] = c * akp - s * akq
                    a[k * n + q] = s * akp + c * akq
                }
                for k in 0..<n {
                    let apk = a[p * n + k], aqk = a[q * n + k]
                    a[p * n + k] = c * apk - s * aqk
                    a[q * n + k] = s * apk + c * aqk
                }
                for k in 0..<n {
                    let vkp = v[k * n + p], vkq = v[k * n + q]
                    v[k * n + p] = c * vkp - s * vkq
                    v[k * n + q] = s * vkp + c * vkq
                }
            } }
        }
        let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
        let values = order.map { a[$0 * n + $0] }
        var vectors = [Double](repeating: 0, count: n * n)
        for (column, source) in order.enumerated() { for k in 0..<n { vectors[k * n + column] = v[k * n + source] } }
        return (values, vectors)
    }
}
