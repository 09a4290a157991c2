import Canvas
import Foundation
import Testing
@testable import MediaEncoder

@Suite struct PNGEncoderTests {
    /// Encodes a surface, reads the file back through libpng (Cairo's PNG reader) and compares
    /// every pixel: exact where opaque, within rounding where not.
    @Test func libpngReadsBackTheSamePixels() throws {
        let width = 37, height = 11
        var pixels = [UInt8]()
        for y in 0..<height {
            for x in 0..<width {
                let alpha: UInt8 = x == 5 ? 128 : (x == 6 ? 0 : 255)
                pixels += [UInt8((x * 7) % 256), UInt8((y * 23) % 256), UInt8((x * y) % 256), alpha]
            }
        }
        let surface = try ImageSurface(pixels: pixels[...], width: width, height: height, channels: 4)
        let png = try surface.withBGRABytes { bytes, stride in
            try PNGEncoder.encode(bgra: bytes, width: width, height: height, bytesPerRow: stride)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID().uuidString).png").path
        try Data(png).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }

        let decoded = try ImageSurface(contentsOfPNG: path)
        #expect(decoded.width == width && decoded.height == height)
        surface.withBGRABytes { original, originalStride in
            decoded.withBGRABytes { read, readStride in
                for y in 0..<height {
                    for x in 0..<width {
                        let a = original[y * originalStride + 4 * x + 3]
                        for channel in 0..<3 {
                            let want = Int(original[y * originalStride + 4 * x + channel])
                            let got = Int(read[y * readStride + 4 * x + channel])
                            // Written without alpha: a translucent pixel comes back opaque, straightened.
                            let expected = a == 255 ? want : (a == 0 ? 0 : min(255, (want * 255 + Int(a) / 2) / Int(a)))
                            #expect(abs(got - expected) <= (a == 255 || a == 0 ? 0 : 2), "pixel \(x),\(y) channel \(channel)")
                        }
                        #expect(read[y * readStride + 4 * x + 3] == 255)
                    }
                }
            }
        }
    }

    @Test func refusesAnEmptyImage() {
        let bytes = [UInt8](repeating: 0, count: 4)
        #expect(throws: MediaError.self) { try PNGEncoder.encode(bgra: bytes, width: 0, height: 1, bytesPerRow: 4) }
    }
}
