import Canvas
import Testing

@Suite struct CanvasTests {
    /// The pixel at (x, y) as (alpha, red, green, blue), Cairo's premultiplied ARGB32.
    func pixel(_ surface: ImageSurface, _ x: Int, _ y: Int) -> (UInt32, UInt32, UInt32, UInt32) {
        surface.withMutablePixels { pixels, stride in
            let value = pixels[y * stride + x]
            return (value >> 24, (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF)
        }
    }

    @Test func filledRectanglesAndCirclesLandWhereAsked() throws {
        let surface = try ImageSurface(width: 64, height: 32)
        let context = try GraphicsContext(surface)
        context.fill(Rect(x: 0, y: 0, width: 64, height: 32), Color(hex: 0xFFFFFF))
        context.fill(Rect(x: 4, y: 4, width: 8, height: 8), Color(hex: 0xFF0000))
        context.circle(center: (40, 16), radius: 6, fill: Color(hex: 0x0000FF))
        try context.checkStatus()
        #expect(pixel(surface, 8, 8) == (255, 255, 0, 0), "inside the red square")
        #expect(pixel(surface, 2, 2) == (255, 255, 255, 255), "outside it: white")
        #expect(pixel(surface, 40, 16) == (255, 0, 0, 255), "the circle's centre")
        #expect(pixel(surface, 40, 4) == (255, 255, 255, 255), "above the circle")
    }

    @Test func halfTransparentColourBlends() throws {
        let surface = try ImageSurface(width: 8, height: 8)
        let context = try GraphicsContext(surface)
        context.fill(Rect(x: 0, y: 0, width: 8, height: 8), Color(hex: 0x000000))
        context.fill(Rect(x: 0, y: 0, width: 8, height: 8), Color(hex: 0xFFFFFF, alpha: 0.5))
        let (alpha, red, green, blue) = pixel(surface, 4, 4)
        #expect(alpha == 255 && (127...128).contains(red) && red == green && green == blue)
    }

    @Test func textHasAWidthThatGrowsWithItsLength() throws {
        let surface = try ImageSurface(width: 200, height: 40)
        let context = try GraphicsContext(surface)
        let short = context.textWidth("step", size: 14), long = context.textWidth("step 600 of 600", size: 14)
        #expect(short > 10 && long > 2 * short)
        #expect(context.textWidth("step", size: 28) > 1.8 * short, "twice the size, about twice as wide")
    }

    @Test func impossibleSizesThrowInsteadOfTrapping() {
        #expect(throws: CanvasError.self) { try ImageSurface(width: 40_000, height: 10) }
        #expect(throws: CanvasError.self) { try ImageSurface(width: -1, height: 10) }
    }

    @Test func greyPixelsBecomeOpaqueGrey() throws {
        let surface = try ImageSurface(pixels: [0, 128, 255, 64][...], width: 2, height: 2, channels: 1)
        #expect(pixel(surface, 1, 0) == (255, 128, 128, 128))
        #expect(pixel(surface, 0, 1) == (255, 255, 255, 255))
    }
}
