/// Each sample's `k` nearest other samples, nearest first, with their distances: the exact lists
/// the outlier search found (`OutlierScores.graph`), which UMAP and t-SNE build their layouts on.
///
/// Distances are cosine (`1 - cos`, in `[0, 2]`) when `D > 3` and Euclidean otherwise, as the
/// outlier search measures them. A slot left unfilled (fewer than `k` other samples) has index -1.
public struct NeighbourGraph: Sendable, Equatable {
    /// N: the samples.
    public let count: Int
    /// Neighbours per sample.
    public let k: Int
    /// Row-major `count x k` sample indices.
    public let indices: [Int32]
    /// Row-major `count x k` distances, beside `indices`, non-decreasing along a row.
    public let distances: [Float]

    public init(count: Int, k: Int, indices: [Int32], distances: [Float]) {
        precondition(indices.count == count * k && distances.count == count * k)
        self.count = count
        self.k = k
        self.indices = indices
        self.distances = distances
    }

    /// The first `k` neighbours of each sample (the whole graph when it has no more).
    public func prefix(_ k: Int) -> NeighbourGraph {
        guard k < self.k else { return self }
        var indices = [Int32](), distances = [Float]()
        indices.reserveCapacity(count * k)
        distances.reserveCapacity(count * k)
        for i in 0..<count {
            indices += self.indices[i * self.k..<i * self.k + k]
            distances += self.distances[i * self.k..<i * self.k + k]
        }
        return NeighbourGraph(count: count, k: k, indices: indices, distances: distances)
    }
}
