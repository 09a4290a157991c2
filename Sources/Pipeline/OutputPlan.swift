import FileOutput
import Foundation
import MediaEncoder
import RunFormat

/// An output that cannot be written, found before any work: `PATH: problem`, in plain words.
public struct OutputPathError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String
    /// Which output it is about, when it is about one: the command line names it by its option.
    public let output: OutputPlan.Kind?

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
        output = nil
    }

    init(_ output: OutputPlan.Output, _ problem: String) {
        path = output.path
        self.problem = problem
        self.output = output.kind
    }

    public var description: String { "\(path.isEmpty ? "\"\"" : path): \(problem)" }
}

/// Every output a render will write, checked together before any work starts, so that a bad path
/// fails at once rather than after the video was encoded: a known kind of file, a parent folder
/// that exists, is a folder and is writable, and no two outputs on one file (after resolving the
/// folders' real paths, so `a.mp4` and `./a.mp4` are one file). `RenderPipeline` checks it before
/// opening anything; a command line checks it first of all, before reading the run:
///
///     try options.validateOutputs()
public struct OutputPlan: Sendable {
    public enum Kind: Sendable {
        case video, framesDirectory, dataDirectory, latestFrame, timings
        /// `embedlapse export`'s CSV table.
        case table
    }

    public struct Output: Sendable {
        public let kind: Kind
        public let path: String
        /// Absolute, with the part that exists resolved through symbolic links: two spellings of one
        /// place resolve alike. A file's own name is kept as given (it is replaced, not followed).
        let resolved: String

        init(_ kind: Kind, _ path: String) {
            self.kind = kind
            self.path = path
            resolved = kind.isDirectory ? Paths.resolve(path) : Paths.resolve(file: path)
        }

        /// What it is, for messages (in the library's words, not the command line's).
        var role: String {
            switch kind {
            case .video: "the video"
            case .framesDirectory: "the frames folder"
            case .dataDirectory: "the data folder"
            case .latestFrame: "the latest-frame PNG"
            case .timings: "the timings file"
            case .table: "the table"
            }
        }

        /// The folder a file output goes in, as given: "." for a bare name.
        var folder: String { Paths.folder(of: path) }
        var name: String { Paths.name(of: path) }
    }

    public let outputs: [Output]

    /// The longest file name an output may have: its temporary, `.NAME.PID.partial`, must fit
    /// the file system's 255 bytes too (a PID has at most 7 digits).
    static let maxNameLength = 255 - ".".utf8.count - ".1234567.partial".utf8.count

    public init(_ options: RenderOptions) throws(OutputPathError) {
        var outputs = options.videoPaths.map { Output(.video, $0) }
        if let path = options.framesDirectory { outputs.append(Output(.framesDirectory, path)) }
        if let path = options.dumpDirectory { outputs.append(Output(.dataDirectory, path)) }
        if let path = options.latestPath { outputs.append(Output(.latestFrame, path)) }
        if let path = options.timingsPath { outputs.append(Output(.timings, path)) }

        for output in outputs { try Self.checkShape(output) }
        // Before the kinds: `--latest x.mp4 -o x.mp4` is above all two outputs on one file.
        try Self.checkDistinct(outputs)
        for output in outputs {
            try Self.checkKind(output)
            if output.kind.isDirectory { try Self.checkDirectory(output) } else { try Self.checkFile(output) }
        }
        if let video = outputs.first(where: { $0.kind == .video }) {
            do { try MediaLimits.checkVideo(width: options.width, height: options.height, fps: options.fps) } catch {
                throw OutputPathError(video, error.description)
            }
        }
        if let image = outputs.first(where: { $0.kind == .framesDirectory || $0.kind == .latestFrame }) {
            do { try MediaLimits.checkImage(width: options.width, height: options.height) } catch {
                throw OutputPathError(image, error.description)
            }
        }
        self.outputs = outputs
    }

    /// The one output of `embedlapse export`: a CSV file whose folder exists and is writable.
    public init(table path: String) throws(OutputPathError) {
        let output = Output(.table, path)
        try Self.checkShape(output)
        try Self.checkKind(output)
        try Self.checkFile(output)
        outputs = [output]
    }

    private static func checkShape(_ output: Output) throws(OutputPathError) {
        guard !output.path.isEmpty else { throw OutputPathError(output, "an empty path for \(output.role)") }
        guard !output.kind.isDirectory else { return }
        guard !["", ".", ".."].contains(output.name) else { throw OutputPathError(output, "names a folder, not a file") }
        guard output.name.utf8.count <= maxNameLength else {
            throw OutputPathError(output, "the file name is too long: at most \(maxNameLength) bytes")
        }
    }

    private static func checkKind(_ output: Output) throws(OutputPathError) {
        switch output.kind {
        case .video where VideoFormat(forPath: output.path, live: false) == nil:
            throw OutputPathError(output, "unknown video type: the name must end in .mp4 or .gif")
        case .latestFrame where !output.path.lowercased().hasSuffix(".png"):
            throw OutputPathError(output, "the latest frame is a PNG: the name must end in .png")
        case .table where !output.path.lowercased().hasSuffix(".csv"):
            throw OutputPathError(output, "the table is CSV: the name must end in .csv")
        default: break
        }
    }

    /// No two outputs on one file; no output inside a file output, or on a name a folder output writes.
    private static func checkDistinct(_ outputs: [Output]) throws(OutputPathError) {
        for (j, b) in outputs.enumerated() {
            for a in outputs[..<j] {
                for (first, second) in [(a, b), (b, a)] {
                    let bothFolders = first.kind.isDirectory && second.kind.isDirectory  // their names never meet
                    if !bothFolders && (first.resolved == second.resolved || sameExistingFile(first.path, second.path)) {
                        let noun = b.kind.isDirectory ? "path" : "file"
                        throw OutputPathError(b, "the same \(noun) as \(a.role) \(a.path): give each output a \(noun) of its own")
                    }
                    guard second.resolved.hasPrefix(first.resolved + "/") else { continue }
                    let inside = second.resolved.dropFirst(first.resolved.count + 1).prefix { $0 != "/" }
                    if !first.kind.isDirectory {
                        throw OutputPathError(second, "lies inside \(first.role) \(first.path), which is a file")
                    }
                    if first.kind.writes(fileNamed: String(inside)) {
                        throw OutputPathError(second, "\(first.role) \(first.path) writes a file of that name")
                    }
                }
            }
        }
    }

    private static func sameExistingFile(_ a: String, _ b: String) -> Bool {
        var x = stat(), y = stat()
        return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }

    /// A file output: its folder exists, is a folder and is writable; the file, if it exists, is a plain file.
    private static func checkFile(_ output: Output) throws(OutputPathError) {
        let folder = output.folder
        var info = stat()
        guard stat(folder, &info) == 0 else {
            switch errno {
            case ENOENT: throw OutputPathError(output, "the folder \(folder) does not exist")
            case ENOTDIR: throw OutputPathError(output, "\(folder) is not a folder")
            default: throw OutputPathError(output, "cannot use the folder \(folder): \(systemWords(errno))")
            }
        }
        guard isDirectory(info) else { throw OutputPathError(output, "\(folder) is not a folder") }
        try checkWritable(folder, for: output.path)
        if stat(output.path, &info) == 0 {
            if isDirectory(info) { throw OutputPathError(output, "is a folder, not a file") }
            if info.st_mode & S_IFMT != S_IFREG { throw OutputPathError(output, "is not a regular file") }
        } else if errno != ENOENT {
            throw OutputPathError(output, "cannot use: \(systemWords(errno))")
        }
    }

    /// A folder output: an existing, writable folder, or one that can be made in its nearest existing parent.
    private static func checkDirectory(_ output: Output) throws(OutputPathError) {
        var info = stat()
        if stat(output.path, &info) == 0 {
            guard isDirectory(info) else { throw OutputPathError(output, "exists and is not a folder") }
            try checkWritable(output.path, for: output.path)
            return
        }
        guard errno == ENOENT || errno == ENOTDIR else { throw OutputPathError(output, "cannot use: \(systemWords(errno))") }
        var ancestor = Paths.folder(of: output.path.hasSuffix("/") ? String(output.path.dropLast()) : output.path)
        while stat(ancestor, &info) != 0, ancestor != ".", ancestor != "/" {
            ancestor = Paths.folder(of: ancestor)
        }
        guard isDirectory(info) else { throw OutputPathError(output, "cannot make this folder: \(ancestor) is not a folder") }
        try checkWritable(ancestor, for: output.path)
    }

    private static func checkWritable(_ folder: String, for path: String) throws(OutputPathError) {
        guard access(folder, W_OK | X_OK) != 0 else { return }
        let problem = errno == EROFS ? "not writable: read-only file system" : (errno == EACCES ? "not writable" : "not writable: \(systemWords(errno))")
        throw OutputPathError(path, folder == path ? "the folder is \(problem)" : "the folder \(folder) is \(problem)")
    }

    private static func isDirectory(_ info: stat) -> Bool { info.st_mode & S_IFMT == S_IFDIR }

    /// Refuses any output that would replace or write into a run's inputs (see `RunInputs`),
    /// naming both: call it with every run the command reads, before any work. Then holds the
    /// outputs' folders open (`PinnedFolders`), so that every write goes to the place checked here.
    public func check(against runs: [RunInputs]) throws(OutputPathError) {
        for output in outputs {
            for run in runs {
                let problem = output.kind.isDirectory ? run.conflict(folder: output.path, writes: output.kind.writes(fileNamed:))
                    : run.conflict(file: output.path)
                if let problem { throw OutputPathError(output, problem) }
            }
        }
        for output in outputs {
            do {
                if !output.kind.isDirectory {
                    try PinnedFolders.pin(output.folder, expecting: Paths.resolve(output.folder))
                } else if FileManager.default.fileExists(atPath: output.path) {
                    try PinnedFolders.pin(output.path, expecting: output.resolved)
                } else {
                    PinnedFolders.expect(output.path, resolved: output.resolved)
                }
            } catch {
                throw OutputPathError(output, error.problem)
            }
        }
    }

    /// Removes the temporaries that an earlier run, killed mid-write, left beside these outputs
    /// (`.NAME.PID.partial`, see `Temporaries`): only for these outputs' own names,
    /// and only when that PID is no longer running.
    func removeLeftoverTemporaries() {
        for output in outputs {
            if output.kind.isDirectory {
                Temporaries.removeLeftovers(in: output.path, of: output.kind.writes(fileNamed:))
                StagedFolder.removeLeftovers(in: output.path, of: output.kind.writes(fileNamed:))
            } else {
                Temporaries.removeLeftovers(in: output.folder) { $0 == output.name || $0 == output.name + LatestFrameOutput.keptSuffix }
            }
        }
    }
}

extension OutputPlan.Kind {
    var isDirectory: Bool { self == .framesDirectory || self == .dataDirectory }

    /// Whether a folder output writes a file of this name.
    func writes(fileNamed name: String) -> Bool {
        switch self {
        case .framesDirectory: PNGSequenceOutput.frameIndex(fileName: name) != nil
        case .dataDirectory: DataDump.writes(fileNamed: name)
        case .video, .latestFrame, .timings, .table: false
        }
    }
}

extension RenderOptions {
    /// Checks every output path and the frame size and rate the outputs need (see `OutputPlan`),
    /// and that no output would replace or write into the inputs of `runs` (`RunInputs`), without
    /// touching anything: call it before reading the runs, to fail in a second.
    public func validateOutputs(readingRuns runs: [String] = []) throws(OutputPathError) {
        try OutputPlan(self).check(against: runs.map(RunInputs.init(run:)))
    }

    /// The frame rates a video accepts (`MediaLimits.framesPerSecond`), for a command line's own checks.
    public static var framesPerSecondRange: ClosedRange<Double> { MediaLimits.framesPerSecond }
    /// The frame widths and heights the outputs accept (`MediaLimits.dimensions`; videos need even ones).
    public static var frameSizeRange: ClosedRange<Int> { MediaLimits.dimensions }
}
