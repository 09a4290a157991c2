#if canImport(Glibc)
import Glibc
#endif
private import CLayoutKernel
import Dispatch
import LinearAlgebra

/// UMAP (McInnes, Healy and Melville 2018) of one checkpoint, on the exact neighbour lists the
/// outlier search found, and following the run: a checkpoint after the first starts from the
/// previous layout and is held near it, so a sample keeps its place unless its neighbourhood changed.
///
/// Follows umap-learn (0.5) where it is defined: the fuzzy simplicial set (smooth kNN distances
/// with local connectivity 1, fuzzy union), edges sampled in proportion to their weight over
/// 500 epochs up to 10,000 samples and 200 above, 5 negative samples an edge, gradients clipped
/// at 4, a learning rate falling linearly from 1, and the `a, b` curve fitted to `min_dist`.
///
/// Differs where a film needs it:
/// - The first layout starts from the PCA scores (umap-learn's `init="pca"`), not a spectral one.
/// - Each epoch moves every sample from the positions at the epoch's start, a sample moving only
///   itself (both ends of an edge are moved as they are each other's edge); the negative samples
///   come from a generator per sample and epoch. So a layout depends on the seed only, never on the
///   number of threads or their timing.
/// - A later checkpoint runs `followingEpochs` from the previous layout with a pull of
///   `anchoring` towards it (as AlignedUMAP's regularisation between slices).
public struct UMAP: Sendable, Equatable {
    /// `n_neighbors`: the neighbourhood size, the sample itself counted (as umap-learn counts it).
    public var neighbours: Int
    /// `min_dist`: how tightly points may pack.
    public var minimumDistance: Float
    public var seed: UInt64
    // A checkpoint after the first: a short, gentle run held near the previous layout. Measured on
    // samples/cnn-fmnist (every fourth checkpoint): the points move 0.14 of the layout's radius a
    // step against 0.37 for umap-learn fitted independently and rotated onto the previous fit, and
    // the last checkpoint's trustworthiness is 0.988 (umap-learn's 0.991). A learning rate of 1 and
    // a pull of 0.02 moved them 0.29, with trustworthiness 0.986.
    /// Epochs of a checkpoint after the first.
    public var followingEpochs = 50
    /// The learning rate a checkpoint after the first starts from (the first starts from 1, as umap-learn).
    public var followingRate: Float = 0.05
    /// The pull towards the previous layout per epoch, as a fraction of the learning rate.
    public var anchoring: Float = 0.2

    public init(neighbours: Int = 15, minimumDistance: Float = 0.1, seed: UInt64 = 0) {
        self.neighbours = neighbours
        self.minimumDistance = minimumDistance
        self.seed = seed
    }

    /// The neighbours per sample the graph must list: `n_neighbors - 1` others.
    public static func graphNeighbours(_ neighbours: Int, samples: Int) -> Int {
        max(1, min(neighbours - 1, samples - 1))
    }

    /// The layout of one checkpoint.
    /// - Parameters:
    ///   - start: the first checkpoint's PCA scores, or the previous checkpoint's layout.
    ///   - first: whether this is the run's first checkpoint (a full optimisation from `start`).
    public func layout(graph: NeighbourGraph, start: PlanarPoints, first: Bool, threads: Int) -> PlanarPoints {
        let n = graph.count
        precondition(start.count == n)
        guard n >= 2 else { return PlanarPoints(x: [Float](repeating: 0, count: n), y: [Float](repeating: 0, count: n)) }
        let fullEpochs = n <= 10_000 ? 500 : 200
        let epochs = first ? fullEpochs : min(fullEpochs, followingEpochs)
        let edges = FuzzyGraph(graph, neighbours: neighbours).pruned(below: 1 / Float(fullEpochs))
        let (a, b) = Self.curve(minimumDistance: minimumDistance)
        var points = first ? Self.initial(start, seed: seed) : FollowingStart.seated(start, graph: graph)
        let anchor = first ? nil : start
        Optimisation(edges: edges, epochs: epochs, a: a, b: b, seed: seed, anchor: anchor, anchoring: anchoring,
                     initialRate: first ? 1 : followingRate)
            .run(&points, threads: threads)
        return points
    }

    /// umap-learn's PCA start: scaled so the largest coordinate is 10, a little noise (1e-4) that
    /// parts equal points, then each axis stretched onto [0, 10].
    static func initial(_ scores: PlanarPoints, seed: UInt64) -> PlanarPoints {
        let largest = max(scores.x.map(abs).max() ?? 0, scores.y.map(abs).max() ?? 0)
        let expansion: Float = largest > 0 ? 10 / largest : 1
        var random = SplitMix(seed: seed ^ 0x5ca1_ab1e)
        var x = scores.x.map { $0 * expansion + 1e-4 * Float(random.normal()) }
        var y = scores.y.map { $0 * expansion + 1e-4 * Float(random.normal()) }
        func stretch(_ values: inout [Float]) {
            let low = values.min() ?? 0, high = values.max() ?? 0
            let span = high - low
            values = values.map { span > 0 ? 10 * ($0 - low) / span : 5 }
        }
        stretch(&x)
        stretch(&y)
        return PlanarPoints(x: x, y: y)
    }

    /// umap-learn's `find_ab_params(spread: 1, min_dist)`: the least-squares fit of
    /// `1 / (1 + a x^(2b))` to 1 below `min_dist` and `exp(-(x - min_dist))` above, on 300 points
    /// of [0, 3], by Levenberg-Marquardt (as scipy's `curve_fit`).
    public static func curve(minimumDistance: Float, spread: Double = 1) -> (a: Float, b: Float) {
        let minimum = Double(minimumDistance)
        let xs = (0..<300).map { 3 * spread * Double($0) / 299 }
        let ys = xs.map { $0 < minimum ? 1 : exp(-($0 - minimum) / spread) }
        var a = 1.0, b = 1.0, damping = 1e-3
        func cost(_ a: Double, _ b: Double) -> Double {
            zip(xs, ys).reduce(0) { sum, point in
                let r = 1 / (1 + a * pow(point.0, 2 * b)) - point.1
                return sum + r * r
            }
        }
        var current = cost(a, b)
        for _ in 0..<200 {
            // Normal equations of the 2-parameter Gauss-Newton step.
            var jaa = 0.0, jab = 0.0, jbb = 0.0, ga = 0.0, gb = 0.0
            for (x, y) in zip(xs, ys) where x > 0 {
                let power = pow(x, 2 * b), denominator = 1 + a * power
                let r = 1 / denominator - y
                let da = -power / (denominator * denominator)
                let db = -a * power * 2 * log(x) / (denominator * denominator)
                jaa += da * da; jab += da * db; jbb += db * db
                ga += da * r; gb += db * r
            }
            let (maa, mbb) = (jaa * (1 + damping), jbb * (1 + damping))
            let determinant = maa * mbb - jab * jab
            guard determinant.isFinite, determinant != 0 else { break }
            let stepA = -(mbb * ga - jab * gb) / determinant
            let stepB = -(maa * gb - jab * ga) / determinant
            let trial = cost(a + stepA, b + stepB)
            if trial < current, a + stepA > 0, b + stepB > 0 {
                a += stepA; b += stepB
                let gain = current - trial
                current = trial
                damping = max(damping / 10, 1e-12)
                if gain < 1e-14 { break }
            } else {
                damping *= 10
                if damping > 1e12 { break }
            }
        }
        return (Float(a), Float(b))
    }
}

/// The fuzzy simplicial set of a neighbour graph: its symmetric weights, as compressed rows.
struct FuzzyGraph {
    /// `rows[i]..<rows[i + 1]`: sample i's entries in `columns` and `weights`.
    var rows: [Int]
    var columns: [Int32]
    var weights: [Float]

    /// umap-learn's `fuzzy_simplicial_set` on exact lists: each sample's distances smoothed
    /// against its nearest one (`rho`) and a scale (`sigma`) that makes the memberships sum to
    /// `log2(neighbours)`; then the fuzzy union `a + b - ab` of the two directions of each pair.
    init(_ graph: NeighbourGraph, neighbours: Int) {
        let n = graph.count, k = graph.k
        let target = log2(Float(max(2, min(neighbours, k + 1))))
        var membership = [Float](repeating: 0, count: n * k)
        let filled = graph.distances.enumerated().filter { graph.indices[$0.offset] >= 0 }.map(\.element)
        // umap-learn's lists include the sample itself at distance 0: its means count it.
        let meanDistance = filled.reduce(0, +) / Float(max(1, filled.count + n))
        for i in 0..<n {
            let slots = (i * k..<(i + 1) * k).filter { graph.indices[$0] >= 0 && Int(graph.indices[$0]) != i }
            let distances = slots.map { graph.distances[$0] }
            let rho = distances.first { $0 > 0 } ?? distances.max() ?? 0
            var low: Float = 0, high = Float.infinity, sigma: Float = 1
            for _ in 0..<64 {
                var sum: Float = 0
                for d in distances { sum += d - rho > 0 ? exp(-(d - rho) / sigma) : 1 }
                if abs(sum - target) < 1e-5 { break }
                if sum > target {
                    high = sigma
                    sigma = (low + high) / 2
                } else {
                    low = sigma
                    sigma = high == .infinity ? sigma * 2 : (low + high) / 2
                }
            }
            let ownMean = distances.reduce(0, +) / Float(distances.count + 1)
            sigma = max(sigma, 1e-3 * (rho > 0 ? ownMean : meanDistance))
            for (slot, d) in zip(slots, distances) {
                membership[slot] = d - rho <= 0 || sigma == 0 ? 1 : exp(-(d - rho) / sigma)
            }
        }
        // Each pair once per direction it was listed in: i's list, and the lists that name i.
        var reverseCount = [Int](repeating: 0, count: n)
        func lists(_ i: Int, _ j: Int) -> Int? {
            (j * k..<(j + 1) * k).first { graph.indices[$0] == Int32(i) }
        }
        var reverseOnly: [(from: Int32, to: Int32, weight: Float)] = []
        for j in 0..<n {
            for slot in j * k..<(j + 1) * k {
                let i = Int(graph.indices[slot])
                guard i >= 0, i != j, lists(j, i) == nil else { continue }
                reverseOnly.append((Int32(i), Int32(j), membership[slot]))
                reverseCount[i] += 1
            }
        }
        rows = [0]
        rows.reserveCapacity(n + 1)
        for i in 0..<n { rows.append(rows[i] + k + reverseCount[i]) }
        columns = [Int32](repeating: -1, count: rows[n])
        weights = [Float](repeating: 0, count: rows[n])
        var fill = Array(rows.dropLast())
        for i in 0..<n {
            for slot in i * k..<(i + 1) * k {
                let j = Int(graph.indices[slot])
                guard j >= 0, j != i else { continue }
                let there = lists(i, j).map { membership[$0] } ?? 0
                let here = membership[slot]
                columns[fill[i]] = Int32(j)
                weights[fill[i]] = here + there - here * there
                fill[i] += 1
            }
        }
        for entry in reverseOnly {
            let i = Int(entry.from)
            columns[fill[i]] = entry.to
            weights[fill[i]] = entry.weight
            fill[i] += 1
        }
    }

    /// Without the edges lighter than `fraction` of the heaviest (umap-learn drops those that would
    /// be sampled less than once in its epochs).
    func pruned(below fraction: Float) -> FuzzyGraph {
        let cut = (weights.max() ?? 0) * fraction
        var copy = self
        copy.rows = [0]
        copy.columns = []
        copy.weights = []
        for i in 0..<rows.count - 1 {
            for e in rows[i]..<rows[i + 1] where columns[e] >= 0 && weights[e] >= cut && weights[e] > 0 {
                copy.columns.append(columns[e])
                copy.weights.append(weights[e])
            }
            copy.rows.append(copy.columns.count)
        }
        return copy
    }
}

/// The stochastic gradient descent of a UMAP layout over its epochs.
private struct Optimisation {
    let edges: FuzzyGraph
    let epochs: Int
    let a: Float, b: Float
    let seed: UInt64
    let anchor: PlanarPoints?
    let anchoring: Float
    let initialRate: Float
    /// umap-learn's schedule: an edge of weight w is sampled every `heaviest / w` epochs, and
    /// its negative samples 5 times as often.
    let interval: [Float]
    static let negativeSamples: Float = 5
    static let clip: Float = 4

    init(edges: FuzzyGraph, epochs: Int, a: Float, b: Float, seed: UInt64, anchor: PlanarPoints?, anchoring: Float,
         initialRate: Float) {
        self.initialRate = initialRate
        self.edges = edges
        self.epochs = epochs
        self.a = a
        self.b = b
        self.seed = seed
        self.anchor = anchor
        self.anchoring = anchoring
        let heaviest = edges.weights.max() ?? 1
        interval = edges.weights.map { heaviest / $0 }
    }

    func run(_ points: inout PlanarPoints, threads: Int) {
        let n = points.count
        var nextSample = interval
        var nextNegative = interval.map { $0 / Self.negativeSamples }
        let workers = max(1, min(threads, n / 2048))
        let chunk = (n + workers - 1) / workers
        for epoch in 0..<epochs {
            let rate = initialRate * (1 - Float(epoch) / Float(epochs))
            let snapshot = points
            points.x.withUnsafeMutableBufferPointer { px in
                points.y.withUnsafeMutableBufferPointer { py in
                    nextSample.withUnsafeMutableBufferPointer { nextSample in
                        nextNegative.withUnsafeMutableBufferPointer { nextNegative in
                            let shared = UncheckedSendable((px.baseAddress!, py.baseAddress!, nextSample.baseAddress!,
                                                            nextNegative.baseAddress!))
                            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                                let (x, y, sample, negative) = shared.value
                                let heads = worker * chunk..<min(n, (worker + 1) * chunk)
                                if Self.vectorised {
                                    moveByEights(heads, epoch: epoch, rate: rate, x: x, y: y, sample: sample,
                                                 negative: negative, snapshot: snapshot)
                                    return
                                }
                                var first: [Int32] = [], second: [Int32] = []
                                // Two samples at a time: each one's moves form a chain (every move
                                // starts where the last ended), and two chains side by side keep
                                // the core busy while each waits on its powers.
                                var head = heads.lowerBound
                                while head < heads.upperBound {
                                    first.removeAll(keepingCapacity: true)
                                    second.removeAll(keepingCapacity: true)
                                    schedule(head, epoch: epoch, sample: sample, negative: negative, count: n, into: &first)
                                    if head + 1 < heads.upperBound {
                                        schedule(head + 1, epoch: epoch, sample: sample, negative: negative, count: n,
                                                 into: &second)
                                        apply(first, head, and: second, head + 1, rate: rate, x: x, y: y,
                                              snapshot: snapshot)
                                    } else {
                                        apply(first, head, and: [], -1, rate: rate, x: x, y: y, snapshot: snapshot)
                                    }
                                    head += 2
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Whether the epochs run eight samples to a vector (`Sources/CLayoutKernel`, AVX2 and FMA).
    static let vectorised = lk_is_supported() != 0

    /// The samples `heads` in eights, one to a vector lane: each one's moves form a chain (every
    /// move starts where the last ended), and a vector runs eight chains for the price of one.
    /// The kernel's powers come from polynomials, so a layout here differs from the scalar path's
    /// in the last bits; it is still the same on any number of threads.
    private func moveByEights(_ heads: Range<Int>, epoch: Int, rate: Float, x: UnsafeMutablePointer<Float>,
                              y: UnsafeMutablePointer<Float>, sample: UnsafeMutablePointer<Float>,
                              negative: UnsafeMutablePointer<Float>, snapshot: PlanarPoints) {
        let width = Int(LK_LANES)
        var moves: [Int32] = []
        var starts = [Int](repeating: 0, count: width + 1)
        var start = [Int32](repeating: 0, count: width), count = [Int32](repeating: 0, count: width)
        var px = [Float](repeating: 0, count: width), py = px
        for group in Swift.stride(from: heads.lowerBound, to: heads.upperBound, by: width) {
            let lanes = min(width, heads.upperBound - group)
            moves.removeAll(keepingCapacity: true)
            for lane in 0..<lanes {
                starts[lane] = moves.count
                schedule(group + lane, epoch: epoch, sample: sample, negative: negative, count: snapshot.count,
                         into: &moves)
            }
            starts[lanes] = moves.count
            var longest = 0
            for lane in 0..<width {
                start[lane] = lane < lanes ? Int32(starts[lane]) : 0
                count[lane] = lane < lanes ? Int32(starts[lane + 1] - starts[lane]) : 0
                longest = max(longest, Int(count[lane]))
                px[lane] = lane < lanes ? x[group + lane] : 0
                py[lane] = lane < lanes ? y[group + lane] : 0
            }
            snapshot.x.withUnsafeBufferPointer { sx in
                snapshot.y.withUnsafeBufferPointer { sy in
                    lk_move_eight(moves, start, count, Int64(longest), &px, &py, sx.baseAddress, sy.baseAddress, a, b,
                                  rate, Self.clip)
                }
            }
            for lane in 0..<lanes { settle((px[lane], py[lane]), group + lane, rate: rate, x: x, y: y) }
        }
    }

    /// One sample's moves in one epoch, in order, appended to `moves`: towards the tail of each edge due
    /// (its index), then away from that edge's negative samples (`~index`). Advances the edges'
    /// schedules; the negative samples come from a generator of the sample and epoch.
    @inline(__always)
    private func schedule(_ head: Int, epoch: Int, sample: UnsafeMutablePointer<Float>,
                          negative: UnsafeMutablePointer<Float>, count n: Int, into moves: inout [Int32]) {
        var random = SplitMix(seed: seed &+ UInt64(epoch) &* 0x9e37_79b9_7f4a_7c15 &+ UInt64(head) &* 0xbf58_476d_1ce4_e5b9)
        let now = Float(epoch)
        for e in edges.rows[head]..<edges.rows[head + 1] where sample[e] <= now {
            moves.append(edges.columns[e])
            sample[e] += interval[e]
            let negativeInterval = interval[e] / Self.negativeSamples
            let draws = max(0, Int((now - negative[e]) / negativeInterval))
            for _ in 0..<draws {
                let other = Int(((random.next() >> 32) &* UInt64(n)) >> 32)  // uniform in 0..<n without a division
                if other != head { moves.append(~Int32(other)) }
            }
            negative[e] += Float(draws) * negativeInterval
        }
    }

    /// Makes the moves of two samples (`second` may be empty, with head -1), side by side, each
    /// from the positions at the epoch's start, and pulls each towards its anchor.
    @inline(__always)
    private func apply(_ first: [Int32], _ firstHead: Int, and second: [Int32], _ secondHead: Int, rate: Float,
                       x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, snapshot: PlanarPoints) {
        var one = (x[firstHead], y[firstHead])
        var two = secondHead >= 0 ? (x[secondHead], y[secondHead]) : (0, 0)
        let shared = min(first.count, second.count)
        for m in 0..<shared {
            step(&one, first[m], rate: rate, snapshot: snapshot)
            step(&two, second[m], rate: rate, snapshot: snapshot)
        }
        for m in shared..<first.count { step(&one, first[m], rate: rate, snapshot: snapshot) }
        for m in shared..<second.count { step(&two, second[m], rate: rate, snapshot: snapshot) }
        settle(one, firstHead, rate: rate, x: x, y: y)
        if secondHead >= 0 { settle(two, secondHead, rate: rate, x: x, y: y) }
    }

    /// One move of a sample at `at`: towards the tail of an edge (umap-learn moves both ends of
    /// each of the pair's two edges, so twice), or away from a negative sample (`~other`).
    @inline(__always)
    private func step(_ at: inout (Float, Float), _ move: Int32, rate: Float, snapshot: PlanarPoints) {
        let attracts = move >= 0
        let other = Int(attracts ? move : ~move)
        let dx = at.0 - snapshot.x[other], dy = at.1 - snapshot.y[other]
        let d2 = dx * dx + dy * dy
        guard d2 > 0 else { return }
        if attracts {
            let power = pow(d2, b - 1)
            let coefficient = -2 * a * b * power / (a * power * d2 + 1)
            at.0 += 2 * rate * Self.clipped(coefficient * dx)
            at.1 += 2 * rate * Self.clipped(coefficient * dy)
        } else {
            let coefficient = 2 * b / ((0.001 + d2) * (a * pow(d2, b) + 1))
            at.0 += rate * Self.clipped(coefficient * dx)
            at.1 += rate * Self.clipped(coefficient * dy)
        }
    }

    @inline(__always)
    private func settle(_ at: (Float, Float), _ head: Int, rate: Float, x: UnsafeMutablePointer<Float>,
                        y: UnsafeMutablePointer<Float>) {
        var (cx, cy) = at
        if let anchor {
            cx += rate * anchoring * (anchor.x[head] - cx)
            cy += rate * anchoring * (anchor.y[head] - cy)
        }
        x[head] = cx
        y[head] = cy
    }

    @inline(__always)
    static func clipped(_ value: Float) -> Float { min(max(value, -clip), clip) }
}
