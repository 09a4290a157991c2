import Projection

/// Which neighbour search a command asked for (`--search`).
public enum OutlierSearch: String, Sendable, CaseIterable {
    /// Every point's neighbours exact.
    case exact
    /// Cell search, with the leaderboard certified exact (`OutlierScores.Search.approximate`).
    case approximate
    /// Exact below `approximateFrom` points, approximate from there.
    case auto

    /// Where exact search stops being practical: its time grows as N squared, and at this size it
    /// takes minutes per checkpoint on two cores.
    public static let approximateFrom = 250_000

    /// The search for a checkpoint of `samples` points.
    public func search(forSamples samples: Int) -> OutlierScores.Search {
        switch self {
        case .exact: .automatic
        case .approximate: .approximate
        case .auto: samples >= Self.approximateFrom ? .approximate : .automatic
        }
    }
}
