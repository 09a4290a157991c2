import Canvas
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
                case .framesDirectory: sinks.append(try PNGSequenceOutput(directory: output.path))
                case .latestFrame: latest = LatestFrameOutput(path: output.path)
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
        try UnfinishedOutputs.whileWriting { for sink in sinks { try sink.finish() } }
    }

    func abandon() {
        try? UnfinishedOutputs.whileWriting { for sink in sinks { sink.abandon() } }
    }
}

/// What must not outlive an aborted process: temporary files, which exist only until their output is
/// complete. Outputs are written under one lock, so an abort can wait for the frame in hand to be
/// written whole; live outputs are whole after every frame and stay as they are.
public enum UnfinishedOutputs {
    private static let writeLock = Mutex(())
    private static let temporaries = Mutex(Set<String>())

    static func track(_ temporary: String) { temporaries.withLock { _ = $0.insert(temporary) } }
    static func untrack(_ temporary: String) { temporaries.withLock { _ = $0.remove(temporary) } }

    /// Runs `body`, which writes frames or completes outputs, holding the write lock.
    static func whileWriting(_ body: () throws -> Void) throws {
        try writeLock.withLock { _ in try body() }
    }

    /// For an abort (a second Ctrl-C): waits up to `patience` for the frame being written to be
    /// whole in every output, removes every temporary file and exits with `status`, still holding
    /// the lock so that no other write starts. Leaves a playable video or none.
    public static func removeTemporariesAndExit(status: Int32, patience: Duration = .seconds(3)) -> Never {
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        while clock.now < deadline {
            _ = writeLock.withLockIfAvailable { _ -> Void in
                removeTemporaries()
                _exit(status)
            }
            usleep(10_000)
        }
        removeTemporaries()  // a write is stuck: its temporaries go anyway; a live file keeps its last whole frame
        _exit(status)
    }

    private static func removeTemporaries() {
        temporaries.withLock { for path in $0 { unlink(path) } }
    }
}

/// An MP4 or GIF.
///
/// Offline, it is encoded under a temporary name and renamed into place by `finish()`, so a
/// failed render never leaves a broken video where the user asked for one (nor touches an earlier
/// video of that name). Live, it is written in place, whole after every frame (see `VideoFormat`),
/// and on a failure it keeps the frames already written rather than being removed.
final class VideoOutput: FrameSink {
    let path: String
    let live: Bool
    private let temporaryPath: String
    private var encoder: VideoEncoder?

    /// The format for a video path: by its extension, either case; nil for an unknown one.
    static func format(forPath path: String, live: Bool) -> VideoFormat? {
        let lowered = path.lowercased()
        if lowered.hasSuffix(".mp4") { return live ? .liveMP4 : .mp4 }
        if lowered.hasSuffix(".gif") { return .gif }
        return nil
    }

    init(path: String, width: Int, height: Int, fps: Double, live: Bool) throws {
        guard let format = Self.format(forPath: path, live: live) else {
            throw PipelineError("\(path): unknown video type: the name must end in .mp4 or .gif")
        }
        self.path = path
        self.live = live
        temporaryPath = live ? path : AtomicFile.temporaryPath(for: path)
        if !live { UnfinishedOutputs.track(temporaryPath) }
        do {
            encoder = try VideoEncoder(path: temporaryPath, format: format, width: width, height: height, fps: fps)
        } catch {
            removeTemporary()
            throw PipelineError("\(path): \(problem(error))")
        }
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
        guard !live else { return }
        guard rename(temporaryPath, path) == 0 else {
            let reason = systemWords(errno)
            removeTemporary()
            throw PipelineError("\(path): cannot write: \(reason)")
        }
        UnfinishedOutputs.untrack(temporaryPath)
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
        return error.description.replacingOccurrences(of: temporaryPath + ": ", with: "")
            .replacingOccurrences(of: temporaryPath, with: path).replacingOccurrences(of: path + ": ", with: "")
    }

    private func removeTemporary() {
        unlink(temporaryPath)
        UnfinishedOutputs.untrack(temporaryPath)
    }

    private func frames(_ count: Int) -> String { count == 1 ? "1 frame" : "\(count) frames" }
}

/// `--latest PNG`: the newest frame, replaced atomically after each frame (written, then renamed).
final class LatestFrameOutput: FrameSink {
    let path: String

    init(path: String) {
        self.path = path
    }

    func write(_ surface: ImageSurface, index: Int) throws {
        try PNGSequenceOutput.writePNG(surface, to: path)
    }

    func finish() {}
    func abandon() {}
}

/// One PNG per frame, `frame-0000.png` upwards; each file appears whole (written, then renamed).
/// At the end, the frames an earlier, longer render left past this one's last are removed, so the
/// folder holds this render's frames only; a render that fails keeps them (they are still the
/// earlier render's frames, and nothing replaced them).
final class PNGSequenceOutput: FrameSink {
    let directory: String
    private var framesWritten = 0

    init(directory: String) throws {
        try OutputChecks.makeDirectory(directory)
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
        try Self.writePNG(surface, to: (directory as NSString).appendingPathComponent(Self.fileName(index: index)))
        framesWritten = max(framesWritten, index + 1)
    }

    static func writePNG(_ surface: ImageSurface, to path: String) throws {
        let png: [UInt8]
        do {
            png = try surface.withBGRABytes { bytes, stride throws(MediaError) in
                try PNGEncoder.encode(bgra: bytes, width: surface.width, height: surface.height, bytesPerRow: stride)
            }
        } catch {
            throw PipelineError("\(path): \(error)")
        }
        try OutputFile.writeAtomically(png, to: path)
    }

    func finish() throws {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names {
            guard let index = Self.frameIndex(fileName: name), index >= framesWritten else { continue }
            let path = (directory as NSString).appendingPathComponent(name)
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT != S_IFDIR else { continue }
            if unlink(path) != 0 && errno != ENOENT {
                throw PipelineError("\(path): cannot remove this frame of an earlier, longer render: \(systemWords(errno))")
            }
        }
    }

    func abandon() {}  // frames already written are complete files
}

/// Whole files for PNG frames, `--latest` and `--timings`: written under a temporary name beside
/// the file, then renamed, with failures in plain words (POSIX calls and `strerror`, not Foundation's messages).
enum OutputFile {
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(PipelineError) {
        let temporary = AtomicFile.temporaryPath(for: path)
        UnfinishedOutputs.track(temporary)
        defer { UnfinishedOutputs.untrack(temporary) }
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else { throw PipelineError("\(path): cannot write: \(systemWords(errno))") }
        var failure = writeAll(bytes, to: descriptor)
        if close(descriptor) != 0 && failure == 0 { failure = errno }
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        guard failure == 0 else {
            unlink(temporary)
            throw PipelineError("\(path): \(failure == ENOSPC ? systemWords(failure) : "cannot write: \(systemWords(failure))")")
        }
    }
}

extension OutputFile {
    /// Writes all of `bytes` to `descriptor`, retrying interrupted writes; 0, or the failure's errno.
    static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Int32 {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let count = write(descriptor, raw.baseAddress! + done, raw.count - done)
                if count < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                done += count
            }
            return 0
        }
    }
}

enum OutputChecks {
    /// `mkdir -p`, with failures in plain words.
    static func makeDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST {
                throw PipelineError("\(path): cannot make the folder \(prefix): \(systemWords(errno))")
            }
            prefix += "/"
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw PipelineError("\(path): cannot make this folder: a file of that name is in the way")
        }
        guard access(path, W_OK | X_OK) == 0 else { throw PipelineError("\(path): cannot write: the folder is not writable") }
    }
}
