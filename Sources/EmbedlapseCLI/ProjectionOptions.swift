import ArgumentParser
import Projection

/// `--projection` and its parameters, for every command that makes a picture.
struct ProjectionOptions: ParsableArguments {
    @Option(help: "How the embeddings become the picture: pca (linear, the default), umap or tsne (the neighbour graph's structure; each checkpoint starts from the one before, so the film follows the training). Scores and boards are computed in the full space either way.")
    var projection: ProjectionName = .pca

    @Option(help: "UMAP's n_neighbors, 2 to 200: the neighbourhood each point's layout keeps (the point itself counted).")
    var neighbors: Int = 15

    @Option(help: "UMAP's min_dist, 0 to 1: how tightly points may pack.")
    var minDist: Float = 0.1

    @Option(help: "t-SNE's perplexity, 2 to 100: about how many neighbours each point's layout weighs (the search lists three times as many).")
    var perplexity: Double = 30

    @Option(help: "Random seed of the layout (and of the demo's training): the same seed gives the same film.")
    var seed: UInt64 = 0

    enum ProjectionName: String, ExpressibleByArgument, CaseIterable {
        case pca, umap, tsne
    }

    func validate() throws {
        guard (2...200).contains(neighbors) else { throw ValidationError("--neighbors \(neighbors): must be from 2 to 200") }
        guard minDist.isFinite, (0...1).contains(minDist) else { throw ValidationError("--min-dist \(minDist): must be from 0 to 1") }
        guard perplexity.isFinite, (2...100).contains(perplexity) else {
            throw ValidationError("--perplexity \(perplexity): must be from 2 to 100")
        }
    }

    /// A layout that follows the run is aligned onto the frame before; `--align last` would need
    /// the last layout before the first frame.
    func check(alignment: AlignmentTarget) throws {
        guard alignment != .last || projection == .pca else {
            throw ValidationError("--align last works with --projection pca only: a \(projection.rawValue) layout follows the run from its first checkpoint, each frame aligned onto the one before")
        }
    }

    var method: ProjectionMethod {
        switch projection {
        case .pca: .pca
        case .umap: .umap(UMAP(neighbours: neighbors, minimumDistance: minDist, seed: seed))
        case .tsne: .tsne(TSNE(perplexity: perplexity, seed: seed))
        }
    }
}
