import Dispatch
import LinearAlgebra
import Synchronization

/// Exact Euclidean k nearest neighbours for embeddings of one to three dimensions (where cleanlab
/// measures Euclidean distance): a k-d tree over the distinct rows, searched on every CPU.
///
/// Brute force is O(N²): a million 2-D points would take hours. The tree finds each point's
/// neighbours in about log N steps. It stays exact, tie for tie:
/// - a distance is computed as the definition does (in double over the coordinates, rounded to
///   float), and a subtree is skipped only when its box is strictly farther than the k-th
///   distance so far, so a neighbour at exactly that distance with a lower index is still found;
/// - exact duplicates are one row of the tree with a list of its members, lowest index first,
///   so a million equal rows cost a million short searches, not a million long ones.
/// The lists equal brute force's, bit for bit, ties going to the lower index.
enum LowDimensionalSearch {
    /// Distinct rows per leaf.
    static let leafSize = 8
    /// Tree positions a worker takes at a time.
    static let blockSize = 512

    /// The lists, and the number of distances computed; nil when a value is not finite (boxes
    /// would mean nothing there: the caller falls back to brute force, and runs reject such rows
    /// before they get here).
    static func nearest(_ x: Matrix, k: Int, duplicates: DuplicateRows,
                        threads: Int) -> (nearest: NearestDistances, distances: Int)? {
        precondition(x.columns >= 1 && x.columns <= 3)
        guard x.storage.allSatisfy(\.isFinite) else { return nil }
        let tree = Tree(x, duplicates: duplicates)
        var nearest = NearestDistances(count: x.rows, k: k)
        let workers = max(1, min(threads, x.rows / 4096))
        let positions = tree.memberStart.count - 1
        let nextBlock = Atomic<Int>(0)
        var computed = [Int](repeating: 0, count: workers)
        nearest.withLists { lists in
            computed.withUnsafeMutableBufferPointer { computed in
                let shared = Shared(lists: lists, computed: computed.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    // Blocks of rows in tree order: consecutive searches walk the same nodes, in cache.
                    // Each worker fills the lists of its own rows only.
                    var stack: [(node: Int32, distance: Float)] = []
                    var distances = 0
                    while true {
                        let block = nextBlock.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard block * blockSize < positions else { break }
                        for position in block * blockSize..<min(positions, (block + 1) * blockSize) {
                            for m in Int(tree.memberStart[position])..<Int(tree.memberStart[position + 1]) {
                                distances += tree.search(for: Int(tree.members[m]), at: position, into: shared.lists,
                                                         stack: &stack)
                            }
                        }
                    }
                    shared.computed[worker] = distances
                }
            }
        }
        return (nearest, computed.reduce(0, +))
    }

    /// The k nearest rows of each row by cosine distance, row-major `N x k`, nearest first (the
    /// label votes' graph when the outlier scores measured Euclidean distance); nil when a value
    /// is not finite.
    ///
    /// Between rows scaled to unit length, cosine distance is half the squared Euclidean
    /// distance, so the same tree finds them. A zero row is at cosine distance 1 from every other
    /// row (0 from another zero row): in the tree it waits at a point farther than 2 from the unit
    /// sphere, so that it comes after every unit row, and the lists are then merged with the zero
    /// rows at distance 1, lowest index first.
    static func cosineNeighbourIndices(_ x: Matrix, k: Int, threads: Int) -> [Int32]? {
        precondition(x.columns >= 1 && x.columns <= 3)
        let n = x.rows, d = x.columns
        var unit = Matrix(zeros: n, d)
        var zeroRows: [Int] = []
        for i in 0..<n {
            var sum = 0.0
            for c in 0..<d { sum += Double(x[i, c]) * Double(x[i, c]) }
            guard sum.isFinite else { return nil }
            if sum == 0 { zeroRows.append(i) }
            let length = sum.squareRoot()
            for c in 0..<d { unit[i, c] = sum > 0 ? Float(Double(x[i, c]) / length) : 4 }
        }
        guard let found = nearest(unit, k: k, duplicates: DuplicateRows(unit, threads: threads), threads: threads)?.nearest
        else { return nil }
        guard !zeroRows.isEmpty else { return found.indices }
        // Cosine distance from each list's chord; a zero row's list and the zero rows in the others made anew.
        var graph = [Int32](repeating: -1, count: n * k)
        var isZero = [Bool](repeating: false, count: n)
        for i in zeroRows { isZero[i] = true }
        for i in 0..<n {
            var candidates: [(distance: Double, index: Int)]
            if isZero[i] {
                candidates = zeroRows.lazy.filter { $0 != i }.prefix(k).map { (0, $0) }
                var j = 0
                while candidates.count < k && j < n {
                    if !isZero[j] { candidates.append((1, j)) }
                    j += 1
                }
            } else {
                candidates = found.neighbours(of: i).filter { !isZero[$0.1] }.map { (Double($0.0) * Double($0.0) / 2, $0.1) }
                candidates += zeroRows.prefix(k).map { (1, $0) }
                candidates.sort { ($0.distance, $0.index) < ($1.distance, $1.index) }
            }
            for (slot, candidate) in candidates.prefix(k).enumerated() { graph[i * k + slot] = Int32(candidate.index) }
        }
        return graph
    }

    // For the workers of one search: each writes only its own rows' lists and its own slot of
    // `computed`; the buffers outlive the search.
    private struct Shared: @unchecked Sendable {
        let lists: UnsafeNeighbourLists
        let computed: UnsafeMutablePointer<Int>
    }

    /// The distinct rows in tree order, padded to three coordinates, and the nodes' boxes.
    struct Tree: Sendable {
        /// Coordinates of the distinct row at tree position p: `coordinates[3p ..< 3p + 3]`.
        private(set) var coordinates: [Double] = []
        /// The rows equal to the one at tree position p: `members[memberStart[p] ..< memberStart[p + 1]]`, ascending.
        private(set) var memberStart: [Int32] = []
        private(set) var members: [Int32] = []
        /// Node n covers tree positions `starts[n] ..< ends[n]`; its children are `firstChild[n]` and
        /// the one after it (-1 for a leaf); its box is `lower[3n ..< 3n + 3]`, `upper[...]`.
        private(set) var starts: [Int32] = [], ends: [Int32] = [], firstChild: [Int32] = []
        private(set) var lower: [Double] = [], upper: [Double] = []

        init(_ x: Matrix, duplicates: DuplicateRows) {
            let n = x.rows, d = x.columns
            // One entry per group of equal rows (its lowest index), then its members in ascending order.
            var owners: [Int32] = []
            var ownerCoordinates: [Double] = []  // 3 per owner, in the order of `owners`
            var memberCount = [Int32](repeating: 0, count: n)
            x.storage.withUnsafeBufferPointer { values in
                for i in 0..<n {
                    let owner = duplicates.any && duplicates.group[i] >= 0 ? duplicates.group[i] : i
                    if owner == i {
                        owners.append(Int32(i))
                        for c in 0..<3 { ownerCoordinates.append(c < d ? Double(values[i * d + c]) : 0) }
                    }
                    memberCount[owner] += 1
                }
            }
            // Owners by their place in `owners`, permuted into tree order by the build.
            var positions = (0..<Int32(owners.count)).map { $0 }
            build(positions: &positions, ownerCoordinates: ownerCoordinates)
            coordinates.reserveCapacity(3 * positions.count)
            for ordinal in positions { coordinates += ownerCoordinates[3 * Int(ordinal)..<3 * Int(ordinal) + 3] }
            // Members: a group's list is filled in ascending order of index.
            var positionOfOwner = [Int32](repeating: -1, count: n)
            for (p, ordinal) in positions.enumerated() { positionOfOwner[Int(owners[Int(ordinal)])] = Int32(p) }
            memberStart = [Int32](repeating: 0, count: positions.count + 1)
            for (p, ordinal) in positions.enumerated() {
                memberStart[p + 1] = memberStart[p] + memberCount[Int(owners[Int(ordinal)])]
            }
            members = [Int32](repeating: 0, count: n)
            var cursor = memberStart
            for i in 0..<n {
                let owner = duplicates.any && duplicates.group[i] >= 0 ? duplicates.group[i] : i
                let p = Int(positionOfOwner[owner])
                members[Int(cursor[p])] = Int32(i)
                cursor[p] += 1
            }
        }

        /// Builds the nodes over `positions` (owners), splitting each at the median of its widest
        /// coordinate, and leaves `positions` in tree order.
        private mutating func build(positions: inout [Int32], ownerCoordinates: [Double]) {
            func value(_ ordinal: Int32, _ c: Int) -> Double { ownerCoordinates[3 * Int(ordinal) + c] }
            var keys = [Double](repeating: 0, count: positions.count)
            var pending: [(node: Int, start: Int, end: Int)] = []
            func addNode(_ start: Int, _ end: Int) -> Int {
                let node = starts.count
                starts.append(Int32(start))
                ends.append(Int32(end))
                firstChild.append(-1)
                for c in 0..<3 {
                    var low = Double.infinity, high = -Double.infinity
                    for p in start..<end {
                        let v = value(positions[p], c)
                        low = min(low, v)
                        high = max(high, v)
                    }
                    lower.append(low)
                    upper.append(high)
                }
                pending.append((node, start, end))
                return node
            }
            guard !positions.isEmpty else { return }
            _ = addNode(0, positions.count)
            while let (node, start, end) = pending.popLast() {
                guard end - start > LowDimensionalSearch.leafSize else { continue }
                var axis = 0
                for c in 1..<3 where upper[3 * node + c] - lower[3 * node + c] > upper[3 * node + axis] - lower[3 * node + axis] {
                    axis = c
                }
                // Distinct rows in a box wider than one point: the widest extent is positive.
                for p in start..<end { keys[p] = value(positions[p], axis) }
                let middle = (start + end) / 2
                Self.select(middle, in: start..<end, keys: &keys, values: &positions)
                let left = addNode(start, middle)
                _ = addNode(middle, end)
                firstChild[node] = Int32(left)
            }
        }

        /// Reorders `range` so that position `target` holds the element of its rank by key, smaller
        /// or equal keys before it and larger or equal after (quickselect with three-way partitions,
        /// so runs of equal keys cost no more than distinct ones).
        static func select(_ target: Int, in range: Range<Int>, keys: inout [Double], values: inout [Int32]) {
            var low = range.lowerBound, high = range.upperBound
            while high - low > 1 {
                // Median of three for the pivot.
                let a = keys[low], b = keys[(low + high) / 2], c = keys[high - 1]
                let pivot = max(min(a, b), min(max(a, b), c))
                var less = low, i = low, greater = high
                while i < greater {
                    if keys[i] < pivot {
                        keys.swapAt(i, less); values.swapAt(i, less)
                        less += 1; i += 1
                    } else if keys[i] > pivot {
                        greater -= 1
                        keys.swapAt(i, greater); values.swapAt(i, greater)
                    } else {
                        i += 1
                    }
                }
                if target < less { high = less } else if target >= greater { low = greater } else { return }
            }
        }

        /// Fills the list of row `point`, at tree position `position`: the nearer child first, a
        /// subtree only while its box is not farther than the k-th distance so far. Returns the
        /// number of distances computed.
        func search(for point: Int, at position: Int, into lists: UnsafeNeighbourLists,
                    stack: inout [(node: Int32, distance: Float)]) -> Int {
            let q0 = coordinates[3 * position], q1 = coordinates[3 * position + 1], q2 = coordinates[3 * position + 2]
            var computed = 0
            coordinates.withUnsafeBufferPointer { coordinates in
                lower.withUnsafeBufferPointer { lower in
                    upper.withUnsafeBufferPointer { upper in
                        // As the definition: the sum of squares in double, in coordinate order, rounded to float.
                        @inline(__always) func boxDistance(_ node: Int) -> Float {
                            let b = 3 * node
                            let g0 = max(lower[b] - q0, 0, q0 - upper[b])
                            let g1 = max(lower[b + 1] - q1, 0, q1 - upper[b + 1])
                            let g2 = max(lower[b + 2] - q2, 0, q2 - upper[b + 2])
                            var sum = 0.0
                            sum += g0 * g0
                            sum += g1 * g1
                            sum += g2 * g2
                            return Float(sum.squareRoot())
                        }
                        stack.removeAll(keepingCapacity: true)
                        stack.append((0, 0))
                        while let (node, distance) = stack.popLast() {
                            // Strictly farther only: an equal distance may still bring a lower index.
                            guard !(distance > lists.worst[point]) else { continue }
                            let n = Int(node)
                            let child = Int(firstChild[n])
                            if child >= 0 {
                                let a = boxDistance(child), b = boxDistance(child + 1)
                                // The nearer child is popped first.
                                if a <= b {
                                    stack.append((Int32(child + 1), b))
                                    stack.append((Int32(child), a))
                                } else {
                                    stack.append((Int32(child), a))
                                    stack.append((Int32(child + 1), b))
                                }
                                continue
                            }
                            computed += Int(ends[n] - starts[n])
                            for p in Int(starts[n])..<Int(ends[n]) {
                                let t0 = q0 - coordinates[3 * p], t1 = q1 - coordinates[3 * p + 1], t2 = q2 - coordinates[3 * p + 2]
                                var sum = 0.0
                                sum += t0 * t0
                                sum += t1 * t1
                                sum += t2 * t2
                                let distance = Float(sum.squareRoot())
                                // Members ascend: once one is refused at this distance, so are the rest.
                                for m in Int(memberStart[p])..<Int(memberStart[p + 1]) {
                                    let neighbour = Int(members[m])
                                    if neighbour == point { continue }
                                    guard lists.offer(distance, neighbour: neighbour, for: point) else { break }
                                }
                            }
                        }
                    }
                }
            }
            return computed
        }
    }
}
