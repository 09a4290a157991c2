import Canvas
import Foundation
import MediaEncoder
import RunFormat

/// Where finished frames go.
protocol FrameSink: AnyObject {
    func write(_ surface: ImageSurface, index: Int) throws
    /// Completes the output so it plays or opens. Called once.
    func finish() throws
    /// Removes what an unfinished output has written.
    func abandon()
}

/// An MP4 or GIF.
///
/// Offline, it is encoded under a temporary name and renamed into place by `finish()`, so a
/// failed render never leaves a broken video where the user asked for one. Live, it is written
/// in place as a fragmented MP4 that plays up to its last frame at any moment, and on a failure
/// it is finalised rather than removed: the frames already shown stay watchable.
final class VideoOutput: FrameSink {
    let path: String
    let live: Bool
    private let temporaryPath: String
    private var encoder: VideoEncoder?

    init(path: String, width: Int, height: Int, fps: Double, live: Bool) throws {
        let lowered = path.lowercased()
        let format: VideoFormat
        if lowered.hasSuffix(".mp4") { format = live ? .liveMP4 : .mp4 } else if lowered.hasSuffix(".gif") { format = .gif } else {
            throw PipelineError("\(path): unknown video type: the name must end in .mp4 or .gif")
        }
        try OutputChecks.parentIsWritable(path)
        self.path = path
        self.live = live
        temporaryPath = live ? path : AtomicFile.temporaryPath(for: path)
        do {
            encoder = try VideoEncoder(path: temporaryPath, format: format, width: width, height: height, fps: fps)
        } catch {
            try? FileManager.default.removeItem(atPath: temporaryPath)
            throw PipelineError("\(path): \(error.description.replacingOccurrences(of: temporaryPath, with: path))")
        }
    }

    func write(_ surface: ImageSurface, index: Int) throws {
        guard let encoder else { return }
        do {
            try surface.withBGRABytes { bytes, stride in try encoder.append(bgra: bytes, bytesPerRow: stride) }
        } catch {
            throw PipelineError("\(path): \(error)")
        }
    }

    func finish() throws {
        guard let encoder else { return }
        do {
            try encoder.finish()
        } catch {
            abandon()
            throw PipelineError("\(path): \(error)")
        }
        self.encoder = nil
        guard !live else { return }
        guard rename(temporaryPath, path) == 0 else {
            let reason = String(cString: strerror(errno))
            abandon()
            throw PipelineError("\(path): cannot write: \(reason)")
        }
    }

    func abandon() {
        if live, let encoder, encoder.framesWritten > 0, (try? encoder.finish()) != nil {
            self.encoder = nil
            return
        }
        encoder = nil
        try? FileManager.default.removeItem(atPath: temporaryPath)
    }
}

/// `--latest PNG`: the newest frame, replaced atomically after each frame (written, then renamed).
final class LatestFrameOutput: FrameSink {
    let path: String

    init(path: String) throws {
        try OutputChecks.parentIsWritable(path)
        self.path = path
    }

    func write(_ surface: ImageSurface, index: Int) throws {
        try PNGSequenceOutput.writePNG(surface, to: path)
    }

    func finish() {}
    func abandon() {}
}

/// One PNG per frame, `frame-0000.png` upwards; each file appears whole (written, then renamed).
final class PNGSequenceOutput: FrameSink {
    let directory: String

    init(directory: String) throws {
        try OutputChecks.makeDirectory(directory)
        self.directory = directory
    }

    static func fileName(index: Int) -> String {
        let digits = String(index)
        return "frame-" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits + ".png"
    }

    func write(_ surface: ImageSurface, index: Int) throws {
        try Self.writePNG(surface, to: (directory as NSString).appendingPathComponent(Self.fileName(index: index)))
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
        do { try AtomicFile.write(png, to: path) } catch { throw PipelineError("\(error)") }
    }

    func finish() {}
    func abandon() {}  // frames already written are complete files
}

enum OutputChecks {
    static func parentIsWritable(_ path: String) throws {
        let parent = (path as NSString).deletingLastPathComponent
        let directory = parent.isEmpty ? "." : parent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PipelineError("\(path): cannot write: directory \(directory) does not exist")
        }
        guard access(directory, W_OK) == 0 else { throw PipelineError("\(path): cannot write: directory \(directory) is not writable") }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw PipelineError("\(path): cannot write: it is a directory")
        }
    }

    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw PipelineError("\(path): cannot create directory: \(error.localizedDescription)")
        }
        guard access(path, W_OK) == 0 else { throw PipelineError("\(path): cannot write: directory is not writable") }
    }
}
