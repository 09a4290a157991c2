import ArgumentParser
import Embedlapse
import Projection

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

    @Option(help: "Frames (checkpoints) per second of video, 0.01 to 120.")
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
        try checkRange("--fps", fps, RenderOptions.framesPerSecondRange)
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

    /// Checks every output path before any work, so a bad one is refused with nothing read or written.
    func validateOutputs(_ options: RenderOptions) {
        do { try options.validateOutputs() } catch {
            guard let output = error.output else { fail(error.description) }
            fail("\(Self.option(for: output)) \(error.description)")
        }
    }

    static func option(for output: OutputPlan.Kind) -> String {
        switch output {
        case .video: "-o"
        case .framesDirectory: "--frames-dir"
        case .dataDirectory: "--dump-data"
        case .latestFrame: "--latest"
        case .timings: "--timings"
        }
    }

    /// Whether any frame or data output was asked for.
    var writesAnything: Bool { !output.isEmpty || framesDir != nil || dumpData != nil || latest != nil }

    /// The paths written, for the closing message.
    var written: String { (output + [framesDir, dumpData, latest].compactMap { $0 }).joined(separator: ", ") }
}

/// Refuses a number outside its stated range (NaN and infinities included).
func checkRange(_ flag: String, _ value: Double, _ range: ClosedRange<Double>) throws {
    guard range.contains(value) else {
        throw ValidationError("\(flag) \(value): must be from \(plainNumber(range.lowerBound)) to \(plainNumber(range.upperBound))")
    }
}

/// A range bound as people write it: 120, not 120.0.
private func plainNumber(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
}
