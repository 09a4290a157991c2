import AsyncAlgorithms
import Canvas
import CheckpointCache
import Compositor
import Foundation
import LinearAlgebra
import Projection
import RunFormat

/// What to render and where.
public struct RenderOptions: Sendable {
    /// `.mp4` and `.gif` paths; one encode each from the same frames.
    public var videoPaths: [String] = []
    public var framesDirectory: String?
    public var dumpDirectory: String?
    public var width = 1280
    public var height = 720
    /// Video frames per second: with the default tweening, a 30-checkpoint run plays about 12 s.
    public var fps = 24.0
    /// Frames per checkpoint: `tween - 1` frames travel between consecutive checkpoints.
    public var tween = 10
    /// `--trails K`: each point trails a line through its last K checkpoint positions.
    public var trails = 0
    public var alignment: AlignmentTarget = .previous
    public var topCount = 8
    /// What the leaderboard ranks and the scatter rings.
    public var leaderboard: LeaderboardKind = .outliers
    /// `--points`: dots, density, or density once dots would overplot.
    public var points: PointStyle = .auto
    /// `--summary-frame`: close the film with the map of the run's training dynamics (needs labels).
    public var summaryFrame = false
    /// How long videos hold the summary frame, in seconds.
    static let summaryHoldSeconds = 3.0
    public var title: String?
    /// Live: MP4s are fragmented and playable while written; finalised, not removed, on failure.
    public var live = false
    /// `--latest PNG`: the newest frame, replaced after each frame.
    public var latestPath: String?
    /// `--timings FILE`: per-stage milliseconds, as JSON: analysis per checkpoint, drawing and encoding per frame.
    public var timingsPath: String?
    /// OpenBLAS threads the analysis may use for large checkpoints (small ones use one).
    public var maxBLASThreads = ProcessInfo.processInfo.activeProcessorCount
    /// Told the film's setting, then each checkpoint as the film gets it (`watch --serve`'s explorer).
    public var tap: AnalysisTap?
    /// The analysis cache each checkpoint file's PCA and outlier scores come from, or go to.
    public var cache: AnalysisCache?
    /// The neighbour search behind the outlier scores.
    public var search: OutlierSearch = .auto
    /// How the picture is made (`--projection`).
    public var projection: ProjectionMethod = .pca
    /// One-line warnings that do not stop the film (a cache that cannot be written).
    public var warn: @Sendable (String) -> Void = { _ in }

    public init() {}
}

/// Another consumer of the film's analysis, which gets the same results instead of computing them again.
public struct AnalysisTap: Sendable {
    public var start: @Sendable (FilmSetting) -> Void
    public var analysed: @Sendable (AnalysedCheckpoint) -> Void

    public init(start: @escaping @Sendable (FilmSetting) -> Void, analysed: @escaping @Sendable (AnalysedCheckpoint) -> Void) {
        self.start = start
        self.analysed = analysed
    }
}

public struct RenderSummary: Sendable {
    public let frames: Int
    /// True when a stop request ended the render early; the outputs are still complete.
    public let interrupted: Bool
}

/// The streaming pipeline, source to encoders:
///
///     source ──channel──▶ analysis (PCA, Procrustes, outliers, label quality) ──channel──▶
///         film: timeline (keyframes, frames between) ▶ compositor ──hand-over──▶ encoders
///
/// Each stage runs in its own task, and the heavy ones compute on queues of their own
/// (`StageQueue`), off Swift's cooperative pool; the channels hold nothing, so a fast stage waits
/// for a slow one instead of queueing checkpoints (bounded memory, nothing dropped).
public enum RenderPipeline {
    public static func run(source: some CheckpointSource, setting: FilmSetting, options: RenderOptions,
                           stop: StopFlag, finalScores: PlanarPoints? = nil,
                           progress: (@Sendable (Int) -> Void)? = nil) async throws -> RenderSummary {
        let timings = StageTimings()
        let film = try Film(setting: setting, options: options, timings: timings) {
            try options.dumpDirectory.map { try DataDump(directory: $0, target: options.alignment, projection: options.projection, staged: !options.live) }
        }
        do {
            options.tap?.start(setting)
            let events = AsyncThrowingChannel<CheckpointEvent, any Error>()
            let analysed = AsyncThrowingChannel<AnalysedCheckpoint, any Error>()
            let analysis = AnalysisStage(CheckpointAnalyser(aligner: Aligner(target: options.alignment, finalScores: finalScores),
                                                            labels: setting.labels, topCount: options.topCount, timings: timings,
                                                            maxBLASThreads: options.maxBLASThreads, cache: options.cache,
                                                            search: options.search, projection: options.projection, warn: options.warn))
            let stage = film.stage
            stage.onEncodingFailure = { analysed.fail($0) }
            var checkpoints = 0
            try await stage.produce(alongside: [
                { await source.emit(into: events, stop: stop) },
                { await analysis.run(events, into: analysed) },
            ]) {
                do {
                    for try await checkpoint in analysed {
                        options.tap?.analysed(checkpoint)
                        try await stage.add(checkpoint)
                        checkpoints += 1
                        progress?(checkpoints)
                    }
                    try await stage.drawRemaining()
                    try await stage.drawSummary()
                } catch {
                    // A live film that ends on an error (the run deleted, its writer gone) keeps
                    // every checkpoint it was shown: the one it ran behind is drawn before it closes.
                    if options.live { try? await stage.drawRemaining() }
                    throw error
                }
            }
            return try film.finish(frames: checkpoints == 0 ? 0 : max(stage.filmFrames, checkpoints), interrupted: stop.isRaised)
        } catch {
            film.abandon()
            throw error
        }
    }

    /// Renders a saved run: the run-directory source feeding `run(source:...)`.
    public static func render(run: RunDirectory, options: RenderOptions, stop: StopFlag,
                              progress: (@Sendable (Int) -> Void)? = nil) async throws -> RenderSummary {
        let source = RunDirectorySource(run: run, deferReading: options.cache != nil)
        let finalScores = options.alignment == .last ? try source.finalProjection() : nil
        return try await self.run(source: source, setting: FilmSetting(run: run, options: options), options: options,
                                  stop: stop, finalScores: finalScores, progress: progress)
    }

    /// Renders a run as another process writes it, until it is marked done, goes idle or is stopped.
    /// Returns nil when no checkpoint appeared at all.
    public static func watch(_ watcher: RunWatcher, options: RenderOptions, stop: StopFlag,
                             progress: (@Sendable (Int) -> Void)? = nil) async throws -> RenderSummary? {
        guard let run = try await watcher.waitForStart(stop: stop) else { return nil }
        if (options.leaderboard == .labelIssues || options.summaryFrame) && run.annotations.labels == nil {
            throw PipelineError("\(watcher.path): \(options.summaryFrame ? "a summary frame" : "ranking label issues") needs the run's labels (labels.npy), and it has none")
        }
        var options = options
        options.live = true
        options.topCount = min(options.topCount, run.sampleCount)
        let setting = FilmSetting(sampleCount: run.sampleCount, dimension: run.dimension, annotations: run.annotations,
                                  wholeRunLosses: nil, checkpointCount: nil, options: options)
        return try await self.run(source: run, setting: setting, options: options, stop: stop, progress: progress)
    }

    /// Trains with the built-in trainer and renders each checkpoint while training goes on.
    public static func train(_ source: TrainerSource, options: RenderOptions, stop: StopFlag,
                             progress: (@Sendable (Int) -> Void)? = nil) async throws -> RenderSummary {
        var options = options
        options.live = true
        // Training and rendering get a core each, from the start: one OpenBLAS thread throughout also
        // keeps a seeded training bit-for-bit repeatable.
        options.maxBLASThreads = 1
        BLAS.setThreadCount(1)
        options.topCount = min(options.topCount, source.evalCount)
        var setting = FilmSetting(sampleCount: source.evalCount, dimension: source.recipe.hiddenLayers.last ?? 0,
                                  annotations: source.annotations, wholeRunLosses: nil,
                                  checkpointCount: source.checkpointCount, options: options)
        setting.finalStep = source.recipe.fineTuneSteps
        return try await run(source: source, setting: setting, options: options, stop: stop, progress: progress)
    }

    /// A checkpoint as the film shows it, its leaderboard ranked by `ranking`.
    static func keyframe(_ c: AnalysedCheckpoint, ranking: LeaderboardKind, count: Int) -> FilmTimeline.Keyframe {
        let leaderboard = Leaderboard(kind: ranking, entries: c.ranking(ranking, count: count),
                                      approximate: c.outliers.certificate != nil)
        return FilmTimeline.Keyframe(index: c.index, step: c.step, epoch: c.epoch, losses: c.losses, testAccuracy: c.testAccuracy,
                                     points: c.alignment.display, leaderboard: leaderboard,
                                     faithfulness: c.faithfulness?.phrase)
    }

    /// The summary frame's map: each sample's label-agreement variability and mean, its region,
    /// and the `top` samples with the lowest kNN-AUM over the run.
    static func summaryMap(_ dynamics: TrainingDynamics, top: Int) -> SummaryMap {
        let regions = (0..<dynamics.count).map { i -> SummaryMap.Region in
            switch dynamics.region(i) {
            case .easy: .easy
            case .ambiguous: .ambiguous
            case .hard: .hard
            }
        }
        let order = (0..<dynamics.count).sorted { (dynamics.knnAUM[$0], $0) < (dynamics.knnAUM[$1], $1) }
        let worst = Leaderboard(kind: .labelIssues, entries: order.prefix(top).map { .init(index: $0, value: dynamics.knnAUM[$0]) })
        return SummaryMap(points: PlanarPoints(x: dynamics.variability, y: dynamics.meanAgreement), regions: regions,
                          ambiguousVariability: Double(TrainingDynamics.ambiguousVariability),
                          easyAgreement: Double(TrainingDynamics.easyAgreement), checkpoints: dynamics.checkpoints,
                          lastStep: dynamics.steps.last ?? 0, worst: worst)
    }

    static func draw(_ content: FrameContent, with compositor: FrameCompositor) throws {
        do { try compositor.draw(content) } catch { throw PipelineError("drawing step \(content.step)", error) }
    }
}

extension FilmSetting {
    /// The film's fixed parts for a saved run.
    public init(run: RunDirectory, options: RenderOptions) {
        self.init(sampleCount: run.sampleCount, dimension: run.dimension,
                  annotations: SampleAnnotations(labels: run.labels, classNames: run.classNames, thumbnails: run.thumbnails),
                  wholeRunLosses: run.losses, checkpointCount: run.checkpoints.count, options: options)
    }

    /// The run's class names, or `class 0`, `class 1`, ... for as many classes as the labels have.
    public static func classNames(labels: [Int]?, classNames: [String]?) -> [String] {
        if let classNames { return classNames }
        return (0..<((labels?.max() ?? -1) + 1)).map { "class \($0)" }
    }

    /// The film's fixed parts from what is known before the first frame; live runs know no future losses.
    public init(sampleCount: Int, dimension: Int, annotations: SampleAnnotations, wholeRunLosses: LossHistory?,
                checkpointCount: Int?, options: RenderOptions) {
        let names = Self.classNames(labels: annotations.labels, classNames: annotations.classNames)
        let alignment: String
        switch options.alignment {
        case .previous: alignment = "each frame rotated onto the previous one (Procrustes)"
        case .last: alignment = "every frame rotated onto the final checkpoint (Procrustes)"
        case .none: alignment = "raw principal axes, not aligned"
        }
        self.init(sampleCount: sampleCount, dimension: dimension, labels: annotations.labels, classNames: names,
                  thumbnails: annotations.thumbnails, wholeRunLosses: wholeRunLosses, checkpointCount: checkpointCount,
                  title: options.title, alignment: alignment)
        pointStyle = options.points
        projection = options.projection.description
    }
}
