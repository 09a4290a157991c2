import CSubspaceProduct
import LinearAlgebra
import Testing
@testable import Projection

#if canImport(Glibc)
import Glibc
#endif

@Suite struct IncrementalPCATests {
    /// Samples with standard deviations `spreads` along the first axes, turned by `angle` in the
    /// plane of axes 0 and 2, plus small isotropic noise.
    func sample(n: Int, d: Int, spreads: [Float], angle: Double, seed: UInt64) -> Matrix {
        var g = SplitMix(seed: seed)
        var x = Matrix(zeros: n, d)
        let c = Float(cos(angle)), s = Float(sin(angle))
        for i in 0..<n {
            var row = (0..<d).map { j in Float(g.normal()) * (j < spreads.count ? spreads[j] : 0.05) }
            let a = row[0], b = row[2]
            row[0] = c * a - s * b
            row[2] = s * a + c * b
            for j in 0..<d { x[i, j] = row[j] + 3 }
        }
        return x
    }

    func maxDifference(_ a: PlanarPoints, _ b: PlanarPoints) -> Float {
        var worst: Float = 0, spread: Float = 0
        for i in 0..<a.count {
            worst = max(worst, abs(a.x[i] - b.x[i]), abs(a.y[i] - b.y[i]))
            spread = max(spread, abs(b.x[i]), abs(b.y[i]))
        }
        return worst / spread
    }

    @Test(arguments: [1, 2])
    func warmStartsMatchTheExactPCAAlongARun(threads: Int) throws {
        var incremental = IncrementalPCA()
        incremental.threads = threads
        for step in 0..<6 {
            let x = sample(n: 3_000, d: 256, spreads: [3, 2, 1, 0.5], angle: 0.05 * Double(step), seed: UInt64(step + 1))
            let fast = try incremental.fit(x)
            let exact = try PrincipalComponents(fitting: x)
            #expect(incremental.lastMethod == (step == 0 ? .exact : .warmStart))
            #expect(maxDifference(fast.scores, exact.scores) < 2e-5)
            #expect(abs(fast.explainedVariance[0] / exact.explainedVariance[0] - 1) < 1e-5)
        }
    }

    @Test func fallsBackToTheExactSolutionWhenComponentsTie() throws {
        var incremental = IncrementalPCA()
        _ = try incremental.fit(sample(n: 2_000, d: 256, spreads: [3, 2, 1], angle: 0, seed: 9))
        // Make the second and third directions exactly tied: every sample appears turned by 0, 90,
        // 180 and 270 degrees in their plane. The second component is then not determined, no
        // iteration can converge to it, and the exact path must answer.
        let base = sample(n: 500, d: 256, spreads: [3, 1.5, 1], angle: 0, seed: 10)
        var tied = Matrix(zeros: 2_000, 256)
        for i in 0..<500 {
            let a = base[i, 1] - 3, b = base[i, 2] - 3
            for (k, turned) in [(a, b), (-b, a), (-a, -b), (b, -a)].enumerated() {
                for j in 0..<256 { tied[4 * i + k, j] = base[i, j] }
                tied[4 * i + k, 1] = turned.0 + 3
                tied[4 * i + k, 2] = turned.1 + 3
            }
        }
        let result = try incremental.fit(tied)
        #expect(incremental.lastMethod == .exact)
        // The exact solution. Its second axis is any direction of the tied plane, picked by the
        // last bits of the sums (which OpenBLAS's thread count, changed by suites running at the
        // same time, may change): the first axis is compared, and the second's spread.
        let exact = try PrincipalComponents(fitting: tied).scores
        let first = PlanarPoints(x: result.scores.x, y: exact.y), firstExact = PlanarPoints(x: exact.x, y: exact.y)
        #expect(maxDifference(first, firstExact) < 1e-4)
        func spread(_ values: [Float]) -> Double { values.reduce(0) { $0 + Double($1) * Double($1) } / Double(values.count) }
        #expect(abs(spread(result.scores.y) - spread(exact.y)) < 1e-4 * spread(exact.y))
    }

    /// The pass both ways (vectorised and portable) against the definition in double precision,
    /// on rows that share a large offset and a width that is not a multiple of four.
    @Test func subspaceProductMatchesItsDefinition() {
        let n = 300, d = 37, b = Int(SP_BLOCK)
        var g = SplitMix(seed: 3)
        let x = (0..<n * d).map { _ in Float(g.normal()) + 40 }
        let v = (0..<d * b).map { _ in Float(g.normal()) }
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(x[i * d + j]) / Double(n) } }
        let floatMean = mean.map(Float.init)
        // Definition: z = Xc^T (Xc v) in double, centred by the same float mean.
        var expected = [Double](repeating: 0, count: d * b)
        for i in 0..<n {
            let centred = (0..<d).map { Double(x[i * d + $0]) - Double(floatMean[$0]) }
            for c in 0..<b {
                let w = (0..<d).reduce(0.0) { $0 + centred[$1] * Double(v[$1 * b + c]) }
                for j in 0..<d { expected[j * b + c] += centred[j] * w }
            }
        }
        for portable in [false, true] {
            var z = [Double](repeating: 0, count: d * b)
            var scratch = [Float](repeating: 0, count: Int(sp_scratch_count(Int64(d))))
            // In two calls, as two threads would split the rows.
            for (first, last) in [(0, 170), (170, n)] {
                if portable {
                    sp_centred_product_portable(x, Int64(first), Int64(last), Int64(d), v, floatMean, &z, &scratch)
                } else {
                    sp_centred_product(x, Int64(first), Int64(last), Int64(d), v, floatMean, &z, &scratch)
                }
            }
            let scale = expected.map(abs).max()!
            let worst = zip(z, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-6 * scale, "portable: \(portable)")
        }
    }
}
