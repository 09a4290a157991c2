import ArgumentParser
import Compositor
import Pipeline
import Projection

extension AlignmentTarget: ExpressibleByArgument {}
extension LeaderboardKind: ExpressibleByArgument {}
extension PointStyle: ExpressibleByArgument {}

struct FrameSize: ExpressibleByArgument, CustomStringConvertible {
    let width: Int
    let height: Int

    /// The smallest frame whose text stays legible: the frame's type scales with its height.
    static let smallest = FrameSize(width: 960, height: 540)
    static let largest = FrameSize(width: 7680, height: 4320)

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// `WIDTHxHEIGHT`, digits only: no sign, space or trailing text.
    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 6 && $0.allSatisfy { "0123456789".contains($0) } }),
              let w = Int(parts[0]), let h = Int(parts[1]) else { return nil }
        width = w
        height = h
    }

    var description: String { "\(width)x\(height)" }
    var defaultValueDescription: String { description }
}

/// The options every film-making command shares: outputs, frame size, speed, leaderboard.
struct FilmOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Output video, .mp4 or .gif; repeat for both.")
    var output: [String] = []

    @Option(help: "Also write one PNG per frame into this directory.")
    var framesDir: String?

    @Option(help: "Write the numbers behind each frame into this directory: PCA, aligned coordinates, outlier scores, label layout and, with labels, label agreement and margin; the alignment and, with labels, the training dynamics (dynamics.csv).")
    var dumpData: String?

    @Option(help: "Also keep this PNG replaced by the newest frame.")
    var latest: String?

    @Option(help: ArgumentHelp("Video frames per second, 0.01 to 120 (default: 24, or 5 with --tween 1).", valueName: "fps"))
    var fps: Double?

    @Option(help: "Frames per checkpoint, 1 to 100: N - 1 frames travel between consecutive checkpoints; 1 shows each checkpoint once.")
    var tween: Int = 10

    @Option(help: "Trail each point through its last K checkpoint positions, 0 to 20.")
    var trails: Int = 0

    @Option(help: "Frame size WxH, even numbers, from \(FrameSize.smallest) to \(FrameSize.largest).")
    var size: FrameSize = FrameSize(width: 1280, height: 720)

    @Option(help: "How many samples to ring and list.")
    var top: Int = 8

    @Option(help: "What the leaderboard ranks: outliers (kNN outlier score), label-issues (lowest kNN-AUM so far: likely mislabelled; needs labels), movers (moved most against their neighbours since the last checkpoint) or, comparing two runs, disagreement (outlier rank and label agreement differ most between them).")
    var leaderboard: LeaderboardKind = .outliers

    @Option(help: "How points are drawn: dots, density (per-class density, for large sets) or auto (density from 50,000 points, or when dots would cover most of the panel at a point per ten pixels or more).")
    var points: PointStyle = .auto

    @Flag(help: "End the film with a map of the run's training dynamics: each sample's mean label agreement against its variability, with the easy, ambiguous and hard regions counted (needs labels).")
    var summaryFrame = false

    @Option(help: "A title shown beside the step.")
    var title: String?

    @Option(help: "Write per-stage milliseconds (JSON) to this file: analysis per checkpoint, drawing and encoding per frame.")
    var timings: String?

    @Option(help: OutlierSearch.help)
    var search: OutlierSearch = .auto

    @OptionGroup var layout: ProjectionOptions

    func validate() throws {
        guard size.width >= FrameSize.smallest.width, size.height >= FrameSize.smallest.height, size.width <= FrameSize.largest.width,
              size.height <= FrameSize.largest.height, size.width % 2 == 0, size.height % 2 == 0 else {
            throw ValidationError("--size \(size): width and height must be even, from \(FrameSize.smallest) to \(FrameSize.largest)")
        }
        if let fps { try checkRange("--fps", fps, RenderOptions.framesPerSecondRange) }
        guard (1...100).contains(tween) else { throw ValidationError("--tween \(tween): must be from 1 to 100") }
        guard (0...20).contains(trails) else { throw ValidationError("--trails \(trails): must be from 0 to 20") }
        guard (1...32).contains(top) else { throw ValidationError("--top \(top): must be from 1 to 32") }
    }

    var renderOptions: RenderOptions {
        var options = RenderOptions()
        options.videoPaths = output
        options.framesDirectory = framesDir
        options.dumpDirectory = dumpData
        options.width = size.width
        options.height = size.height
        options.tween = tween
        options.trails = trails
        options.fps = fps ?? (tween == 1 ? 5 : 24)
        options.topCount = top
        options.leaderboard = leaderboard
        options.points = points
        options.summaryFrame = summaryFrame
        options.title = title
        options.latestPath = latest
        options.timingsPath = timings
        options.search = search
        options.projection = layout.method
        return options
    }

    /// Checks every output path before any work, so a bad one is refused with nothing read or
    /// written: among them, that none would replace or write into the inputs of `runs`.
    func validateOutputs(_ options: RenderOptions, readingRuns runs: [String]) {
        do { try options.validateOutputs(readingRuns: runs) } catch {
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
        case .table: "-o"
        }
    }

    /// Refuses what only a comparison of two runs can do.
    func checkOneRun() throws {
        if leaderboard == .disagreement {
            throw ValidationError("--leaderboard disagreement ranks two runs together: use embedlapse compare RUN_A RUN_B")
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
