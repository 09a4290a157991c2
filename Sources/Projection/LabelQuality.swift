import LinearAlgebra

/// How well each sample's label agrees with its neighbourhood at one checkpoint: a kNN vote on
/// the raw embeddings, the label-issue signal of the film (cleanlab's and Spotlight's "review these").
///
/// - Neighbours: the `k = min(10, N - 1)` nearest in cosine distance, the sample itself excluded;
///   exactly the graph `OutlierScores` built (`neighbourIndices`), so nothing searches twice.
///   When `D <= 3` the outlier scorer measures Euclidean distance (as cleanlab does), so a
///   separate cosine search is run there (`LowDimensionalSearch`): the label scores are defined
///   in cosine distance on every dimension, and scikit-learn's `NearestNeighbors(metric="cosine")`
///   is their reference.
/// - `agreement[i]`: the fraction of the k neighbours whose label equals sample i's, in `[0, 1]`.
/// - `margin[i]`: that fraction minus the largest fraction any other single label gets, in
///   `[-1, 1]`: the kNN analogue of the margin in "Area Under the Margin" (Pleiss et al. 2020).
///   Positive exactly when the sample's own label wins the vote outright.
/// - Labels are compared as plain integers: no class count is needed, and a label outside the
///   class names (or negative) is simply a class of its own.
/// - Exactly equal rows are at distance 0 from each other; among neighbours at exactly equal
///   distance, which ones fill the last places is the search's choice (as for scikit-learn,
///   whose order there is its own), so a few samples in tied neighbourhoods may differ by a vote.
public struct LabelQuality: Sendable {
    /// k: the votes per sample.
    public let neighbours: Int
    public let agreement: [Float]
    public let margin: [Float]
    /// Votes for the sample's own label, `0...k` (exact; `agreement * k`).
    public let ownVotes: [UInt8]
    /// Own votes minus the strongest other label's votes, `-k...k` (exact; `margin * k`).
    public let marginVotes: [Int8]
    /// Each sample's kNN-majority label: the label with the most votes, a tie going to the tied
    /// label of the nearest neighbour.
    public let majorityLabels: [Int]

    public var count: Int { agreement.count }

    /// Votes on the outlier scorer's graph (or, when `D <= 3`, on a cosine search of `embeddings`
    /// on `threads` cores).
    /// - Returns: nil when `labels` does not have one label per row.
    public init?(embeddings: Matrix, outliers: OutlierScores, labels: [Int], threads: Int = 1) {
        guard labels.count == embeddings.rows else { return nil }
        self.init(outliers: outliers, labels: labels, threads: threads, embeddings: { embeddings })
    }

    /// Votes on the outlier scorer's graph; `embeddings` is called only when that graph is not a
    /// cosine one (`D <= 3`), so a cached analysis needs no embeddings.
    /// - Returns: nil when `labels` does not have one label per sample of `outliers`.
    public init?<Failure: Error>(outliers: OutlierScores, labels: [Int], threads: Int = 1,
                                 embeddings: () throws(Failure) -> Matrix) throws(Failure) {
        guard outliers.neighbourIndices.count == labels.count * outliers.neighbours else { return nil }
        let graph: [Int32]
        switch outliers.metric {
        case .cosine: graph = outliers.neighbourIndices
        case .euclidean: graph = Self.cosineNeighbourIndices(try embeddings(), k: outliers.neighbours, threads: threads)
        }
        self.init(neighbourIndices: graph, k: outliers.neighbours, labels: labels)
    }

    /// Votes on a given graph: row-major `N x k` neighbour indices, nearest first. Indices outside
    /// `0..<N` (unfilled slots) cast no vote, the fractions still being of k.
    /// - Returns: nil when the shapes disagree or `k` is not in `1...127`.
    public init?(neighbourIndices graph: [Int32], k: Int, labels: [Int]) {
        let n = labels.count
        guard k >= 1, k <= Int(Int8.max), graph.count == n * k else { return nil }
        var own = [UInt8](repeating: 0, count: n)
        var margins = [Int8](repeating: 0, count: n)
        var majority = [Int](repeating: 0, count: n)
        // Per sample, the distinct labels among its k neighbours and their votes, in order of
        // first (nearest) appearance: k is at most 10, so a linear scan beats any table and needs
        // no class count.
        var seen = [Int](repeating: 0, count: k), votes = [Int](repeating: 0, count: k)
        for i in 0..<n {
            let mine = labels[i]
            var distinct = 0
            for slot in 0..<k {
                let j = Int(graph[i * k + slot])
                guard j >= 0, j < n else { continue }
                let label = labels[j]
                var found = false
                for d in 0..<distinct where seen[d] == label {
                    votes[d] += 1
                    found = true
                    break
                }
                if !found {
                    seen[distinct] = label
                    votes[distinct] = 1
                    distinct += 1
                }
            }
            var mineVotes = 0, otherBest = 0, best = -1
            for d in 0..<distinct {
                if seen[d] == mine { mineVotes = votes[d] } else { otherBest = max(otherBest, votes[d]) }
                // Strictly more: the first (nearest) of tied labels keeps the majority.
                if best < 0 || votes[d] > votes[best] { best = d }
            }
            own[i] = UInt8(mineVotes)
            margins[i] = Int8(mineVotes - otherBest)
            // A sample without a single valid neighbour (never on a complete graph) has its own
            // label as majority: nothing outvotes it.
            majority[i] = best >= 0 ? seen[best] : mine
        }
        neighbours = k
        ownVotes = own
        marginVotes = margins
        majorityLabels = majority
        agreement = own.map { Float($0) / Float(k) }
        margin = margins.map { Float($0) / Float(k) }
    }

    /// From vote counts directly (tests): no majority labels.
    init(neighbours k: Int, ownVotes: [UInt8], marginVotes: [Int8]) {
        neighbours = k
        self.ownVotes = ownVotes
        self.marginVotes = marginVotes
        majorityLabels = []
        agreement = ownVotes.map { Float($0) / Float(k) }
        margin = marginVotes.map { Float($0) / Float(k) }
    }

    /// The k nearest rows of each row in cosine distance (exact rows at distance 0), row-major
    /// `N x k`, nearest first, for when the outlier scorer measured Euclidean distance instead
    /// (`D <= 3`); brute force for a value that is not finite (which runs reject before this).
    static func cosineNeighbourIndices(_ x: Matrix, k: Int, threads: Int = 1) -> [Int32] {
        LowDimensionalSearch.cosineNeighbourIndices(x, k: k, threads: threads)
            ?? BlockedCosineSearch.nearest(x, k: k, duplicates: DuplicateRows(x), threads: threads).indices
    }
}
