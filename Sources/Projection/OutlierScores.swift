#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import LinearAlgebra

/// k-nearest-neighbour outlier scores with the semantics of cleanlab's
/// `OutOfDistribution().fit_score(features=X)` (cleanlab 2.6 and later, default parameters).
///
/// - `k = min(10, N - 1)` nearest neighbours of each point, the point itself excluded.
/// - Cosine distance `1 - <x/|x|, y/|y|>` clipped to `[0, 2]` when `D > 3`, Euclidean otherwise.
/// - Rows that are exactly equal are at distance 0 from each other.
/// - `avg_i` is the mean of the k distances; the scaling factor is
///   `max(median(avg), 100 * eps(Double))`; the score is `exp(-avg_i / max(scale, 1e-6))`,
///   and 1 where `avg_i` is below `100 * epsneg(Double)`.
/// Lower scores are more atypical. Scores agree with cleanlab's to about 1e-5 relative.
public struct OutlierScores: Sendable {
    public let scores: [Float]
    public let averageDistances: [Float]
    public let scalingFactor: Double
    public let neighbours: Int
    public let metric: Metric
    /// Row-major `N x neighbours`: each point's nearest points, nearest first, in `metric`, on
    /// every search path. Seeds the next search, and is the graph the label-quality scores vote
    /// on (`LabelQuality`), so nothing searches twice. Among neighbours at exactly equal distance
    /// the order (and, at the k-th place, the choice) depends on the search path.
    public let neighbourIndices: [Int32]
    /// The search's lists with their distances: `neighbours` a sample, or more where the caller
    /// asked for a longer graph (`graphNeighbours`, for a UMAP or t-SNE layout). Empty for scores
    /// read from the analysis cache.
    public private(set) var graph: NeighbourGraph
    /// Pairs whose distance was computed exactly: all `N (N - 1) / 2` for brute force; for
    /// `D <= 3`, the distances the tree search computed (a pair may count from both ends).
    public let exactPairs: Int

    public enum Metric: String, Sendable { case cosine, euclidean }

    /// How the cosine neighbours are found.
    public enum Search: String, Sendable {
        /// Exact: pruned by the leading principal components where the data's variance sits in
        /// them (`LeadingComponentSearch`), else screened where the CPU has AVX-512 VNNI, else brute
        /// force.
        case automatic
        /// Exact: every pair through float32 GEMM blocks.
        case bruteForce
        /// Approximate neighbours from a cell search, with the `certify` most atypical points
        /// exact and proved to be the exact leaderboard (`CertifiedOutlierSearch`). Below a few
        /// thousand points, or with `D <= 3`, the search is exact instead.
        case approximate
    }

    /// Whether `search` runs approximately on `samples x dimension` embeddings: it is exact below
    /// a few thousand points, where a cell search saves little, and for `D <= 3` (Euclidean).
    public static func isApproximate(_ search: Search, samples: Int, dimension: Int) -> Bool {
        search == .approximate && samples >= CertifiedOutlierSearch.smallestSet && dimension > 3
    }

    /// What an approximate search proved and how far it is from exact; nil for an exact search.
    public let certificate: Certificate?

    public struct Certificate: Sendable, Equatable, Codable {
        /// The leaderboard's length that is proved exact: these points' scores rank exactly as
        /// exact scores would, and no other point ranks among them.
        public let certifiedTop: Int
        public let cells: Int
        /// Points computed exactly against all N to prove the top, and points whose cell search
        /// was widened first.
        public let exactCandidates: Int
        public let refined: Int
        /// Points spread over the set, computed exactly to measure the others' error.
        public let sample: Int
        /// Mean kNN distance found minus exact, over the sample (never negative).
        public let sampleDistanceErrorMedian: Double
        public let sampleDistanceErrorMax: Double
        /// |score - exact score| over the sample, both with the scaling factor used.
        public let sampleScoreErrorMedian: Double
        public let sampleScoreErrorMax: Double
        /// The scaling factor is the median of the means found times this: the sample's median
        /// exact mean over its median found mean. (The median of the means found alone would be
        /// too large by about the typical error.)
        public let scalingCorrection: Double

        enum CodingKeys: String, CodingKey {
            case certifiedTop = "certified_top", cells, exactCandidates = "exact_candidates", refined, sample
            case sampleDistanceErrorMedian = "sample_distance_error_median", sampleDistanceErrorMax = "sample_distance_error_max"
            case sampleScoreErrorMedian = "sample_score_error_median", sampleScoreErrorMax = "sample_score_error_max"
            case scalingCorrection = "scaling_correction"
        }

        public init(certifiedTop: Int, cells: Int, exactCandidates: Int, refined: Int, sample: Int,
                    sampleDistanceErrorMedian: Double, sampleDistanceErrorMax: Double,
                    sampleScoreErrorMedian: Double, sampleScoreErrorMax: Double, scalingCorrection: Double) {
            self.certifiedTop = certifiedTop
            self.cells = cells
            self.exactCandidates = exactCandidates
            self.refined = refined
            self.sample = sample
            self.sampleDistanceErrorMedian = sampleDistanceErrorMedian
            self.sampleDistanceErrorMax = sampleDistanceErrorMax
            self.sampleScoreErrorMedian = sampleScoreErrorMedian
            self.sampleScoreErrorMax = sampleScoreErrorMax
            self.scalingCorrection = scalingCorrection
        }

        /// The sample's median exact mean over its median found mean (1 without a sample).
        static func scalingCorrection(_ search: CertifiedOutlierSearch.Result) -> Double {
            let found = OutlierScores.median(search.sampleFoundMeans), exact = OutlierScores.median(search.sampleExactMeans)
            return found > 0 && exact > 0 ? min(exact / found, 1) : 1
        }

        init(_ search: CertifiedOutlierSearch.Result, scalingFactor: Double) {
            let found = search.sampleFoundMeans.map(Double.init), exact = search.sampleExactMeans.map(Double.init)
            let distanceErrors = zip(found, exact).map { max($0 - $1, 0) }.sorted()
            let divisor = max(scalingFactor, 1e-6)
            let scoreErrors = zip(found, exact).map { abs(exp(-$0 / divisor) - exp(-$1 / divisor)) }.sorted()
            func median(_ sorted: [Double]) -> Double {
                sorted.isEmpty ? 0 : sorted.count % 2 == 1 ? sorted[sorted.count / 2]
                    : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            }
            self.init(certifiedTop: search.certifiedTop, cells: search.cells, exactCandidates: search.candidates,
                      refined: search.refined, sample: found.count,
                      sampleDistanceErrorMedian: median(distanceErrors), sampleDistanceErrorMax: distanceErrors.last ?? 0,
                      sampleScoreErrorMedian: median(scoreErrors), sampleScoreErrorMax: scoreErrors.last ?? 0,
                      scalingCorrection: Self.scalingCorrection(search))
        }
    }

    /// - Parameters:
    ///   - threads: cores the search may use.
    ///   - seeds: a guess at the neighbours (`neighbourIndices` of the previous checkpoint); it only
    ///     saves work, the result is exact whatever it holds.
    ///   - certify: with `.approximate`, how many of the most atypical points must be exact.
    ///   - graphNeighbours: the neighbours a sample `graph` should list (at most N - 1); the scores
    ///     use the first 10 of them. An approximate search lists 10 whatever is asked.
    public init(embeddings x: Matrix, search: Search = .automatic, threads: Int = 1, seeds: [Int32]? = nil,
                certify: Int = 8, graphNeighbours: Int = 0) throws {
        let n = x.rows
        guard n >= 2, x.columns >= 1 else { throw ProjectionError.tooFewSamples(n, x.columns) }
        let k = min(10, n - 1)
        let metric: Metric = x.columns > 3 ? .cosine : .euclidean
        let duplicates = DuplicateRows(x, threads: threads)
        let approximateSearch = metric == .cosine && Self.isApproximate(search, samples: n, dimension: x.columns)
        // One search serves both: the first k of a longer exact list are the exact k nearest.
        let listed = approximateSearch ? k : max(k, min(graphNeighbours, n - 1))
        var nearest = NearestDistances(count: n, k: listed)
        var exactPairs = n * (n - 1) / 2
        var approximate: CertifiedOutlierSearch.Result?
        switch metric {
        case .cosine:
            if approximateSearch {
                let found = CertifiedOutlierSearch.nearest(x, k: k, certify: max(1, certify), duplicates: duplicates,
                                                           threads: threads)
                nearest = found.nearest
                exactPairs = found.exactPairs
                approximate = found
            } else if search != .bruteForce,
                      let pruned = LeadingComponentSearch.nearest(x, k: listed, duplicates: duplicates, threads: threads,
                                                                  seeds: seeds) {
                nearest = pruned.nearest
                exactPairs = pruned.exactPairs
            } else if search != .bruteForce, ScreenedCosineSearch.canSearch(x),
               let screened = ScreenedCosineSearch.nearest(x, k: listed, duplicates: duplicates, threads: threads,
                                                           seeds: seeds) {
                nearest = screened.nearest
                exactPairs = screened.exactPairs
            } else {
                nearest = BlockedCosineSearch.nearest(x, k: listed, duplicates: duplicates, threads: threads)
            }
        case .euclidean:
            if let found = LowDimensionalSearch.nearest(x, k: listed, duplicates: duplicates, threads: threads) {
                nearest = found.nearest
                exactPairs = found.distances
            } else {
                Self.euclideanNeighbours(x, duplicates: duplicates, into: &nearest)
            }
        }
        graph = nearest.graph
        let scored = graph.prefix(k)
        self.neighbourIndices = scored.indices
        self.exactPairs = exactPairs
        let average = NearestDistances(k: k, sortedDistances: scored.distances, indices: scored.indices).averages()
        let median = Self.median(average) * (approximate.map(Certificate.scalingCorrection) ?? 1)
        let scale = max(median, 100 * Double.ulpOfOne)
        self.scores = average.map { Self.score(averageDistance: $0, scalingFactor: scale) }
        self.averageDistances = average
        self.scalingFactor = scale
        self.neighbours = k
        self.metric = metric
        certificate = approximate.map { Certificate($0, scalingFactor: scale) }
    }

    /// cleanlab's score of a mean kNN distance, `exp(-distance / max(scale, 1e-6))`: 1 for a
    /// distance of (almost) nothing, towards 0 for the most atypical.
    public static func score(averageDistance distance: Float, scalingFactor scale: Double) -> Float {
        let tiny = 100 * (1 - 1.0.nextDown)  // 100 * numpy's epsneg for float64
        return Double(distance) < tiny ? 1 : Float(exp(-Double(distance) / max(scale, 1e-6)))
    }

    /// Scores computed before (the analysis cache): every field as the search left it, the graph
    /// with its distances (then `neighbourIndices` are its first `neighbours`) or without.
    public init(scores: [Float], averageDistances: [Float], scalingFactor: Double, neighbours: Int, metric: Metric,
                graph: NeighbourGraph, exactPairs: Int, certificate: Certificate? = nil) {
        self.init(scores: scores, averageDistances: averageDistances, scalingFactor: scalingFactor, neighbours: neighbours,
                  metric: metric, neighbourIndices: graph.prefix(neighbours).indices, exactPairs: exactPairs,
                  certificate: certificate)
        self.graph = graph
    }

    public init(scores: [Float], averageDistances: [Float], scalingFactor: Double, neighbours: Int, metric: Metric,
                neighbourIndices: [Int32], exactPairs: Int, certificate: Certificate? = nil) {
        self.certificate = certificate
        self.scores = scores
        self.averageDistances = averageDistances
        self.scalingFactor = scalingFactor
        self.neighbours = neighbours
        self.metric = metric
        self.neighbourIndices = neighbourIndices
        self.exactPairs = exactPairs
        graph = NeighbourGraph(count: 0, k: 0, indices: [], distances: [])
    }

    /// The `count` lowest scores, lowest first, ties going to the lower index.
    public func mostAtypical(_ count: Int) -> [RankedSample] {
        guard count > 0 else { return [] }
        guard count < 256 else {
            let order = scores.indices.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
            return order.prefix(count).map { RankedSample(index: $0, value: scores[$0]) }
        }
        // A leaderboard: one pass keeping the lowest so far in order, not a sort of a million scores.
        // Indices ascend, so a later equal score never displaces an earlier one.
        var lowest: [RankedSample] = []
        lowest.reserveCapacity(count + 1)
        for (index, score) in scores.enumerated() where lowest.count < count || score < lowest[lowest.count - 1].value {
            var slot = lowest.count
            while slot > 0 && score < lowest[slot - 1].value { slot -= 1 }
            lowest.insert(RankedSample(index: index, value: score), at: slot)
            if lowest.count > count { lowest.removeLast() }
        }
        return lowest
    }

    static func median(_ values: [Float]) -> Double {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? Double(sorted[mid]) : (Double(sorted[mid - 1]) + Double(sorted[mid])) / 2
    }

    /// Brute force, for rows with a value that is not finite (which runs reject before this).
    static func euclideanNeighbours(_ x: Matrix, duplicates: DuplicateRows, into nearest: inout NearestDistances) {
        let n = x.rows, d = x.columns
        x.storage.withUnsafeBufferPointer { p in
            for i in 0..<n {
                let a = p.baseAddress! + i * d
                let group = duplicates.group[i]
                for j in 0..<n where j != i {
                    if group >= 0 && duplicates.group[j] == group { nearest.offer(0, neighbour: j, for: i); continue }
                    let b = p.baseAddress! + j * d
                    var sum = 0.0
                    for c in 0..<d { let t = Double(a[c]) - Double(b[c]); sum += t * t }
                    nearest.offer(Float(sum.squareRoot()), neighbour: j, for: i)
                }
            }
        }
    }
}

/// The k smallest distances seen for each point, kept sorted ascending, and the points they
/// belong to (the label-quality scores vote on them). Offers are rare after the first few per
/// point (most fail the `worst` test first), so keeping the index costs the hot loop nothing.
/// Among equal distances the lower index wins, whatever the order of the offers: lists that
/// saw disjoint sets of pairs merge into the lists of all of them.
struct NearestDistances {
    let k: Int
    private var distances: [Float]
    /// Row-major `count x k`, beside `distances`; -1 until a slot is filled.
    private(set) var indices: [Int32]
    /// Each point's k-th smallest distance so far, contiguous so a search can test eight at once.
    private var worstDistances: [Float]

    init(count: Int, k: Int) {
        self.k = k
        distances = [Float](repeating: .infinity, count: count * k)
        indices = [Int32](repeating: -1, count: count * k)
        worstDistances = [Float](repeating: .infinity, count: count)
    }

    init(k: Int, sortedDistances: [Float], indices: [Int32]) {
        precondition(sortedDistances.count == indices.count)
        self.k = k
        distances = sortedDistances
        self.indices = indices
        worstDistances = stride(from: k - 1, to: sortedDistances.count, by: k).map { sortedDistances[$0] }
    }

    /// The k nearest of every point over all the lists' offers.
    init(merging lists: [NearestDistances]) {
        precondition(!lists.isEmpty)
        var merged = lists[0]
        for other in lists.dropFirst() {
            merged.withLists { target in
                for point in 0..<other.distances.count / other.k {
                    for slot in point * other.k..<(point + 1) * other.k where other.indices[slot] >= 0 {
                        target.offer(other.distances[slot], neighbour: Int(other.indices[slot]), for: point)
                    }
                }
            }
        }
        self = merged
    }

    /// The k-th smallest distance offered to `point` so far (infinity until k were offered).
    @inline(__always)
    func worst(_ point: Int) -> Float { worstDistances[point] }

    /// Keeps `neighbour` at `distance` if it is among the k nearest so far.
    mutating func offer(_ distance: Float, neighbour: Int, for point: Int) {
        withLists { _ = $0.offer(distance, neighbour: neighbour, for: point) }
    }

    /// The lists as raw pointers, for a search's hot loop.
    mutating func withLists<R>(_ body: (UnsafeNeighbourLists) throws -> R) rethrows -> R {
        let k = self.k
        return try distances.withUnsafeMutableBufferPointer { d in
            try indices.withUnsafeMutableBufferPointer { j in
                try worstDistances.withUnsafeMutableBufferPointer { w in
                    try body(UnsafeNeighbourLists(k: k, distances: d.baseAddress!, indices: j.baseAddress!,
                                                  worst: w.baseAddress!))
                }
            }
        }
    }

    func averages() -> [Float] { (0..<distances.count / k).map(average) }

    /// The lists as they stand, with their distances.
    var graph: NeighbourGraph { NeighbourGraph(count: distances.count / k, k: k, indices: indices, distances: distances) }

    /// The mean of one point's k distances (infinity while it has fewer than k).
    func average(_ point: Int) -> Float {
        var sum: Float = 0
        for j in 0..<k { sum += distances[point * k + j] }
        return sum / Float(k)
    }

    /// One point's (distance, neighbour) pairs, nearest first, filled slots only.
    func neighbours(of point: Int) -> [(Float, Int)] {
        (point * k..<(point + 1) * k).filter { indices[$0] >= 0 }.map { (distances[$0], Int(indices[$0])) }
    }

    /// Empties the lists of `points`, to be filled again.
    mutating func clear(_ points: [Int]) {
        for point in points {
            for slot in point * k..<(point + 1) * k {
                distances[slot] = .infinity
                indices[slot] = -1
            }
            worstDistances[point] = .infinity
        }
    }
}

/// `NearestDistances` while a search fills it: valid inside `withLists` only.
struct UnsafeNeighbourLists {
    let k: Int
    let distances: UnsafeMutablePointer<Float>
    let indices: UnsafeMutablePointer<Int32>
    let worst: UnsafeMutablePointer<Float>

    /// Keeps `neighbour` at `distance` if it is among the k nearest so far; returns whether it did.
    @inline(__always) @discardableResult
    func offer(_ distance: Float, neighbour: Int, for point: Int) -> Bool {
        let base = point * k
        let last = base + k - 1
        let index = Int32(truncatingIfNeeded: neighbour)
        guard distance < distances[last] || (distance == distances[last] && (indices[last] < 0 || index < indices[last]))
        else { return false }
        var slot = last
        while slot > base && (distances[slot - 1] > distance || (distances[slot - 1] == distance && indices[slot - 1] > index)) {
            distances[slot] = distances[slot - 1]
            indices[slot] = indices[slot - 1]
            slot -= 1
        }
        distances[slot] = distance
        indices[slot] = index
        worst[point] = distances[last]
        return true
    }
}

/// Groups of exactly equal rows: `group[i]` is the first index of row i's group, or -1 if unique.
struct DuplicateRows {
    let group: [Int]
    /// Whether any two rows are equal at all (usually not: then the per-pair check is skipped).
    let any: Bool

    init(_ x: Matrix, threads: Int = 1) {
        // Rows are hashed (in parallel), sorted by hash, and compared only within a run of equal
        // hashes: a few bytes a row instead of a copy of the matrix.
        let n = x.rows
        var hashes = [UInt64](repeating: 0, count: n)
        let workers = max(1, min(threads, n / 1024))
        let chunk = (n + workers - 1) / workers
        hashes.withUnsafeMutableBufferPointer { buffer in
            let out = SharedHashes(base: buffer.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for i in worker * chunk..<min(n, (worker + 1) * chunk) { out.base[i] = Self.hash(x.row(i)) }
            }
        }
        let order = (0..<n).sorted { hashes[$0] < hashes[$1] || (hashes[$0] == hashes[$1] && $0 < $1) }
        var group = [Int](repeating: -1, count: n)
        var start = 0
        while start < n {
            var end = start + 1
            while end < n && hashes[order[end]] == hashes[order[start]] { end += 1 }
            // Within a run indices ascend, so each group's owner is its lowest index.
            for a in start..<end where group[order[a]] == -1 {
                for b in (a + 1)..<end where group[order[b]] == -1 && x.row(order[a]).elementsEqual(x.row(order[b])) {
                    group[order[a]] = order[a]
                    group[order[b]] = order[a]
                }
            }
            start = end
        }
        self.group = group
        any = group.contains { $0 >= 0 }
    }

    private init(group: [Int]) {
        self.group = group
        any = group.contains { $0 >= 0 }
    }

    /// The groups of a subset of the rows, for a search among them alone (local indices).
    func restricted(to rows: [Int32]) -> DuplicateRows {
        DuplicateRows(group: any ? rows.map { group[Int($0)] } : [Int](repeating: -1, count: rows.count))
    }

    /// For the workers of one pass: each writes only its own rows' hashes.
    private struct SharedHashes: @unchecked Sendable { let base: UnsafeMutablePointer<UInt64> }

    /// A multiply-xor hash of the values' bits in four independent lanes (fast: it runs over
    /// every value of every checkpoint). +0 and -0 hash alike, as numpy finds them equal.
    static func hash(_ row: ArraySlice<Float>) -> UInt64 {
        row.withUnsafeBufferPointer { values in
            var lanes: (UInt64, UInt64, UInt64, UInt64) = (1, 2, 3, 4)
            let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
            @inline(__always) func bits(_ value: Float) -> UInt64 { value == 0 ? 0 : UInt64(value.bitPattern) }
            var c = 0
            while c + 4 <= values.count {
                lanes.0 = (lanes.0 ^ bits(values[c])) &* multiplier
                lanes.1 = (lanes.1 ^ bits(values[c + 1])) &* multiplier
                lanes.2 = (lanes.2 ^ bits(values[c + 2])) &* multiplier
                lanes.3 = (lanes.3 ^ bits(values[c + 3])) &* multiplier
                c += 4
            }
            while c < values.count { lanes.0 = (lanes.0 ^ bits(values[c])) &* multiplier; c += 1 }
            let h = lanes.0 ^ (lanes.1 >> 7) ^ (lanes.2 << 11) ^ (lanes.3 >> 23)
            return h ^ (h >> 29)
        }
    }
}
