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
    /// Pairs whose distance was computed exactly: all `N (N - 1) / 2` for brute force.
    public let exactPairs: Int

    public enum Metric: String, Sendable { case cosine, euclidean }

    /// How the cosine neighbours are found; both are exact.
    public enum Search: String, Sendable {
        /// Screened where the CPU has AVX-512 VNNI, brute force elsewhere.
        case automatic
        /// Every pair through float32 GEMM blocks.
        case bruteForce
    }

    public struct Ranked: Sendable, Equatable {
        public let index: Int
        public let score: Float
    }

    /// - Parameters:
    ///   - threads: cores the screened search may use (brute force follows OpenBLAS's setting).
    ///   - seeds: a guess at the neighbours (`neighbourIndices` of the previous checkpoint); it only
    ///     saves work, the result is exact whatever it holds.
    public init(embeddings x: Matrix, search: Search = .automatic, threads: Int = 1, seeds: [Int32]? = nil) throws {
        let n = x.rows
        guard n >= 2, x.columns >= 1 else { throw ProjectionError.tooFewSamples(n, x.columns) }
        let k = min(10, n - 1)
        let metric: Metric = x.columns > 3 ? .cosine : .euclidean
        let duplicates = DuplicateRows(x, threads: threads)
        var nearest = NearestDistances(count: n, k: k)
        var exactPairs = n * (n - 1) / 2
        switch metric {
        case .cosine:
            if search == .automatic, ScreenedCosineSearch.canSearch(x),
               let screened = ScreenedCosineSearch.nearest(x, k: k, duplicates: duplicates, threads: threads,
                                                           seeds: seeds) {
                nearest = screened.nearest
                exactPairs = screened.exactPairs
            } else {
                Self.cosineNeighbours(x, duplicates: duplicates, into: &nearest)
            }
        case .euclidean: Self.euclideanNeighbours(x, duplicates: duplicates, into: &nearest)
        }
        self.neighbourIndices = nearest.indices
        self.exactPairs = exactPairs
        let average = nearest.averages()
        let median = Self.median(average)
        let scale = max(median, 100 * Double.ulpOfOne)
        let divisor = max(scale, 1e-6)
        let tiny = 100 * (1 - 1.0.nextDown)  // 100 * numpy's epsneg for float64
        self.scores = average.map { Double($0) < tiny ? 1 : Float(exp(-Double($0) / divisor)) }
        self.averageDistances = average
        self.scalingFactor = scale
        self.neighbours = k
        self.metric = metric
    }

    /// Scores computed before (the analysis cache): every field as the search left it.
    public init(scores: [Float], averageDistances: [Float], scalingFactor: Double, neighbours: Int, metric: Metric,
                neighbourIndices: [Int32], exactPairs: Int) {
        self.scores = scores
        self.averageDistances = averageDistances
        self.scalingFactor = scalingFactor
        self.neighbours = neighbours
        self.metric = metric
        self.neighbourIndices = neighbourIndices
        self.exactPairs = exactPairs
    }

    /// The `count` lowest scores, ties going to the lower index (a stable sort).
    public func mostAtypical(_ count: Int) -> [Ranked] {
        let order = scores.indices.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        return order.prefix(count).map { Ranked(index: $0, score: scores[$0]) }
    }

    static func median(_ values: [Float]) -> Double {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? Double(sorted[mid]) : (Double(sorted[mid - 1]) + Double(sorted[mid])) / 2
    }

    /// Exact search through blocks of GEMM on unit-normalised rows. Cosine similarity is
    /// symmetric, so only blocks on and above the diagonal are computed (about half the work of
    /// the full `N x N` product), and each similarity is offered to both of its points.
    static func cosineNeighbours(_ x: Matrix, duplicates: DuplicateRows, into nearest: inout NearestDistances) {
        let n = x.rows, d = x.columns
        var unit = x
        unit.storage.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                let row = p.baseAddress! + i * d
                var sum: Float = 0
                for j in 0..<d { sum += row[j] * row[j] }
                let norm = sum.squareRoot()
                if norm > 0 { for j in 0..<d { row[j] /= norm } }
            }
        }
        // Blocks of up to 1024 x 1024 similarities (4 MB): large enough for an efficient GEMM,
        // small enough that memory stays linear in N.
        let block = min(1024, n)
        var similarity = [Float](repeating: 0, count: block * block)
        let groups = duplicates.group
        let anyDuplicates = duplicates.any
        unit.storage.withUnsafeBufferPointer { pu in
            similarity.withUnsafeMutableBufferPointer { ps in
                let sims = ps.baseAddress!
                for rowStart in stride(from: 0, to: n, by: block) {
                    let rows = min(block, n - rowStart)
                    for columnStart in stride(from: rowStart, to: n, by: block) {
                        let columns = min(block, n - columnStart)
                        BLAS.gemm(transposeB: true, m: rows, n: columns, k: d, a: pu.baseAddress! + rowStart * d, lda: d,
                                  b: pu.baseAddress! + columnStart * d, ldb: d, c: sims, ldc: columns)
                        for r in 0..<rows {
                            let i = rowStart + r
                            let line = sims + r * columns
                            // On the diagonal block, pairs (i, j) with j > i only; each pair once.
                            let first = columnStart == rowStart ? r + 1 : 0
                            for c in first..<columns {
                                let j = columnStart + c
                                var distance = min(max(1 - line[c], 0), 2)
                                if anyDuplicates, groups[i] >= 0, groups[j] == groups[i] { distance = 0 }
                                if distance < nearest.worst(i) { nearest.offer(distance, neighbour: j, for: i) }
                                if distance < nearest.worst(j) { nearest.offer(distance, neighbour: i, for: j) }
                            }
                        }
                    }
                }
            }
        }
    }

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
struct NearestDistances {
    let k: Int
    private var distances: [Float]
    /// Row-major `count x k`, beside `distances`; -1 until a slot is filled.
    private(set) var indices: [Int32]

    init(count: Int, k: Int) {
        self.k = k
        distances = [Float](repeating: .infinity, count: count * k)
        indices = [Int32](repeating: -1, count: count * k)
    }

    init(k: Int, sortedDistances: [Float], indices: [Int32]) {
        precondition(sortedDistances.count == indices.count)
        self.k = k
        distances = sortedDistances
        self.indices = indices
    }

    /// The k-th smallest distance offered to `point` so far (infinity until k were offered).
    @inline(__always)
    func worst(_ point: Int) -> Float { distances[point * k + k - 1] }

    /// Keeps `neighbour` at `distance` if it is among the k nearest so far. At equal distance the
    /// point offered first stays ahead (and stays in, at the k-th place).
    @inline(__always)
    mutating func offer(_ distance: Float, neighbour: Int, for point: Int) {
        let base = point * k
        guard distance < distances[base + k - 1] else { return }
        var slot = base + k - 1
        while slot > base && distances[slot - 1] > distance {
            distances[slot] = distances[slot - 1]
            indices[slot] = indices[slot - 1]
            slot -= 1
        }
        distances[slot] = distance
        indices[slot] = Int32(truncatingIfNeeded: neighbour)
    }

    func averages() -> [Float] {
        (0..<distances.count / k).map { point in
            var sum: Float = 0
            for j in 0..<k { sum += distances[point * k + j] }
            return sum / Float(k)
        }
    }
}

/// Groups of exactly equal rows: `group[i]` is the first index of row i's group, or -1 if unique.
struct DuplicateRows {
    let group: [Int]
    /// Whether any two rows are equal at all (usually not: then the per-pair check is skipped).
    var any: Bool { group.contains { $0 >= 0 } }

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
    }

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
