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

/// Encodes `count` moving-gradient BGRA frames.
func encode(_ path: String, format: VideoFormat, count: Int, fps: Double, width: Int = 320, height: Int = 240) throws {
    let encoder = try VideoEncoder(path: path, format: format, width: width, height: height, fps: fps)
    var pixels = [UInt8](repeating: 255, count: width * height * 4)
    for frame in 0..<count {
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 4
                pixels[i] = UInt8((x + frame * 8) & 0xFF)
                pixels[i + 1] = UInt8(y & 0xFF)
                pixels[i + 2] = UInt8((frame * 20) & 0xFF)
            }
        }
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
