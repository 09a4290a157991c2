import LinearAlgebra
import Testing
@testable import Projection

#if canImport(Glibc)
import Glibc
#endif

@Suite struct LabelQualityTests {
    /// Each row's neighbours by the definition, the slow obvious way in double precision: cosine
    /// distance (clipped to [0, 2], exact rows at 0), sorted, the row itself left out.
    func referenceNeighbours(_ x: Matrix, k: Int) -> [[(index: Int, distance: Double)]] {
        (0..<x.rows).map { i in
            let a = x.row(i).map(Double.init)
            var found: [(index: Int, distance: Double)] = []
            for j in 0..<x.rows where j != i {
                let b = x.row(j).map(Double.init)
                if a == b { found.append((j, 0)); continue }
                let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
                let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot(), nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let similarity = na > 0 && nb > 0 ? dot / (na * nb) : 0
                found.append((j, min(max(1 - similarity, 0), 2)))
            }
            return Array(found.sorted { $0.distance < $1.distance || ($0.distance == $1.distance && $0.index < $1.index) }.prefix(k))
        }
    }

    /// Agreement and margin by the definition, from a neighbour list.
    func referenceVotes(_ neighbours: [Int], label: Int, labels: [Int], k: Int) -> (agreement: Float, margin: Float) {
        var votes: [Int: Int] = [:]
        for j in neighbours { votes[labels[j], default: 0] += 1 }
        let own = votes[label] ?? 0
        let other = votes.filter { $0.key != label }.values.max() ?? 0
        return (Float(own) / Float(k), Float(own - other) / Float(k))
    }

    func randomMatrix(n: Int, d: Int, seed: UInt64, classes: Int = 0, spread: Float = 1) -> Matrix {
        var g = SplitMix(seed: seed)
        let centres = (0..<max(classes, 1)).map { _ in (0..<d).map { _ in Float(g.normal()) } }
        var x = Matrix(zeros: n, d)
        for i in 0..<n { for j in 0..<d { x[i, j] = (classes > 0 ? centres[i % classes][j] : 0) + spread * Float(g.normal()) } }
        return x
    }

    /// On continuous random data (no distance ties), every vote equals the definition's, on both
    /// metrics of the outlier scorer: D <= 3 must still vote on cosine neighbours.
    @Test(arguments: [(150, 12), (90, 3), (60, 2), (11, 5), (5, 4)])
    func votesEqualTheDefinition(n: Int, d: Int) throws {
        let x = randomMatrix(n: n, d: d, seed: UInt64(7 * n + d), classes: 3, spread: 0.8)
        var g = SplitMix(seed: UInt64(n))
        let labels = (0..<n).map { i in g.next() % 5 == 0 ? Int(g.next() % 3) : i % 3 }  // a fifth relabelled
        let outliers = try OutlierScores(embeddings: x, search: .bruteForce)
        let k = outliers.neighbours
        let quality = try #require(LabelQuality(embeddings: x, outliers: outliers, labels: labels))
        #expect(quality.neighbours == min(10, n - 1))
        let reference = referenceNeighbours(x, k: min(k + 1, n - 1))
        var compared = 0
        for i in 0..<n {
            // Neighbours closer than float32 can tell apart may swap across the k-th place.
            if k < n - 1 { guard reference[i][k].distance - reference[i][k - 1].distance > 1e-5 else { continue } }
            compared += 1
            let expected = referenceVotes(reference[i].prefix(k).map(\.index), label: labels[i], labels: labels, k: k)
            #expect(quality.agreement[i] == expected.agreement, "sample \(i)")
            #expect(quality.margin[i] == expected.margin, "sample \(i)")
            #expect(Int(quality.ownVotes[i]) == Int((expected.agreement * Float(k)).rounded()))
        }
        #expect(compared >= n * 9 / 10)
        if d <= 3 {
            // The outlier graph is Euclidean there: had it been reused, the votes would differ.
            let cosine = LabelQuality.cosineNeighbourIndices(x, k: k)
            #expect(cosine != outliers.neighbourIndices)
        }
    }

    /// The screened search's graph (AVX-512 VNNI) votes as the definition does, seeded or not.
    @Test(.enabled(if: ScreenedCosineSearch.isSupported, "needs AVX-512 VNNI"), arguments: [(400, 24), (1100, 40)])
    func screenedSearchVotesEqualTheDefinition(n: Int, d: Int) throws {
        var x = randomMatrix(n: n, d: d, seed: UInt64(n + d), classes: 4, spread: 0.9)
        for j in 0..<d { x[1, j] = x[2, j]; x[3, j] = 0 }  // a duplicate pair and a zero row
        let labels = (0..<n).map { ($0 * 7 + $0 / 5) % 4 }
        let screened = try OutlierScores(embeddings: x, threads: 2)
        let seeded = try OutlierScores(embeddings: x, threads: 2, seeds: screened.neighbourIndices)
        let k = screened.neighbours
        let reference = referenceNeighbours(x, k: k + 1)
        for scores in [screened, seeded] {
            let quality = try #require(LabelQuality(embeddings: x, outliers: scores, labels: labels))
            var compared = 0
            for i in 0..<n where reference[i][k].distance - reference[i][k - 1].distance > 1e-5 {
                let expected = referenceVotes(reference[i].prefix(k).map(\.index), label: labels[i], labels: labels, k: k)
                #expect(quality.agreement[i] == expected.agreement && quality.margin[i] == expected.margin, "sample \(i)")
                compared += 1
            }
            #expect(compared >= n * 9 / 10)
        }
    }

    /// The outlier scorer now lists its neighbours on every path: distinct other points, nearest
    /// first, whose distances average to its `averageDistances`.
    @Test(arguments: [(120, 16), (40, 3), (25, 2), (2, 6)])
    func theOutlierGraphIsFilledOnEveryPath(n: Int, d: Int) throws {
        var x = randomMatrix(n: n, d: d, seed: UInt64(n + 3 * d))
        if n > 10 { for j in 0..<d { x[5, j] = x[9, j] } }  // an exact duplicate pair
        let scores = try OutlierScores(embeddings: x, search: .bruteForce)
        let k = scores.neighbours
        #expect(scores.neighbourIndices.count == n * k)
        func distance(_ i: Int, _ j: Int) -> Double {
            let a = x.row(i).map(Double.init), b = x.row(j).map(Double.init)
            if a == b { return 0 }
            if scores.metric == .euclidean { return zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            return 1 - dot / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
        }
        for i in 0..<n {
            let listed = scores.neighbourIndices[i * k..<(i + 1) * k].map(Int.init)
            #expect(Set(listed).count == k && !listed.contains(i) && listed.allSatisfy { (0..<n).contains($0) })
            let distances = listed.map { distance(i, $0) }
            #expect(zip(distances, distances.dropFirst()).allSatisfy { $0 <= $1 + 1e-6 }, "nearest first")
            let mean = distances.reduce(0, +) / Double(k)
            #expect(abs(mean - Double(scores.averageDistances[i])) < 1e-5 * max(mean, 1e-2))
        }
        if n > 10 {
            #expect(scores.neighbourIndices[5 * k] == 9 && scores.neighbourIndices[9 * k] == 5, "duplicates are nearest")
        }
    }

    /// Two tight bundles of directions, labels 0 and 1, one sample of bundle 0 labelled 1.
    @Test func aMislabelledSampleInATightClusterIsOutvoted() throws {
        var g = SplitMix(seed: 3)
        var x = Matrix(zeros: 30, 6)
        for i in 0..<30 {
            for j in 0..<6 { x[i, j] = (i < 15 ? (j == 0 ? 5 : 0) : (j == 1 ? 5 : 0)) + 0.1 * Float(g.normal()) }
        }
        var labels = (0..<30).map { $0 < 15 ? 0 : 1 }
        labels[4] = 1
        let quality = try #require(LabelQuality(embeddings: x, outliers: try OutlierScores(embeddings: x), labels: labels))
        #expect(quality.agreement[4] == 0 && quality.margin[4] == -1 && quality.majorityLabels[4] == 0)
        // Its bundle's other 14 samples: 10 neighbours among 13 label-0 and 1 label-1 samples.
        for i in 0..<15 where i != 4 {
            #expect(quality.agreement[i] >= 0.9 && quality.margin[i] >= 0.8 && quality.majorityLabels[i] == 0)
        }
        for i in 15..<30 { #expect(quality.agreement[i] == 1 && quality.margin[i] == 1 && quality.majorityLabels[i] == 1) }
    }

    /// Votes on a hand-made graph: a tie between two other labels, a tie with its own label (margin
    /// 0, majority to the nearest's label), missing slots, and labels outside any class range.
    @Test func tiesAndOddLabelsOnAGivenGraph() throws {
        let labels = [0, 1, 1, 2, 2, -7, 100_000]
        let k = 4
        let graph: [Int32] = [1, 3, 2, 4,      // 0: two 1s, two 2s: own 0, margin -2/4, majority 1 (nearest)
                              3, 2, 4, 0,      // 1: own 1, 2s twice: margin 1-2 = -1/4, majority 2
                              1, 3, 4, 5,      // 2: own 1 once, 2s twice: margin -1/4, majority 2 (more votes)
                              4, 1, 2, 6,      // 3: own 2 once, 1 twice: margin -1/4, majority 1
                              3, 1, -1, 99,    // 4: own 2 once, 1 once, two empty slots: margin 0, majority 2 (nearest)
                              6, 6, 4, 0,      // 5: label -7 (no one else has it), 100000 twice: margin -2/4
                              5, 5, 5, 5]      // 6: graph pointing at 5 only: majority -7
        let quality = try #require(LabelQuality(neighbourIndices: graph, k: k, labels: labels))
        #expect(quality.agreement == [0, 0.25, 0.25, 0.25, 0.25, 0, 0])
        #expect(quality.margin == [-0.5, -0.25, -0.25, -0.25, 0, -0.5, -1])
        #expect(quality.majorityLabels == [1, 2, 2, 1, 2, 100_000, -7])
        #expect(quality.marginVotes == [-2, -1, -1, -1, 0, -2, -4])
    }

    @Test func twoSamples() throws {
        let x = Matrix(rows: 2, columns: 5, storage: [1, 2, 3, 4, 5, 5, 4, 3, 2, 1])
        let outliers = try OutlierScores(embeddings: x)
        #expect(outliers.neighbourIndices == [1, 0])
        let same = try #require(LabelQuality(embeddings: x, outliers: outliers, labels: [3, 3]))
        #expect(same.agreement == [1, 1] && same.margin == [1, 1] && same.neighbours == 1)
        let different = try #require(LabelQuality(embeddings: x, outliers: outliers, labels: [0, 1]))
        #expect(different.agreement == [0, 0] && different.margin == [-1, -1] && different.majorityLabels == [1, 0])
        // And on D <= 3, where the cosine search runs apart.
        let small = Matrix(rows: 2, columns: 2, storage: [1, 0, 0, 1])
        let planar = try #require(LabelQuality(embeddings: small, outliers: try OutlierScores(embeddings: small), labels: [0, 1]))
        #expect(planar.margin == [-1, -1])
    }

    /// Exact duplicates are at distance 0 whatever their norm, and a zero row at distance 1 from
    /// everything but other zero rows (scikit-learn's convention).
    @Test(arguments: [8, 2])
    func duplicateAndZeroRows(d: Int) throws {
        var g = SplitMix(seed: UInt64(d))
        var x = Matrix(zeros: 40, d)
        for i in 0..<40 { for j in 0..<d { x[i, j] = Float(g.normal()) + (j == 0 ? 4 : 0) } }
        for i in 1..<12 { for j in 0..<d { x[i, j] = x[0, j] } }  // rows 0...11 equal
        for j in 0..<d { x[39, j] = 0; x[38, j] = 0 }
        var labels = [Int](repeating: 0, count: 40)
        labels[11] = 1
        labels[39] = 2
        let quality = try #require(LabelQuality(embeddings: x, outliers: try OutlierScores(embeddings: x), labels: labels))
        #expect(quality.agreement[11] == 0 && quality.margin[11] == -1, "ten equal rows of another label are nearest")
        for i in 0..<11 { #expect(quality.agreement[i] >= 0.9) }
        #expect(quality.majorityLabels[39] == 0 && quality.agreement[39] == 0)
        let outliers = try OutlierScores(embeddings: x)
        let graph = d > 3 ? outliers.neighbourIndices : LabelQuality.cosineNeighbourIndices(x, k: 10)
        #expect(graph[39 * 10] == 38, "the other zero row first")
        #expect(graph[0..<10].allSatisfy { (1..<12).contains($0) }, "equal rows first")
    }

    @Test func labelsOfTheWrongCountAreRefused() throws {
        let x = randomMatrix(n: 20, d: 5, seed: 1)
        let outliers = try OutlierScores(embeddings: x)
        #expect(LabelQuality(embeddings: x, outliers: outliers, labels: Array(repeating: 0, count: 19)) == nil)
        #expect(LabelQuality(embeddings: x, outliers: outliers, labels: []) == nil)
        #expect(LabelQuality(neighbourIndices: [0, 1], k: 0, labels: []) == nil)
        #expect(LabelQuality(neighbourIndices: [1], k: 1, labels: [0, 0]) == nil)
        let one = try #require(LabelQuality(embeddings: x, outliers: outliers, labels: Array(repeating: 4, count: 20)))
        #expect(one.agreement.allSatisfy { $0 == 1 } && one.margin.allSatisfy { $0 == 1 }, "one class: full agreement")
    }

    /// Dynamics from hand-made margins at k = 2 (votes -2...2): own wins at steps where the margin is positive.
    @Test func dynamicsFromAKnownSequence() throws {
        let labels = [0, 1, 2]
        // Per checkpoint: (own votes, margin votes) of the three samples; k = 2.
        let sequence: [[(UInt8, Int8)]] = [
            [(2, 2), (0, -2), (1, 0)],
            [(0, -2), (1, 0), (2, 2)],
            [(2, 2), (2, 2), (1, 0)],
            [(1, 1), (2, 2), (2, 2)],
            [(2, 2), (0, -2), (2, 2)],
        ]
        var accumulator = TrainingDynamicsAccumulator(labels: labels)
        #expect(accumulator.dynamics == nil)
        for (c, votes) in sequence.enumerated() {
            // A graph realising the votes with k = 2 over these labels is awkward: votes go in directly.
            let quality = LabelQuality(votes: votes, k: 2)
            let added = accumulator.add(step: 10 * (c + 1), quality: quality, outlierScores: [Float(c), 1, 2])
            #expect(added)
        }
        let dynamics = try #require(accumulator.dynamics)
        #expect(dynamics.steps == [10, 20, 30, 40, 50])
        func ratio(_ a: Int, _ b: Int) -> Float { Float(Double(a) / Double(b)) }
        #expect(dynamics.knnAUM == [ratio(5, 10), 0, ratio(6, 10)])
        // Last ceil(5 / 2) = 3 checkpoints.
        #expect(dynamics.knnAUMLastHalf == [ratio(5, 6), ratio(2, 6), ratio(4, 6)])
        #expect(dynamics.meanAgreement == [ratio(7, 10), ratio(5, 10), ratio(8, 10)])
        func std(_ a: [Double]) -> Float {
            let mean = a.reduce(0, +) / Double(a.count)
            return Float((a.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(a.count)).squareRoot())
        }
        #expect(abs(dynamics.variability[0] - std([1, 0, 1, 0.5, 1])) < 1e-7)
        #expect(abs(dynamics.variability[1] - std([0, 0.5, 1, 1, 0])) < 1e-7)
        // 0: wins, loses, wins, wins, wins -> one forgetting, stable from 30.
        // 1: never wins until 30, wins at 40, loses at 50 -> one forgetting, not stable.
        // 2: tie (no win) at 10, wins at 20, tie at 30 (forgotten), wins at 40 and 50 -> stable from 40.
        #expect(dynamics.forgettingEvents == [1, 1, 1])
        #expect(dynamics.stableFromStep == [30, nil, 40])
        #expect(dynamics.finalOutlierScores == [4, 1, 2])
        #expect(dynamics.region(0) == .ambiguous && dynamics.region(2) == .ambiguous)
        let lines = dynamics.csv().split(separator: "\n")
        #expect(lines.first == "index,label,knn_aum,knn_aum_last_half,mean_agreement,variability,forgetting_events,stable_from_step,final_outlier_score")
        #expect(lines.count == 4)
        #expect(lines[2].hasPrefix("1,1,0.0,") && lines[2].contains(",1,,1.0"))
        // A checkpoint of another size or k is refused, and changes nothing.
        let fewer = accumulator.add(step: 60, quality: LabelQuality(votes: [(1, 1), (1, 1)], k: 2), outlierScores: [0, 0])
        let otherK = accumulator.add(step: 60, quality: LabelQuality(votes: [(1, 1), (1, 1), (1, 1)], k: 3),
                                     outlierScores: [0, 0, 0])
        #expect(!fewer && !otherK)
        #expect(accumulator.dynamics?.steps.count == 5)
    }

    @Test func oneCheckpointIsItsOwnLastHalf() throws {
        var accumulator = TrainingDynamicsAccumulator(labels: [0, 0])
        accumulator.add(step: 0, quality: LabelQuality(votes: [(1, 1), (0, -1)], k: 1), outlierScores: [1, 1])
        let dynamics = try #require(accumulator.dynamics)
        #expect(dynamics.knnAUM == [1, -1] && dynamics.knnAUMLastHalf == [1, -1])
        #expect(dynamics.variability == [0, 0] && dynamics.forgettingEvents == [0, 0])
        #expect(dynamics.stableFromStep == [0, nil])
    }

    @Test func moversAreRelativeToTheirNeighbourhood() throws {
        #expect(MoverScores(zeros: 3).values == [0, 0, 0])
        let before = PlanarPoints(x: [0, 1, 2, 3], y: [0, 0, 0, 0])
        // Everyone shifts by (0.5, 0); sample 3 by (0.5, 2) more.
        let after = PlanarPoints(x: [0.5, 1.5, 2.5, 3.5], y: [0, 0, 0, 2])
        let graph: [Int32] = [1, 2, 0, 2, 1, 0, 2, 1]  // k = 2: 0 -> (1, 2), 1 -> (0, 2), 2 -> (1, 0), 3 -> (2, 1)
        let movers = try #require(MoverScores(previous: before, current: after, neighbourIndices: graph, k: 2,
                                              previousMajority: [0, 0, 1, 1], majority: [0, 1, 1, 1]))
        #expect(movers.relativeDisplacement[0] == 0 && movers.relativeDisplacement[2] == 0)
        #expect(movers.relativeDisplacement[3] == 2)
        #expect(movers.majorityChanged == [false, true, false, false])
        #expect(movers.values == [0, 1, 0, 2])
        let unlabelled = try #require(MoverScores(previous: before, current: after, neighbourIndices: graph, k: 2,
                                                  previousMajority: nil, majority: nil))
        #expect(unlabelled.values == [0, 0, 0, 2])
        #expect(MoverScores(previous: before, current: PlanarPoints(x: [0], y: [0]), neighbourIndices: [0], k: 1,
                            previousMajority: nil, majority: nil) == nil)
    }
}

extension LabelQuality {
    /// A checkpoint's votes given directly: (own votes, margin votes) per sample.
    init(votes: [(UInt8, Int8)], k: Int) {
        self.init(neighbours: k, ownVotes: votes.map(\.0), marginVotes: votes.map(\.1))
    }
}
