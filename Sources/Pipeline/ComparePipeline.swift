import CheckpointCache
import Compositor
import Foundation
import LinearAlgebra
import Projection
import RunFormat

/// `embedlapse compare`: two saved runs on one evaluation set, filmed side by side.
///
/// Each run is analysed by its own stages, as a film of it would be (its own PCA, alignment over
/// time, outlier scores, label quality). The film's steps are the union of both runs' steps; at
/// each, a panel shows its run's latest checkpoint at or before that step. Whenever the right run
/// shows a new checkpoint, its points are rotated onto the left run's at that moment (Procrustes
/// on the same samples' display coordinates, reflections allowed), so that a sample sits in
/// comparable places in both panels under one fixed view; between its checkpoints it stays put.
public enum ComparePipeline {
    public static func compare(_ runs: [RunDirectory], names: [String], options: RenderOptions, stop: StopFlag,
                               progress: (@Sendable (Int) -> Void)? = nil) async throws -> RenderSummary {
        precondition(runs.count == 2 && names.count == 2)
        let evaluationSet = try EvaluationSet(runs)
        var options = options
        options.topCount = min(options.topCount, evaluationSet.sampleCount)
        var setting = FilmSetting(sampleCount: evaluationSet.sampleCount, dimension: runs[0].dimension,
                                  annotations: evaluationSet.annotations, wholeRunLosses: nil, checkpointCount: nil,
                                  options: options)
        setting.alignment = "each run rotated onto its previous frame, the right run onto the left (Procrustes)"
        setting.comparison = ComparisonSetting(names: names, dimensions: runs.map(\.dimension),
                                               sharedLeaderboard: options.leaderboard == .disagreement,
                                               wholeRunLosses: runs.map(\.losses))
        // Offline, both runs are known: the loss chart spans the film's whole axis from the start.
        setting.finalStep = runs.compactMap { $0.checkpoints.last?.step }.max()
        var dump: ComparisonDump?
        let film = try Film(setting: setting, options: options, panels: 2, timings: StageTimings()) {
            dump = try options.dumpDirectory.map {
                try ComparisonDump(directory: $0, topCount: options.topCount, names: names, runs: runs.map(\.path))
            }
            return dump
        }
        do {
            let analysis = StageQueue("analysis")
            let state = StageState(ComparisonState(runs: runs, labels: evaluationSet.annotations.labels,
                                                   ranking: options.leaderboard, topCount: options.topCount,
                                                   search: options.search, projection: options.projection, warn: options.warn))
            let steps = Array(Set(runs.flatMap { $0.checkpoints.map(\.step) })).sorted()
            let stage = film.stage
            try await stage.produce {
                for (index, step) in steps.enumerated() {
                    if stop.isRaised { break }
                    let keyframe = try await analysis.run { try state.value.advance(to: step, index: index) }
                    try dump?.record(keyframe)
                    try await stage.add(comparison: keyframe.keyframes, states: keyframe.states)
                    progress?(index + 1)
                }
                try await stage.drawRemaining()
            }
            return try film.finish(frames: stage.filmFrames, interrupted: stop.isRaised)
        } catch {
            film.abandon()
            throw error
        }
    }
}

/// The evaluation set two runs must share: as many samples, and the same labels where both have
/// them. Labels, class names and images come from whichever run has them, the first run first.
public struct EvaluationSet {
    let sampleCount: Int
    let annotations: SampleAnnotations

    init(_ runs: [RunDirectory]) throws(PipelineError) {
        let (a, b) = (runs[0], runs[1])
        if let problem = Self.mismatch(a.path, a.sampleCount, a.labels, b.path, b.sampleCount, b.labels) {
            throw PipelineError(problem)
        }
        sampleCount = a.sampleCount
        annotations = SampleAnnotations(labels: a.labels ?? b.labels, classNames: a.classNames ?? b.classNames,
                                        thumbnails: a.thumbnails ?? b.thumbnails)
    }

    /// Why runs `a` and `b` are not one evaluation set, in one line naming both; nil when they are.
    public static func mismatch(_ a: String, _ countA: Int, _ labelsA: [Int]?,
                                _ b: String, _ countB: Int, _ labelsB: [Int]?) -> String? {
        guard countA == countB else {
            return "\(a) and \(b) are not one evaluation set: \(countA) samples against \(countB)"
        }
        guard let la = labelsA, let lb = labelsB, la != lb else { return nil }
        let differing = zip(la, lb).enumerated().filter { $0.element.0 != $0.element.1 }
        let first = differing[0]
        return "\(a) and \(b) are not one evaluation set: their labels differ at \(differing.count) of \(la.count) samples (first sample \(first.offset): \(first.element.0) against \(first.element.1))"
    }
}

/// One step of a comparison film: a keyframe per panel and what each panel shows, with the
/// numbers behind them (`--dump-data`).
struct ComparisonKeyframe: Sendable {
    let step: Int
    let keyframes: [FilmTimeline.Keyframe]
    let states: [ComparisonContent.PanelState]
    /// Each run's latest analysis, and whether it is new at this step.
    let latest: [AnalysedCheckpoint]
    let isNew: [Bool]
}

/// The analysis side of a comparison: each run's analyser, and the last checkpoint each showed.
struct ComparisonState {
    private let runs: [RunDirectory]
    private var analysers: [CheckpointAnalyser]
    private var next: [Int]
    private var latest: [AnalysedCheckpoint?]
    /// The right run's display coordinates as last rotated onto the left run's.
    private var rightPoints: PlanarPoints?
    /// Each run ranks its own samples, or with `.disagreement` both share the list of the samples they see most differently.
    private let ranking: LeaderboardKind
    private let topCount: Int

    init(runs: [RunDirectory], labels: [Int]?, ranking: LeaderboardKind, topCount: Int, search: OutlierSearch,
         projection: ProjectionMethod, warn: @escaping @Sendable (String) -> Void) {
        self.runs = runs
        analysers = runs.map { run in
            CheckpointAnalyser(aligner: Aligner(target: .previous), labels: labels, topCount: topCount, timings: StageTimings(),
                               maxBLASThreads: ProcessInfo.processInfo.activeProcessorCount, cache: AnalysisCache.existing(forRun: run.path),
                               search: search, projection: projection, warn: warn)
        }
        next = runs.map { _ in 0 }
        latest = runs.map { _ in nil }
        self.ranking = ranking
        self.topCount = topCount
    }

    /// Analyses each run's checkpoint at `step`, if it has one, and makes the film's keyframe there.
    mutating func advance(to step: Int, index: Int) throws -> ComparisonKeyframe {
        var isNew = [false, false]
        for r in runs.indices where next[r] < runs[r].checkpoints.count && runs[r].checkpoints[next[r]].step == step {
            let event = try CheckpointEvent(file: runs[r].checkpoints[next[r]], index: next[r], runLosses: runs[r].losses, deferReading: true)
            latest[r] = try analysers[r].analyse(event)
            next[r] += 1
            isNew[r] = true
        }
        // Before its first checkpoint, a run shows that first checkpoint (analysed ahead).
        for r in runs.indices where latest[r] == nil {
            let event = try CheckpointEvent(file: runs[r].checkpoints[0], index: 0, runLosses: runs[r].losses, deferReading: true)
            latest[r] = try analysers[r].analyse(event)
            next[r] = 1
            isNew[r] = true
        }
        let shown = latest.map { $0! }
        if isNew[1] || isNew[0] && rightPoints == nil {
            rightPoints = try Self.rotate(shown[1].alignment.display, onto: shown[0].alignment.display,
                                          origin: shown[1].origin)
        }
        let states = runs.indices.map { r -> ComparisonContent.PanelState in
            let shownStep = shown[r].step
            if shownStep > step { return .notStarted(firstStep: shownStep) }
            if shownStep == step { return .current }
            return next[r] >= runs[r].checkpoints.count ? .finished(lastStep: shownStep) : .older(shownStep: shownStep)
        }
        let boards = leaderboards(shown)
        let keyframes = runs.indices.map { r -> FilmTimeline.Keyframe in
            let c = shown[r]
            return FilmTimeline.Keyframe(index: index, step: step, epoch: c.epoch, losses: runs[r].losses.upTo(step: step),
                                         testAccuracy: c.testAccuracy, points: r == 0 ? c.alignment.display : rightPoints!,
                                         leaderboard: boards[r], faithfulness: c.faithfulness?.phrase)
        }
        return ComparisonKeyframe(step: step, keyframes: keyframes, states: states, latest: shown, isNew: isNew)
    }

    /// Each run's leaderboard, or the shared disagreement one in both.
    private func leaderboards(_ shown: [AnalysedCheckpoint]) -> [Leaderboard] {
        switch ranking {
        case .outliers, .labelIssues, .movers:
            return shown.map { RenderPipeline.keyframe($0, ranking: ranking, count: topCount).leaderboard }
        case .disagreement:
            let values = Disagreement.values(shown[0], shown[1])
            let order = values.indices.sorted { (-values[$0], $0) < (-values[$1], $1) }
            let board = Leaderboard(kind: .disagreement,
                                    entries: order.prefix(topCount).map { .init(index: $0, value: values[$0]) })
            return [board, board]
        }
    }

    /// `points` rotated (reflections allowed) about the origin onto `target`, the same samples.
    static func rotate(_ points: PlanarPoints, onto target: PlanarPoints, origin: String) throws(PipelineError) -> PlanarPoints {
        do {
            return try ProcrustesFit(target: target, source: points).rotate(points)
        } catch {
            throw PipelineError("\(origin): cannot align onto the other run: \(error)")
        }
    }
}

/// How differently two runs see each sample at one moment.
enum Disagreement {
    /// Per sample: the difference of its outlier-score percentile (0 the most atypical, 1 the least)
    /// between the runs, plus the difference of its label agreement when there are labels. 0...2.
    static func values(_ a: AnalysedCheckpoint, _ b: AnalysedCheckpoint) -> [Float] {
        let pa = percentiles(a.outliers.scores), pb = percentiles(b.outliers.scores)
        var values = zip(pa, pb).map { abs($0 - $1) }
        if let qa = a.labelQuality?.agreement, let qb = b.labelQuality?.agreement {
            for i in values.indices where qa[i].isFinite && qb[i].isFinite { values[i] += abs(qa[i] - qb[i]) }
        }
        return values
    }

    /// Each value's rank among all, 0 for the lowest and 1 for the highest (ties by index).
    static func percentiles(_ scores: [Float]) -> [Float] {
        let order = scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }
        var result = [Float](repeating: 0, count: scores.count)
        let last = Float(max(scores.count - 1, 1))
        for (rank, i) in order.enumerated() { result[i] = Float(rank) / last }
        return result
    }
}
