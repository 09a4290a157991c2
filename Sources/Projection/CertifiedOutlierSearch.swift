import Dispatch
import LinearAlgebra
import Synchronization

/// Approximate cosine neighbours for sets too large to search exactly (a million points), with
/// the outlier leaderboard still exact, and proved so.
///
/// 1. Coarse cells: spherical k-means on a sample (about `sqrt(N)` cells), then every point
///    joins its nearest cell and notes its next few.
/// 2. Every point searches its own cell. A found neighbour is a real point, so each point's mean
///    distance to the k it found is an upper bound on its true mean (`avg`).
/// 3. The leaderboard ranks the largest `avg`. Points are computed exactly against all N, in order
///    of their upper bound, until the `top`-th largest exact `avg` exceeds every bound not yet
///    computed: then no other point can enter the top, which is the certificate. Bounds near the
///    line are first tightened by searching the points' next cells, which is far cheaper than
///    computing them exactly.
/// 4. A sample of points spread over the set is computed exactly too, to report how far the
///    other scores are from exact.
/// Every other point's neighbours and score stay approximate: distances too large, scores too low.
enum CertifiedOutlierSearch {
    /// Below this many points a cell search would not save enough over brute force to matter.
    static let smallestSet = 4_096
    /// Cells searched per point when tightening a bound: its own and the next three.
    static let probes = 4
    static let sampleSize = 256
    /// Bounds are compared with exact means this much below them: both are sums of float32
    /// distances, and the same pair's distance from two GEMM shapes can differ in the last bits.
    static let margin: Float = 1e-5

    struct Result {
        var nearest: NearestDistances
        var exactPairs: Int
        var cells: Int
        var certifiedTop: Int
        /// Points computed exactly to certify the top, and points whose bounds were tightened.
        var candidates: Int
        var refined: Int
        /// The sample's mean distances as the cell search found them, and exactly.
        var sampleFoundMeans: [Float]
        var sampleExactMeans: [Float]
    }

    static func nearest(_ x: Matrix, k: Int, certify top: Int, duplicates: DuplicateRows, threads: Int) -> Result {
        // One GEMM thread per worker.
        BLAS.singleThreaded { search(x, k: k, certify: top, duplicates: duplicates, threads: threads) }
    }

    private static func search(_ x: Matrix, k: Int, certify top: Int, duplicates: DuplicateRows, threads: Int) -> Result {
        let workers = max(1, threads)
        let n = x.rows
        let inverse = BlockedCosineSearch.inverseLengths(x)
        let cellSet = Self.cells(x, inverse: inverse, count: Self.cellCount(n), workers: workers)
        let probes = Self.assign(x, inverse: inverse, to: cellSet, workers: workers)
        let cells = cellSet.centres.rows
        let members = Self.balancedMembers(probes, cells: cells)

        var nearest = NearestDistances(count: n, k: k)
        var exactPairs = 0
        // Within each cell (split where a cell is too large to search as one).
        let chunk = max(2_048, 8 * n / cells)
        let pieces = members.flatMap { cell in stride(from: 0, to: cell.count, by: chunk).map { Array(cell[$0..<min(cell.count, $0 + chunk)]) } }
        exactPairs += pieces.reduce(0) { $0 + $1.count * ($1.count - 1) / 2 }
        nearest.withLists { lists in
            let shared = SharedLists(lists: lists)
            let next = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while true {
                    let p = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard p < pieces.count else { return }
                    Self.searchWithin(pieces[p], of: x, inverse: inverse, k: k, duplicates: duplicates, into: shared.lists)
                }
            }
        }

        // Exact means for the candidates, until they prove the top.
        var exact = [Bool](repeating: false, count: n)
        var refined = [Bool](repeating: false, count: n)
        var refinedCount = 0
        var candidates = 0
        let batch = max(64, 4 * top)
        while candidates < Self.candidateBudget {
            let threshold = Self.topExactMean(nearest, exact: exact, top: top)
            var open = (0..<n).filter { !exact[$0] && nearest.average($0) >= threshold - margin }
            if open.isEmpty { break }
            let unrefined = open.filter { !refined[$0] }
            if threshold > -.infinity, open.count > batch, !unrefined.isEmpty {
                // Many bounds near the line: tighten them by searching their next cells first.
                exactPairs += Self.searchNextCells(unrefined.map(Int32.init), probes: probes, members: members, of: x,
                                                   inverse: inverse, duplicates: duplicates, workers: workers, into: &nearest)
                for i in unrefined { refined[i] = true }
                refinedCount += unrefined.count
                continue
            }
            open.sort { nearest.average($0) > nearest.average($1) || (nearest.average($0) == nearest.average($1) && $0 < $1) }
            let next = open.prefix(batch).map(Int32.init)
            candidates += next.count
            exactPairs += Self.computeExactly(next, of: x, inverse: inverse, duplicates: duplicates, workers: workers,
                                              into: &nearest, marking: &exact)
        }

        let proved = Self.provedTop(nearest, exact: exact, top: top)

        // Then for a sample spread over the set: how far the values left approximate are from exact.
        let sample = Array(Set((0..<min(n, sampleSize)).map { Int32($0 * n / min(n, sampleSize)) })).sorted()
        let sampleUpper = sample.map { nearest.average(Int($0)) }
        exactPairs += Self.computeExactly(sample, of: x, inverse: inverse, duplicates: duplicates, workers: workers,
                                          into: &nearest, marking: &exact)
        let sampleExact = sample.map { nearest.average(Int($0)) }
        return Result(nearest: nearest, exactPairs: exactPairs, cells: cells, certifiedTop: proved,
                      candidates: candidates, refined: refinedCount, sampleFoundMeans: sampleUpper,
                      sampleExactMeans: sampleExact)
    }

    /// How many points at most are computed exactly for the certificate (each costs a pass over
    /// all N). Bounds that tie at the line, as with thousands of identical rows, could otherwise
    /// ask for every point; the certificate then proves a shorter top, and says so.
    static let candidateBudget = 2_048

    /// The longest prefix of the leaderboard, up to `top`, that the exact means so far prove:
    /// its last point's exact mean exceeds every bound not computed exactly.
    static func provedTop(_ nearest: NearestDistances, exact: [Bool], top: Int) -> Int {
        let bounds = exact.indices.filter { !exact[$0] }.map { nearest.average($0) }
        guard let highestBound = bounds.max() else { return min(top, exact.count) }
        var means = exact.indices.filter { exact[$0] }.map { nearest.average($0) }
        means.sort(by: >)
        return means.prefix(top).prefix { highestBound < $0 - margin }.count
    }

    static func cellCount(_ n: Int) -> Int { max(1, min(n / 64, Int(Double(n).squareRoot().rounded()))) }

    /// The `top`-th largest exact mean so far; -infinity until `top` points are exact.
    static func topExactMean(_ nearest: NearestDistances, exact: [Bool], top: Int) -> Float {
        var means = exact.indices.filter { exact[$0] }.map { nearest.average($0) }
        guard means.count >= top, top > 0 else { return -.infinity }
        means.sort(by: >)
        return means[top - 1]
    }

    /// Cell centres: k-means on unit rows in Euclidean distance, which orders neighbours as cosine
    /// distance does. A row joins the centre `c` with the largest `u . c + bias_c`, where
    /// `bias_c = -|c|^2 / 2` with `c` taken from the rows' mean direction: the bias keeps central
    /// centres from drawing every row (cosine similarity to unnormalised means would).
    struct Cells {
        var centres: Matrix
        var bias: [Float]

        init(centres: Matrix, mean: [Float]) {
            let d = centres.columns
            self.centres = centres
            bias = (0..<centres.rows).map { c in
                var square: Float = 0, offset: Float = 0
                for j in 0..<d {
                    let value = centres.storage[c * d + j]
                    square += value * value
                    offset += value * mean[j]
                }
                return -offset - square / 2
            }
        }
    }

    /// A few rounds of k-means on up to 32 rows per cell, spread evenly over the set
    /// (deterministic: the same input gives the same cells).
    static func cells(_ x: Matrix, inverse: [Float], count cells: Int, workers: Int) -> Cells {
        let n = x.rows, d = x.columns
        let count = min(n, 32 * cells)
        let chosen = (0..<count).map { Int32($0 * n / count) }
        var (values, _) = gather(chosen, of: x, inverse: inverse)
        var mean = [Float](repeating: 0, count: d)
        for (s, i) in chosen.enumerated() {
            for c in 0..<d {
                values[s * d + c] *= inverse[Int(i)]
                mean[c] += values[s * d + c] / Float(count)
            }
        }
        let sample = Matrix(rows: count, columns: d, storage: values)
        let ones = [Float](repeating: 1, count: count)
        // Centres live around the mean direction: c = (mean of unit rows) - mean.
        var centres = Matrix(rows: cells, columns: d,
                             storage: gather((0..<cells).map { Int32($0 * count / cells) }, of: sample, inverse: []).rows)
        for c in 0..<cells { for j in 0..<d { centres.storage[c * d + j] -= mean[j] } }
        for _ in 0..<4 {
            let nearest = bestCentres(sample, scale: ones, Cells(centres: centres, mean: mean), count: 1, workers: workers)
            var sums = [Float](repeating: 0, count: cells * d), members = [Int](repeating: 0, count: cells)
            for s in 0..<count {
                let c = Int(nearest[s])
                members[c] += 1
                for j in 0..<d { sums[c * d + j] += sample.storage[s * d + j] }
            }
            for c in 0..<cells where members[c] > 0 {  // an empty cell keeps its centre
                for j in 0..<d { centres.storage[c * d + j] = sums[c * d + j] / Float(members[c]) - mean[j] }
            }
        }
        return Cells(centres: centres, mean: mean)
    }

    /// Each cell's points. A point joins the first of its probe cells with room, or if all are full
    /// the next cell with room: at most twice the mean cell size, so no cell costs more than four
    /// times a mean one. (k-means on embeddings with little structure beyond noise grows a few
    /// cells that draw most points, and the search within them would approach brute force.)
    static func balancedMembers(_ probes: [Int32], cells: Int) -> [[Int32]] {
        let n = probes.count / Self.probes
        let capacity = 2 * ((n + cells - 1) / cells)
        var members = [[Int32]](repeating: [], count: cells)
        var spare = 0
        for i in 0..<n {
            var cell = (0..<Self.probes).lazy.map { Int(probes[i * Self.probes + $0]) }
                .first { $0 >= 0 && members[$0].count < capacity }
            if cell == nil {
                while members[spare].count >= capacity { spare += 1 }
                cell = spare
            }
            members[cell!].append(Int32(i))
        }
        return members
    }

    /// Each row's `probes` nearest cells, nearest first (`N x probes`, -1 past the cell count).
    static func assign(_ x: Matrix, inverse: [Float], to cells: Cells, workers: Int) -> [Int32] {
        bestCentres(x, scale: inverse, cells, count: probes, workers: workers)
    }

    /// For each row, the `count` cells with the largest `scale_i x_i . c + bias_c`, in blocks of
    /// rows on `workers` threads.
    static func bestCentres(_ rows: Matrix, scale: [Float], _ cellSet: Cells, count: Int, workers: Int) -> [Int32] {
        let centres = cellSet.centres, bias = cellSet.bias
        let n = rows.rows, d = rows.columns, cells = centres.rows
        let rowsPerBlock = 512
        let blocks = (n + rowsPerBlock - 1) / rowsPerBlock
        var best = [Int32](repeating: -1, count: n * count)
        let next = Atomic<Int>(0)
        rows.storage.withUnsafeBufferPointer { values in
            centres.storage.withUnsafeBufferPointer { centre in
                best.withUnsafeMutableBufferPointer { best in
                    let shared = SharedBest(values: values.baseAddress!, centres: centre.baseAddress!, best: best.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: max(1, min(workers, blocks))) { _ in
                        var products = [Float](repeating: 0, count: rowsPerBlock * cells)
                        var topValues = [Float](repeating: 0, count: count)
                        while true {
                            let b = next.wrappingAdd(1, ordering: .relaxed).oldValue
                            guard b < blocks else { return }
                            let first = b * rowsPerBlock, m = min(rowsPerBlock, n - first)
                            products.withUnsafeMutableBufferPointer { p in
                                BLAS.gemm(transposeB: true, m: m, n: cells, k: d, a: shared.values + first * d, lda: d,
                                          b: shared.centres, ldb: d, c: p.baseAddress!, ldc: cells)
                                for r in 0..<m {
                                    let out = shared.best + (first + r) * count
                                    let rowScale = scale[first + r]
                                    for t in 0..<count { topValues[t] = -.infinity }
                                    for c in 0..<cells {
                                        let value = rowScale * p[r * cells + c] + bias[c]
                                        guard value > topValues[count - 1] || out[count - 1] < 0 else { continue }
                                        var slot = count - 1
                                        while slot > 0 && (topValues[slot - 1] < value || out[slot - 1] < 0) {
                                            topValues[slot] = topValues[slot - 1]
                                            out[slot] = out[slot - 1]
                                            slot -= 1
                                        }
                                        topValues[slot] = value
                                        out[slot] = Int32(c)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return best
    }

    /// Every pair within one piece of a cell, offered to both points.
    private static func searchWithin(_ piece: [Int32], of x: Matrix, inverse: [Float], k: Int, duplicates: DuplicateRows,
                                     into lists: UnsafeNeighbourLists) {
        guard piece.count > 1 else { return }
        let (rows, pieceInverse) = gather(piece, of: x, inverse: inverse)
        let local = BlockedCosineSearch.nearest(Matrix(rows: piece.count, columns: x.columns, storage: rows),
                                                inverseLengths: pieceInverse, k: min(k, piece.count - 1),
                                                duplicates: duplicates.restricted(to: piece), workers: 1)
        for (r, i) in piece.enumerated() {
            for (distance, j) in local.neighbours(of: r) { lists.offer(distance, neighbour: Int(piece[j]), for: Int(i)) }
        }
    }

    /// Replaces the lists of `points` by their exact k nearest among all N.
    private static func computeExactly(_ points: [Int32], of x: Matrix, inverse: [Float], duplicates: DuplicateRows,
                                       workers: Int, into nearest: inout NearestDistances, marking exact: inout [Bool]) -> Int {
        let n = x.rows, d = x.columns
        let fresh = points.filter { !exact[Int($0)] }
        guard !fresh.isEmpty else { return 0 }
        nearest.clear(fresh.map(Int.init))
        let columnsPerBlock = 2_048
        let perWorker = (fresh.count + workers - 1) / workers
        nearest.withLists { lists in
            let shared = SharedLists(lists: lists)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let mine = Array(fresh[min(fresh.count, worker * perWorker)..<min(fresh.count, (worker + 1) * perWorker)])
                guard !mine.isEmpty else { return }
                let (rows, rowInverse) = gather(mine, of: x, inverse: inverse)
                var products = [Float](repeating: 0, count: mine.count * columnsPerBlock)
                x.storage.withUnsafeBufferPointer { values in
                    inverse.withUnsafeBufferPointer { columnInverse in
                        mine.withUnsafeBufferPointer { queries in
                            for first in stride(from: 0, to: n, by: columnsPerBlock) {
                                BlockedCosineSearch.offer(
                                    queryRows: rows, queryIndices: queries, queryInverse: rowInverse,
                                    columnRows: values.baseAddress! + first * d, columnCount: min(columnsPerBlock, n - first),
                                    columnIndices: nil, columnBase: first, columnInverse: columnInverse.baseAddress! + first,
                                    dimension: d, duplicates: duplicates, products: &products, into: shared.lists)
                            }
                        }
                    }
                }
            }
        }
        for i in fresh { exact[Int(i)] = true }
        return fresh.count * (n - 1)
    }

    /// Tightens the lists of `points` with every member of their other probe cells. Each worker
    /// owns a slice of the points, so each list has one writer.
    private static func searchNextCells(_ points: [Int32], probes: [Int32], members: [[Int32]], of x: Matrix,
                                        inverse: [Float], duplicates: DuplicateRows, workers: Int,
                                        into nearest: inout NearestDistances) -> Int {
        let d = x.columns
        let perWorker = (points.count + workers - 1) / workers
        let pairs = Atomic<Int>(0)
        nearest.withLists { lists in
            let shared = SharedLists(lists: lists)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let mine = points[min(points.count, worker * perWorker)..<min(points.count, (worker + 1) * perWorker)]
                var askers: [Int32: [Int32]] = [:]
                for i in mine {
                    for p in 1..<Self.probes {
                        let cell = probes[Int(i) * Self.probes + p]
                        if cell >= 0 { askers[cell, default: []].append(i) }
                    }
                }
                for (cell, queries) in askers.sorted(by: { $0.key < $1.key }) {
                    let columns = members[Int(cell)]
                    guard !columns.isEmpty else { continue }
                    pairs.add(queries.count * columns.count, ordering: .relaxed)
                    let (columnRows, columnInverse) = gather(columns, of: x, inverse: inverse)
                    for first in stride(from: 0, to: queries.count, by: 256) {
                        let slice = Array(queries[first..<min(queries.count, first + 256)])
                        let (rows, rowInverse) = gather(slice, of: x, inverse: inverse)
                        var products = [Float](repeating: 0, count: slice.count * columns.count)
                        slice.withUnsafeBufferPointer { q in
                            columns.withUnsafeBufferPointer { columnIndices in
                                BlockedCosineSearch.offer(
                                    queryRows: rows, queryIndices: q, queryInverse: rowInverse, columnRows: columnRows,
                                    columnCount: columns.count, columnIndices: columnIndices.baseAddress!, columnBase: 0,
                                    columnInverse: columnInverse, dimension: d, duplicates: duplicates,
                                    products: &products, into: shared.lists)
                            }
                        }
                    }
                }
            }
        }
        return pairs.load(ordering: .relaxed)
    }

    /// Rows `indices` of `x`, row-major, and their inverse lengths.
    static func gather(_ indices: [Int32], of x: Matrix, inverse: [Float]) -> (rows: [Float], inverse: [Float]) {
        let d = x.columns
        var rows = [Float](repeating: 0, count: indices.count * d)
        rows.withUnsafeMutableBufferPointer { out in
            x.storage.withUnsafeBufferPointer { values in
                for (r, i) in indices.enumerated() {
                    (out.baseAddress! + r * d).update(from: values.baseAddress! + Int(i) * d, count: d)
                }
            }
        }
        return (rows, inverse.isEmpty ? [] : indices.map { inverse[Int($0)] })
    }

    // For the workers of one search: each writes only its own rows of the lists and of `best`; the
    // rest is read-only, and the buffers outlive the search.
    private struct SharedLists: @unchecked Sendable { let lists: UnsafeNeighbourLists }
    private struct SharedBest: @unchecked Sendable {
        let values: UnsafePointer<Float>
        let centres: UnsafePointer<Float>
        let best: UnsafeMutablePointer<Int32>
    }
}
