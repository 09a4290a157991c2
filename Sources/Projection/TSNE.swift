import Dispatch
import LinearAlgebra
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A t-SNE layout of the neighbour graph, with openTSNE's semantics (`openTSNE.TSNE` 1.0 with
/// its defaults and `negative_gradient_method="bh"`), made to follow a training run: the first
/// checkpoint is laid out from its PCA scores, each later one from the layout before it, so a
/// sample keeps its place unless its neighbourhood changed.
///
/// - Affinities (`openTSNE.affinity.PerplexityBasedNN`): for each sample a Gaussian over its
///   listed neighbours whose precision is bisected until the distribution's perplexity is the
///   target, then `P = (P + P^T)` normalised to sum 1, sparse.
/// - Gradient (`kl_divergence_bh`): attraction over P's entries, repulsion by Barnes-Hut
///   (`BarnesHutTree`, theta 0.5), openTSNE's scaling (no factor 4; the learning rate has it).
/// - Optimiser (`gradient_descent`): momentum 0.8 in both phases (openTSNE's current default;
///   0.5 was the old early momentum), delta-bar-delta gains (+0.2 / x0.8, at least 0.01),
///   learning rate `N / exaggeration` ("auto"), each point's step clipped to length 5, the
///   layout re-centred after every step.
///
/// The result is deterministic: the same graph, start and seed give the same layout, bit for
/// bit, for any number of threads. Every per-point quantity is computed by one worker from
/// shared read-only state in a fixed order, and every sum over points runs in index order.
/// Memory is linear in N (the sparse P, a tree of at most 2N cells, a few arrays of N).
public struct TSNE: Sendable, Equatable {
    /// The target perplexity: about the number of neighbours each sample attends to.
    public var perplexity: Double
    /// Seeds the jitter added to the first layout's start (openTSNE's PCA initialisation adds it
    /// too, so coinciding samples can separate).
    public var seed: UInt64

    /// openTSNE's early exaggeration, and its length in iterations.
    static let earlyExaggeration = 12.0
    static let earlyIterations = 250
    /// openTSNE's `n_iter`: the normal phase of the first layout.
    static let normalIterations = 500
    /// A later checkpoint's run, without exaggeration. Measured on 3,000 samples in 20 clusters
    /// (50-D) with 60 samples swapped between two clusters and noise on all: the swapped samples'
    /// 10 nearest in the layout were 90% their new cluster after 25 iterations, 96% after 50, all
    /// after 100; in `TSNETests` (600 samples) one of 20 was still held in its old cluster after
    /// 150, none after 200. Meanwhile the others drift as the layout keeps expanding: 3.2% (100),
    /// 5.6% (150), 8.9% (200) of its RMS radius, 4.5% at 200 once that 7% expansion is scaled out.
    ///
    /// In a film, 200 iterations at the full rate moved the points of samples/cnn-fmnist 0.15 of the
    /// layout's radius between every fourth checkpoint, against 0.21 for openTSNE fitted at each on
    /// its own and rotated onto the fit before; 100 at 0.3 of the rate moved them 0.07, with the last
    /// checkpoint's trustworthiness 0.994 either way (60 at 0.1: 0.05, trustworthiness 0.991). So
    /// gentle a run cannot carry a sample across to another cluster: `FollowingStart` seats the
    /// samples whose neighbours are elsewhere among them first.
    public var followingIterations = 100
    /// A later checkpoint's learning rate, as a fraction of the first's (`N`).
    public var followingRate = 0.3
    static let momentum = 0.8
    static let minimumGain = 0.01
    static let maximumStep = 5.0
    static let theta = 0.5
    /// openTSNE's PCA initialisation: scores scaled so the first column's standard deviation is
    /// this, plus Gaussian jitter of 1% of it.
    static let initialSpread = 1e-4
    static let jitter = 0.01

    public init(perplexity: Double = 30, seed: UInt64 = 0) {
        precondition(perplexity > 0, "t-SNE's perplexity must be positive")
        self.perplexity = perplexity
        self.seed = seed
    }

    /// The neighbours per sample the graph must list for this perplexity: `min(N - 1, 3 * perplexity)`,
    /// as openTSNE asks its neighbour search for (`k_neighbors="auto"`).
    public static func graphNeighbours(perplexity: Double, samples: Int) -> Int {
        max(0, min(samples - 1, Int(3 * perplexity)))
    }

    /// The layout of one checkpoint.
    ///
    /// - Parameters:
    ///   - graph: the checkpoint's neighbour lists (`OutlierScores.graph`); the first
    ///     `graphNeighbours(perplexity:samples:)` of each are used.
    ///   - metric: what the graph's distances are (`OutlierScores.metric`). Euclidean distances
    ///     are squared in the Gaussian, as openTSNE squares every metric's. For cosine, openTSNE's
    ///     default search (Annoy, from 1,000 samples) returns the angular distance
    ///     `sqrt(2 (1 - cos))`, whose square is the cosine distance up to a factor 2 that the
    ///     bisected precision absorbs; so `1 - cos` enters unsquared. (openTSNE's exact search,
    ///     below 1,000 samples, squares `1 - cos` instead; the larger sets are the ones to match.)
    ///   - start: with `first`, the PCA scores, rescaled and jittered as openTSNE's PCA
    ///     initialisation does (a random start when they have no spread); otherwise the previous
    ///     checkpoint's layout, same samples in the same order, used as it is.
    ///   - first: the run's first checkpoint: 250 iterations of early exaggeration (12), then 500
    ///     normal ones, as openTSNE. Otherwise 200 iterations without exaggeration, fresh gains.
    ///   - threads: workers for the per-point passes; the result does not depend on it.
    /// - Returns: the layout, finite, in t-SNE's own units (centred; a spread of tens).
    public func layout(graph: NeighbourGraph, metric: OutlierScores.Metric, start: PlanarPoints, first: Bool,
                       threads: Int) -> PlanarPoints {
        let n = graph.count
        precondition(start.count == n, "the start must place every sample of the graph")
        guard n >= 2 else { return PlanarPoints(x: [Float](repeating: 0, count: n), y: [Float](repeating: 0, count: n)) }
        let threads = max(1, threads)
        let affinities = Affinities(graph: graph, metric: metric, perplexity: perplexity, threads: threads)
        var descent = Descent(start: first ? initialLayout(start) : followingLayout(FollowingStart.seated(start, graph: graph)))
        if first {
            descent.run(iterations: Self.earlyIterations, exaggeration: Self.earlyExaggeration,
                        affinities: affinities, threads: threads)
            descent.run(iterations: Self.normalIterations, exaggeration: 1, affinities: affinities, threads: threads)
        } else {
            descent.run(iterations: followingIterations, exaggeration: 1, rate: followingRate, affinities: affinities,
                        threads: threads)
        }
        return PlanarPoints(x: descent.x.map { Float($0) }, y: descent.y.map { Float($0) })
    }

    /// openTSNE's `initialization.pca` applied to given scores: scaled so the first coordinate's
    /// (population) standard deviation is 1e-4, plus N(0, 1e-6) jitter. Scores without spread
    /// (all samples equal) or with a non-finite value get openTSNE's random start, N(0, 1e-4).
    func initialLayout(_ start: PlanarPoints) -> (x: [Double], y: [Double]) {
        var generator = SplitMix(seed: seed)
        let x = start.x.map(Double.init), y = start.y.map(Double.init)
        let deviation = Self.standardDeviation(x)
        guard deviation > 0, deviation.isFinite, y.allSatisfy(\.isFinite) else {
            return (x.map { _ in generator.normal() * Self.initialSpread },
                    y.map { _ in generator.normal() * Self.initialSpread })
        }
        let scale = Self.initialSpread / deviation, noise = Self.initialSpread * Self.jitter
        // openTSNE draws the jitter as one N x 2 array, row by row.
        var scaledX = [Double](repeating: 0, count: x.count), scaledY = scaledX
        for i in 0..<x.count {
            scaledX[i] = x[i] * scale + generator.normal() * noise
            scaledY[i] = y[i] * scale + generator.normal() * noise
        }
        return (scaledX, scaledY)
    }

    /// The previous layout as the start; a non-finite coordinate (never produced here) becomes
    /// 0, the centre of a layout made here, rather than spreading NaN through the forces.
    func followingLayout(_ start: PlanarPoints) -> (x: [Double], y: [Double]) {
        (start.x.map { $0.isFinite ? Double($0) : 0 }, start.y.map { $0.isFinite ? Double($0) : 0 })
    }

    static func standardDeviation(_ v: [Double]) -> Double {
        let mean = v.reduce(0, +) / Double(v.count)
        let squares = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return (squares / Double(v.count)).squareRoot()
    }

    /// Runs `body` over `0..<count` in blocks of points, on `threads` workers that take the next
    /// block as they finish one. Which worker takes which block varies; the results do not, as
    /// long as `body` writes only the slots of its own points.
    static func forEachBlock(count: Int, threads: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let blockSize = 256
        let blocks = (count + blockSize - 1) / blockSize
        let workers = min(threads, blocks)
        guard workers > 1 else { return body(0..<count) }
        let nextBlock = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let block = nextBlock.wrappingAdd(1, ordering: .relaxed).oldValue
                guard block < blocks else { break }
                body(block * blockSize..<min(count, (block + 1) * blockSize))
            }
        }
    }
}

extension TSNE {
    /// The symmetric input similarities `P`, sparse, rows in CSR form, summing to 1 overall.
    struct Affinities: Sendable {
        /// Row i's entries are `rowStart[i] ..< rowStart[i + 1]`.
        let rowStart: [Int]
        let columns: [Int32]
        let values: [Float]

        /// Each sample's conditional distribution over its first `graphNeighbours` neighbours
        /// (openTSNE's `compute_gaussian_perplexity`), then `P = P + P^T` normalised to sum 1.
        ///
        /// openTSNE lowers the perplexity to `k / 3` when the graph lists fewer than `perplexity`
        /// neighbours (`check_perplexity`); so does this. Slots outside `0..<N` (unfilled) and a
        /// sample listed as its own neighbour are skipped.
        init(graph: NeighbourGraph, metric: OutlierScores.Metric, perplexity: Double, threads: Int) {
            let n = graph.count
            let k = min(graph.k, TSNE.graphNeighbours(perplexity: perplexity, samples: n))
            let target = perplexity > Double(k) ? Double(k) / 3 : perplexity
            var conditional = [Float](repeating: 0, count: n * k)
            if k > 0 {
                conditional.withUnsafeMutableBufferPointer { conditional in
                    let shared = SharedRows(conditional: conditional)
                    TSNE.forEachBlock(count: n, threads: threads) { rows in
                        var squared = [Double](repeating: 0, count: k), weights = squared
                        for i in rows {
                            var m = 0
                            for slot in 0..<k {
                                let j = Int(graph.indices[i * graph.k + slot])
                                guard j >= 0, j < n, j != i else { continue }
                                let d = Double(graph.distances[i * graph.k + slot])
                                squared[m] = metric == .euclidean ? d * d : d
                                m += 1
                            }
                            Self.fitPerplexity(target, squaredDistances: squared[..<m], into: &weights)
                            m = 0
                            for slot in 0..<k {
                                let j = Int(graph.indices[i * graph.k + slot])
                                guard j >= 0, j < n, j != i else { continue }
                                shared.conditional[i * k + slot] = Float(weights[m])
                                m += 1
                            }
                        }
                    }
                }
            }
            // P + P^T: each listed pair (i, j) is an entry of row i and of row j.
            var counts = [Int](repeating: 0, count: n + 1)
            for i in 0..<n {
                for slot in 0..<k where conditional[i * k + slot] > 0 {
                    counts[i] += 1
                    counts[Int(graph.indices[i * graph.k + slot])] += 1
                }
            }
            var start = [Int](repeating: 0, count: n + 1)
            for i in 0..<n { start[i + 1] = start[i] + counts[i] }
            var cursor = start
            var columns = [Int32](repeating: 0, count: start[n]), values = [Float](repeating: 0, count: start[n])
            for i in 0..<n {
                for slot in 0..<k where conditional[i * k + slot] > 0 {
                    let j = Int(graph.indices[i * graph.k + slot]), p = conditional[i * k + slot]
                    columns[cursor[i]] = Int32(j); values[cursor[i]] = p; cursor[i] += 1
                    columns[cursor[j]] = Int32(i); values[cursor[j]] = p; cursor[j] += 1
                }
            }
            // A mutual pair appears twice in each of its rows: merge them, so the attraction
            // loop sees each pair once. (Float addition commutes, so the merge order is moot.)
            var merged = [Int](repeating: 0, count: n)
            for i in 0..<n {
                var row = (start[i]..<start[i + 1]).map { (column: columns[$0], value: values[$0]) }
                row.sort { $0.column < $1.column }
                var write = start[i]
                for entry in row {
                    if write > start[i], columns[write - 1] == entry.column {
                        values[write - 1] += entry.value
                    } else {
                        columns[write] = entry.column
                        values[write] = entry.value
                        write += 1
                    }
                }
                merged[i] = write - start[i]
            }
            var rowStart = [Int](repeating: 0, count: n + 1)
            var total = 0.0
            for i in 0..<n {
                rowStart[i + 1] = rowStart[i] + merged[i]
                for e in 0..<merged[i] {
                    columns[rowStart[i] + e] = columns[start[i] + e]
                    values[rowStart[i] + e] = values[start[i] + e]
                    total += Double(values[start[i] + e])
                }
            }
            columns.removeLast(columns.count - rowStart[n])
            values.removeLast(values.count - rowStart[n])
            if total > 0 {
                for e in values.indices { values[e] = Float(Double(values[e]) / total) }
            }
            self.rowStart = rowStart
            self.columns = columns
            self.values = values
        }

        /// The Gaussian `p_j ∝ exp(-beta D_j)` over one sample's neighbours whose perplexity
        /// `exp(H)` is `perplexity`, by openTSNE's bisection on the precision (start 1, doubled or
        /// halved until bracketed, |H - log perplexity| <= 1e-8, at most 200 steps).
        ///
        /// Distances are shifted by the nearest one, which changes nothing but keeps the weights
        /// from underflowing all at once (openTSNE's rows go to zero there). A row whose
        /// distances are all equal is uniform, whatever the target.
        static func fitPerplexity(_ perplexity: Double, squaredDistances d: ArraySlice<Double>,
                                  into weights: inout [Double]) {
            guard let nearest = d.min() else { return }
            let targetEntropy = log(perplexity)
            var beta = 1.0, low = 0.0, high = Double.infinity
            for _ in 0..<200 {
                var sum = 0.0, weighted = 0.0
                for (m, distance) in zip(0..., d) {
                    let w = exp(-beta * (distance - nearest))
                    weights[m] = w
                    sum += w
                    weighted += w * (distance - nearest)
                }
                let entropy = log(sum) + beta * weighted / sum
                let excess = entropy - targetEntropy
                if abs(excess) <= 1e-8 { break }
                if excess > 0 {
                    low = beta
                    beta = high.isInfinite ? beta * 2 : (beta + high) / 2
                } else {
                    high = beta
                    beta = low == 0 ? beta / 2 : (beta + low) / 2
                }
            }
            var sum = 0.0
            for m in 0..<d.count {
                weights[m] = exp(-beta * (d[d.startIndex + m] - nearest))
                sum += weights[m]
            }
            for m in 0..<d.count { weights[m] /= sum }
        }

        // Each worker writes only the conditional rows of its own samples.
        private struct SharedRows: @unchecked Sendable { let conditional: UnsafeMutableBufferPointer<Float> }
    }

    /// The optimiser's state: positions, the last steps and the gains, one slot per point, kept
    /// across the two phases of a first layout as openTSNE keeps them; and the tree, rebuilt at
    /// every step in the same storage.
    struct Descent {
        let count: Int
        private(set) var x: [Double]
        private(set) var y: [Double]
        private var stepX: [Double], stepY: [Double]
        private var gainX: [Double], gainY: [Double]
        private var tree = BarnesHutTree()

        init(start: (x: [Double], y: [Double])) {
            count = start.x.count
            x = start.x
            y = start.y
            stepX = [Double](repeating: 0, count: count)
            stepY = stepX
            gainX = [Double](repeating: 1, count: count)
            gainY = gainX
        }

        /// `iterations` steps of openTSNE's `gradient_descent` with P scaled by `exaggeration`.
        mutating func run(iterations: Int, exaggeration: Double, rate: Double = 1, affinities: Affinities, threads: Int) {
            let learningRate = rate * Double(count) / exaggeration
            var forces = Forces(count: count)
            for _ in 0..<iterations {
                tree.rebuild(x: x, y: y)
                forces.measure(x: x, y: y, tree: tree, affinities: affinities, threads: threads)
                var sumQ = 0.0
                for i in 0..<count { sumQ += forces.sumQ[i] }
                let inverseSumQ = 1 / (sumQ + Double.ulpOfOne)
                for i in 0..<count {
                    let gradientX = exaggeration * forces.attractionX[i] - forces.repulsionX[i] * inverseSumQ
                    let gradientY = exaggeration * forces.attractionY[i] - forces.repulsionY[i] * inverseSumQ
                    gainX[i] = Self.gain(gainX[i], step: stepX[i], gradient: gradientX)
                    gainY[i] = Self.gain(gainY[i], step: stepY[i], gradient: gradientY)
                    var sx = TSNE.momentum * stepX[i] - learningRate * gainX[i] * gradientX
                    var sy = TSNE.momentum * stepY[i] - learningRate * gainY[i] * gradientY
                    let length = (sx * sx + sy * sy).squareRoot()
                    if length > TSNE.maximumStep {
                        sx *= TSNE.maximumStep / length
                        sy *= TSNE.maximumStep / length
                    }
                    stepX[i] = sx
                    stepY[i] = sy
                    x[i] += sx
                    y[i] += sy
                }
                var meanX = 0.0, meanY = 0.0
                for i in 0..<count { meanX += x[i]; meanY += y[i] }
                meanX /= Double(count)
                meanY /= Double(count)
                for i in 0..<count { x[i] -= meanX; y[i] -= meanY }
            }
        }

        /// Delta-bar-delta: a gain grows while the steps keep going against the gradient (the
        /// descent is consistent) and shrinks when the gradient turned.
        private static func gain(_ gain: Double, step: Double, gradient: Double) -> Double {
            sign(step) != sign(gradient) ? gain + 0.2 : gain * 0.8 + TSNE.minimumGain
        }

        /// numpy's `sign`: 0 for 0, as openTSNE compares them.
        private static func sign(_ v: Double) -> Int { v > 0 ? 1 : v < 0 ? -1 : 0 }
    }

    /// One iteration's forces on every point, before they are combined with the sum of q.
    struct Forces {
        var attractionX: [Double], attractionY: [Double]
        var repulsionX: [Double], repulsionY: [Double]
        /// Each point's share of the normalisation `Z = sum_{i != j} q_ij`.
        var sumQ: [Double]

        init(count: Int) {
            attractionX = [Double](repeating: 0, count: count)
            attractionY = attractionX
            repulsionX = attractionX
            repulsionY = attractionX
            sumQ = attractionX
        }

        /// Attraction `sum_j p_ij q_ij (y_i - y_j)` over P's row i and Barnes-Hut repulsion, for
        /// every point in parallel; each worker writes its own points' slots.
        mutating func measure(x: [Double], y: [Double], tree: BarnesHutTree, affinities: Affinities, threads: Int) {
            let thetaSquared = TSNE.theta * TSNE.theta
            withOutputs { out in
                // In Morton order: consecutive points walk much the same cells, which stay in cache.
                TSNE.forEachBlock(count: x.count, threads: threads) { ranks in
                    for r in ranks {
                        let i = tree.point(at: r)
                        let repulsion = tree.repulsion(on: i, x: x[i], y: y[i], thetaSquared: thetaSquared)
                        out.repulsionX[i] = repulsion.x
                        out.repulsionY[i] = repulsion.y
                        out.sumQ[i] = repulsion.q
                        var ax = 0.0, ay = 0.0
                        for e in affinities.rowStart[i]..<affinities.rowStart[i + 1] {
                            let j = Int(affinities.columns[e])
                            let dx = x[i] - x[j], dy = y[i] - y[j]
                            let pull = Double(affinities.values[e]) / (1 + dx * dx + dy * dy)
                            ax += pull * dx
                            ay += pull * dy
                        }
                        out.attractionX[i] = ax
                        out.attractionY[i] = ay
                    }
                }
            }
        }

        private mutating func withOutputs(_ body: (Outputs) -> Void) {
            attractionX.withUnsafeMutableBufferPointer { ax in
                attractionY.withUnsafeMutableBufferPointer { ay in
                    repulsionX.withUnsafeMutableBufferPointer { rx in
                        repulsionY.withUnsafeMutableBufferPointer { ry in
                            sumQ.withUnsafeMutableBufferPointer { q in
                                body(Outputs(attractionX: ax, attractionY: ay, repulsionX: rx, repulsionY: ry, sumQ: q))
                            }
                        }
                    }
                }
            }
        }

        // Each worker writes only its own points' slots; the buffers outlive the pass.
        private struct Outputs: @unchecked Sendable {
            let attractionX, attractionY, repulsionX, repulsionY, sumQ: UnsafeMutableBufferPointer<Double>
        }
    }
}
