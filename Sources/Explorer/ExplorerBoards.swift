import Compositor

/// The explorer's boards: every `LeaderboardKind` that ranks one run's samples, with the words the
/// page shows for it. `/api/run` lists them and the page builds its tabs from that list; the scores
/// document holds each one's entries under its key. A new kind is its case and wording
/// (Compositor), its ranking (`AnalysedCheckpoint.ranking`) and its words here.
extension LeaderboardKind {
    static let explorerBoards = allCases.filter { $0 != .disagreement }

    /// Its key in the API's documents: `label_issues` for `label-issues`.
    var apiKey: String { rawValue.replacingOccurrences(of: "-", with: "_") }

    var explorerBoard: APIDocuments.Board {
        switch self {
        case .outliers:
            .init(key: apiKey, tab: "Outliers", value: "score", hint: "most atypical first: lowest kNN outlier score at the shown step",
                  empty: "No entries.", needsLabels: false)
        case .labelIssues:
            .init(key: apiKey, tab: "Label issues", value: "kNN-AUM",
                  hint: "likely label issues: lowest running kNN-AUM up to the shown step", empty: "No entries.", needsLabels: true)
        case .movers:
            .init(key: apiKey, tab: "Movers", value: "moved", hint: "moved the most since the previous checkpoint, relative to its neighbours",
                  empty: "Nothing moved yet: this is the first checkpoint.", needsLabels: false)
        case .disagreement:
            .init(key: apiKey, tab: "Disagreement", value: "differs", hint: "the samples the two runs see most differently",
                  empty: "No entries.", needsLabels: false)
        }
    }
}
