import ArgumentParser
import Embedlapse
import Foundation

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a run while another process writes it: the video grows as checkpoints land.",
        discussion: """
            Checkpoints that already exist are rendered first, then each new one as soon as its \
            embeddings.npy is complete (a file still being written is waited for). The watch ends \
            when the run directory contains a file named DONE, after --idle-timeout seconds without \
            a new checkpoint, or on Ctrl-C; the video is finalised in every case. MP4s are written \
            as fragmented MP4, playable up to the last frame at any moment. Tweened, the film runs \
            one checkpoint behind (the frames between two checkpoints need both), and --latest shows \
            the newest checkpoint at once.

            Examples:
              embedlapse watch runs/live -o live.mp4 --latest latest.png
              embedlapse watch runs/live -o live.mp4 --idle-timeout 600
            """)

    @Argument(help: "The run directory another process is writing.")
    var run: String

    @OptionGroup var film: FilmOptions

    @Option(help: "Stop after this many seconds without a new checkpoint, 0.1 to 2592000 (default: wait for DONE or Ctrl-C).")
    var idleTimeout: Double?

    @Flag(help: "End the watch (finalising the video) when the process that started it exits, as a training that crashed.")
    var stopWithParent = false

    func validate() throws {
        guard film.writesAnything else {
            throw ValidationError("nothing to write: give -o OUT.mp4, -o OUT.gif, --latest PNG, --frames-dir DIR or --dump-data DIR")
        }
        if let idleTimeout { try checkRange("--idle-timeout", idleTimeout, 0.1...2_592_000) }
    }

    func run() async throws {
        var watcher = RunWatcher(path: run)
        watcher.idleTimeout = idleTimeout.map { .milliseconds(Int64(($0 * 1000).rounded())) }
        watcher.stopWithParent = stopWithParent
        watcher.warn = { note("warning: \($0)") }
        watcher.inform = { note($0) }
        let options = film.renderOptions
        film.validateOutputs(options)

        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let progress = ProgressLine(total: nil)
        let summary: RenderSummary?
        do {
            summary = try await RenderPipeline.watch(watcher, options: options, stop: stop, progress: { progress.update($0) })
        } catch {
            progress.end()
            fail("\(error)")
        }
        progress.end()
        guard let summary else { fail("\(run): no checkpoint appeared: nothing was written") }
        note("\(summary.interrupted ? "interrupted: " : "")wrote \(summary.frames) frames to \(film.written)")
        if summary.interrupted { throw ExitCode(130) }
    }
}
