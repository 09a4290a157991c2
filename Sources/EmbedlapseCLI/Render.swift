import ArgumentParser
import Embedlapse
import Foundation
import Projection
import RunFormat

extension AlignmentTarget: ExpressibleByArgument {}

struct FrameSize: ExpressibleByArgument {
    let width: Int
    let height: Int

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else { return nil }
        width = w
        height = h
    }
}

/// The options every film-making command shares: outputs, frame size, speed, leaderboard.
struct FilmOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Output video, .mp4 or .gif; repeat for both.")
    var output: [String] = []

    @Option(help: "Also write one PNG per frame into this directory.")
    var framesDir: String?

    @Option(help: "Write each checkpoint's PCA, aligned coordinates, outlier scores and alignment into this directory.")
    var dumpData: String?

    @Option(help: "Also keep this PNG replaced by the newest frame.")
    var latest: String?

    @Option(help: "Frames (checkpoints) per second of video.")
    var fps: Double = 5

    @Option(help: "Frame size WxH, even numbers.")
    var size: FrameSize = FrameSize(argument: "1280x720")!

    @Option(help: "How many outliers to ring and list.")
    var top: Int = 8

    @Option(help: "A title shown beside the step.")
    var title: String?

    @Option(help: "Write per-stage milliseconds per checkpoint (JSON) to this file.")
    var timings: String?

    func validate() throws {
        guard size.width >= 320, size.height >= 180, size.width <= 7680, size.height <= 4320,
              size.width % 2 == 0, size.height % 2 == 0 else {
            throw ValidationError("--size \(size.width)x\(size.height): width and height must be even, from 320x180 to 7680x4320")
        }
        guard fps > 0, fps <= 120 else { throw ValidationError("--fps \(fps): must be above 0 and at most 120") }
        guard (1...32).contains(top) else { throw ValidationError("--top \(top): must be from 1 to 32") }
    }

    var renderOptions: RenderOptions {
        var options = RenderOptions()
        options.videoPaths = output
        options.framesDirectory = framesDir
        options.dumpDirectory = dumpData
        options.width = size.width
        options.height = size.height
        options.fps = fps
        options.topCount = top
        options.title = title
        options.latestPath = latest
        options.timingsPath = timings
        return options
    }

    /// Whether any frame or data output was asked for.
    var writesAnything: Bool { !output.isEmpty || framesDir != nil || dumpData != nil || latest != nil }

    /// The paths written, for the closing message.
    var written: String { (output + [framesDir, dumpData, latest].compactMap { $0 }).joined(separator: ", ") }
}

struct Render: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a saved training run to MP4, GIF and/or PNG frames.",
        discussion: """
            RUN is a run directory: checkpoint-<step>/embeddings.npy for each checkpoint, and \
            optionally labels.npy, class_names.json, images.npy, losses.csv and \
            checkpoint-<step>/trainer_state.json (see docs/run-layout.md).

            Examples:
              embedlapse render runs/vit-cifar10 -o film.mp4
              embedlapse render runs/vit-cifar10 -o film.mp4 -o film.gif --fps 8
              embedlapse render runs/vit-cifar10 --frames-dir frames/ --dump-data numbers/
              embedlapse render runs/vit-cifar10 -o film.mp4 --align last --size 1920x1080
            """)

    @Argument(help: "The run directory.")
    var run: String

    @OptionGroup var film: FilmOptions

    @Option(help: "Procrustes target: previous (each frame onto the one before), last (onto the final checkpoint) or none.")
    var align: AlignmentTarget = .previous

    func validate() throws {
        guard film.writesAnything else {
            throw ValidationError("nothing to write: give -o OUT.mp4, -o OUT.gif, --frames-dir DIR, --dump-data DIR or --latest PNG")
        }
    }

    func run() async throws {
        let runDirectory: RunDirectory
        do { runDirectory = try RunDirectory(path: run) } catch { fail(error.description) }
        for warning in runDirectory.warnings { note("warning: \(warning)") }

        var options = film.renderOptions
        options.alignment = align
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
            note("interrupted: wrote \(summary.frames) of \(total) frames to \(film.written)")
            throw ExitCode(130)
        }
        note("wrote \(summary.frames) frames to \(film.written)")
    }
}

/// Turns Ctrl-C and SIGTERM into a stop request, so the render finishes the frames in flight
/// and finalises its outputs instead of dying with half a file.
final class SignalTrap {
    private let sources: [any DispatchSourceSignal]

    init(stop: StopFlag) {
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if stop.isRaised { exit(130) }  // a second Ctrl-C: give up at once
                stop.raise()
                note("\nstopping: finishing the frames in flight (Ctrl-C again to abort)")
            }
            source.resume()
            return source
        }
    }

    func restore() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// `frames 12/31  4.2 fps  ~5 s left`, redrawn in place on a terminal; silent otherwise.
final class ProgressLine: @unchecked Sendable {  // mutable state guarded by `lock`
    private let total: Int?
    private let enabled = isatty(STDERR_FILENO) == 1
    private let start = Date()
    private let lock = NSLock()
    private var shown = false

    init(total: Int?) { self.total = total }

    func update(_ done: Int) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let elapsed = Date().timeIntervalSince(start)
        let rate = Double(done) / max(elapsed, 1e-3)
        var line = "frames \(done)" + (total.map { "/\($0)" } ?? "") + String(format: "  %.1f fps", rate)
        if let total, done < total { line += String(format: "  ~%.0f s left", Double(total - done) / max(rate, 1e-3)) }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
        shown = true
    }

    func end() {
        lock.lock()
        defer { lock.unlock() }
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
        shown = false
    }
}
