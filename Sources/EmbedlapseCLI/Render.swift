import ArgumentParser
import Pipeline
import Foundation
import Projection
import RunFormat

struct Render: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a saved training run to MP4, GIF and/or PNG frames.",
        discussion: """
            RUN is a run directory: checkpoint-<step>/embeddings.npy for each checkpoint, and \
            optionally labels.npy, class_names.json, images.npy, losses.csv and \
            checkpoint-<step>/trainer_state.json (see docs/run-layout.md).

            Examples:
              embedlapse render runs/vit-cifar10 -o film.mp4
              embedlapse render runs/vit-cifar10 -o film.mp4 -o film.gif --tween 1 --fps 8
              embedlapse render runs/vit-cifar10 -o film.mp4 --leaderboard label-issues --summary-frame
              embedlapse render runs/vit-cifar10 --frames-dir frames/ --dump-data numbers/
              embedlapse render runs/vit-cifar10 -o film.mp4 --align last --size 1920x1080
            """)

    @Argument(help: "The run directory.")
    var run: String

    @OptionGroup var film: FilmOptions

    @Option(help: "Procrustes target: previous (each frame onto the one before), last (onto the final checkpoint) or none.")
    var align: AlignmentTarget = .previous

    @OptionGroup var cache: CacheOptions

    func validate() throws {
        try film.layout.check(alignment: align)
        try film.checkOneRun()
        guard film.writesAnything else {
            throw ValidationError("nothing to write: give -o OUT.mp4, -o OUT.gif, --frames-dir DIR, --dump-data DIR or --latest PNG")
        }
    }

    func run() async throws {
        film.validateOutputs(film.renderOptions, readingRuns: [run])
        let runDirectory: RunDirectory
        do { runDirectory = try RunDirectory(path: run) } catch { fail(error.description) }
        for warning in runDirectory.warnings { note("warning: \(warning)") }
        if runDirectory.labels == nil, let flag = film.leaderboard == .labelIssues ? "--leaderboard label-issues" : film.summaryFrame ? "--summary-frame" : nil {
            fail("\(run): \(flag) needs the run's labels (labels.npy), and it has none")
        }

        var options = film.renderOptions
        options.alignment = align
        options.cache = cache.cache(forRun: run)
        options.warn = { note("warning: \($0)") }
        options.topCount = min(options.topCount, runDirectory.sampleCount)

        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let total = runDirectory.checkpoints.count
        let progress = ProgressLine(total: total)
        let summary: RenderSummary
        do {
            summary = try await RenderPipeline.render(run: runDirectory, options: options, stop: stop,
                                                      progress: { progress.update($0) })
        } catch {
            progress.end()
            fail("\(error)")
        }
        progress.end()
        if summary.interrupted {
            note("interrupted: wrote \(summary.frames) frames to \(film.written), before the last of \(total) checkpoints")
            throw ExitCode(130)
        }
        note("wrote \(summary.frames) frames to \(film.written)")
    }
}
