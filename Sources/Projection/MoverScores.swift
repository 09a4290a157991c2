import LinearAlgebra

/// Which samples training moved at one checkpoint, for the "movers" leaderboard.
///
/// A whole cluster drifting across the film is not news; a sample leaving its neighbourhood is.
/// So each sample's displacement in the aligned display coordinates since the previous
/// checkpoint is taken relative to its neighbours' mean displacement:
/// `relativeDisplacement[i] = | d_i - mean_{j in kNN(i)} d_j |`, with `d_i` the 2-D move of
/// sample i and kNN(i) the neighbour graph of this checkpoint's raw embeddings (the outlier
/// scorer's). It is in display units: 1 is the film's robust radius (see `AlignedFrame`).
///
/// With labels, `majorityChanged[i]` says whether sample i's kNN-majority label
/// (`LabelQuality.majorityLabels`) differs from the previous checkpoint's.
///
/// The ranking value is `relativeDisplacement + (majorityChanged ? 1 : 0)`: a change of the
/// neighbourhood's majority counts as much as a move across a whole radius of the film, so those
/// samples lead the board, ordered among themselves by how far they moved. The first checkpoint
/// has nothing to compare with: every value is 0.
public struct MoverScores: Sendable {
    public let relativeDisplacement: [Float]
    /// All false without labels, and at the first checkpoint.
    public let majorityChanged: [Bool]
    /// What the movers leaderboard ranks, highest first.
    public let values: [Float]

    /// The first checkpoint's: all zero.
    public init(zeros count: Int) {
        relativeDisplacement = [Float](repeating: 0, count: count)
        majorityChanged = [Bool](repeating: false, count: count)
        values = relativeDisplacement
    }

    /// - Parameters:
    ///   - neighbourIndices: row-major `N x k` (indices outside `0..<N` are skipped).
    ///   - previousMajority, majority: the kNN-majority labels at the two checkpoints; nil (either)
    ///     without labels.
    /// - Returns: nil when the shapes disagree (a different sample count than the previous checkpoint).
    public init?(previous: PlanarPoints, current: PlanarPoints, neighbourIndices: [Int32], k: Int,
                 previousMajority: [Int]?, majority: [Int]?) {
        let n = current.count
        guard previous.count == n, k >= 1, neighbourIndices.count == n * k else { return nil }
        // Moves in double precision: display coordinates are O(1), their differences small.
        var dx = [Double](repeating: 0, count: n), dy = [Double](repeating: 0, count: n)
        for i in 0..<n {
            dx[i] = Double(current.x[i]) - Double(previous.x[i])
            dy[i] = Double(current.y[i]) - Double(previous.y[i])
        }
        var relative = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var sx = 0.0, sy = 0.0, m = 0
            for slot in 0..<k {
                let j = Int(neighbourIndices[i * k + slot])
                guard j >= 0, j < n else { continue }
                sx += dx[j]
                sy += dy[j]
                m += 1
            }
            let ex = m > 0 ? dx[i] - sx / Double(m) : dx[i], ey = m > 0 ? dy[i] - sy / Double(m) : dy[i]
            relative[i] = Float((ex * ex + ey * ey).squareRoot())
        }
        var changed = [Bool](repeating: false, count: n)
        if let previousMajority, let majority, previousMajority.count == n, majority.count == n {
            for i in 0..<n { changed[i] = previousMajority[i] != majority[i] }
        }
        relativeDisplacement = relative
        majorityChanged = changed
        values = (0..<n).map { relative[$0] + (changed[$0] ? 1 : 0) }
    }
}
