#if canImport(Glibc)
import Glibc
#endif
import LinearAlgebra

/// Where each sample starts at a checkpoint after the first: where it was, unless its nearest
/// neighbours now sit somewhere else in the picture; then among them.
///
/// A layout that follows the run moves gently, so that samples keep their places; but a sample
/// whose neighbourhood changed (relabelled by the training, moved to another class's cluster)
/// would be held in its old cluster by the repulsion around it. It is seated at the median of its
/// new neighbours' places instead, as openTSNE places new points (`prepare_partial`), and the
/// optimisation goes on from there.
enum FollowingStart {
    /// The neighbours whose places are looked at.
    static let neighbours = 10

    /// `previous`, with every sample farther from the median place of its `neighbours` nearest
    /// (in `graph`) than twice their own spread plus the picture's typical spread moved to that median.
    static func seated(_ previous: PlanarPoints, graph: NeighbourGraph) -> PlanarPoints {
        let n = previous.count, k = min(Self.neighbours, graph.k)
        guard n == graph.count, k > 0 else { return previous }
        var medians = [(Float, Float)](repeating: (0, 0), count: n)
        var offsets = [Float](repeating: 0, count: n), spreads = [Float](repeating: 0, count: n)
        var known = [Bool](repeating: false, count: n)
        for i in 0..<n {
            let listed = (0..<k).map { Int(graph.indices[i * graph.k + $0]) }.filter { $0 >= 0 && $0 < n && $0 != i }
            guard listed.count >= 3 else { continue }
            let mx = median(listed.map { previous.x[$0] }), my = median(listed.map { previous.y[$0] })
            guard mx.isFinite, my.isFinite else { continue }
            medians[i] = (mx, my)
            spreads[i] = median(listed.map { hypot(previous.x[$0] - mx, previous.y[$0] - my) })
            offsets[i] = hypot(previous.x[i] - mx, previous.y[i] - my)
            known[i] = true
        }
        let typical = median((0..<n).filter { known[$0] }.map { spreads[$0] })
        guard typical.isFinite, typical > 0 else { return previous }
        var seated = previous
        for i in 0..<n where known[i] && offsets[i] > 2 * (spreads[i] + typical) {
            // A little apart from the median, in a direction of its own: seated samples never coincide.
            let angle = Float(i % 360) * .pi / 180
            seated.x[i] = medians[i].0 + 0.01 * typical * cos(angle)
            seated.y[i] = medians[i].1 + 0.01 * typical * sin(angle)
        }
        return seated
    }

    private static func median(_ values: [Float]) -> Float {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    private static func hypot(_ x: Float, _ y: Float) -> Float { (x * x + y * y).squareRoot() }
}
