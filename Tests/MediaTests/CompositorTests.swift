import Canvas
import Compositor
import LinearAlgebra
import RunFormat
import Testing

@Suite struct CompositorTests {
    func setting(classes: Int, n: Int) -> FilmSetting {
        let images = Thumbnails(count: n, height: 4, width: 4, channels: 1, pixels: [UInt8](repeating: 200, count: n * 16))
        return FilmSetting(sampleCount: n, dimension: 8, labels: (0..<n).map { $0 % classes },
                           classNames: (0..<classes).map { "class \($0)" }, thumbnails: images,
                           wholeRunLosses: LossHistory(training: [.init(step: 0, loss: 2), .init(step: 100, loss: 0.5)]),
                           checkpointCount: 3, title: "test", alignment: "aligned")
    }

    func pixel(_ surface: ImageSurface, _ x: Int, _ y: Int) -> UInt32 {
        surface.withMutablePixels { p, stride in p[y * stride + x] } & 0xFFFFFF
    }

    @Test func drawsEachClassInItsPaletteColour() throws {
        // Two tight clumps, one per class, at known display coordinates.
        let n = 200
        let x = (0..<n).map { Float($0 % 2 == 0 ? -0.5 : 0.5) }
        let y = [Float](repeating: 0, count: n)
        let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(classes: 2, n: n))
        try compositor.draw(FrameContent(step: 50, epoch: 0.5, checkpointIndex: 1, points: PlanarPoints(x: x, y: y),
                                         outliers: [], losses: LossHistory(training: [.init(step: 0, loss: 2)])))
        // The scatter spans x 24...642 and y 76...694 at 720p; the view is +-1.08 display units.
        let centreX = 24 + 618 / 2.0, centreY = 76 + 618 / 2.0, unit = 618 / 2.16
        func expectColour(_ dx: Double, _ colour: Color) {
            let p = pixel(compositor.surface, Int(centreX + dx * unit), Int(centreY))
            let r = Double(p >> 16 & 0xFF) / 255, g = Double(p >> 8 & 0xFF) / 255, b = Double(p & 0xFF) / 255
            // A hundred translucent dots on one spot add up to the opaque class colour.
            #expect(abs(r - colour.red) < 0.03 && abs(g - colour.green) < 0.03 && abs(b - colour.blue) < 0.03,
                    "pixel \(String(p, radix: 16))")
        }
        expectColour(-0.5, Palette.color(forClass: 0))
        expectColour(0.5, Palette.color(forClass: 1))
        #expect(pixel(compositor.surface, 5, 5) == 0xFFFFFF, "white page background")
    }

    @Test func drawsAtOtherSizesWithoutErrors() throws {
        for (w, h) in [(640, 360), (1920, 1080), (800, 800)] {
            let compositor = try FrameCompositor(width: w, height: h, setting: setting(classes: 12, n: 50))
            try compositor.draw(FrameContent(step: 0, epoch: nil, checkpointIndex: 0, points: PlanarPoints(x: [Float](repeating: 0, count: 50), y: [Float](repeating: 0, count: 50)),
                                             outliers: (0..<8).map { .init(index: $0, score: 0.1) }, losses: LossHistory()))
        }
    }
}
