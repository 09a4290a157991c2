import AsyncAlgorithms
import Canvas
import Compositor
import Projection
import Synchronization

/// The pipeline's last two stages: drawing each frame the timeline makes ready, and encoding it.
/// They overlap: frame i + 1 is drawn while frame i is encoded (libx264 is the slower of the two,
/// so the film comes out at about the encoder's own rate).
///
/// Frames travel from drawing to encoding in two surfaces used in turn. The channel between them
/// holds nothing: a send returns only when the encoder takes the frame, which it does only after
/// finishing the one before. So when a surface is drawn into again, two frames later, the encoder
/// is done with it.
///
/// Unchecked Sendable: its mutable state (the timelines, panel states, dynamics, the surface in
/// turn, the frame count) is touched only by the one feeding task and the jobs it queues on
/// `drawing`, each awaited before the next: never two at once. The encoding task touches only the
/// outputs (under `UnfinishedOutputs`' lock) and `encodingFailure`, a Mutex.
final class FilmStage: @unchecked Sendable {
    private let compositor: FrameCompositor
    private let outputs: FrameOutputs
    let dump: DataDump?
    /// One timeline per panel: one for a film, two for a comparison (`compare`), fed in lockstep.
    private var timelines: [FilmTimeline]
    /// A comparison's panel states at each keyframe in the timelines' window, by keyframe index.
    private var panelStates: [Int: [ComparisonContent.PanelState]] = [:]
    private let timings: StageTimings
    private let options: RenderOptions
    private let drawing = StageQueue("drawing"), encoding = StageQueue("encoding")
    private let surfaces: [ImageSurface]
    private var nextSurface = 0
    private let handOver = AsyncChannel<Frame>()
    private let encodingFailure = Mutex<(any Error)?>(nil)
    /// The whole run's label dynamics so far (for the summary frame); nil without labels.
    private var dynamics: TrainingDynamics?
    /// Frames that went into the film so far.
    private(set) var filmFrames = 0
    /// Told of an encoding failure at once (the pipeline ends its input with it), rather than when
    /// the next frame is handed over, which in a quiet live run could be days later.
    var onEncodingFailure: (@Sendable (any Error) -> Void)?

    /// Unchecked Sendable for its surface, which the drawing side does not touch again until the
    /// encoder has taken the frame after this one (the two surfaces are used in turn, see above).
    private struct Frame: @unchecked Sendable {
        let surface: ImageSurface
        let filmIndex: Int?
        let showsLatest: Bool
        /// Videos hold it this many frames (the summary frame); 1 otherwise.
        let held: Int
    }

    /// - Parameter panels: 1 for a film, 2 for a comparison of two runs (`add(comparison:states:)`).
    init(compositor: FrameCompositor, outputs: FrameOutputs, dump: DataDump?, timings: StageTimings, options: RenderOptions,
         panels: Int = 1) throws {
        self.compositor = compositor
        self.outputs = outputs
        self.dump = dump
        self.timings = timings
        self.options = options
        // Without a video or frames folder only checkpoints' own frames are drawn (for --latest, --dump-data).
        timelines = (0..<max(panels, 1)).map { _ in
            FilmTimeline(tween: outputs.takesFilm ? options.tween : 1, trails: options.trails, live: options.live,
                         latestOnly: outputs.takesLatest)
        }
        do {
            surfaces = try (0..<2).map { _ in try ImageSurface(width: compositor.surface.width, height: compositor.surface.height) }
        } catch {
            throw PipelineError("cannot draw frames", error)
        }
    }

    /// Makes the film: encodes while `feed` draws its frames and `companions` (the source, the
    /// analysis) run beside; then closes the film, waits for every task and checks the encoder.
    /// If `feed` fails, the film is closed and the companions are cancelled.
    func produce(alongside companions: [@Sendable () async -> Void] = [], feed: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for companion in companions { group.addTask(operation: companion) }
            group.addTask { await self.encodeAll() }
            do {
                try await feed()
            } catch {
                close()
                group.cancelAll()
                throw error
            }
            close()
            try await group.waitForAll()
            try checkEncoding()
        }
    }

    /// Encodes the frames handed over, until `close()`; run it as a task beside the drawing.
    private func encodeAll() async {
        for await frame in handOver {
            do {
                try await encoding.run { [self] in
                    try timings.measure("encode") {
                        if frame.held > 1, let index = frame.filmIndex {
                            try outputs.writeHeld(frame.surface, filmIndex: index, videoFrames: frame.held)
                        } else {
                            try outputs.write(frame.surface, filmIndex: frame.filmIndex, showsLatest: frame.showsLatest)
                        }
                    }
                }
            } catch {
                encodingFailure.withLock { $0 = $0 ?? error }
                onEncodingFailure?(error)
                // Pending and later sends return at once: the drawing side sees the failure next.
                handOver.finish()
                return
            }
        }
    }

    /// Records a checkpoint's data and draws the frames it makes ready.
    func add(_ checkpoint: AnalysedCheckpoint) async throws {
        let frames = try await drawing.run { [self] in
            try timings.measure("dump") { try dump?.record(checkpoint) }
            dynamics = checkpoint.dynamics
            return timelines[0].add(RenderPipeline.keyframe(checkpoint, ranking: options.leaderboard, count: options.topCount))
        }
        try await draw(frames)
    }

    /// A comparison's next keyframe: one per panel, all at the film's same step, and what each panel shows.
    func add(comparison keyframes: [FilmTimeline.Keyframe], states: [ComparisonContent.PanelState]) async throws {
        let frames = try await drawing.run { [self] in
            precondition(keyframes.count == timelines.count && states.count == timelines.count)
            let index = keyframes[0].index
            panelStates[index] = states
            panelStates = panelStates.filter { $0.key >= index - 2 }
            // The timelines are fed alike, so they make the same frames: the first one's stand for all.
            return keyframes.indices.map { timelines[$0].add(keyframes[$0]) }[0]
        }
        try await draw(frames)
    }

    /// Draws what the timelines still owe: the segment they ran behind and the last keyframe.
    func drawRemaining() async throws {
        try await draw(try await drawing.run { [self] in timelines.indices.map { timelines[$0].finish() }[0] })
    }

    /// `--summary-frame`: the map of the run's label dynamics, held for a few seconds in videos.
    func drawSummary() async throws {
        guard options.summaryFrame, outputs.takesFilm, filmFrames > 0, let dynamics else { return }
        let frame = try await drawing.run { [self] in
            try timings.measure("draw") {
                do { try compositor.drawSummary(RenderPipeline.summaryMap(dynamics, top: options.topCount)) } catch {
                    throw PipelineError("drawing the summary frame", error)
                }
            }
            let held = RenderOptions.summaryHoldSeconds * options.fps
            return Frame(surface: copyOut(), filmIndex: filmFrames, showsLatest: false,
                         held: held.isFinite ? Int(min(max(held.rounded(), 1), 10_000)) : 1)
        }
        try await hand(frame)
    }

    /// Ends the encoding task once it has written what it was handed.
    func close() {
        handOver.finish()
    }

    private func draw(_ frames: [TimelineFrame]) async throws {
        for frame in frames {
            let drawn = try await drawing.run { [self] in
                try timings.measure("draw") { try drawContent(of: frame) }
                if let step = frame.keyframeStep { try dump?.recordLabels(compositor.drawnLabels, step: step) }
                return Frame(surface: copyOut(), filmIndex: frame.filmIndex, showsLatest: frame.showsLatest, held: 1)
            }
            try await hand(drawn)
        }
    }

    /// Draws a frame of the film, or of the comparison, into the compositor's surface.
    private func drawContent(of frame: TimelineFrame) throws {
        guard timelines.count > 1 else {
            try RenderPipeline.draw(timelines[0].content(of: frame), with: compositor)
            return
        }
        let contents = timelines.map { $0.content(of: frame) }
        let states = panelStates[frame.keyframe] ?? contents.map { _ in .current }
        let comparison = ComparisonContent(step: contents[0].step, stepPosition: contents[0].stepPosition,
                                           panels: zip(contents, states).map { ComparisonContent.Panel(content: $0, state: $1) })
        do { try compositor.draw(comparison) } catch { throw PipelineError("drawing step \(comparison.step)", error) }
    }

    private func hand(_ frame: Frame) async throws {
        await handOver.send(frame)
        // A cancelled send returns without handing the frame over: its surface may still be read.
        try Task.checkCancellation()
        try checkEncoding()
        if frame.filmIndex != nil { filmFrames += 1 }
    }

    /// The compositor's frame, copied into the next hand-over surface.
    private func copyOut() -> ImageSurface {
        let surface = surfaces[nextSurface]
        nextSurface = (nextSurface + 1) % surfaces.count
        surface.copyPixels(from: compositor.surface)
        return surface
    }

    /// Rethrows the encoder's failure, if it had one.
    func checkEncoding() throws {
        if let failure = encodingFailure.withLock({ $0 }) { throw failure }
    }
}
