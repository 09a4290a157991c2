import LinearAlgebra
import Testing
@testable import Projection

#if canImport(Glibc)
import Glibc
#endif

@Suite struct OutlierScoresTests {
    /// The definition, written the slow obvious way in double precision.
    func referenceAverages(_ x: Matrix, cosine: Bool) -> [Double] {
        let n = x.rows, k = min(10, n - 1)
        return (0..<n).map { i in
            var distances: [Double] = []
            for j in 0..<n where j != i {
                let a = x.row(i).map(Double.init), b = x.row(j).map(Double.init)
                if a == b { distances.append(0); continue }
                if cosine {
                    let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
                    let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot(), nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    distances.append(min(max(1 - dot / (na * nb), 0), 2))
                } else {
                    distances.append(zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot())
                }
            }
            return distances.sorted().prefix(k).reduce(0, +) / Double(k)
        }
    }

    func randomMatrix(n: Int, d: Int, seed: UInt64) -> Matrix {
        var g = SplitMix(seed: seed)
        return Matrix(rows: n, columns: d, storage: (0..<n * d).map { _ in Float(g.normal()) })
    }

    @Test(arguments: [(120, 16), (40, 3), (25, 2)])
    func matchesTheDefinition(n: Int, d: Int) throws {
        var x = randomMatrix(n: n, d: d, seed: UInt64(n * d))
        for j in 0..<d { x[5, j] = x[9, j] }  // an exact duplicate pair
        let scores = try OutlierScores(embeddings: x)
        #expect(scores.metric == (d > 3 ? .cosine : .euclidean))
        let expected = referenceAverages(x, cosine: d > 3)
        for i in 0..<n { #expect(abs(Double(scores.averageDistances[i]) - expected[i]) < 1e-5 * max(expected[i], 1e-2)) }
        let sorted = expected.sorted()
        let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        #expect(abs(scores.scalingFactor - median) < 1e-5 * median)
        for i in 0..<n { #expect(abs(Double(scores.scores[i]) - exp(-expected[i] / median)) < 1e-4) }
    }

    @Test func aFarPointRanksFirstAndTiesGoToTheLowerIndex() throws {
        var x = randomMatrix(n: 60, d: 8, seed: 4)
        for i in 0..<60 { for j in 0..<8 { x[i, j] = 1 + 0.1 * x[i, j] } }  // one tight bundle of directions
        for j in 0..<8 { x[33, j] = j % 2 == 0 ? -1 : 1 }  // and one sample pointing elsewhere
        let top = try OutlierScores(embeddings: x).mostAtypical(3)
        #expect(top[0].index == 33)
        var identical = Matrix(zeros: 12, 4)
        for i in 0..<12 { for j in 0..<4 { identical[i, j] = Float(j + 1) } }
        let tied = try OutlierScores(embeddings: identical).mostAtypical(12)
        #expect(tied.allSatisfy { $0.value == 1 }, "exact duplicates beyond k are at distance 0: score 1")
        #expect(tied.map(\.index) == Array(0..<12))
    }

    /// Clusters around a common direction (as real embeddings are), plus the awkward cases: a zero
    /// row, a group of exact duplicates, and a row pointing the opposite way.
    func structuredMatrix(n: Int, d: Int, seed: UInt64) -> Matrix {
        var g = SplitMix(seed: seed)
        let centres = (0..<5).map { _ in (0..<d).map { _ in Float(g.normal()) } }
        var x = Matrix(zeros: n, d)
        for i in 0..<n { for j in 0..<d { x[i, j] = 3 + centres[i % 5][j] + 0.4 * Float(g.normal()) } }
        if n > 20 {
            for j in 0..<d { x[3, j] = 0; x[7, j] = x[8, j]; x[n - 1, j] = x[8, j]; x[11, j] = -x[12, j] }
        }
        return x
    }

    @Test(.enabled(if: ScreenedCosineSearch.isSupported, "needs AVX-512 VNNI"),
          arguments: [(2, 5), (11, 7), (12, 4), (700, 33), (1100, 96)])
    func screenedSearchEqualsBruteForce(n: Int, d: Int) throws {
        let x = structuredMatrix(n: n, d: d, seed: UInt64(n + d))
        let bruteForce = try OutlierScores(embeddings: x, search: .bruteForce)
        let k = bruteForce.neighbours
        var g = SplitMix(seed: 9)
        let garbage = (0..<n * k).map { _ in Int32(Int(g.next() % UInt64(n + 3))) - 2 }  // -2...n: none, self, out of range
        let unseeded = try OutlierScores(embeddings: x, threads: 2)
        for seeds in [nil, garbage, unseeded.neighbourIndices] {
            let screened = try OutlierScores(embeddings: x, threads: 2, seeds: seeds)
            #expect(screened.neighbourIndices.count == n * k)
            for i in 0..<n {
                #expect(abs(screened.averageDistances[i] - bruteForce.averageDistances[i]) < 2e-6)
                // Each listed neighbour is a distinct other point at the listed distance.
                let listed = screened.neighbourIndices[i * k..<(i + 1) * k].map(Int.init)
                #expect(Set(listed).count == k && !listed.contains(i) && listed.allSatisfy { (0..<n).contains($0) })
            }
            // Brute force rounds its similarities to float32 on the way; the screen computes them in double.
            #expect(screened.mostAtypical(8).map(\.index) == bruteForce.mostAtypical(8).map(\.index))
            for i in 0..<n { #expect(abs(screened.scores[i] - bruteForce.scores[i]) < 5e-5) }
        }
        if n >= 700 {
            #expect(unseeded.exactPairs < n * (n - 1) / 4, "the screen rules out most pairs")
            let seeded = try OutlierScores(embeddings: x, threads: 2, seeds: unseeded.neighbourIndices)
            #expect(seeded.exactPairs <= unseeded.exactPairs)
        }
    }

    /// Seeding and screening on more threads than cores, for `make tsan`: workers seeded one
    /// shared screen's counters at once (issue 10). Results must not depend on the thread count.
    @Test(.enabled(if: ScreenedCosineSearch.isSupported, "needs AVX-512 VNNI"))
    func seededSearchOnManyThreadsEqualsBruteForce() throws {
        let n = 2_200, d = 24
        let x = structuredMatrix(n: n, d: d, seed: 17)
        let bruteForce = try OutlierScores(embeddings: x, search: .bruteForce)
        let first = try OutlierScores(embeddings: x, threads: 3)
        for threads in [1, 4, 7] {
            let seeded = try OutlierScores(embeddings: x, threads: threads, seeds: first.neighbourIndices)
            let validSeeds = n * bruteForce.neighbours
            #expect(seeded.exactPairs >= validSeeds, "every seed is computed exactly and counted")
            for i in 0..<n { #expect(abs(seeded.averageDistances[i] - bruteForce.averageDistances[i]) < 2e-6) }
            #expect(seeded.mostAtypical(8).map(\.index) == bruteForce.mostAtypical(8).map(\.index))
        }
    }

    /// The screened search's lists, longer ones for a layout included, are the same whatever the
    /// thread count, where many neighbours tie at exactly the same similarity: ties go to the lower
    /// index in each worker's screen and in the merge (a tie at the last place once went to the
    /// first pair to arrive, so a UMAP film differed from run to run).
    @Test(.enabled(if: ScreenedCosineSearch.isSupported, "needs AVX-512 VNNI"))
    func screenedListsWithTiesAreTheSameOnAnyThreads() throws {
        let n = 3_000, d = 16
        // Small integers: many pairs at exactly equal similarity.
        var generator = SplitMix(seed: 29)
        var x = Matrix(zeros: n, d)
        for i in 0..<n { for j in 0..<d { x[i, j] = Float(generator.next() % 3) + (j == i % d ? 4 : 0) } }
        let one = try OutlierScores(embeddings: x, threads: 1, graphNeighbours: 14)
        let tiedRows = (0..<n).filter { i in Set(one.graph.distances[i * 14..<(i + 1) * 14]).count < 14 }.count
        #expect(tiedRows > 100, "the data has ties to break")
        for threads in [2, 3, 2] {
            let same = try OutlierScores(embeddings: x, threads: threads, graphNeighbours: 14).graph == one.graph
            #expect(same, "\(threads) threads")
        }
    }

    /// One point's exact mean distance to its k nearest, in double precision.
    func exactAverage(_ x: Matrix, _ i: Int, k: Int) -> Double {
        let a = x.row(i).map(Double.init)
        let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
        var distances: [Double] = []
        for j in 0..<x.rows where j != i {
            let b = x.row(j).map(Double.init)
            if a == b { distances.append(0); continue }
            let nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            distances.append(na > 0 && nb > 0 ? min(max(1 - dot / (na * nb), 0), 2) : 1)
        }
        return distances.sorted().prefix(k).reduce(0, +) / Double(k)
    }

    /// Several blocks of 1024 on several workers: the blocked brute force is the definition, and
    /// the same bits whatever the thread count (ties go to the lower index in every list).
    @Test func bruteForceOverManyBlocksIsExactAndIndependentOfThreads() throws {
        let n = 2_600, d = 20
        let x = structuredMatrix(n: n, d: d, seed: 23)
        let one = try OutlierScores(embeddings: x, search: .bruteForce, threads: 1)
        for threads in [2, 3] {
            let many = try OutlierScores(embeddings: x, search: .bruteForce, threads: threads)
            #expect(many.neighbourIndices == one.neighbourIndices)
            #expect(many.averageDistances == one.averageDistances)
        }
        for i in stride(from: 0, to: n, by: 97) + [3, 7, 8, n - 1] {
            #expect(abs(Double(one.averageDistances[i]) - exactAverage(x, i, k: one.neighbours)) < 2e-6)
        }
    }

    /// The approximate search: every mean an upper bound on the exact one, the leaderboard the exact
    /// one and proved so, the sample's reported error no larger than the error there really is.
    @Test func approximateSearchProvesTheExactLeaderboard() throws {
        let n = 6_000, d = 24
        var x = structuredMatrix(n: n, d: d, seed: 31)
        var g = SplitMix(seed: 5)
        for i in [100, 2_000, 4_321] { for j in 0..<d { x[i, j] = Float(g.normal()) * 4 } }  // far from the clusters
        let exact = try OutlierScores(embeddings: x, search: .bruteForce, threads: 2)
        let approximate = try OutlierScores(embeddings: x, search: .approximate, threads: 2, certify: 8)
        let certificate = try #require(approximate.certificate)
        #expect(exact.certificate == nil)
        #expect(certificate.certifiedTop == 8)
        #expect(certificate.cells > 1 && certificate.sample == 256)
        #expect(approximate.mostAtypical(8).map(\.index) == exact.mostAtypical(8).map(\.index))
        var largestError: Float = 0
        for i in 0..<n {
            #expect(approximate.averageDistances[i] >= exact.averageDistances[i] - 1e-5, "point \(i)")
            largestError = max(largestError, approximate.averageDistances[i] - exact.averageDistances[i])
            let listed = approximate.neighbourIndices[i * 10..<(i + 1) * 10].map(Int.init)
            #expect(Set(listed).count == 10 && !listed.contains(i) && listed.allSatisfy { (0..<n).contains($0) })
        }
        for entry in exact.mostAtypical(8) {
            #expect(abs(approximate.averageDistances[entry.index] - exact.averageDistances[entry.index]) < 1e-5)
        }
        #expect(largestError > 0, "a cell search misses some neighbours on this set")
        #expect(certificate.sampleDistanceErrorMedian >= 0)
        #expect(certificate.sampleDistanceErrorMax <= Double(largestError) + 1e-5)
        #expect(certificate.sampleScoreErrorMax >= certificate.sampleScoreErrorMedian)
    }

    /// Thousands of identical rows tie every bound at the line: the search still ends, within its
    /// budget of exact points, and proves what it can.
    @Test func approximateSearchEndsOnIdenticalRows() throws {
        let n = 5_000, d = 8
        var x = Matrix(zeros: n, d)
        for i in 0..<n { for j in 0..<d { x[i, j] = Float(j + 1) } }
        for (i, far) in [(17, 1), (900, 3), (4_000, 5)] { for j in 0..<d { x[i, j] = j == far ? 10 : -1 } }
        let approximate = try OutlierScores(embeddings: x, search: .approximate, threads: 2, certify: 8)
        let certificate = try #require(approximate.certificate)
        #expect(certificate.exactCandidates <= 2_048 + 256)
        #expect(Set(approximate.mostAtypical(3).map(\.index)) == [17, 900, 4_000])
        #expect(certificate.certifiedTop >= 3)
    }

    /// In one to three dimensions the k-d tree gives brute force's lists bit for bit, on the
    /// awkward cases of a tree: a lattice (ties at every distance, to be broken by the lower
    /// index), groups of equal rows of every size, a line (one coordinate constant), and clusters.
    @Test(arguments: [(1, 700), (2, 2_600), (3, 1_800)])
    func treeSearchEqualsBruteForceTieForTie(d: Int, n: Int) throws {
        var g = SplitMix(seed: UInt64(d * 1_000 + n))
        var x = Matrix(zeros: n, d)
        for i in 0..<n {
            for j in 0..<d {
                x[i, j] = switch i % 4 {
                case 0: Float(Int(g.next() % 9)) - 4  // a lattice: many rows repeat, every distance ties
                case 1: j == 0 ? Float(g.normal()) : 0.5  // a line
                case 2: Float(i % 3) * 20 + Float(g.normal()) * 0.1  // tight clusters
                default: Float(g.normal()) * 5
                }
            }
        }
        for j in 0..<d { x[n - 1, j] = 1e4 }  // one far point
        let duplicates = DuplicateRows(x)
        #expect(duplicates.any)
        let k = 10
        var bruteForce = NearestDistances(count: n, k: k)
        OutlierScores.euclideanNeighbours(x, duplicates: duplicates, into: &bruteForce)
        for threads in [1, 3] {
            let tree = try #require(LowDimensionalSearch.nearest(x, k: k, duplicates: duplicates, threads: threads))
            #expect(tree.nearest.indices == bruteForce.indices)
            for i in 0..<n {
                #expect(tree.nearest.neighbours(of: i).map(\.0) == bruteForce.neighbours(of: i).map(\.0))
            }
            #expect(tree.distances < n * (n - 1) / 2)
        }
    }

    /// 60,000 rows of which 50,000 are equal: a tree that visited every equal row for every one
    /// would compute 2.5 x 10^9 distances; this one computes a few per row.
    @Test func treeSearchOfManyEqualRowsEnds() throws {
        let n = 60_000
        var x = Matrix(zeros: n, 2)
        var g = SplitMix(seed: 9)
        for i in 50_000..<n { x[i, 0] = Float(g.normal()); x[i, 1] = Float(g.normal()) }
        let scores = try OutlierScores(embeddings: x, threads: 2)
        #expect(scores.metric == .euclidean)
        #expect(scores.exactPairs < 100 * n)
        // The equal rows' neighbours are the lowest-indexed others of them, at distance 0.
        #expect(Array(scores.neighbourIndices[0..<10]) == (1...10).map(Int32.init))
        #expect(Array(scores.neighbourIndices[10 * 7..<10 * 8]) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10])
        #expect(scores.averageDistances[0] == 0)
    }

    /// The leaderboard pass equals a stable sort of all scores, ties (many here) to the lower index.
    @Test(arguments: [0, 1, 8, 32, 300])
    func mostAtypicalIsTheStableSortsHead(count: Int) {
        var g = SplitMix(seed: UInt64(count + 1))
        let scores = (0..<5_000).map { _ in Float(g.next() % 50) / 50 }
        let outliers = OutlierScores(scores: scores, averageDistances: scores, scalingFactor: 1, neighbours: 1, metric: .cosine,
                                     neighbourIndices: [], exactPairs: 0)
        let sorted = scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }
        #expect(outliers.mostAtypical(count).map(\.index) == Array(sorted.prefix(count)))
    }
}
