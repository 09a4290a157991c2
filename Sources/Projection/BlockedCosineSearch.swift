import Dispatch
import LinearAlgebra
import Synchronization

/// Exact cosine k-nearest neighbours by brute force, on every CPU: float32 GEMM over square
/// blocks of the pair matrix's upper triangle (each pair once), shared out to the workers.
///
/// Each worker runs single-threaded GEMMs into its own 4 MB block and scans it into its own
/// lists, so the scan runs in parallel with the other worker's products instead of between them.
/// Rows are not normalised in a copy: each dot product is scaled by both inverse lengths, so
/// memory stays the input plus `N x k` per worker. Lists keep the k smallest distances with ties
/// going to the lower index, so the result does not depend on the thread count or on which
/// worker took which block.
enum BlockedCosineSearch {
    /// Rows and columns per block: large enough for an efficient GEMM, small enough to stay in L3.
    static let block = 1024

    static func nearest(_ x: Matrix, k: Int, duplicates: DuplicateRows, threads: Int) -> NearestDistances {
        // One GEMM thread per worker.
        BLAS.singleThreaded {
            nearest(x, inverseLengths: Self.inverseLengths(x), k: k, duplicates: duplicates, workers: threads)
        }
    }

    /// The search on `workers` threads, with OpenBLAS already on one thread (a caller that is
    /// itself one of several workers passes 1).
    static func nearest(_ x: Matrix, inverseLengths: [Float], k: Int, duplicates: DuplicateRows,
                        workers requested: Int) -> NearestDistances {
        let n = x.rows
        let side = (n + block - 1) / block
        let tiles = side * (side + 1) / 2
        let workers = max(1, min(requested, tiles))
        var lists = (0..<workers).map { _ in NearestDistances(count: n, k: k) }
        let nextTile = Atomic<Int>(0)
        x.storage.withUnsafeBufferPointer { values in
            inverseLengths.withUnsafeBufferPointer { inverse in
                lists.withUnsafeMutableBufferPointer { lists in
                    let shared = SharedWork(values: values.baseAddress!, inverse: inverse.baseAddress!,
                                            lists: lists.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        var products = [Float](repeating: 0, count: min(block, n) * min(block, n))
                        products.withUnsafeMutableBufferPointer { products in
                            shared.lists[worker].withLists { local in
                                while true {
                                    let tile = nextTile.wrappingAdd(1, ordering: .relaxed).oldValue
                                    guard tile < tiles else { return }
                                    let (rowBlock, columnBlock) = Self.blocks(ofTile: tile, side: side)
                                    scan(rows: rowBlock * block..<min(n, (rowBlock + 1) * block),
                                         columns: columnBlock * block..<min(n, (columnBlock + 1) * block),
                                         of: shared, dimension: x.columns, duplicates: duplicates,
                                         products: products.baseAddress!, into: local)
                                }
                            }
                        }
                    }
                }
            }
        }
        return workers == 1 ? lists[0] : NearestDistances(merging: lists)
    }

    /// Offers the similarities of `queries` (rows of `queryRows`, `Q x d`, global indices
    /// `queryIndices`) to the `W` points of `columnRows` (global index `columnIndices[c]`, or
    /// `columnBase + c` without them) to the queries' lists only. `products` holds `Q x W`.
    static func offer(queryRows: UnsafePointer<Float>, queryIndices: UnsafeBufferPointer<Int32>,
                      queryInverse: UnsafePointer<Float>,
                      columnRows: UnsafePointer<Float>, columnCount width: Int, columnIndices: UnsafePointer<Int32>?,
                      columnBase: Int, columnInverse: UnsafePointer<Float>, dimension d: Int,
                      duplicates: DuplicateRows, products: UnsafeMutablePointer<Float>, into lists: UnsafeNeighbourLists) {
        guard !queryIndices.isEmpty, width > 0 else { return }
        BLAS.gemm(transposeB: true, m: queryIndices.count, n: width, k: d, a: queryRows, lda: d,
                  b: columnRows, ldb: d, c: products, ldc: width)
        @inline(__always) func column(_ c: Int) -> Int { columnIndices.map { Int($0[c]) } ?? columnBase + c }
        for (q, queryIndex) in queryIndices.enumerated() {
            let i = Int(queryIndex)
            let line = products + q * width
            let rowInverse = queryInverse[q]
            let group = duplicates.any ? duplicates.group[i] : -1
            let threshold = 1 - lists.worst[i] - 1e-5
            for c in 0..<width {
                let similarity = line[c] * rowInverse * columnInverse[c]
                guard similarity >= threshold || group >= 0 else { continue }
                let j = column(c)
                guard j != i else { continue }
                let distance = group >= 0 && duplicates.group[j] == group ? 0 : min(max(1 - similarity, 0), 2)
                lists.offer(distance, neighbour: j, for: i)
            }
        }
    }

    /// Tile t of the upper triangle, row-block by row-block: (0,0), (0,1) ... (0,side-1), (1,1) ...
    static func blocks(ofTile tile: Int, side: Int) -> (Int, Int) {
        var row = 0, first = 0
        while first + (side - row) <= tile {
            first += side - row
            row += 1
        }
        return (row, row + tile - first)
    }

    /// 1 / |x_i| in double, then float; 0 for a zero row, whose similarity to everything is then 0
    /// (distance 1), as scikit-learn's cosine distance has it.
    static func inverseLengths(_ x: Matrix) -> [Float] {
        let d = x.columns
        return x.storage.withUnsafeBufferPointer { p in
            (0..<x.rows).map { i in
                let row = p.baseAddress! + i * d
                var sum = 0.0
                for c in 0..<d { sum += Double(row[c]) * Double(row[c]) }
                return sum > 0 ? Float(1 / sum.squareRoot()) : 0
            }
        }
    }

    /// Offers every pair of one block to both of its points (on the diagonal block, pairs i < j only).
    private static func scan(rows: Range<Int>, columns: Range<Int>, of work: SharedWork, dimension d: Int,
                             duplicates: DuplicateRows, products: UnsafeMutablePointer<Float>,
                             into lists: UnsafeNeighbourLists) {
        let width = columns.count
        BLAS.gemm(transposeB: true, m: rows.count, n: width, k: d, a: work.values + rows.lowerBound * d, lda: d,
                  b: work.values + columns.lowerBound * d, ldb: d, c: products, ldc: width)
        let columnInverse = work.inverse + columns.lowerBound
        let columnWorst = lists.worst + columns.lowerBound
        let diagonal = rows.lowerBound == columns.lowerBound
        for i in rows {
            let line = products + (i - rows.lowerBound) * width
            let first = diagonal ? i - rows.lowerBound + 1 : 0
            let rowInverse = work.inverse[i]
            if duplicates.any, duplicates.group[i] >= 0 {
                // A row with exact copies: pair by pair, its copies at distance 0.
                for c in first..<width {
                    let j = columns.lowerBound + c
                    let distance = duplicates.group[j] == duplicates.group[i]
                        ? 0 : min(max(1 - line[c] * rowInverse * columnInverse[c], 0), 2)
                    lists.offer(distance, neighbour: j, for: i)
                    lists.offer(distance, neighbour: i, for: j)
                }
                continue
            }
            // Eight pairs at a time, tested on the similarity against each point's k-th distance
            // with a little slack; `offer` then decides on the exact distance. Most pairs reach
            // neither list once the lists have filled.
            var c = first
            let one = SIMD8<Float>(repeating: 1), slack: Float = 1e-5
            let rowThreshold = SIMD8<Float>(repeating: 1 - lists.worst[i] - slack)
            while c + 8 <= width {
                let similarity = UnsafeRawPointer(line + c).loadUnaligned(as: SIMD8<Float>.self) * rowInverse
                    * UnsafeRawPointer(columnInverse + c).loadUnaligned(as: SIMD8<Float>.self)
                let columnThreshold = one - UnsafeRawPointer(columnWorst + c).loadUnaligned(as: SIMD8<Float>.self) - slack
                let reaches = (similarity .>= rowThreshold) .| (similarity .>= columnThreshold)
                if any(reaches) {
                    for l in 0..<8 where reaches[l] {
                        let j = columns.lowerBound + c + l
                        let distance = min(max(1 - similarity[l], 0), 2)
                        lists.offer(distance, neighbour: j, for: i)
                        lists.offer(distance, neighbour: i, for: j)
                    }
                }
                c += 8
            }
            while c < width {
                let j = columns.lowerBound + c
                let distance = min(max(1 - line[c] * rowInverse * columnInverse[c], 0), 2)
                lists.offer(distance, neighbour: j, for: i)
                lists.offer(distance, neighbour: i, for: j)
                c += 1
            }
        }
    }

    // Read by every worker; each worker writes only its own lists.
    private struct SharedWork: @unchecked Sendable {
        let values: UnsafePointer<Float>
        let inverse: UnsafePointer<Float>
        let lists: UnsafeMutablePointer<NearestDistances>
    }
}
