import LinearAlgebra
import Testing
@testable import Projection

@Suite struct PCATests {
    /// Rows along known orthogonal directions with variances 9 and 1, plus small noise.
    func data(n: Int, d: Int, seed: UInt64) -> (Matrix, [Float], [Float]) {
        var g = SplitMix(seed: seed)
        var u = (0..<d).map { _ in Float(g.normal()) }
        var v = (0..<d).map { _ in Float(g.normal()) }
        func normalise(_ a: inout [Float]) { let n = a.reduce(0) { $0 + $1 * $1 }.squareRoot(); a = a.map { $0 / n } }
        normalise(&u)
        let dot = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
        v = zip(v, u).map { $0 - dot * $1 }
        normalise(&v)
        var x = Matrix(zeros: n, d)
        for i in 0..<n {
            let a = Float(g.normal() * 3), b = Float(g.normal())
            for j in 0..<d { x[i, j] = 5 + a * u[j] + b * v[j] + Float(g.normal() * 0.01) }
        }
        return (x, u, v)
    }

    @Test func findsTheKnownComponentsWithSklearnSigns() throws {
        let (x, u, v) = data(n: 2000, d: 16, seed: 3)
        let pca = try PrincipalComponents(fitting: x)
        for (row, truth) in [u, v].enumerated() {
            let c = Array(pca.components.row(row))
            let cosine = abs(zip(c, truth).reduce(0) { $0 + $1.0 * $1.1 })
            #expect(cosine > 0.999)
            let largest = c.max { abs($0) < abs($1) }!
            #expect(largest > 0, "sign rule: the largest-magnitude loading is positive")
        }
        #expect(abs(pca.explainedVariance[0] / 9 - 1) < 0.1 && abs(pca.explainedVariance[1] - 1) < 0.1)
        // Scores are centred and their variances are the eigenvalues.
        let n = Float(x.rows)
        let meanX = pca.scores.x.reduce(0, +) / n
        let varX = pca.scores.x.reduce(0) { $0 + $1 * $1 } / (n - 1)
        #expect(abs(meanX) < 1e-3 && abs(varX / pca.explainedVariance[0] - 1) < 1e-4)
    }

    @Test func refusesTooLittleData() {
        #expect(throws: ProjectionError.tooFewSamples(1, 4)) { try PrincipalComponents(fitting: Matrix(zeros: 1, 4)) }
    }
}
