import Compositor
import FileOutput
import Foundation
import RunFormat

/// `compare --dump-data DIR`: the numbers behind a comparison film.
///
/// - `aligned-a-<step>.npy`, `aligned-b-<step>.npy` (float32, N x 2): each panel's display
///   coordinates at each step of the film (the right run's rotated onto the left run's);
/// - `comparison-<step>.csv` at each step both runs have: per sample its outlier rank in each run
///   (1 the most atypical), its label agreement in each (empty without labels), and in which run it
///   is one of the top `--top` outliers (`a`, `b`, `both` or empty);
/// - `comparison.json`: the runs' names, the film's steps, and at each what each panel showed and
///   the samples each panel's leaderboard listed.
final class ComparisonDump: FilmDump {
    let directory: String
    /// The runs' names and folders, for `comparison.json`.
    private let names: [String], runs: [String]
    /// Staged, so that a comparison that fails leaves the folder as it was (`StagedFolder`).
    private let folder: StagedFolder
    let topCount: Int
    private var frames: [[String: Any]] = []
    private var sharedSteps: [Int] = []

    init(directory: String, topCount: Int, names: [String], runs: [String]) throws {
        self.names = names
        self.runs = runs
        do { folder = try StagedFolder(directory: directory, staged: true) } catch { throw PipelineError(error) }
        self.directory = directory
        self.topCount = topCount
    }

    private func write(_ bytes: [UInt8], _ name: String) throws {
        do { try folder.write(bytes, named: name) } catch { throw PipelineError(error) }
    }

    func record(_ keyframe: ComparisonKeyframe) throws {
        let n = keyframe.keyframes[0].points.count
        for (panel, name) in zip(keyframe.keyframes, ["a", "b"]) {
            try write(NPYWriter.encode(float32: panel.points.interleaved, shape: [n, 2]), "aligned-\(name)-\(keyframe.step).npy")
        }
        frames.append([
            "step": keyframe.step,
            "shown_steps": keyframe.latest.map(\.step),
            "states": keyframe.states.map(Self.describe),
            "leaderboards": keyframe.keyframes.map { $0.leaderboard.entries.map(\.index) },
        ])
        guard keyframe.states.allSatisfy({ $0 == .current }) else { return }
        sharedSteps.append(keyframe.step)
        try write(Array(table(keyframe.latest[0], keyframe.latest[1]).utf8), "comparison-\(keyframe.step).csv")
    }

    /// One row per sample: `index,outlier_rank_a,outlier_rank_b,label_agreement_a,label_agreement_b,top_outlier_in`.
    private func table(_ a: AnalysedCheckpoint, _ b: AnalysedCheckpoint) -> String {
        let ranks = [Self.ranks(a.outliers.scores), Self.ranks(b.outliers.scores)]
        let agreement = [a.labelQuality?.agreement, b.labelQuality?.agreement]
        var text = "index,outlier_rank_a,outlier_rank_b,label_agreement_a,label_agreement_b,top_outlier_in\n"
        for i in ranks[0].indices {
            let top = (ranks[0][i] <= topCount, ranks[1][i] <= topCount)
            let where_ = top == (true, true) ? "both" : top.0 ? "a" : top.1 ? "b" : ""
            let agreements = agreement.map { $0.map { $0[i].isFinite ? $0[i].description : "" } ?? "" }
            text += "\(i),\(ranks[0][i]),\(ranks[1][i]),\(agreements[0]),\(agreements[1]),\(where_)\n"
        }
        return text
    }

    /// Each sample's rank by outlier score, 1 for the lowest (the most atypical); ties by index, as the leaderboard.
    static func ranks(_ scores: [Float]) -> [Int] {
        let order = scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }
        var ranks = [Int](repeating: 0, count: scores.count)
        for (rank, i) in order.enumerated() { ranks[i] = rank + 1 }
        return ranks
    }

    static func describe(_ state: ComparisonContent.PanelState) -> String {
        switch state {
        case .current: "current"
        case .older: "older"
        case .finished: "finished"
        case .notStarted: "not started"
        }
    }

    func finish() throws {
        let document: [String: Any] = ["names": names, "runs": runs, "top": topCount, "shared_steps": sharedSteps,
                                       "frames": frames]
        try write(Array(try DataDump.json(document).utf8), "comparison.json")
        do { try folder.publish() } catch { throw PipelineError(error) }
    }

    func abandon() { folder.abandon() }
}
