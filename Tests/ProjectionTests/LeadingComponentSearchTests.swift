import LinearAlgebra
import Testing
@testable import Projection
import CNeighbourSearch

#if canImport(Glibc)
import Glibc
#endif

/// The pruned search must return brute force's lists, whatever the seeds and threads, and must
/// decline data it cannot prune.
@Suite struct LeadingComponentSearchTests {
    /// Embeddings shaped like a real run's: a common offset, classes along a few directions, and
    /// noise whose scale falls as a power of its rank over a random basis (`rank` directions), plus
    /// a whisper in every direction.
    static func decaying(n: Int, d: Int, rank: Int = 40, classes: Int = 10, seed: UInt64) -> Matrix {
        var g = SplitMix(seed: seed)
        let directions = (0..<rank).map { _ in (0..<d).map { _ in Float(g.normal()) / Float(d).squareRoot() } }
        let offset = (0..<d).map { _ in Float(g.normal()) }
        var x = Matrix(zeros: n, d)
        for i in 0..<n {
            let label = i % classes
            var row = offset.map { 2 * $0 }
            for r in 0..<rank {
                let scale = 10 * Float(pow(Double(r + 1), -0.9))
                let coordinate = scale * Float(g.normal()) + (r == label ? 12 : 0)
                for c in 0..<d { row[c] += coordinate * directions[r][c] }
            }
            for c in 0..<d { x[i, c] = row[c] + 0.02 * Float(g.normal()) }
        }
        return x
    }

    /// The found lists hold brute force's distances, and where a neighbour differs, it is at
    /// brute force's distance too (two neighbours within a rounding of each other may swap: brute
    /// force rounds each similarity through a GEMM, the pruned search through a dot product).
    func expectSameLists(_ found: NeighbourGraph, _ truth: NeighbourGraph, of x: Matrix, _ note: Comment) {
        var worstDistance: Float = 0, worstSwap = 0.0
        for slot in 0..<truth.indices.count {
            worstDistance = max(worstDistance, abs(found.distances[slot] - truth.distances[slot]))
            if found.indices[slot] != truth.indices[slot] {
                let i = slot / truth.k, j = Int(found.indices[slot])
                worstSwap = max(worstSwap, abs(Self.cosineDistance(x, i, j) - Double(truth.distances[slot])))
            }
        }
        #expect(worstDistance < 2e-6, note)
        #expect(worstSwap < 2e-6, note)
    }

    static func cosineDistance(_ x: Matrix, _ i: Int, _ j: Int) -> Double {
        let a = x.row(i).map(Double.init), b = x.row(j).map(Double.init)
        if a == b { return 0 }
        let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        let lengths = (a.reduce(0) { $0 + $1 * $1 } * b.reduce(0) { $0 + $1 * $1 }).squareRoot()
        return min(max(1 - dot / lengths, 0), 2)
    }

    @Test(arguments: [(1_500, 96, 10), (3_000, 200, 15), (2_000, 33, 30)])
    func equalsBruteForceWithAnySeedsAndThreads(n: Int, d: Int, k: Int) throws {
        let x = Self.decaying(n: n, d: d, seed: UInt64(n + d))
        let duplicates = DuplicateRows(x)
        let truth = BlockedCosineSearch.nearest(x, k: k, duplicates: duplicates, threads: 2).graph
        var g = SplitMix(seed: 3)
        let garbage = (0..<n * k).map { _ in Int32(Int(g.next() % UInt64(n + 3))) - 2 }  // none, self, out of range
        let search = LeadingComponentSearch.nearest(x, k: k, duplicates: duplicates, threads: 1, seeds: nil)
        let unseeded = try #require(search)
        expectSameLists(unseeded.nearest.graph, truth, of: x, "unseeded")
        #expect(unseeded.concentration > 0.8, "\(unseeded.concentration)")
        #expect(unseeded.exactPairs < n * (n - 1) / 10, "the bound rules out most pairs")
        for (seeds, threads) in [(garbage, 2), (truth.indices, 3), (Array(truth.indices.prefix(n)), 2)] {
            let search = LeadingComponentSearch.nearest(x, k: k, duplicates: duplicates, threads: threads, seeds: seeds)
            let seeded = try #require(search)
            let same = seeded.nearest.graph == unseeded.nearest.graph
            #expect(same, "the lists do not depend on seeds or threads")
        }
        let again = LeadingComponentSearch.nearest(x, k: k, duplicates: duplicates, threads: 2, seeds: truth.indices)
        let wellSeeded = try #require(again)
        #expect(wellSeeded.exactPairs <= unseeded.exactPairs + n * k)
    }

    /// Small integers in 16 dimensions (the bound is the whole distance there): many pairs tie,
    /// some rows are exact copies, one points the opposite way.
    @Test func tiesAndCopiesAreBruteForces() throws {
        let n = 2_400, d = 16
        var g = SplitMix(seed: 41)
        var x = Matrix(zeros: n, d)
        for i in 0..<n { for j in 0..<d { x[i, j] = 6 + Float(g.next() % 3) + (j == i % 4 ? 3 : 0) } }
        for j in 0..<d { x[7, j] = x[8, j]; x[n - 1, j] = x[8, j]; x[11, j] = -x[12, j] }
        let duplicates = DuplicateRows(x)
        let truth = BlockedCosineSearch.nearest(x, k: 12, duplicates: duplicates, threads: 1).graph
        for threads in [1, 2, 3] {
            let search = LeadingComponentSearch.nearest(x, k: 12, duplicates: duplicates, threads: threads, seeds: nil)
            let found = try #require(search)
            expectSameLists(found.nearest.graph, truth, of: x, "\(threads) threads")
        }
    }

    /// Half the rows one and the same (a collapsed class), the rest run-like: every copy lists
    /// copies at distance 0, ties to the lower index, as brute force does.
    @Test func aCollapsedClassIsBruteForces() throws {
        var x = Self.decaying(n: 2_400, d: 48, seed: 21)
        for i in stride(from: 0, to: 2_400, by: 2) { for c in 0..<48 { x[i, c] = x[0, c] } }
        let duplicates = DuplicateRows(x)
        let truth = BlockedCosineSearch.nearest(x, k: 10, duplicates: duplicates, threads: 2).graph
        let search = LeadingComponentSearch.nearest(x, k: 10, duplicates: duplicates, threads: 2, seeds: nil)
        let found = try #require(search).nearest.graph
        expectSameLists(found, truth, of: x, "a collapsed class")
        let copies = stride(from: 0, to: 2_400, by: 2).allSatisfy { i in
            let listed = found.indices[i * 10..<(i + 1) * 10].map(Int.init)
            return listed == Array(stride(from: 0, to: 22, by: 2).filter { $0 != i }.prefix(10))
                && found.distances[i * 10..<(i + 1) * 10].allSatisfy { $0 == 0 }
        }
        #expect(copies, "each copy lists the first ten other copies at distance 0")
    }

    @Test func declinesWhatItCannotPrune() throws {
        var g = SplitMix(seed: 5)
        let noise = Matrix(rows: 2_000, columns: 128, storage: (0..<2_000 * 128).map { _ in Float(g.normal()) })
        let flat = LeadingComponentSearch.nearest(noise, k: 10, duplicates: DuplicateRows(noise), threads: 2, seeds: nil)
        #expect(flat == nil ? true : false, "isotropic noise: a flat spectrum")
        var zeroRow = Self.decaying(n: 2_000, d: 64, seed: 8)
        for c in 0..<64 { zeroRow[17, c] = 0 }
        let withZero = LeadingComponentSearch.nearest(zeroRow, k: 10, duplicates: DuplicateRows(zeroRow), threads: 2,
                                                      seeds: nil)
        #expect(withZero == nil ? true : false, "a zero row is at distance 1 from everything")
        var huge = Self.decaying(n: 2_000, d: 64, seed: 10)
        for c in 0..<64 { huge[3, c] = c % 2 == 0 ? 3e38 : -3e38 }
        let overflowing = LeadingComponentSearch.nearest(huge, k: 10, duplicates: DuplicateRows(huge), threads: 2,
                                                         seeds: nil)
        #expect(overflowing == nil ? true : false, "values near the float range overflow the projection")
        let small = Self.decaying(n: 300, d: 64, seed: 9)
        let tooFew = LeadingComponentSearch.nearest(small, k: 10, duplicates: DuplicateRows(small), threads: 2, seeds: nil)
        #expect(tooFew == nil ? true : false)
    }

    /// The outlier scores through the automatic search equal brute force's on run-like data.
    @Test func automaticSearchScoresEqualBruteForces() throws {
        let x = Self.decaying(n: 2_500, d: 128, seed: 12)
        let automatic = try OutlierScores(embeddings: x, threads: 2, graphNeighbours: 15)
        let bruteForce = try OutlierScores(embeddings: x, search: .bruteForce, graphNeighbours: 15)
        for i in 0..<x.rows { #expect(abs(automatic.scores[i] - bruteForce.scores[i]) < 1e-5) }
        #expect(automatic.mostAtypical(10).map(\.index) == bruteForce.mostAtypical(10).map(\.index))
        #expect(automatic.exactPairs < x.rows * (x.rows - 1) / 10)
    }
}

/// The kernels' AVX2 loops against their portable ones (CI machines may run either).
@Suite struct ComponentBoundKernelTests {
    @Test func vectorAndPortableKernelsAgree() {
        var g = SplitMix(seed: 77)
        let slots = 203, stride = slots + 8, d = 771
        let coordinates = (0..<16 * stride).map { _ in Float(g.normal()) * 0.3 }
        let low = (0..<stride).map { _ in Float(g.next() % 100) / 400 }
        let high = low.map { $0 + 0.01 }
        var fast = [Float](repeating: 0, count: slots + 8), portable = fast
        var worst: Float = 0
        for slot in [0, 17, 202] {
            cb_bounds(coordinates, Int64(stride), low, high, Int64(slot), 3, Int64(slots), &fast)
            cb_bounds_portable(coordinates, Int64(stride), low, high, Int64(slot), 3, Int64(slots), &portable)
            for t in 0..<(slots - 3) { worst = max(worst, abs(fast[t] - portable[t]) / max(portable[t], 1e-3)) }
            let median = portable[0..<(slots - 3)].sorted()[(slots - 3) / 2]
            var a = [Int32](repeating: 0, count: slots + 8), b = a
            var partialA = [Float](repeating: 0, count: slots + 8), partialB = partialA
            let found = cb_survivors(coordinates, Int64(stride), low, high, Int64(slot), 3, Int64(slots), median, &a,
                                     &partialA)
            let expected = cb_survivors_portable(coordinates, Int64(stride), low, high, Int64(slot), 3, Int64(slots),
                                                 median, &b, &partialB)
            for s in 0..<Int(min(found, expected)) where a[s] == b[s] {
                worst = max(worst, abs(partialA[s] - partialB[s]) / max(partialB[s], 1e-3))
                #expect(partialB[s] <= portable[Int(b[s]) - 3], "the partial sums leave the residual term out")
            }
            #expect(abs(Int(found) - Int(expected)) <= 1 && found > 50)
            #expect(a.prefix(Int(found)).allSatisfy { (3..<Int32(slots)).contains($0) })
        }
        #expect(worst < 1e-5)
        let x = (0..<2 * d).map { _ in Float(g.normal()) }
        let dot = Double(cb_dot(x, Array(x[d...]), Int64(d))), reference = Double(cb_dot_portable(x, Array(x[d...]), Int64(d)))
        let exact = (0..<d).reduce(0.0) { $0 + Double(x[$1]) * Double(x[d + $1]) }
        #expect(abs(dot - exact) < 1e-4 && abs(reference - exact) < 1e-4)
    }
}
