private import CNeighbourSearch
import Dispatch
import LinearAlgebra
import Synchronization

/// Exact cosine k-nearest neighbours that uses the structure of real embeddings: after their rows
/// are normalised, a few principal components hold almost all of their variance, so a bound from
/// those components rules out almost every pair before its distance is computed.
///
/// On unit rows the cosine distance is half the squared Euclidean one. With `P` the projection on
/// the `m` leading components and `R` on the rest, for any two points
/// `|u - v|^2 = |P(u - v)|^2 + |R(u - v)|^2 >= |Pu - Pv|^2 + (|Ru| - |Rv|)^2`,
/// a bound that costs `m + 2` operations instead of `D`. The projected points are stored in the
/// order of a k-d tree. Each point first gets a threshold, a squared distance that k other points
/// are known to be within: from its seeds (the previous checkpoint's neighbours) and from the
/// nearest of its surrounding subtree. It then goes down the tree into the nodes whose box (and
/// range of residual norms) cannot rule it out; in the leaves it reaches, the bound is computed
/// eight points at a time (`Sources/CNeighbourSearch/component_bounds.c`), and the exact distance
/// only for the pairs that survive. Everything that can reach a point's k-th distance is offered
/// to its list, so the result is brute force's, ties included, whatever the order of the work or
/// the number of threads.
///
/// The bounds are computed in float with a slack far above their rounding (`slack`); the basis
/// comes from a sample of the rows and need only be orthonormal for the bound to hold. Data whose
/// spectrum is flat (isotropic noise) would prune little: there `nearest` returns nil and the
/// caller searches by brute force.
enum LeadingComponentSearch {
    /// The leading components of the first bound: one SIMD vector per point.
    static let components = Int(CB_COMPONENTS)
    /// The components the second bound adds, for the pairs that pass the first.
    static let furtherComponents = Int(CB_FURTHER)
    /// Points per cell of the k-d tree.
    static let cellSize = 64
    /// Below this share of the variance in the leading components the bound prunes too little.
    static let concentratedVariance = 0.8
    /// Below this many points brute force costs next to nothing.
    static let smallestSet = 500
    /// Rows the basis is estimated from.
    static let basisSample = 2048
    /// Squared-distance slack on every bound (the rounding of the projections is about 1e-6), and
    /// on the squared residual norms they come from.
    static let slack: Float = 2e-4
    static let residualSlack = 1e-4

    struct Result {
        var nearest: NearestDistances
        /// Pairs whose distance was computed exactly (each seed once more).
        var exactPairs: Int
        /// The leading components' share of the variance of the normalised rows.
        var concentration: Double
    }

    /// The k smallest cosine distances of every row, ascending, with their points; nil when the
    /// data do not suit the search (too few points, a zero row, a flat spectrum).
    static func nearest(_ x: Matrix, k: Int, duplicates: DuplicateRows, threads: Int, seeds: [Int32]?) -> Result? {
        let n = x.rows
        guard n >= smallestSet, k >= 1, k < n, let inverse = usableInverseLengths(x),
              let basis = try? Basis(x, inverseLengths: inverse), basis.concentration >= concentratedVariance
        else { return nil }
        // Values near the float range overflow the projection's GEMM: brute force decides there.
        guard let points = ProjectedPoints(x, inverseLengths: inverse, basis: basis) else { return nil }
        let tree = CellTree(points)
        var lists = NearestDistances(count: n, k: k)
        let workers = max(1, min(threads, tree.leaves.count))
        let nextCell = Atomic<Int>(0), exact = Atomic<Int>(0)
        x.storage.withUnsafeBufferPointer { values in
            inverse.withUnsafeBufferPointer { inverse in
                lists.withLists { lists in
                    let work = SharedWork(values: values.baseAddress!, inverse: inverse.baseAddress!, lists: lists,
                                          dimension: x.columns, duplicates: duplicates)
                    DispatchQueue.concurrentPerform(iterations: workers) { _ in
                        var computed = 0
                        while true {
                            let cell = nextCell.wrappingAdd(1, ordering: .relaxed).oldValue
                            guard cell < tree.leaves.count else { break }
                            computed += search(cell: cell, of: tree, seeds: seeds, work: work)
                        }
                        exact.add(computed, ordering: .relaxed)
                    }
                }
            }
        }
        return Result(nearest: lists, exactPairs: exact.load(ordering: .relaxed), concentration: basis.concentration)
    }

    /// 1 / |x_i| for every row, or nil if a row is zero (its distance to everything is 1, which no
    /// Euclidean bound on unit rows describes).
    private static func usableInverseLengths(_ x: Matrix) -> [Float]? {
        guard x.rows >= 2, x.columns >= 2 else { return nil }
        let inverse = BlockedCosineSearch.inverseLengths(x)
        return inverse.contains(0) ? nil : inverse
    }

    /// Fills the lists of one leaf's points; returns the distances it computed exactly.
    private static func search(cell: Int, of tree: CellTree, seeds: [Int32]?, work: SharedWork) -> Int {
        let leaf = tree.leaves[cell]
        let queries = tree.nodes[leaf].slots
        let lists = work.lists, k = lists.k
        var computed = 0
        // Each point's threshold: a squared distance that at least k other points are known to be
        // within. First from the seeds, then from the 2k points of the surrounding subtree that the
        // bound puts nearest; from there on, from the list itself.
        var thresholds = [Float](repeating: .infinity, count: queries.count)
        if let seeds, seeds.count % tree.count == 0, seeds.count / tree.count >= k {
            let width = seeds.count / tree.count
            for q in 0..<queries.count {
                let i = Int(tree.order[queries.lowerBound + q])
                var known = 0, farthest: Float = 0
                for s in 0..<width where known < k {
                    let j = Int(seeds[i * width + s])
                    guard j >= 0, j < tree.count, j != i else { continue }
                    farthest = max(farthest, 2 * work.distance(i, j))
                    known += 1
                }
                computed += known
                if known == k { thresholds[q] = farthest }
            }
        }
        var pool = leaf
        while tree.nodes[pool].slots.count < max(4 * cellSize, 4 * k), tree.nodes[pool].parent >= 0 {
            pool = tree.nodes[pool].parent
        }
        var bounds = [Float](repeating: 0, count: tree.nodes[pool].slots.count + 8)
        var nearest: [(Float, Int)] = [], exactDistances: [Float] = []
        for q in 0..<queries.count {
            let slot = queries.lowerBound + q
            let i = Int(tree.order[slot])
            tree.bounds(from: slot, to: tree.nodes[pool].slots, into: &bounds)
            // The 2k the bound puts nearest, kept sorted as the pool is read.
            nearest.removeAll(keepingCapacity: true)
            for (offset, candidate) in tree.nodes[pool].slots.enumerated() where candidate != slot {
                let bound = bounds[offset]
                guard nearest.count < 2 * k || bound < nearest[nearest.count - 1].0 else { continue }
                if nearest.count == 2 * k { nearest.removeLast() }
                var place = nearest.count
                while place > 0 && nearest[place - 1].0 > bound { place -= 1 }
                nearest.insert((bound, candidate), at: place)
            }
            guard nearest.count >= k else { continue }
            // The k-th nearest of those: close to the final threshold.
            exactDistances.removeAll(keepingCapacity: true)
            for (_, candidate) in nearest {
                exactDistances.append(2 * work.distance(i, Int(tree.order[candidate])))
            }
            computed += exactDistances.count
            exactDistances.sort()
            thresholds[q] = min(thresholds[q], exactDistances[k - 1])
        }
        // The leaf's points down the tree together, each into the nodes its bound cannot rule out:
        // a leaf they reach is bounded for all of them while its slots are in cache (one point at a
        // time would stream the tree's coordinates through the cache once a point).
        var survivors = [Int32](repeating: 0, count: cellSize + 8), partial = [Float](repeating: 0, count: cellSize + 8)
        var active = [Int32](repeating: 0, count: queries.count * (tree.depth + 2))
        func threshold(_ q: Int) -> Float {
            min(thresholds[q], 2 * lists.worst[Int(tree.order[queries.lowerBound + q])]) + slack
        }
        func descend(_ node: Int, depth: Int, from parent: Int, count: Int) {
            // The points still in, at `depth`'s part of `active`.
            let base = depth * queries.count
            var kept = 0
            for a in 0..<count {
                let q = Int(active[parent + a])
                if tree.pointBound(queries.lowerBound + q, node) <= threshold(q) {
                    active[base + kept] = Int32(q)
                    kept += 1
                }
            }
            guard kept > 0 else { return }
            if tree.nodes[node].left >= 0 {
                descend(tree.nodes[node].left, depth: depth + 1, from: base, count: kept)
                descend(tree.nodes[node].right, depth: depth + 1, from: base, count: kept)
                return
            }
            let candidates = tree.nodes[node].slots
            for a in 0..<kept {
                let q = Int(active[base + a])
                let slot = queries.lowerBound + q
                let i = Int(tree.order[slot])
                let found = survivors.withUnsafeMutableBufferPointer { out in
                    partial.withUnsafeMutableBufferPointer { partial in
                        tree.survivors(of: slot, in: candidates, within: threshold(q), into: out.baseAddress!,
                                       partial: partial.baseAddress!)
                    }
                }
                for s in 0..<found {
                    let j = Int(tree.order[Int(survivors[s])])
                    guard j != i else { continue }
                    computed += 1
                    lists.offer(work.distance(i, j), neighbour: j, for: i)
                }
            }
        }
        for q in 0..<queries.count { active[q] = Int32(q) }
        descend(0, depth: 1, from: 0, count: queries.count)
        return computed
    }

    /// An orthonormal basis of the leading principal components of the normalised rows, from an
    /// evenly spread sample of them.
    private struct Basis {
        /// `m x D`, rows orthonormal.
        let vectors: Matrix
        /// The sample's mean unit row (any point would do: it cancels in every difference).
        let mean: [Float]
        let concentration: Double

        init(_ x: Matrix, inverseLengths inverse: [Float]) throws {
            let n = x.rows, d = x.columns
            let m = min(LeadingComponentSearch.components + LeadingComponentSearch.furtherComponents, d)
            let taken = min(n, LeadingComponentSearch.basisSample)
            var sample = Matrix(zeros: taken, d)
            for s in 0..<taken {
                let i = s * n / taken
                for c in 0..<d { sample[s, c] = x[i, c] * inverse[i] }
            }
            var mean = [Float](repeating: 0, count: d)
            for s in 0..<taken { for c in 0..<d { mean[c] += sample[s, c] } }
            for c in 0..<d { mean[c] /= Float(taken) }
            for s in 0..<taken { for c in 0..<d { sample[s, c] -= mean[c] } }
            var covariance = Matrix(zeros: d, d)
            sample.storage.withUnsafeBufferPointer { a in
                covariance.storage.withUnsafeMutableBufferPointer { c in
                    BLAS.accumulateGram(a.baseAddress!, rows: taken, columns: d, alpha: 1, beta: 0, into: c.baseAddress!)
                }
            }
            var total = 0.0
            for c in 0..<d { total += Double(covariance[c, c]) }
            // The Gram sum fills the upper triangle; mirrored, it reads the same in LAPACK's layout.
            for r in 0..<d { for c in 0..<r { covariance[r, c] = covariance[c, r] } }
            let eigen = try SymmetricEigen(largest: m, of: covariance)
            vectors = Self.orthonormalised(eigen.vectors)
            self.mean = mean
            let leading = eigen.values.prefix(LeadingComponentSearch.components)
            concentration = total > 0 ? leading.reduce(0) { $0 + Double(max($1, 0)) } / total : 0
        }

        /// Gram-Schmidt in double: the bound needs `|P v| <= |v|`, which LAPACK's float vectors
        /// meet only to about 1e-6.
        private static func orthonormalised(_ v: Matrix) -> Matrix {
            var rows = (0..<v.rows).map { r in v.row(r).map(Double.init) }
            for r in rows.indices {
                for _ in 0..<2 {
                    for p in 0..<r {
                        let dot = zip(rows[r], rows[p]).reduce(0) { $0 + $1.0 * $1.1 }
                        for c in rows[r].indices { rows[r][c] -= dot * rows[p][c] }
                    }
                }
                let length = rows[r].reduce(0) { $0 + $1 * $1 }.squareRoot()
                for c in rows[r].indices { rows[r][c] = length > 0 ? rows[r][c] / length : 0 }
            }
            return Matrix(rows: v.rows, columns: v.columns, storage: rows.flatMap { $0.map(Float.init) })
        }
    }

    /// Every point's leading-component coordinates and an interval around its residual norm; the
    /// further components and an interval around the norm they leave.
    private struct ProjectedPoints {
        var projected: [SIMD16<Float>]
        var residualLow: [Float]
        var residualHigh: [Float]
        /// `N x furtherComponents`, zero where the basis has fewer.
        var further: [Float]
        var furtherResidualLow: [Float]
        var furtherResidualHigh: [Float]

        /// Nil if a projection is not finite.
        init?(_ x: Matrix, inverseLengths inverse: [Float], basis: Basis) {
            let n = x.rows, d = x.columns, m = basis.vectors.rows
            let first = min(m, LeadingComponentSearch.components), width = LeadingComponentSearch.furtherComponents
            // One GEMM: the basis and the mean, against every row.
            let against = Matrix(rows: m + 1, columns: d, storage: basis.vectors.storage + basis.mean)
            var products = [Float](repeating: 0, count: n * (m + 1))
            x.storage.withUnsafeBufferPointer { a in
                against.storage.withUnsafeBufferPointer { b in
                    products.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(transposeB: true, m: n, n: m + 1, k: d, a: a.baseAddress!, lda: d,
                                  b: b.baseAddress!, ldb: d, c: c.baseAddress!, ldc: m + 1)
                    }
                }
            }
            var meanProjected = [Double](repeating: 0, count: m)
            var meanSquared = 0.0
            for c in 0..<d { meanSquared += Double(basis.mean[c]) * Double(basis.mean[c]) }
            for r in 0..<m {
                for c in 0..<d { meanProjected[r] += Double(basis.vectors[r, c]) * Double(basis.mean[c]) }
            }
            projected = [SIMD16<Float>](repeating: .zero, count: n)
            residualLow = [Float](repeating: 0, count: n)
            residualHigh = [Float](repeating: 0, count: n)
            further = [Float](repeating: 0, count: n * width)
            furtherResidualLow = [Float](repeating: 0, count: n)
            furtherResidualHigh = [Float](repeating: 0, count: n)
            let slack = LeadingComponentSearch.residualSlack
            func interval(_ squared: Double) -> (Float, Float) {
                (Float(max(squared - slack, 0).squareRoot()).nextDown, Float(max(squared + slack, 0).squareRoot()).nextUp)
            }
            for i in 0..<n {
                let row = i * (m + 1), scale = Double(inverse[i])
                var point = SIMD16<Float>.zero
                var projectedSquared = 0.0, furtherSquared = 0.0
                for r in 0..<m {
                    let value = scale * Double(products[row + r]) - meanProjected[r]
                    if r < first {
                        point[r] = Float(value)
                        projectedSquared += value * value
                    } else {
                        further[i * width + r - first] = Float(value)
                        furtherSquared += value * value
                    }
                }
                projected[i] = point
                // |u - mean|^2 on a unit row, less what the components hold.
                let centredSquared = 1 - 2 * scale * Double(products[row + m]) + meanSquared
                (residualLow[i], residualHigh[i]) = interval(centredSquared - projectedSquared)
                (furtherResidualLow[i], furtherResidualHigh[i]) = interval(centredSquared - projectedSquared - furtherSquared)
                guard centredSquared.isFinite, projectedSquared.isFinite, furtherSquared.isFinite else { return nil }
            }
        }
    }

    /// The projected points in a k-d tree, stored in the tree's order (every node's points are
    /// consecutive slots), each node with the box of its points and the range of their residual
    /// norms. Coordinates are stored by component, so one point's bounds to a run of slots are
    /// computed eight at a time.
    private struct CellTree {
        struct Node {
            var slots: Range<Int>
            var parent: Int
            var left = -1, right = -1
            var low = SIMD16<Float>(repeating: .infinity), high = SIMD16<Float>(repeating: -.infinity)
            var residualMinimum = Float.infinity, residualMaximum: Float = 0
        }

        let count: Int
        /// Slot -> point.
        let order: [Int32]
        /// Component c of slot s at `c * stride + s`; slots past the end are padding.
        let coordinates: [Float]
        let stride: Int
        /// The same by slot, for the bounds to a box.
        let projected: [SIMD16<Float>]
        let residualLow: [Float]
        let residualHigh: [Float]
        /// The further components and their residual intervals, by slot.
        let further: [Float]
        let furtherResidualLow: [Float]
        let furtherResidualHigh: [Float]
        let nodes: [Node]
        /// The leaves (cells) in slot order.
        let leaves: [Int]
        /// The most nodes from the root to a leaf.
        let depth: Int

        init(_ points: ProjectedPoints) {
            count = points.projected.count
            var order = (0..<count).map { Int32($0) }
            var nodes = [Node(slots: 0..<count, parent: -1)]
            var pending = [0]
            while let index = pending.popLast() {
                let range = nodes[index].slots
                for slot in range {
                    let point = points.projected[Int(order[slot])]
                    nodes[index].low = nodes[index].low.replacing(with: point, where: point .< nodes[index].low)
                    nodes[index].high = larger(nodes[index].high, point)
                    nodes[index].residualMinimum = min(nodes[index].residualMinimum, points.residualLow[Int(order[slot])])
                    nodes[index].residualMaximum = max(nodes[index].residualMaximum, points.residualHigh[Int(order[slot])])
                }
                guard range.count > LeadingComponentSearch.cellSize else { continue }
                let spread = nodes[index].high - nodes[index].low
                var axis = 0
                for a in 1..<16 where spread[a] > spread[axis] { axis = a }
                order[range].sort { points.projected[Int($0)][axis] < points.projected[Int($1)][axis] }
                let middle = range.lowerBound + range.count / 2
                nodes[index].left = nodes.count
                nodes.append(Node(slots: range.lowerBound..<middle, parent: index))
                nodes[index].right = nodes.count
                nodes.append(Node(slots: middle..<range.upperBound, parent: index))
                pending.append(nodes[index].right)
                pending.append(nodes[index].left)
            }
            self.order = order
            self.nodes = nodes
            var depths = [Int](repeating: 1, count: nodes.count)
            for index in nodes.indices where nodes[index].parent >= 0 { depths[index] = depths[nodes[index].parent] + 1 }
            depth = depths.max() ?? 1
            leaves = nodes.indices.filter { nodes[$0].left < 0 }.sorted { nodes[$0].slots.lowerBound < nodes[$1].slots.lowerBound }
            stride = count + 8
            var coordinates = [Float](repeating: 0, count: 16 * stride)
            for (slot, point) in order.enumerated() {
                for c in 0..<16 { coordinates[c * stride + slot] = points.projected[Int(point)][c] }
            }
            self.coordinates = coordinates
            projected = order.map { points.projected[Int($0)] }
            residualLow = order.map { points.residualLow[Int($0)] } + [Float](repeating: 0, count: 8)
            residualHigh = order.map { points.residualHigh[Int($0)] } + [Float](repeating: 0, count: 8)
            let width = LeadingComponentSearch.furtherComponents
            further = order.flatMap { points.further[Int($0) * width..<(Int($0) + 1) * width] }
            furtherResidualLow = order.map { points.furtherResidualLow[Int($0)] }
            furtherResidualHigh = order.map { points.furtherResidualHigh[Int($0)] }
        }

        /// A lower bound on the squared distance between the point in `slot` and any point of `node`.
        @inline(__always)
        func pointBound(_ slot: Int, _ node: Int) -> Float {
            let point = projected[slot], box = nodes[node]
            let gap = positivePart(larger(box.low - point, point - box.high))
            let residualGap = max(0, box.residualMinimum - residualHigh[slot], residualLow[slot] - box.residualMaximum)
            return total(gap * gap) + residualGap * residualGap
        }

        /// The slots of `targets` whose two bounds to the point in `slot` are at most `threshold`,
        /// into `out`; `partial` is scratch of the same size (the length of a leaf and eight).
        func survivors(of slot: Int, in targets: Range<Int>, within threshold: Float,
                       into out: UnsafeMutablePointer<Int32>, partial: UnsafeMutablePointer<Float>) -> Int {
            coordinates.withUnsafeBufferPointer { coordinates in
                residualLow.withUnsafeBufferPointer { low in
                    residualHigh.withUnsafeBufferPointer { high in
                        let found = cb_survivors(coordinates.baseAddress, Int64(stride), low.baseAddress,
                                                 high.baseAddress, Int64(slot), Int64(targets.lowerBound),
                                                 Int64(targets.upperBound), threshold, out, partial)
                        guard found > 0 else { return 0 }
                        return further.withUnsafeBufferPointer { further in
                            furtherResidualLow.withUnsafeBufferPointer { low in
                                furtherResidualHigh.withUnsafeBufferPointer { high in
                                    Int(cb_refine(further.baseAddress, low.baseAddress, high.baseAddress, Int64(slot),
                                                  out, partial, found, threshold, out))
                                }
                            }
                        }
                    }
                }
            }
        }

        /// The bound between the point in `slot` and each slot of `targets`, into `bounds` (which
        /// holds `targets.count` rounded up to eight).
        func bounds(from slot: Int, to targets: Range<Int>, into bounds: inout [Float]) {
            coordinates.withUnsafeBufferPointer { coordinates in
                residualLow.withUnsafeBufferPointer { low in
                    residualHigh.withUnsafeBufferPointer { high in
                        bounds.withUnsafeMutableBufferPointer { out in
                            cb_bounds(coordinates.baseAddress, Int64(stride), low.baseAddress, high.baseAddress,
                                      Int64(slot), Int64(targets.lowerBound), Int64(targets.upperBound),
                                      out.baseAddress)
                        }
                    }
                }
            }
        }
    }

    /// Lane by lane, the larger (`pointwiseMax` goes through memory lane by lane).
    @inline(__always)
    private static func larger(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        a.replacing(with: b, where: b .> a)
    }

    @inline(__always)
    private static func positivePart(_ a: SIMD16<Float>) -> SIMD16<Float> {
        a.replacing(with: 0, where: a .< SIMD16<Float>())
    }

    /// The sum of the lanes by halves (`SIMD16.sum()` goes through memory lane by lane).
    @inline(__always)
    private static func total(_ v: SIMD16<Float>) -> Float {
        let eight = v.lowHalf + v.highHalf, four = eight.lowHalf + eight.highHalf, two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }

    // Read by every worker; each worker writes only the lists of the cells it took.
    private struct SharedWork: @unchecked Sendable {
        let values: UnsafePointer<Float>
        let inverse: UnsafePointer<Float>
        let lists: UnsafeNeighbourLists
        let dimension: Int
        let duplicates: DuplicateRows

        /// The cosine distance of two rows, as brute force computes it: 0 between exact copies.
        @inline(__always)
        func distance(_ i: Int, _ j: Int) -> Float {
            if duplicates.any, duplicates.group[i] >= 0, duplicates.group[i] == duplicates.group[j] { return 0 }
            let dot = cb_dot(values + i * dimension, values + j * dimension, Int64(dimension))
            // The inverse lengths multiplied first: the pair's distance is the same from either end.
            return min(max(1 - dot * (inverse[i] * inverse[j]), 0), 2)
        }
    }
}

