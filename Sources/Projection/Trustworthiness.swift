import Dispatch
import LinearAlgebra

/// How far a 2-D picture can be trusted: scikit-learn's `trustworthiness(X, layout, n_neighbors=10)`
/// (Venna and Kaski 2001), in the outlier search's metric (cosine when `D > 3`, else Euclidean).
///
/// 1 when every sample's 10 nearest in the picture are among its 10 nearest in the embedding space;
/// each intruder costs by how far down the sample's true ranking it sits. Computed exactly up to
/// `exactUpTo` samples, and above that on a fixed sample of that many (every `N / exactUpTo`-th),
/// which estimates the same mean: `sampled` says which.
public struct Trustworthiness: Sendable, Equatable {
    public let value: Double
    /// The samples the mean was taken over: all N, or the fixed sample.
    public let evaluated: Int
    public let sampled: Bool

    public static let neighbours = 10
    public static let exactUpTo = 2_000
    /// Above `exactUpTo`, the samples measured: the error of the mean is about 0.002 there, and the
    /// ranks cost one product of them with all N.
    public static let sampleSize = 1_000

    /// - Parameters:
    ///   - graph: the exact neighbour lists of `embeddings` (at least 10 a sample), as the outlier
    ///     search found them: the embedding-space neighbourhoods.
    /// - Returns: nil when there are too few samples for the measure (`N < 2k + 2`, as scikit-learn).
    ///   - threads: workers for the ranks; the value does not depend on it.
    public init?(embeddings x: Matrix, layout: PlanarPoints, graph: NeighbourGraph, metric: OutlierScores.Metric,
                 exactUpTo limit: Int = Self.exactUpTo, threads: Int = 1) {
        let n = x.rows, k = Self.neighbours
        guard n >= 2 * k + 2, layout.count == n, graph.count == n, graph.k >= k else { return nil }
        let measured = n <= limit ? n : min(Self.sampleSize, limit)
        let stride = max(1, n / measured)
        let evaluated = Array(Swift.stride(from: 0, to: n, by: stride).prefix(measured))
        let inverseLengths: [Float] = metric == .cosine
            ? (0..<n).map { i in
                let length = x.row(i).reduce(0) { $0 + $1 * $1 }.squareRoot()
                return length > 0 ? 1 / length : 0
            } : []
        let squaredLengths: [Float] = metric == .euclidean ? (0..<n).map { i in x.row(i).reduce(0) { $0 + $1 * $1 } } : []
        var penalty = 0.0
        let block = 128
        var dots = [Float](repeating: 0, count: block * n)
        var rows = [Float](repeating: 0, count: block * x.columns)
        var penalties = [Double](repeating: 0, count: block)
        for start in Swift.stride(from: 0, to: evaluated.count, by: block) {
            let members = Array(evaluated[start..<min(start + block, evaluated.count)])
            for (r, i) in members.enumerated() {
                for j in 0..<x.columns { rows[r * x.columns + j] = x[i, j] }
            }
            // Every evaluated sample's products with all N at once: one GEMM per block.
            rows.withUnsafeBufferPointer { a in
                x.storage.withUnsafeBufferPointer { b in
                    dots.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(transposeB: true, m: members.count, n: n, k: x.columns, a: a.baseAddress!, lda: x.columns,
                                  b: b.baseAddress!, ldb: x.columns, c: c.baseAddress!, ldc: n)
                    }
                }
            }
            // Each member on its own worker, its penalty in its own slot: summed in order after.
            let workers = max(1, min(threads, members.count))
            dots.withUnsafeBufferPointer { dots in
                penalties.withUnsafeMutableBufferPointer { out in
                    let shared = UncheckedSendable((dots.baseAddress!, out.baseAddress!))
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        let (dots, out) = shared.value
                        for r in Swift.stride(from: worker, to: members.count, by: workers) {
                            let i = members[r]
                            out[r] = Self.penalty(of: i, products: dots + r * n, count: n, layout: layout, graph: graph,
                                                  inverseLengths: inverseLengths, squaredLengths: squaredLengths, metric: metric)
                        }
                    }
                }
            }
            penalty += penalties[0..<members.count].reduce(0, +)
        }
        let m = Double(evaluated.count)
        value = 1 - penalty * 2 / (m * Double(k) * (2 * Double(n) - 3 * Double(k) - 1))
        self.evaluated = evaluated.count
        sampled = evaluated.count < n
    }

    /// Sample i's part of the sum: for each of its 10 nearest in the picture that is not among its
    /// 10 nearest in the embedding space, how far down that ranking it sits (its rank minus 10).
    static func penalty(of i: Int, products: UnsafePointer<Float>, count n: Int, layout: PlanarPoints, graph: NeighbourGraph,
                        inverseLengths: [Float], squaredLengths: [Float], metric: OutlierScores.Metric) -> Double {
        let k = Self.neighbours
        func distance(_ j: Int) -> Float {
            metric == .cosine ? 1 - products[j] * inverseLengths[i] * inverseLengths[j]
                : squaredLengths[i] + squaredLengths[j] - 2 * products[j]
        }
        let trueNeighbours = graph.indices[i * graph.k..<i * graph.k + k]
        let intruders = pictureNeighbours(of: i, in: layout, k: k).filter { !trueNeighbours.contains(Int32($0)) }
        guard !intruders.isEmpty else { return 0 }
        // Each intruder's rank among i's neighbours in the embedding space (1 for the nearest),
        // counted in one pass over all N; most samples are farther than every intruder, and one
        // comparison sets them aside.
        let thresholds = intruders.map { (distance($0), $0) }
        let farthest = thresholds.map(\.0).max()!
        var ranks = [Int](repeating: 1, count: thresholds.count)
        for l in 0..<n where l != i {
            let other = distance(l)
            guard other <= farthest else { continue }
            for (t, threshold) in thresholds.enumerated() where other < threshold.0 || (other == threshold.0 && l < threshold.1) {
                ranks[t] += 1
            }
        }
        return ranks.reduce(0.0) { $0 + Double($1 - k) }
    }

    /// The `k` nearest samples to `i` in the picture, by squared Euclidean distance, ties to the lower index.
    static func pictureNeighbours(of i: Int, in layout: PlanarPoints, k: Int) -> [Int] {
        var best: [(Float, Int)] = []
        best.reserveCapacity(k + 1)
        let px = layout.x[i], py = layout.y[i]
        for j in 0..<layout.count where j != i {
            let dx = layout.x[j] - px, dy = layout.y[j] - py
            let d = dx * dx + dy * dy
            if best.count == k, let last = best.last, !(d < last.0 || (d == last.0 && j < last.1)) { continue }
            if best.count == k { best.removeLast() }
            var slot = best.count
            while slot > 0 && (best[slot - 1].0 > d || (best[slot - 1].0 == d && best[slot - 1].1 > j)) { slot -= 1 }
            best.insert((d, j), at: slot)
        }
        return best.map(\.1)
    }

    /// The phrase a frame shows: `trustworthiness 0.93` and, when sampled, on how many samples.
    public var phrase: String {
        let number = (value * 1000).rounded() / 1000
        return "trustworthiness \(String(format3: number))" + (sampled ? " (10-NN, \(evaluated) samples)" : " (10-NN)")
    }
}

extension String {
    /// Three decimals, without Foundation.
    init(format3 value: Double) {
        let thousandths = Int((value * 1000).rounded())
        let sign = thousandths < 0 ? "-" : ""
        let magnitude = abs(thousandths)
        let fraction = String(magnitude % 1000)
        self = "\(sign)\(magnitude / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
