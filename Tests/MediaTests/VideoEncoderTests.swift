import Foundation
import Testing
@testable import MediaEncoder

/// ffprobe's view of a file: stream codec, pixel format, size, decoded frame count, duration.
struct Probe {
    let codec: String, pixelFormat: String, width: Int, height: Int, frames: Int, duration: Double

    init(_ path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ffprobe")
        process.arguments = ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                             "stream=codec_name,pix_fmt,width,height,nb_read_frames:format=duration", "-of", "default=nw=1", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var fields: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        codec = fields["codec_name"] ?? ""
        pixelFormat = fields["pix_fmt"] ?? ""
        width = Int(fields["width"] ?? "") ?? 0
        height = Int(fields["height"] ?? "") ?? 0
        frames = Int(fields["nb_read_frames"] ?? "") ?? 0
        duration = Double(fields["duration"] ?? "") ?? 0
    }
}

/// Frame `frame` of a moving gradient, BGRA.
func gradient(frame: Int, width: Int, height: Int) -> [UInt8] {
    var pixels = [UInt8](repeating: 255, count: width * height * 4)
    for y in 0..<height {
        for x in 0..<width {
            let i = (y * width + x) * 4
            pixels[i] = UInt8((x + frame * 8) & 0xFF)
            pixels[i + 1] = UInt8(y & 0xFF)
            pixels[i + 2] = UInt8((frame * 20) & 0xFF)
        }
    }
    return pixels
}

/// Encodes `count` moving-gradient BGRA frames.
func encode(_ path: String, format: VideoFormat, count: Int, fps: Double, width: Int = 320, height: Int = 240) throws {
    let encoder = try VideoEncoder(path: path, format: format, width: width, height: height, fps: fps)
    for frame in 0..<count {
        let pixels = gradient(frame: frame, width: width, height: height)
        try pixels.withUnsafeBufferPointer { try encoder.append(bgra: $0.baseAddress!, bytesPerRow: width * 4) }
    }
    try encoder.finish()
}

@Suite struct VideoEncoderTests {
    let directory: String = {
        let path = NSTemporaryDirectory() + "embedlapse-media-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    @Test(arguments: [(12, 6.0), (7, 30.0), (5, 29.97)])
    func mp4RoundTrips(count: Int, fps: Double) throws {
        let path = directory + "/v.mp4"
        try encode(path, format: .mp4, count: count, fps: fps)
        let probe = try Probe(path)
        #expect(probe.codec == "h264" && probe.pixelFormat == "yuv420p")
        #expect(probe.width == 320 && probe.height == 240 && probe.frames == count)
        #expect(abs(probe.duration - Double(count) / fps) < 0.01, "every frame lasts 1/fps, the last one too")
    }

    @Test(arguments: [(10, 25.0), (6, 3.0)])
    func gifRoundTrips(count: Int, fps: Double) throws {
        let path = directory + "/v.gif"
        try encode(path, format: .gif, count: count, fps: fps)
        let probe = try Probe(path)
        #expect(probe.codec == "gif" && probe.frames == count && probe.width == 320)
        #expect(abs(probe.duration - Double(count) / fps) < 0.011)
    }

    @Test func refusesOddSizes() {
        #expect(throws: MediaError.self) { try VideoEncoder(path: directory + "/x.mp4", format: .mp4, width: 321, height: 240, fps: 5) }
    }

    /// Any Double outside `MediaLimits.framesPerSecond` is refused with an error, never a trap: a
    /// 1e-300 fps GIF once overflowed its frame delay and crashed. Nothing is left on disk.
    @Test(arguments: [Double.nan, -.nan, .infinity, -.infinity, 0, -0.0, -5, 1e-300, .leastNonzeroMagnitude,
                      0.0099, 120.000001, 1e300, .greatestFiniteMagnitude])
    func refusesOutOfRangeRates(fps: Double) {
        for format in [VideoFormat.mp4, .liveMP4, .gif] {
            let path = directory + "/rate.\(format == .gif ? "gif" : "mp4")"
            #expect(throws: MediaError.self, "\(fps) fps, \(format)") {
                try VideoEncoder(path: path, format: format, width: 64, height: 48, fps: fps)
            }
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }

    /// The ends of the accepted range encode, with exact durations (100 s and 1/120 s a frame).
    @Test(arguments: [MediaLimits.framesPerSecond.lowerBound, MediaLimits.framesPerSecond.upperBound])
    func encodesAtTheEndsOfTheRange(fps: Double) throws {
        for format in [VideoFormat.mp4, .gif] {
            let path = directory + "/edge-\(fps).\(format == .gif ? "gif" : "mp4")"
            try encode(path, format: format, count: 3, fps: fps, width: 64, height: 48)
            let probe = try Probe(path)
            #expect(probe.frames == 3)
            // Readers show GIF delays under 2 cs as 10 cs: a GIF above 50 fps plays slower, whatever it says.
            if format == .mp4 || fps <= 50 {
                #expect(abs(probe.duration - 3 / fps) < 0.011 + 0.001 * 3 / fps, "\(format) at \(fps) fps")
            }
        }
    }

    /// Sizes and row lengths that would overflow `Int32` or an allocation are refused, not trapped on.
    @Test func refusesExtremeSizes() throws {
        for (width, height) in [(1 << 40, 240), (320, 1 << 40), (Int.max - 1, 2), (-2, 240), (0, 0), (16_386, 2)] {
            #expect(throws: MediaError.self, "\(width)x\(height)") {
                try VideoEncoder(path: directory + "/huge.mp4", format: .mp4, width: width, height: height, fps: 5)
            }
            let pixel = [UInt8](repeating: 0, count: 4)
            #expect(throws: MediaError.self, "PNG \(width)x\(height)") {
                try PNGEncoder.encode(bgra: pixel, width: width, height: height, bytesPerRow: Int.max / 2)
            }
        }
        let encoder = try VideoEncoder(path: directory + "/rows.gif", format: .gif, width: 64, height: 48, fps: 5)
        let pixels = gradient(frame: 0, width: 64, height: 48)
        for bytesPerRow in [-4, 0, 4 * 64 - 1, Int(Int32.max) + 1, Int.max] {
            #expect(throws: MediaError.self, "\(bytesPerRow) bytes a row") {
                try pixels.withUnsafeBufferPointer { try encoder.append(bgra: $0.baseAddress!, bytesPerRow: bytesPerRow) }
            }
        }
    }

    /// A live output holds every frame handed to it as soon as `append` returns: what a watcher's
    /// player (or an abort) sees. libavformat's GIF muxer held each frame back until the next.
    @Test(arguments: [VideoFormat.liveMP4, .gif])
    func liveFilesHoldEveryFrameAtOnce(format: VideoFormat) throws {
        let path = directory + "/live.\(format == .gif ? "gif" : "mp4")"
        let encoder = try VideoEncoder(path: path, format: format, width: 160, height: 120, fps: 5)
        for frame in 0..<4 {
            let pixels = gradient(frame: frame, width: 160, height: 120)
            try pixels.withUnsafeBufferPointer { try encoder.append(bgra: $0.baseAddress!, bytesPerRow: 160 * 4) }
            #expect(encoder.framesInFile == frame + 1)
            #expect(try Probe(path).frames == frame + 1, "after frame \(frame)")
            if format == .gif {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                #expect(bytes.last == 0x3B, "a whole GIF, trailer included, after every frame")
            }
        }
        try encoder.finish()
        #expect(try Probe(path).frames == 4)
        #expect(abs(try Probe(path).duration - 4 / 5.0) < 0.011)
    }

    /// `closeKeepingWholeFrames` after a failure leaves the frames written, and a playable file.
    @Test(arguments: [VideoFormat.liveMP4, .gif])
    func closingAfterAFailureKeepsWholeFrames(format: VideoFormat) throws {
        let path = directory + "/kept.\(format == .gif ? "gif" : "mp4")"
        let encoder = try VideoEncoder(path: path, format: format, width: 160, height: 120, fps: 5)
        for frame in 0..<3 {
            let pixels = gradient(frame: frame, width: 160, height: 120)
            try pixels.withUnsafeBufferPointer { try encoder.append(bgra: $0.baseAddress!, bytesPerRow: 160 * 4) }
        }
        #expect(encoder.closeKeepingWholeFrames() == 3)
        #expect(try Probe(path).frames == 3)
        #expect(throws: MediaError.self, "a closed encoder takes no more frames") {
            try gradient(frame: 3, width: 160, height: 120).withUnsafeBufferPointer {
                try encoder.append(bgra: $0.baseAddress!, bytesPerRow: 160 * 4)
            }
        }
    }

    /// A write that fails reports the system's error number (ENOSPC on a full disk), which the
    /// pipeline turns into "disk full". /dev/full fails every write with ENOSPC.
    @Test(arguments: [VideoFormat.liveMP4, .gif])
    func aFullDiskIsReportedAsSuch(format: VideoFormat) throws {
        guard FileManager.default.isWritableFile(atPath: "/dev/full") else { return }
        do {
            let encoder = try VideoEncoder(path: "/dev/full", format: format, width: 64, height: 48, fps: 5)
            try gradient(frame: 0, width: 64, height: 48).withUnsafeBufferPointer {
                try encoder.append(bgra: $0.baseAddress!, bytesPerRow: 64 * 4)
            }
            Issue.record("writing to /dev/full succeeded")
        } catch {
            #expect((error as? MediaError)?.systemError == ENOSPC, "\(error)")
        }
    }

    @Test func paletteKeepsFlatColoursExact() {
        // White background, two pure colours and a grey ramp: the flat colours must survive exactly.
        let width = 64, height = 8
        var pixels = [UInt8](repeating: 255, count: width * height * 4)
        for y in 0..<height {
            let row = y * width * 4
            for x in 0..<16 { pixels[row + 4 * x] = 0x88; pixels[row + 4 * x + 1] = 0x22; pixels[row + 4 * x + 2] = 0x33 }  // #332288
            for x in 16..<32 { pixels[row + 4 * x] = 0xEE; pixels[row + 4 * x + 1] = 0xCC; pixels[row + 4 * x + 2] = 0x88 }  // #88CCEE
            for x in 32..<48 { let v = UInt8(x * 4); pixels[row + 4 * x] = v; pixels[row + 4 * x + 1] = v; pixels[row + 4 * x + 2] = v }
        }
        var quantizer = PaletteQuantizer()
        var indices = [UInt8](repeating: 0, count: width * height)
        var palette = [UInt32](repeating: 0, count: 256)
        pixels.withUnsafeBufferPointer { p in
            quantizer.quantize(bgra: p.baseAddress!, bytesPerRow: width * 4, width: width, height: height,
                               into: &indices, indexStride: width, palette: &palette)
        }
        #expect(palette[Int(indices[0])] & 0xFFFFFF == 0x332288)
        #expect(palette[Int(indices[20])] & 0xFFFFFF == 0x88CCEE)
        #expect(palette[Int(indices[width * 2 + 60])] & 0xFFFFFF == 0xFFFFFF, "white stays pure white")
        #expect(palette[Int(indices[width * 5 + 3])] & 0xFFFFFF == 0x332288)
    }
}
