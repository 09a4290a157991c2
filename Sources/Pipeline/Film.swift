import Compositor

/// What a film's `--dump-data` writes: the numbers behind a film (`DataDump`) or a comparison's
/// (`ComparisonDump`), completed with the film or left as they were.
protocol FilmDump: AnyObject {
    func finish() throws
    func abandon()
}

/// One film from opening to closing, for render, watch, demo and compare: its outputs (checked
/// together, then opened), its dump, its compositor and its drawing-and-encoding stage. `finish`
/// completes every output; `abandon`, on any failure, leaves them as they were before the film
/// began (a live film keeps what it showed: see `FrameOutputs`).
final class Film {
    let stage: FilmStage
    let timings: StageTimings
    private let outputs: FrameOutputs
    private let dump: (any FilmDump)?
    private let timingsPath: String?

    /// - Parameters:
    ///   - panels: 1 for a film, 2 for a comparison.
    ///   - makeDump: the dump, made once the outputs are open (and abandoned with them).
    init(setting: FilmSetting, options: RenderOptions, panels: Int = 1, timings: StageTimings,
         dump makeDump: () throws -> (any FilmDump)?) throws {
        // Every output path checked together before anything is opened (whoever calls), and what
        // killed runs left beside them cleared.
        let plan = try OutputPlan(options)
        plan.removeLeftoverTemporaries()
        let outputs = try FrameOutputs(plan: plan, options: options)
        var dump: (any FilmDump)?
        do {
            dump = try makeDump()
            let compositor: FrameCompositor
            do { compositor = try FrameCompositor(width: options.width, height: options.height, setting: setting) } catch {
                throw PipelineError("cannot draw frames", error)
            }
            stage = try FilmStage(compositor: compositor, outputs: outputs, dump: dump as? DataDump, timings: timings,
                                  options: options, panels: panels)
        } catch {
            outputs.abandon()
            dump?.abandon()
            throw error
        }
        self.outputs = outputs
        self.dump = dump
        self.timings = timings
        timingsPath = options.timingsPath
    }

    /// Completes the dump, every output and `--timings`, in that order.
    func finish(frames: Int, interrupted: Bool) throws -> RenderSummary {
        guard frames > 0 else { throw PipelineError("no frame was rendered: stopped before the first checkpoint") }
        try dump?.finish()
        try timings.measure("finish") { try outputs.finish() }
        if let timingsPath { try timings.write(to: timingsPath) }
        return RenderSummary(frames: frames, interrupted: interrupted)
    }

    func abandon() {
        outputs.abandon()
        dump?.abandon()
    }
}
