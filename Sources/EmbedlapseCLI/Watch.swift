import ArgumentParser
import Pipeline
import Explorer
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

            With --serve, the explorer (see embedlapse serve) shows the same analysis in the \
            browser while the film grows, and goes on serving after the film is finalised, until \
            Ctrl-C or, with --stop-with-parent, until the process that started the watch exits.

            Examples:
              embedlapse watch runs/live -o live.mp4 --latest latest.png
              embedlapse watch runs/live -o live.mp4 --idle-timeout 600
              embedlapse watch runs/live -o live.mp4 --serve
            """)

    @Argument(help: "The run directory another process is writing.")
    var run: String

    @OptionGroup var film: FilmOptions

    @Option(help: "Stop after this many seconds without a new checkpoint, 0.1 to 2592000 (default: wait for DONE or Ctrl-C).")
    var idleTimeout: Double?

    @Flag(help: "End the watch (finalising the video) when the process that started it exits, as a training that crashed.")
    var stopWithParent = false

    @Flag(help: "Also serve the explorer in the browser (prints: serving RUN at URL), with --host and --port.")
    var serve = false

    @OptionGroup var server: ServerOptions

    func validate() throws {
        try film.checkOneRun()
        guard film.writesAnything else {
            throw ValidationError("nothing to write: give -o OUT.mp4, -o OUT.gif, --latest PNG, --frames-dir DIR or --dump-data DIR\(serve ? " (embedlapse serve explores a run without filming it)" : "")")
        }
        if let idleTimeout { try checkRange("--idle-timeout", idleTimeout, 0.1...2_592_000) }
    }

    func run() async throws {
        var watcher = RunWatcher(path: run)
        watcher.idleTimeout = idleTimeout.map { .milliseconds(Int64(($0 * 1000).rounded())) }
        watcher.stopWithParent = stopWithParent
        watcher.warn = { note("warning: \($0)") }
        watcher.inform = { note($0) }
        var options = film.renderOptions
        options.warn = { note("warning: \($0)") }
        film.validateOutputs(options, readingRuns: [run])

        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let explorer = serve ? try await startExplorer(&options) : nil
        let progress = ProgressLine(total: nil)
        let summary: RenderSummary?
        do {
            summary = try await RenderPipeline.watch(watcher, options: options, stop: stop, progress: { progress.update($0) })
        } catch {
            progress.end()
            await explorer?.stop()
            fail("\(error)")
        }
        progress.end()
        guard let summary else {
            await explorer?.stop()
            fail("\(run): no checkpoint appeared: nothing was written")
        }
        note("\(summary.interrupted ? "interrupted: " : "")wrote \(summary.frames) frames to \(film.written)")
        if let explorer, !summary.interrupted {
            explorer.store.markDone()
            note("still serving at \(explorer.url): Ctrl-C stops")
            let parent = getppid()
            while !stop.isRaised && !(stopWithParent && getppid() != parent) {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        await explorer?.stop()
        if summary.interrupted { throw ExitCode(130) }
    }

    /// Starts the explorer on the film's analysis and waits until it listens; a server that cannot
    /// listen (the port taken) ends the command before any frame.
    private func startExplorer(_ options: inout RenderOptions) async throws -> RunningExplorer {
        let store = ExplorerStore(runName: run, projection: film.layout.method)
        options.tap = store.tap
        // The page's drawing needs a core of its own.
        options.maxBLASThreads = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)
        var explorer = server.explorer(for: [run], projection: film.layout.method)
        let (listening, announce) = AsyncStream<Result<String, any Error>>.makeStream()
        let printLine = explorer.onListening
        explorer.onListening = { url in
            printLine(url)
            announce.yield(.success(url))
        }
        let stopServing = StopFlag()
        let task = Task { [explorer] in
            do { try await explorer.serve(store, until: stopServing) } catch { announce.yield(.failure(error)) }
        }
        var first = listening.makeAsyncIterator()
        switch await first.next() {
        case .success(let url):
            return RunningExplorer(store: store, url: url, stopFlag: stopServing, task: task)
        case .failure(let error):
            fail("cannot serve on \(server.host):\(server.port): \(error)")
        case nil:
            fail("cannot serve on \(server.host):\(server.port)")
        }
    }
}

/// `watch --serve`'s explorer while it runs.
private struct RunningExplorer {
    let store: ExplorerStore
    let url: String
    let stopFlag: StopFlag
    let task: Task<Void, Never>

    func stop() async {
        stopFlag.raise()
        await task.value
    }
}
