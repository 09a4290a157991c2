import Canvas
import FileOutput
import Foundation
import MediaEncoder
import RunFormat
import Synchronization

/// Where finished frames go.
protocol FrameSink: AnyObject {
    func write(_ surface: ImageSurface, index: Int) throws
    /// Completes the output so it plays or opens. Called once.
    func finish() throws
    /// Removes what an unfinished output has written, or keeps what of it is complete.
    func abandon()
}

/// Every frame output of a render (videos, `--frames-dir`, `--latest`), written as one: each frame
/// goes to all of them under `UnfinishedOutputs`' write lock, so an abort never finds a frame
/// half-written, nor one output a frame ahead of another (`--latest` takes checkpoints' own frames only,
/// and videos hold the summary frame longer than `--frames-dir` does).
final class FrameOutputs {
    private let sinks: [any FrameSink]
    /// `--latest`: written with the film's frames when they are checkpoints' own, or alone with a
    /// checkpoint's frame drawn ahead of the film (live, tweened).
    private let latest: LatestFrameOutput?

    /// Opens the outputs of a checked plan. Folder outputs other than frames (`--dump-data`) and
    /// `--timings` are written by `DataDump` and `StageTimings`.
    init(plan: OutputPlan, options: RenderOptions) throws {
        var sinks: [any FrameSink] = []
        var latest: LatestFrameOutput?
        do {
            for output in plan.outputs {
                switch output.kind {
                case .video:
                    sinks.append(try VideoOutput(path: output.path, width: options.width, height: options.height,
                                                 fps: options.fps, live: options.live))
                case .framesDirectory: sinks.append(try PNGSequenceOutput(directory: output.path, staged: !options.live))
                case .latestFrame: latest = LatestFrameOutput(path: output.path, restoresOnFailure: !options.live)
                case .dataDirectory, .timings, .table: break
                }
            }
        } catch {
            for sink in sinks { sink.abandon() }
            throw error
        }
        self.sinks = sinks
        self.latest = latest
    }

    /// Whether any output takes every frame of the film (a video or `--frames-dir`).
    var takesFilm: Bool { !sinks.isEmpty }
    var takesLatest: Bool { latest != nil }

    /// Writes a closing frame at `filmIndex`: once to `--frames-dir`, and held for `videoFrames`
    /// frames in videos, so that it stays on screen long enough to read.
    func writeHeld(_ surface: ImageSurface, filmIndex: Int, videoFrames: Int) throws {
        // One frame under the lock at a time: an abort waits for the frame in hand, not the whole hold.
        for copy in 0..<max(videoFrames, 1) {
            try UnfinishedOutputs.whileWriting {
                for sink in sinks where copy == 0 || sink is VideoOutput { try sink.write(surface, index: filmIndex) }
            }
        }
    }

    /// Writes a frame to the film's outputs at `filmIndex` (if any), and to `--latest` if `showsLatest`.
    func write(_ surface: ImageSurface, filmIndex: Int?, showsLatest: Bool) throws {
        try UnfinishedOutputs.whileWriting {
            if let filmIndex { for sink in sinks { try sink.write(surface, index: filmIndex) } }
            if showsLatest, let latest { try latest.write(surface, index: filmIndex ?? 0) }
        }
    }

    func finish() throws {
        try UnfinishedOutputs.whileWriting {
            for sink in sinks { try sink.finish() }
            latest?.finish()
        }
    }

    func abandon() {
        try? UnfinishedOutputs.whileWriting {
            for sink in sinks { sink.abandon() }
            latest?.abandon()
        }
    }
}

/// What must not outlive an aborted process: temporary files, which exist only until their output is
/// complete. Outputs are written under one lock, so an abort can wait for the frame in hand to be
/// written whole; live outputs are whole after every frame and stay as they are.
public enum UnfinishedOutputs {
    private static let writeLock = Mutex(())

    /// Runs `body`, which writes frames or completes outputs, holding the write lock.
    static func whileWriting(_ body: () throws -> Void) throws {
        try writeLock.withLock { _ in try body() }
    }

    /// For an abort (a second Ctrl-C): waits up to `patience` for the frame being written to be
    /// whole in every output, removes every named temporary (`Temporaries`; unnamed ones vanish
    /// with the process) and exits with `status`, still holding the lock so that no other write
    /// starts. Leaves a playable video or none.
    public static func removeTemporariesAndExit(status: Int32, patience: Duration = .seconds(3)) -> Never {
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        while clock.now < deadline {
            _ = writeLock.withLockIfAvailable { _ -> Void in
                Temporaries.removeAll()
                _exit(status)
            }
            usleep(10_000)
        }
        Temporaries.removeAll()  // a write is stuck: its temporaries go anyway; a live file keeps its last whole frame
        _exit(status)
    }
}

/// An MP4 or GIF.
///
/// Offline, it is encoded into a `WholeFile` and put in place by `finish()`, so a failed or
/// killed render never leaves a broken video where the user asked for one (nor touches an earlier
/// video of that name). Live, it is written in place, whole after every frame (see `VideoFormat`),
/// and on a failure it keeps the frames already written rather than being removed.
final class VideoOutput: FrameSink {
    let path: String
    let live: Bool
    /// Offline: the file the video is encoded into, until `finish()` puts it in place.
    private let file: WholeFile?
    private var encoder: VideoEncoder?
    /// Where the encoder writes: the unfinished file offline, `path` itself live.
    private var writingPath: String { file?.writingPath ?? PinnedFolders.route(path) }

    init(path: String, width: Int, height: Int, fps: Double, live: Bool) throws {
        guard let format = VideoFormat(forPath: path, live: live) else {
            throw PipelineError("\(path): unknown video type: the name must end in .mp4 or .gif")
        }
        self.path = path
        self.live = live
        do { file = live ? nil : try WholeFile(path: path) } catch { throw PipelineError(error) }
        do {
            encoder = try VideoEncoder(path: file?.writingPath ?? PinnedFolders.route(path), format: format, width: width,
                                       height: height, fps: fps)
        } catch {
            removeTemporary()
            throw PipelineError("\(path): \(problem(error))")
        }
        if live { Authorship.mark(path: PinnedFolders.route(path)) }
    }

    func write(_ surface: ImageSurface, index: Int) throws {
        guard let encoder else { return }
        do {
            try surface.withBGRABytes { bytes, stride in try encoder.append(bgra: bytes, bytesPerRow: stride) }
        } catch {
            throw failed(error as? MediaError ?? MediaError("\(error)"))
        }
    }

    func finish() throws {
        guard let encoder else { return }
        do {
            try encoder.finish()
        } catch {
            throw failed(error)
        }
        self.encoder = nil
        do { try file?.commit() } catch { throw PipelineError(error) }
    }

    /// Another output or stage failed: a live video is completed if it can be, else cut back to its
    /// whole frames; an offline one is removed.
    func abandon() {
        guard let encoder else { return }
        self.encoder = nil
        if live {
            if encoder.framesWritten > 0, (try? encoder.finish()) != nil { return }
            if encoder.closeKeepingWholeFrames() > 0 { return }
        }
        removeTemporary()
    }

    /// Closes the video after its encoder failed, keeping a live video's whole frames and removing
    /// an offline one's temporary; says so in the message.
    private func failed(_ error: MediaError) -> PipelineError {
        guard let encoder else { return PipelineError("\(path): \(problem(error))") }
        self.encoder = nil
        let handed = encoder.framesWritten
        let kept = encoder.closeKeepingWholeFrames()
        if live && kept > 0 {
            return PipelineError("\(path): \(problem(error)) after \(frames(handed)): kept the \(frames(kept)) written")
        }
        removeTemporary()
        let earlier = !live && FileManager.default.fileExists(atPath: path) ? "; the earlier \(path) is unchanged" : ""
        return PipelineError("\(path): \(problem(error)) after \(frames(handed)): no video written\(earlier)")
    }

    /// The encoder's error in plain words, naming the output rather than its temporary.
    private func problem(_ error: MediaError) -> String {
        if error.systemError == ENOSPC { return systemWords(ENOSPC) }
        return error.description.replacingOccurrences(of: writingPath + ": ", with: "")
            .replacingOccurrences(of: writingPath, with: path).replacingOccurrences(of: path + ": ", with: "")
    }

    private func removeTemporary() {
        file?.abandon()
    }

    private func frames(_ count: Int) -> String { count == 1 ? "1 frame" : "\(count) frames" }
}

/// `--latest PNG`: the newest frame, replaced atomically after each frame. Offline, the PNG it
/// replaced is kept aside (a hard link, `.NAME.kept.PID.partial`) until the render finishes, and
/// put back if it fails: a failed render leaves `--latest` as it found it.
final class LatestFrameOutput: FrameSink {
    let path: String
    /// The earlier PNG, kept aside; nil when there was none or it is not kept.
    private let kept: String?
    private let restoresOnFailure: Bool
    private var written = false

    init(path: String, restoresOnFailure: Bool) {
        self.path = path
        self.restoresOnFailure = restoresOnFailure
        let aside = PinnedFolders.route(Temporaries.name(for: path + Self.keptSuffix))
        kept = restoresOnFailure && link(PinnedFolders.route(path), aside) == 0 ? aside : nil
    }

    static let keptSuffix = ".kept"

    func write(_ surface: ImageSurface, index: Int) throws {
        try PNGSequenceOutput.writePNG(surface, to: path)
        written = true
    }

    func finish() {
        if let kept { unlink(kept) }
    }

    func abandon() {
        guard restoresOnFailure else { return }
        if let kept {
            rename(kept, PinnedFolders.route(path))
        } else if written {
            unlink(PinnedFolders.route(path))
        }
    }
}

/// One PNG per frame, `frame-0000.png` upwards; each file appears whole. Offline, the frames are
/// staged (`StagedFolder`) and appear together when the render finishes; then the frames an
/// earlier, longer render of Embedlapse's left past this one's last are removed, so the folder
/// holds this render's frames only. A render that fails leaves the folder as it was.
final class PNGSequenceOutput: FrameSink {
    let directory: String
    private let folder: StagedFolder
    private var framesWritten = 0

    init(directory: String, staged: Bool) throws {
        do { folder = try StagedFolder(directory: directory, staged: staged) } catch { throw PipelineError(error) }
        self.directory = directory
    }

    static func fileName(index: Int) -> String {
        let digits = String(index)
        return "frame-" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits + ".png"
    }

    /// The frame index in a name of this output's pattern (`frame-`, 4 or more digits, `.png`);
    /// nil for any other name, which is never this output's to remove.
    static func frameIndex(fileName name: String) -> Int? {
        guard name.hasPrefix("frame-"), name.hasSuffix(".png") else { return nil }
        let digits = name.utf8.dropFirst("frame-".utf8.count).dropLast(".png".utf8.count)
        guard digits.count >= 4, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return Int(String(decoding: digits, as: UTF8.self)) ?? Int.max  // beyond Int: beyond any render
    }

    func write(_ surface: ImageSurface, index: Int) throws {
        let name = Self.fileName(index: index)
        let png = try Self.encodePNG(surface, for: directory + "/" + name)
        do { try folder.write(png, named: name) } catch { throw PipelineError(error) }
        framesWritten = max(framesWritten, index + 1)
    }

    static func writePNG(_ surface: ImageSurface, to path: String) throws {
        try OutputFile.write(try encodePNG(surface, for: path), to: path)
    }

    private static func encodePNG(_ surface: ImageSurface, for path: String) throws(PipelineError) -> [UInt8] {
        do {
            return try surface.withBGRABytes { bytes, stride throws(MediaError) in
                try PNGEncoder.encode(bgra: bytes, width: surface.width, height: surface.height, bytesPerRow: stride)
            }
        } catch {
            throw PipelineError(path, error)
        }
    }

    func finish() throws {
        do { try folder.publish() } catch { throw PipelineError(error) }
        for name in Temporaries.names(in: PinnedFolders.route(directory + "/.")) {
            guard let index = Self.frameIndex(fileName: name), index >= framesWritten else { continue }
            let path = PinnedFolders.route(directory + "/" + name)
            var info = stat()
            // Only Embedlapse's own frames: a frame-0400.png it did not write is not its to remove.
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Authorship.wrote(path) else { continue }
            if unlink(path) != 0 && errno != ENOENT {
                throw PipelineError("\(path): cannot remove this frame of an earlier, longer render: \(systemWords(errno))")
            }
        }
    }

    func abandon() { folder.abandon() }
}

/// Whole files for PNG frames, `--latest`, `--timings` and the data dumps, failing as the pipeline does.
enum OutputFile {
    static func write(_ bytes: [UInt8], to path: String) throws(PipelineError) {
        do { try WholeFile.write(bytes, to: path) } catch { throw PipelineError(error) }
    }

    static func write(_ text: String, to path: String) throws(PipelineError) {
        try write(Array(text.utf8), to: path)
    }

    static func makeFolder(_ path: String) throws(PipelineError) {
        do { try Folders.make(path) } catch { throw PipelineError(error) }
    }
}
