import LinearAlgebra
import Testing

@Suite struct LinearAlgebraTests {
    /// A small deterministic generator: the tests need varied values, not random ones.
    func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 250
        }
    }

    @Test(arguments: [(3, 4, 5), (1, 7, 1), (17, 9, 33)])
    func multiplyEqualsTheDefinition(m: Int, k: Int, n: Int) {
        let a = Matrix(rows: m, columns: k, storage: values(m * k, seed: 1))
        let b = Matrix(rows: k, columns: n, storage: values(k * n, seed: 2))
        let c = BLAS.multiply(a, b)
        #expect(c.rows == m && c.columns == n)
        for i in 0..<m {
            for j in 0..<n {
                let expected = (0..<k).reduce(0.0) { $0 + Double(a[i, $1]) * Double(b[$1, j]) }
                #expect(abs(Double(c[i, j]) - expected) <= 1e-4 * max(1, abs(expected)), "c[\(i), \(j)]")
            }
        }
    }

    @Test func gemmTransposesAndAccumulates() {
        // C = 2 * A^T * B + C, A stored 3 x 2, B stored 3 x 2: C is 2 x 2.
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [1, 0, 0, 1, 1, 1]
        var c: [Float] = [1, 1, 1, 1]
        BLAS.gemm(transposeA: true, m: 2, n: 2, k: 3, a: a, lda: 2, b: b, ldb: 2, c: &c, ldc: 2, alpha: 2, beta: 1)
        // A^T B = [[1+5, 3+5], [2+6, 4+6]] = [[6, 8], [8, 10]]
        #expect(c == [13, 17, 17, 21])
    }

    @Test func largestEigenpairsOfAKnownMatrix() throws {
        // diag(1, 5, 3) rotated in the (0, 1) plane: eigenvalues 5, 3, 1.
        let c = Float(0.6), s = Float(0.8)
        let r = Matrix(rows: 3, columns: 3, storage: [c, -s, 0, s, c, 0, 0, 0, 1])
        let d = Matrix(rows: 3, columns: 3, storage: [1, 0, 0, 0, 5, 0, 0, 0, 3])
        let rt = Matrix(rows: 3, columns: 3, storage: [c, s, 0, -s, c, 0, 0, 0, 1])
        let a = BLAS.multiply(BLAS.multiply(r, d), rt)
        let eigen = try SymmetricEigen(largest: 2, of: a)
        #expect(abs(eigen.values[0] - 5) < 1e-5 && abs(eigen.values[1] - 3) < 1e-5)
        // The first vector is R's second column, up to its sign.
        let v = eigen.vectors.row(0).map { $0 }
        #expect(abs(abs(v[0]) - s) < 1e-5 && abs(abs(v[1]) - c) < 1e-5 && abs(v[2]) < 1e-5)
        #expect(abs(v[0] * v[1] + s * c) < 1e-5, "the vector's signs are R's column's (or both flipped)")
    }

    @Test func svdOfTwoByTwoRebuildsTheMatrix() throws {
        for m in [[3.0, 1, -2, 4], [0, 1, 1, 0], [1, 2, 2, 4], [0, 0, 0, 0]] {
            let svd = try SVD2(m)
            #expect(svd.singularValues[0] >= svd.singularValues[1] && svd.singularValues[1] >= 0)
            for i in 0..<2 {
                for j in 0..<2 {
                    let rebuilt = (0..<2).reduce(0.0) { $0 + svd.u[i * 2 + $1] * svd.singularValues[$1] * svd.vt[$1 * 2 + j] }
                    #expect(abs(rebuilt - m[i * 2 + j]) < 1e-12, "\(m)")
                }
            }
        }
    }

    @Test func planarPointsSplitAndInterleave() {
        let m = Matrix(rows: 3, columns: 2, storage: [1, 2, 3, 4, 5, 6])
        let points = PlanarPoints(m)
        #expect(points.x == [1, 3, 5] && points.y == [2, 4, 6] && points.count == 3)
        #expect(points.interleaved == m.storage)
    }

    @Test func aSingleThreadedSectionRestoresTheCountLastSet() {
        BLAS.setThreadCount(2)
        let inside = BLAS.singleThreaded { BLAS.singleThreaded { 7 } }
        #expect(inside == 7)
        BLAS.setThreadCount(1)
    }
}
