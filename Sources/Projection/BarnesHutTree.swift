/// A quadtree over a planar layout for t-SNE's repulsive forces (Barnes-Hut, van der Maaten
/// 2014): a cell seen from far enough away acts as one point of its whole mass at its centre of
/// mass, so a point's repulsion costs about log N cells instead of N points.
///
/// The tree is rebuilt at every iteration from the points' Morton (Z-order) keys: sorted keys put
/// every cell's points in one contiguous run, so a cell is a range of ranks, and "does this cell
/// hold the point itself" is a comparison. Cells are kept in depth-first order with the index of
/// the cell after each subtree, so a query walks them in one loop without a stack.
///
/// Points whose quantised coordinates coincide (duplicates, or closer than the box's width over
/// 2^`axisBits`) share one leaf, seen at its centre of mass. A cell with a single occupied child
/// is not stored: the child stands in for it, with its own (tighter) width.
struct BarnesHutTree {
    struct Cell {
        var centreX: Double
        var centreY: Double
        /// The cell's side length, squared (the opening test compares squares).
        var widthSquared: Double
        /// The rank of its first point in Morton order; its points are `first ..< first + count`.
        var first: Int32
        var count: Int32
        /// The index of the first cell after this one's subtree (`index + 1` for a leaf).
        var next: Int32
    }

    /// Points per leaf, at most: a leaf near a point is summed point by point, which costs less
    /// than a subtree of cells (unless its points coincide past the quantisation; see `rebuild`).
    static let leafCapacity = 16

    private(set) var cells: [Cell] = []
    /// The points' coordinates in Morton order, for the leaves summed point by point.
    private var sortedX: [Double] = []
    private var sortedY: [Double] = []
    /// The rank of each point in Morton order.
    private(set) var rank: [Int32] = []
    /// The points' Morton keys, rank in the low bits: sorting them sorts the points.
    private var keys: [UInt64] = []
    private var indexBits = 0
    private var axisBits = 0

    /// Rebuilds the tree over the points `(x[i], y[i])`, reusing the storage of the last build.
    /// The same points give the same tree, cell for cell.
    mutating func rebuild(x: [Double], y: [Double]) {
        let n = x.count
        cells.removeAll(keepingCapacity: true)
        guard n > 0 else { return }
        // The key holds the point's index below its interleaved coordinates, so keys are unique
        // and sorting them is deterministic; what is left of 64 bits sets the quantisation.
        indexBits = max(1, Int.bitWidth - (n - 1).leadingZeroBitCount)
        axisBits = min(26, (64 - indexBits) / 2)
        var minX = x[0], maxX = x[0], minY = y[0], maxY = y[0]
        for i in 1..<n {
            minX = min(minX, x[i]); maxX = max(maxX, x[i])
            minY = min(minY, y[i]); maxY = max(maxY, y[i])
        }
        let side = max(maxX - minX, maxY - minY)
        let levels = Double(UInt64(1) << axisBits)
        let scale = side > 0 && side.isFinite ? levels / side : 0
        let top = levels - 1
        keys.removeAll(keepingCapacity: true)
        for i in 0..<n {
            let qx = UInt64(min(max((x[i] - minX) * scale, 0), top))
            let qy = UInt64(min(max((y[i] - minY) * scale, 0), top))
            let morton = Self.spread(qx) | Self.spread(qy) << 1
            keys.append(morton << indexBits | UInt64(i))
        }
        keys.sort()
        if rank.count != n { rank = [Int32](repeating: 0, count: n) }
        let indexMask = UInt64(1) << indexBits - 1
        sortedX.removeAll(keepingCapacity: true)
        sortedY.removeAll(keepingCapacity: true)
        for r in 0..<n {
            let i = Int(keys[r] & indexMask)
            rank[i] = Int32(r)
            sortedX.append(x[i])
            sortedY.append(y[i])
        }
        addCell(ranks: 0..<n, level: 0, width: side, x: x, y: y)
    }

    /// Adds the cell of the ranks `ranks` (all in one quadrant down to `level`) and its subtree;
    /// returns its centre of mass.
    @discardableResult
    private mutating func addCell(ranks: Range<Int>, level: Int, width: Double,
                                  x: [Double], y: [Double]) -> (x: Double, y: Double) {
        // Descend while every point falls in the same child: that child stands for this cell.
        var level = level, width = width
        while ranks.count > Self.leafCapacity, level < axisBits,
              quadrant(ranks.lowerBound, level: level) == quadrant(ranks.upperBound - 1, level: level) {
            level += 1
            width /= 2
        }
        let index = cells.count
        cells.append(Cell(centreX: 0, centreY: 0, widthSquared: width * width, first: Int32(ranks.lowerBound),
                          count: Int32(ranks.count), next: 0))
        var sumX = 0.0, sumY = 0.0
        if ranks.count <= Self.leafCapacity || level == axisBits {
            // A leaf: a few points, or points that coincide after quantisation.
            for r in ranks {
                sumX += sortedX[r]
                sumY += sortedY[r]
            }
        } else {
            // Keys are sorted, so the four children are consecutive runs: find where each ends.
            var start = ranks.lowerBound
            while start < ranks.upperBound {
                let q = quadrant(start, level: level)
                var low = start + 1, high = ranks.upperBound
                while low < high {
                    let middle = (low + high) / 2
                    if quadrant(middle, level: level) == q { low = middle + 1 } else { high = middle }
                }
                let child = start..<low
                let centre = addCell(ranks: child, level: level + 1, width: width / 2, x: x, y: y)
                sumX += centre.x * Double(child.count)
                sumY += centre.y * Double(child.count)
                start = low
            }
        }
        let count = Double(ranks.count)
        cells[index].centreX = sumX / count
        cells[index].centreY = sumY / count
        cells[index].next = Int32(cells.count)
        return (sumX / count, sumY / count)
    }

    /// The point at `rank` in Morton order.
    func point(at rank: Int) -> Int { Int(keys[rank] & (UInt64(1) << indexBits - 1)) }

    /// The child quadrant (0...3) of the point at rank `r` below the cell at `level`.
    private func quadrant(_ r: Int, level: Int) -> UInt64 {
        keys[r] >> (indexBits + 2 * (axisBits - 1 - level)) & 3
    }

    /// The repulsion on point `i` at `(px, py)`: the sum over the other points j of `q_ij^2 (p - y_j)`
    /// and of `q_ij`, with `q_ij = 1 / (1 + |p - y_j|^2)`, a cell summarised at its centre of mass
    /// when `width / distance < theta` (openTSNE's test). A cell holding the point itself is never
    /// summarised; a leaf that is not summarised is summed point by point, the point itself left out
    /// (a leaf of more coinciding points than `leafCapacity` is summarised whatever its distance).
    func repulsion(on i: Int, x px: Double, y py: Double, thetaSquared: Double) -> (x: Double, y: Double, q: Double) {
        let r = Int(rank[i])
        var forceX = 0.0, forceY = 0.0, sumQ = 0.0
        func add(mass: Double, dx: Double, dy: Double, distanceSquared: Double) {
            let q = 1 / (1 + distanceSquared)
            sumQ += mass * q
            let pull = mass * q * q
            forceX += pull * dx
            forceY += pull * dy
        }
        var c = 0
        cells.withUnsafeBufferPointer { cells in
            sortedX.withUnsafeBufferPointer { sortedX in
                sortedY.withUnsafeBufferPointer { sortedY in
                    while c < cells.count {
                        let cell = cells[c]
                        let first = Int(cell.first), count = Int(cell.count)
                        let holdsPoint = first <= r && r < first + count
                        let dx = px - cell.centreX, dy = py - cell.centreY
                        let distanceSquared = dx * dx + dy * dy
                        if !holdsPoint && cell.widthSquared < thetaSquared * distanceSquared {
                            add(mass: Double(count), dx: dx, dy: dy, distanceSquared: distanceSquared)
                            c = Int(cell.next)
                        } else if Int(cell.next) != c + 1 {
                            c += 1
                        } else if count <= Self.leafCapacity {
                            for m in first..<first + count where m != r {
                                let dx = px - sortedX[m], dy = py - sortedY[m]
                                add(mass: 1, dx: dx, dy: dy, distanceSquared: dx * dx + dy * dy)
                            }
                            c += 1
                        } else {
                            add(mass: Double(count - (holdsPoint ? 1 : 0)), dx: dx, dy: dy, distanceSquared: distanceSquared)
                            c += 1
                        }
                    }
                }
            }
        }
        return (forceX, forceY, sumQ)
    }

    /// Spreads the low 32 bits of `v` to the even bits of the result (Morton interleaving).
    private static func spread(_ v: UInt64) -> UInt64 {
        var v = v & 0xFFFF_FFFF
        v = (v | v << 16) & 0x0000_FFFF_0000_FFFF
        v = (v | v << 8) & 0x00FF_00FF_00FF_00FF
        v = (v | v << 4) & 0x0F0F_0F0F_0F0F_0F0F
        v = (v | v << 2) & 0x3333_3333_3333_3333
        v = (v | v << 1) & 0x5555_5555_5555_5555
        return v
    }
}
