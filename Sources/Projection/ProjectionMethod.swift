import LinearAlgebra

/// How a checkpoint's embeddings become the picture's two coordinates. Scores and leaderboards
/// never come from the picture: they are computed in the full space whatever is chosen here.
public enum ProjectionMethod: Sendable, Equatable {
    /// The first two principal components (the default): linear, exact, fast.
    case pca
    /// UMAP on the exact neighbour graph, each checkpoint following the one before.
    case umap(UMAP)
    /// t-SNE on the exact neighbour graph's perplexity affinities, each checkpoint following the one before.
    case tsne(TSNE)

    /// The neighbours per sample the layout needs the search to list (none for PCA).
    public func graphNeighbours(samples: Int) -> Int {
        switch self {
        case .pca: 0
        case .umap(let umap): UMAP.graphNeighbours(umap.neighbours, samples: samples)
        case .tsne(let tsne): TSNE.graphNeighbours(perplexity: tsne.perplexity, samples: samples)
        }
    }

    /// The picture of one checkpoint before alignment.
    /// - Parameters:
    ///   - pca: the checkpoint's PCA scores (the first layout's start).
    ///   - previous: the previous checkpoint's layout, nil at the first.
    ///   - metric: the graph's distances (`OutlierScores.metric`).
    public func layout(graph: NeighbourGraph, metric: OutlierScores.Metric, pca: PlanarPoints, previous: PlanarPoints?,
                       threads: Int) -> PlanarPoints {
        let following = previous.flatMap { $0.count == pca.count ? $0 : nil }
        // A cached graph may list more neighbours than this layout asks for.
        let graph = graph.prefix(graphNeighbours(samples: graph.count))
        switch self {
        case .pca:
            return pca
        case .umap(let umap):
            return umap.layout(graph: graph, start: following ?? pca, first: following == nil, threads: threads)
        case .tsne(let tsne):
            return tsne.layout(graph: graph, metric: metric, start: following ?? pca, first: following == nil, threads: threads)
        }
    }

    /// The name a user types (`--projection`).
    public var name: String {
        switch self {
        case .pca: "pca"
        case .umap: "umap"
        case .tsne: "tsne"
        }
    }

    /// The method and its parameters, as the frame, the dumps and the explorer name them.
    public var description: String {
        switch self {
        case .pca: "PCA"
        case .umap(let umap): "UMAP (n_neighbors \(umap.neighbours), min_dist \(Self.plain(umap.minimumDistance)), seed \(umap.seed))"
        case .tsne(let tsne): "t-SNE (perplexity \(Self.plain(Float(tsne.perplexity))), seed \(tsne.seed))"
        }
    }

    /// The method and its parameters as one CSV field (no commas): the export table's `projection`.
    public var field: String {
        switch self {
        case .pca: "pca"
        case .umap(let umap): "umap n_neighbors=\(umap.neighbours) min_dist=\(Self.plain(umap.minimumDistance)) seed=\(umap.seed)"
        case .tsne(let tsne): "tsne perplexity=\(Self.plain(Float(tsne.perplexity))) seed=\(tsne.seed)"
        }
    }

    private static func plain(_ value: Float) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
