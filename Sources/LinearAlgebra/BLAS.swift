private import CLinearAlgebra
import Synchronization

/// Thin wrappers over the OpenBLAS and LAPACK calls the projection stages need.
public enum BLAS {
    /// `C = alpha * op(A) * op(B) + beta * C` on row-major blocks (`cblas_sgemm`).
    ///
    /// `op(A)` is `m x k` and `op(B)` is `k x n`; `lda`, `ldb`, `ldc` are the row strides of the
    /// matrices as stored (before any transposition).
    public static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, beta: Float = 0
    ) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Threads for one checkpoint's analysis of `elements` values: small problems run faster on one
    /// OpenBLAS thread than on two that fight the encoder's. (The last bits of the results depend on it.)
    public static func threads(forElements elements: Int, upTo most: Int) -> Int {
        elements >= 1 << 20 ? max(most, 1) : 1
    }

    /// Sets how many threads OpenBLAS may use (`openblas_set_num_threads`): one when stages run
    /// side by side on a small machine, so they do not fight over the same cores. Inside a
    /// `singleThreaded` section, from the section's end.
    public static func setThreadCount(_ count: Int) {
        threading.withLock { state in
            state.wanted = count
            if state.sections == 0 { openblas_set_num_threads(Int32(count)) }
        }
    }

    /// Runs `body` with OpenBLAS on one thread, for a body whose own workers each call it, side by
    /// side. Sections may overlap, from any thread: OpenBLAS stays on one thread until the last
    /// one ends. (Each saving and restoring the count would let one section's end turn another's
    /// GEMMs multi-threaded midway, and those differ from single-threaded ones in the last bits.)
    public static func singleThreaded<R>(_ body: () throws -> R) rethrows -> R {
        threading.withLock { state in
            if state.sections == 0 && state.wanted == nil { state.wanted = Int(openblas_get_num_threads()) }
            state.sections += 1
            openblas_set_num_threads(1)
        }
        defer {
            threading.withLock { state in
                state.sections -= 1
                if state.sections == 0, let wanted = state.wanted { openblas_set_num_threads(Int32(wanted)) }
            }
        }
        return try body()
    }

    /// The count last set (nil: OpenBLAS's own), and the single-threaded sections open now.
    private static let threading = Mutex<(wanted: Int?, sections: Int)>((nil, 0))

    /// `A * B` for row-major matrices (`cblas_sgemm`).
    public static func multiply(_ a: Matrix, _ b: Matrix) -> Matrix {
        precondition(a.columns == b.rows)
        var c = Matrix(zeros: a.rows, b.columns)
        guard a.rows > 0, b.columns > 0, a.columns > 0 else { return c }
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                c.storage.withUnsafeMutableBufferPointer { pc in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                Int32(a.rows), Int32(b.columns), Int32(a.columns),
                                1, pa.baseAddress, Int32(a.columns), pb.baseAddress, Int32(b.columns),
                                0, pc.baseAddress, Int32(b.columns))
                }
            }
        }
        return c
    }

    /// `C = alpha * A^T A + beta * C` for a row-major `rows x columns` block `A` (`cblas_ssyrk`),
    /// upper triangle only: a Gram matrix can be summed over blocks of rows.
    public static func accumulateGram(
        _ a: UnsafePointer<Float>, rows: Int, columns: Int, alpha: Float, beta: Float, into c: UnsafeMutablePointer<Float>
    ) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(columns), Int32(rows),
                    alpha, a, Int32(columns), beta, c, Int32(columns))
    }
}

public struct LinearAlgebraError: Error, CustomStringConvertible {
    public let description: String
    init(_ function: String, info: Int32) {
        description = "\(function) failed (info \(info))"
    }
}

/// The largest eigenpairs of a symmetric matrix.
public struct SymmetricEigen: Sendable {
    /// Eigenvalues in decreasing order.
    public let values: [Float]
    /// Eigenvectors as rows, in the order of `values`.
    public let vectors: Matrix

    /// Computes the `count` largest eigenpairs of the symmetric matrix `a` (`LAPACKE_ssyevr`, range "I").
    public init(largest count: Int, of a: Matrix) throws {
        let d = a.rows
        precondition(a.columns == d && count >= 1 && count <= d)
        var work = a.storage
        var found: Int32 = 0
        var w = [Float](repeating: 0, count: d)
        var z = [Float](repeating: 0, count: d * count)
        var support = [Int32](repeating: 0, count: 2 * count)
        let info = work.withUnsafeMutableBufferPointer { pa in
            LAPACKE_ssyevr(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "I")),
                           CChar(UInt8(ascii: "U")), Int32(d), pa.baseAddress, Int32(d), 0, 0,
                           Int32(d - count + 1), Int32(d), 0, &found, &w, &z, Int32(d), &support)
        }
        guard info == 0, found == Int32(count) else { throw LinearAlgebraError("ssyevr", info: info) }
        // LAPACK returns ascending eigenvalues and column-major vectors: reverse into rows.
        var rows = Matrix(zeros: count, d)
        var values = [Float](repeating: 0, count: count)
        for r in 0..<count {
            let source = count - 1 - r
            values[r] = w[source]
            for j in 0..<d { rows[r, j] = z[source * d + j] }
        }
        self.values = values
        self.vectors = rows
    }
}

/// The singular value decomposition of a 2 x 2 matrix, `M = U diag(s) V^T` (`LAPACKE_dgesvd`).
public struct SVD2: Sendable {
    public let u: [Double]   // row-major 2 x 2
    public let singularValues: [Double]
    public let vt: [Double]  // row-major 2 x 2

    public init(_ m: [Double]) throws {
        precondition(m.count == 4)
        var a = m
        var s = [Double](repeating: 0, count: 2)
        var u = [Double](repeating: 0, count: 4)
        var vt = [Double](repeating: 0, count: 4)
        var superb = [Double](repeating: 0, count: 2)
        let info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "A")), CChar(UInt8(ascii: "A")),
                                  2, 2, &a, 2, &s, &u, 2, &vt, 2, &superb)
        guard info == 0 else { throw LinearAlgebraError("dgesvd", info: info) }
        self.u = u
        self.singularValues = s
        self.vt = vt
    }
}
