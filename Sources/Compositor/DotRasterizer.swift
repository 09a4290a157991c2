import Canvas

/// Draws many small anti-aliased discs straight into an ARGB32 pixel buffer.
///
/// Cairo's path machinery costs about 3 microseconds a point. Instead, the disc's coverage is
/// computed once for 4 x 4 sub-pixel positions; each point then blends the nearest of those
/// masks with integer arithmetic (positions are off by at most 1/8 pixel, which the eye cannot see).
struct DotRasterizer {
    /// The clip in whole pixels: columns `left..<right`, rows `top..<bottom`.
    private let left, top, right, bottom: Int
    private let size: Int
    private let masks: [UInt8]  // 16 masks of size x size coverages, 0...255
    static let subpixels = 4

    /// Wider discs would only cost mask memory: dots are a few pixels across.
    static let largestRadius = 100.0

    init(radius: Double, clip: Rect) {
        // Cairo surfaces are at most 32767 pixels wide; a NaN clip is empty.
        func pixel(_ v: Double) -> Int { v.isNaN ? 0 : Int(min(max(v, -1e6), 1e6)) }
        left = pixel(clip.x)
        top = pixel(clip.y)
        right = pixel(clip.maxX)
        bottom = pixel(clip.maxY)
        let radius = radius.isNaN ? 0 : min(max(radius, 0), Self.largestRadius)
        let size = Int((2 * radius + 2).rounded(.up))
        self.size = size
        var masks = [UInt8](repeating: 0, count: Self.subpixels * Self.subpixels * size * size)
        for sy in 0..<Self.subpixels {
            for sx in 0..<Self.subpixels {
                // Centre of the disc within the mask for this sub-pixel offset.
                let cx = Double(size) / 2 + (Double(sx) + 0.5) / Double(Self.subpixels)
                let cy = Double(size) / 2 + (Double(sy) + 0.5) / Double(Self.subpixels)
                let base = (sy * Self.subpixels + sx) * size * size
                for y in 0..<size {
                    for x in 0..<size {
                        let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                        let coverage = min(max(radius + 0.5 - (dx * dx + dy * dy).squareRoot(), 0), 1)
                        masks[base + y * size + x] = UInt8((coverage * 255).rounded())
                    }
                }
            }
        }
        self.masks = masks
    }

    /// A colour ready for blending: straight 0...255 channels and an opacity 0...256.
    struct Ink {
        let red, green, blue, alpha: UInt32

        init(_ color: Color) {
            red = Self.level(color.red, 255)
            green = Self.level(color.green, 255)
            blue = Self.level(color.blue, 255)
            alpha = Self.level(color.alpha, 256)
        }

        /// `component` (0...1; NaN reads as 0, the rest is clamped) in 0...`full`.
        private static func level(_ component: Double, _ full: Double) -> UInt32 {
            component > 0 ? UInt32((min(component, 1) * full).rounded()) : 0
        }
    }

    /// Blends a disc of `ink` centred at (cx, cy) over the opaque pixels.
    /// A NaN or infinite centre draws nothing; any other is first clamped to just outside the clip,
    /// where a disc still misses it, so every conversion to `Int` below holds.
    func draw(cx: Double, cy: Double, ink: Ink, into pixels: UnsafeMutablePointer<UInt32>, stride: Int) {
        guard cx.isFinite, cy.isFinite else { return }
        let reach = Double(size + 1)
        let cx = min(max(cx, Double(left) - reach), Double(right) + reach)
        let cy = min(max(cy, Double(top) - reach), Double(bottom) + reach)
        let discLeft = cx - Double(size) / 2, discTop = cy - Double(size) / 2
        let x0 = Int(discLeft.rounded(.down)), y0 = Int(discTop.rounded(.down))
        let sx = min(Int((discLeft - Double(x0)) * Double(Self.subpixels)), Self.subpixels - 1)
        let sy = min(Int((discTop - Double(y0)) * Double(Self.subpixels)), Self.subpixels - 1)
        let base = (sy * Self.subpixels + sx) * size * size
        let xStart = max(x0, left), xEnd = min(x0 + size, right)
        let yStart = max(y0, top), yEnd = min(y0 + size, bottom)
        guard xStart < xEnd, yStart < yEnd else { return }
        masks.withUnsafeBufferPointer { mask in
            for y in yStart..<yEnd {
                let row = pixels + y * stride
                let maskRow = base + (y - y0) * size - x0
                for x in xStart..<xEnd {
                    let a = (UInt32(mask[maskRow + x]) * ink.alpha) >> 8  // 0...255 (in Swift, >> binds tighter than *)
                    guard a > 0 else { continue }
                    let p = row[x], keep = 255 - a
                    let r = (ink.red * a + (p >> 16 & 0xFF) * keep + 127) / 255
                    let g = (ink.green * a + (p >> 8 & 0xFF) * keep + 127) / 255
                    let b = (ink.blue * a + (p & 0xFF) * keep + 127) / 255
                    row[x] = 0xFF00_0000 | r << 16 | g << 8 | b
                }
            }
        }
    }
}
