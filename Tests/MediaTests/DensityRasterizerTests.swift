import Canvas
@testable import Compositor
import Foundation
import Testing

@Suite struct DensityRasterizerTests {
    static let background: UInt32 = 0xFFFA_FAFA

    /// An opaque pixel buffer with a stride wider than the image, as Cairo's may be.
    struct Pixels {
        let width, height, stride: Int
        var storage: [UInt32]

        init(width: Int, height: Int, fill: UInt32 = DensityRasterizerTests.background) {
            self.width = width
            self.height = height
            stride = width + 3
            storage = [UInt32](repeating: fill, count: stride * height)
        }

        subscript(x: Int, y: Int) -> UInt32 { storage[y * stride + x] }

        @discardableResult
        mutating func draw(_ rasterizer: DensityRasterizer, x: [Float], y: [Float], classes: [Int]?, clip: Rect,
                           transform: DensityRasterizer.Transform = .identity) -> DensityRasterizer.Summary {
            let stride = stride
            return storage.withUnsafeMutableBufferPointer {
                rasterizer.draw(x: x, y: y, classes: classes, transform: transform, clip: clip, into: $0.baseAddress!, stride: stride)
            }
        }
    }

    func rgb(_ c: Color) -> UInt32 {
        UInt32((c.red * 255).rounded()) << 16 | UInt32((c.green * 255).rounded()) << 8 | UInt32((c.blue * 255).rounded())
    }

    func channels(_ p: UInt32) -> [Int] { [Int(p >> 16 & 0xFF), Int(p >> 8 & 0xFF), Int(p & 0xFF)] }

    /// SplitMix64 in 0..<1.
    struct Random {
        var state: UInt64

        mutating func uniform() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
    }

    @Test func countsEveryPointInsideTheClipOnce() {
        var random = Random(state: 7)
        let n = 20_000
        var x = (0..<n).map { _ in Float(random.uniform() * 140 - 20) }
        var y = (0..<n).map { _ in Float(random.uniform() * 120 - 10) }
        for i in stride(from: 0, to: n, by: 97) { x[i] = .nan }
        for i in stride(from: 5, to: n, by: 89) { y[i] = -.infinity }
        let clip = Rect(x: 10, y: 5, width: 80, height: 70)
        let inside = (0..<n).count { x[$0] >= 10 && x[$0] < 90 && y[$0] >= 5 && y[$0] < 75 }
        let unusable = (0..<n).count { !x[$0].isFinite || !y[$0].isFinite }

        let rasterizer = DensityRasterizer()
        let summary = x.withUnsafeBufferPointer { x in
            y.withUnsafeBufferPointer { y in
                rasterizer.begin(clip: clip)
                return rasterizer.accumulate(x: x, y: y, classes: nil, transform: .identity)
            }
        }
        #expect(summary.drawn == inside && summary.nonFinite == unusable && summary.outside == n - inside - unusable)
        var total = 0
        for row in 0..<120 {
            for column in 0..<140 {
                let count = rasterizer.count(column: column, row: row)
                #expect((count != nil) == (column >= 10 && column < 90 && row >= 5 && row < 75))
                total += count ?? 0
            }
        }
        #expect(total == inside)
        // Each point in the pixel its coordinates round down to.
        for i in 0..<100 where x[i] >= 10 && x[i] < 90 && y[i] >= 5 && y[i] < 75 {
            #expect(rasterizer.count(column: Int(x[i]), row: Int(y[i]))! >= 1)
        }
    }

    @Test func aPixelOfOneClassTakesExactlyItsColour() {
        let rasterizer = DensityRasterizer(minimumOpacity: 1)
        var pixels = Pixels(width: 40, height: 30)
        // Class 3 at (5, 5) three times, class 13 (wrapping to 3) at (6, 5), class -7 (wrapping to 3) at (7, 5).
        let summary = pixels.draw(rasterizer, x: [5.5, 5.2, 5.9, 6.5, 7.5], y: [5.5, 5.1, 5.7, 5.5, 5.5], classes: [3, 3, 3, 13, -7],
                                  clip: Rect(x: 0, y: 0, width: 40, height: 30))
        #expect(summary.drawn == 5 && summary.filledPixels == 3 && summary.densestPixel == 3)
        let class3 = rgb(Palette.color(forClass: 3))
        for x in 5...7 { #expect(pixels[x, 5] & 0xFFFFFF == class3, "\(String(pixels[x, 5], radix: 16))") }
        #expect(pixels[5, 5] >> 24 == 0xFF, "opaque")

        // With the default floor, the densest pixel is still exactly the colour; the sparsest a blend.
        let faint = DensityRasterizer()
        var more = Pixels(width: 40, height: 30)
        more.draw(faint, x: [5.5, 5.2, 5.9, 6.5], y: [5.5, 5.1, 5.7, 5.5], classes: [3, 3, 3, 3], clip: Rect(x: 0, y: 0, width: 40, height: 30))
        #expect(more[5, 5] & 0xFFFFFF == class3)
        let expected = zip(channels(class3), channels(Self.background)).map { (c, b) in (c * 77 + b * 179 + 128) >> 8 }  // 0.3 x 256 = 77
        #expect(channels(more[6, 5]) == expected)
    }

    @Test func aMixedPixelLiesBetweenItsClasses() {
        let rasterizer = DensityRasterizer(minimumOpacity: 1)
        var pixels = Pixels(width: 10, height: 10)
        // One point of class 0 and three of class 1 in one pixel: a quarter and three quarters.
        pixels.draw(rasterizer, x: [2.5, 2.5, 2.5, 2.5], y: [2.5, 2.5, 2.5, 2.5], classes: [0, 1, 1, 1], clip: Rect(x: 0, y: 0, width: 10, height: 10))
        let a = channels(rgb(Palette.color(forClass: 0))), b = channels(rgb(Palette.color(forClass: 1)))
        let mixed = channels(pixels[2, 2])
        for k in 0..<3 {
            #expect(mixed[k] >= min(a[k], b[k]) && mixed[k] <= max(a[k], b[k]))
            #expect(abs(Double(mixed[k]) - (Double(a[k]) + 3 * Double(b[k])) / 4) <= 0.5)
        }
    }

    @Test func unlabelledPointsTakeTheirColour() {
        let grey = Color(hex: 0x808080)
        let rasterizer = DensityRasterizer(classColours: [Color(hex: 0xFF0000)], unlabelled: grey, minimumOpacity: 1)
        var pixels = Pixels(width: 10, height: 10)
        // Classes cover only the first point; the second is unlabelled.
        pixels.draw(rasterizer, x: [1.5, 3.5], y: [1.5, 1.5], classes: [4], clip: Rect(x: 0, y: 0, width: 10, height: 10))
        #expect(pixels[1, 1] & 0xFFFFFF == 0xFF0000 && pixels[3, 1] & 0xFFFFFF == 0x808080)
        pixels.draw(rasterizer, x: [5.5], y: [5.5], classes: nil, clip: Rect(x: 0, y: 0, width: 10, height: 10))
        #expect(pixels[5, 5] & 0xFFFFFF == 0x808080)
        // No class colours at all: everything is unlabelled, nothing divides by zero.
        let bare = DensityRasterizer(classColours: [], unlabelled: grey, minimumOpacity: 1)
        bare.unlabelled = Color(hex: 0x0000FF)
        pixels.draw(bare, x: [7.5], y: [7.5], classes: [3], clip: Rect(x: 0, y: 0, width: 10, height: 10))
        #expect(pixels[7, 7] & 0xFFFFFF == 0x0000FF)
    }

    @Test func emptyAndOutsidePixelsAreLeftAlone() {
        var random = Random(state: 3)
        var pixels = Pixels(width: 60, height: 50)
        for i in pixels.storage.indices { pixels.storage[i] = 0xFF00_0000 | UInt32(truncatingIfNeeded: i &* 2_654_435_761) & 0xFFFFFF }
        let before = pixels
        let n = 300
        let x = (0..<n).map { _ in Float(random.uniform() * 80 - 10) }, y = (0..<n).map { _ in Float(random.uniform() * 70 - 10) }
        let clip = Rect(x: 5, y: 8, width: 40, height: 30)
        pixels.draw(DensityRasterizer(), x: x, y: y, classes: (0..<n).map { $0 % 5 }, clip: clip)
        var hit = Set<Int>()
        for i in 0..<n where x[i] >= 5 && x[i] < 45 && y[i] >= 8 && y[i] < 38 { hit.insert(Int(y[i]) * 1000 + Int(x[i])) }
        for row in 0..<50 {
            for column in 0..<60 where !hit.contains(row * 1000 + column) {
                #expect(pixels[column, row] == before[column, row], "(\(column), \(row))")
            }
        }
        #expect(hit.allSatisfy { pixels[$0 % 1000, $0 / 1000] != before[$0 % 1000, $0 / 1000] })
        // Beyond the row's width, the stride's padding is untouched too.
        for row in 0..<50 { #expect(pixels.storage[row * pixels.stride + 60] == before.storage[row * pixels.stride + 60]) }
    }

    @Test func nonFinitePointsAreSkipped() {
        var pixels = Pixels(width: 10, height: 10)
        let before = pixels
        let nan = Float.nan, inf = Float.infinity
        let summary = pixels.draw(DensityRasterizer(), x: [nan, 1, inf, -inf, nan, 3], y: [1, nan, 2, 2, nan, .signalingNaN],
                                  classes: [0, 1, 2, 3, 4, 5], clip: Rect(x: 0, y: 0, width: 10, height: 10))
        #expect(summary.nonFinite == 6 && summary.drawn == 0 && summary.filledPixels == 0)
        #expect(pixels.storage == before.storage)
    }

    @Test func morePointsAreNeverLighter() {
        // Pixel k holds k + 1 points of class 0 (dark blue) on a light background.
        let rasterizer = DensityRasterizer()
        var pixels = Pixels(width: 64, height: 1)
        var x: [Float] = [], y: [Float] = []
        for k in 0..<64 {
            for _ in 0...k * k {
                x.append(Float(k) + 0.5)
                y.append(0.5)
            }
        }
        pixels.draw(rasterizer, x: x, y: y, classes: [Int](repeating: 0, count: x.count), clip: Rect(x: 0, y: 0, width: 64, height: 1))
        let lightness = (0..<64).map { channels(pixels[$0, 0]).reduce(0, +) }
        for k in 1..<64 { #expect(lightness[k] <= lightness[k - 1], "pixel \(k)") }
        #expect(lightness[63] < lightness[0], "the ramp spans a range")
        #expect(pixels[63, 0] & 0xFFFFFF == rgb(Palette.color(forClass: 0)), "the densest pixel is opaque")
        #expect(pixels[0, 0] != Self.background, "a lone point shows")
    }

    @Test func aFrameLeavesNothingForTheNext() {
        let rasterizer = DensityRasterizer()
        var first = Pixels(width: 30, height: 20)
        first.draw(rasterizer, x: [1.5, 2.5, 2.5, 9.5], y: [1.5, 2.5, 2.5, 9.5], classes: [0, 1, 2, 3], clip: Rect(x: 0, y: 0, width: 30, height: 20))
        // A second frame through the same rasterizer equals one through a new rasterizer, even with another clip.
        for clip in [Rect(x: 0, y: 0, width: 30, height: 20), Rect(x: 1, y: 2, width: 12, height: 9)] {
            var reused = Pixels(width: 30, height: 20), fresh = Pixels(width: 30, height: 20)
            let x: [Float] = [3.5, 4.5, 4.5, 4.5, 10.5], y: [Float] = [3.5, 4.5, 4.5, 4.5, 3.5]
            reused.draw(rasterizer, x: x, y: y, classes: [5, 6, 6, 7, 8], clip: clip)
            fresh.draw(DensityRasterizer(), x: x, y: y, classes: [5, 6, 6, 7, 8], clip: clip)
            #expect(reused.storage == fresh.storage)
        }
        // Accumulated but never composited: the next frame still starts empty.
        let x: [Float] = [1.5], y: [Float] = [1.5]
        x.withUnsafeBufferPointer { x in
            y.withUnsafeBufferPointer { y in
                rasterizer.begin(clip: Rect(x: 0, y: 0, width: 30, height: 20))
                _ = rasterizer.accumulate(x: x, y: y, classes: nil, transform: .identity)
            }
        }
        rasterizer.begin(clip: Rect(x: 0, y: 0, width: 30, height: 20))
        #expect(rasterizer.count(column: 1, row: 1) == 0)
    }

    @Test func theTransformMapsDataToPixels() {
        // The scatter's mapping: data -1...1 onto pixels 10...110, y up.
        let transform = DensityRasterizer.Transform(scaleX: 50, offsetX: 60, scaleY: -50, offsetY: 60)
        let rasterizer = DensityRasterizer(minimumOpacity: 1)
        var pixels = Pixels(width: 120, height: 120)
        let summary = pixels.draw(rasterizer, x: [0, -0.99, 0.99, 1.5], y: [0, 0.99, -0.99, 0], classes: [2, 2, 2, 2],
                                  clip: Rect(x: 10, y: 10, width: 100, height: 100), transform: transform)
        #expect(summary.drawn == 3 && summary.outside == 1)
        let colour = rgb(Palette.color(forClass: 2))
        for (x, y) in [(60, 60), (10, 10), (109, 109)] { #expect(pixels[x, y] & 0xFFFFFF == colour, "(\(x), \(y))") }
        // Double coordinates work the same way.
        var doubles = Pixels(width: 120, height: 120)
        doubles.storage.withUnsafeMutableBufferPointer {
            _ = rasterizer.draw(x: [0, -0.99, 0.99, 1.5], y: [0, 0.99, -0.99, 0], classes: [2, 2, 2, 2], transform: transform,
                                clip: Rect(x: 10, y: 10, width: 100, height: 100), into: $0.baseAddress!, stride: 123)
        }
        #expect(doubles.storage == pixels.storage)
    }

    @Test func extremeInputsDoNotTrap() {
        let rasterizer = DensityRasterizer()
        var pixels = Pixels(width: 16, height: 16)
        let clip = Rect(x: 0, y: 0, width: 16, height: 16)
        // No points; a one-pixel clip; empty and NaN clips; huge coordinates and transforms.
        #expect(pixels.draw(rasterizer, x: [], y: [], classes: nil, clip: clip) == DensityRasterizer.Summary())
        let one = pixels.draw(rasterizer, x: [3.2, 3.9, 4], y: [5.5, 5.1, 5], classes: [1, 2, 3], clip: Rect(x: 3, y: 5, width: 1, height: 1))
        #expect(one.drawn == 2 && one.outside == 1 && one.filledPixels == 1)
        for bad in [Rect(x: 4, y: 4, width: 0, height: 5), Rect(x: .nan, y: 0, width: .nan, height: 4),
                    Rect(x: 8, y: 8, width: -5, height: -5), Rect(x: -.infinity, y: 0, width: 0, height: 0)] {
            let s = pixels.draw(rasterizer, x: [1, 5, 8], y: [1, 5, 8], classes: nil, clip: bad)
            #expect(s.drawn == 0 && s.filledPixels == 0, "\(bad)")
        }
        let huge: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1e30, -1e30, .leastNonzeroMagnitude, 8]
        let big = pixels.draw(rasterizer, x: huge, y: huge.reversed(), classes: [Int.min, Int.max, -1, 0, 1, 2], clip: clip)
        #expect(big.drawn + big.outside + big.nonFinite == huge.count)
        for transform in [DensityRasterizer.Transform(scaleX: 1e300, offsetX: 0, scaleY: 1e300, offsetY: 0),
                          DensityRasterizer.Transform(scaleX: .nan, offsetX: 1, scaleY: 1, offsetY: .infinity),
                          DensityRasterizer.Transform(scaleX: 0, offsetX: 5, scaleY: 0, offsetY: 5)] {
            let s = pixels.draw(rasterizer, x: huge, y: huge, classes: nil, clip: clip, transform: transform)
            #expect(s.drawn + s.outside + s.nonFinite == huge.count)
        }
        // Mismatched lengths: only the pairs are read.
        #expect(pixels.draw(rasterizer, x: [1, 2, 3], y: [1], classes: nil, clip: clip).drawn == 1)
        // NaN opacity floor and colours.
        let odd = DensityRasterizer(classColours: [Color(red: .nan, green: 2, blue: -1)], minimumOpacity: .nan)
        pixels.draw(odd, x: [2.5], y: [2.5], classes: [0], clip: clip)
        #expect(pixels[2, 2] & 0xFFFFFF == 0x00FF00)
    }

    @Test func aClipPastTheBinLimitIsCountedInSquares() {
        // 2100 x 2100 pixels is more than 2048 x 2048 cells: counted in 2 x 2 squares.
        let rasterizer = DensityRasterizer(minimumOpacity: 1)
        var pixels = Pixels(width: 2100, height: 2100)
        let summary = pixels.draw(rasterizer, x: [2098.5, 1000.2, 1001.7], y: [2099.5, 1000.2, 1001.7], classes: [4, 1, 1],
                                  clip: Rect(x: 0, y: 0, width: 2100, height: 2100))
        #expect(summary.drawn == 3 && summary.filledPixels == 2 && summary.densestPixel == 2)
        let colour = rgb(Palette.color(forClass: 4))
        for (x, y) in [(2098, 2098), (2099, 2099), (2098, 2099)] { #expect(pixels[x, y] & 0xFFFFFF == colour) }
        #expect(pixels[1000, 1001] & 0xFFFFFF == rgb(Palette.color(forClass: 1)))
        #expect(pixels[1002, 1002] == Self.background)
    }

    @Test func anOverfullPixelSpillsWithoutLosingPointsOrColour() {
        // 257 points fill a cell's 16-bit sums; past them the cell spills into 64-bit sums.
        let rasterizer = DensityRasterizer(minimumOpacity: 1)
        var pixels = Pixels(width: 4, height: 4)
        let n = 10_000
        let summary = pixels.draw(rasterizer, x: [Float](repeating: 1.5, count: n) + [2.5], y: [Float](repeating: 1.5, count: n) + [2.5],
                                  classes: [Int](repeating: 3, count: n) + [0], clip: Rect(x: 0, y: 0, width: 4, height: 4))
        #expect(summary.drawn == n + 1 && summary.densestPixel == n && summary.filledPixels == 2)
        #expect(pixels[1, 1] & 0xFFFFFF == rgb(Palette.color(forClass: 3)))
        #expect(pixels[2, 2] & 0xFFFFFF == rgb(Palette.color(forClass: 0)))
        // Alternating classes: the exact even mix, however many points.
        for count in [256, 257, 258, 513, 5_000] {
            var mixed = Pixels(width: 4, height: 4)
            let s = mixed.draw(rasterizer, x: [Float](repeating: 1.5, count: count), y: [Float](repeating: 1.5, count: count),
                               classes: (0..<count).map { $0 % 2 }, clip: Rect(x: 0, y: 0, width: 4, height: 4))
            #expect(s.densestPixel == count)
            let a = channels(rgb(Palette.color(forClass: 0))), b = channels(rgb(Palette.color(forClass: 1)))
            let even = count / 2, odd = count - even  // class 0 gets the odd one out
            for (k, c) in channels(mixed[1, 1]).enumerated() {
                #expect(abs(Double(c) - Double(a[k] * odd + b[k] * even) / Double(count)) <= 0.5, "\(count) points")
            }
        }
    }

    @Test func chunksAndBandsGiveTheSameImage() {
        // Points sorted a few at a time give what one chunk gives; so do the rows of a clip too wide for bands.
        var random = Random(state: 11)
        let n = 3_000
        let x = (0..<n).map { _ in Float(random.uniform() * 300) }, y = (0..<n).map { _ in Float(random.uniform() * 200) }
        let classes = (0..<n).map { ($0 * 7) % 12 - 1 }
        let clip = Rect(x: 3, y: 2, width: 290, height: 190)
        var whole = Pixels(width: 300, height: 200), chunked = Pixels(width: 300, height: 200)
        let one = whole.draw(DensityRasterizer(), x: x, y: y, classes: classes, clip: clip)
        let small = DensityRasterizer()
        small.chunkPoints = 7
        #expect(chunked.draw(small, x: x, y: y, classes: classes, clip: clip) == one)
        #expect(chunked.storage == whole.storage)
        // Twice through the same rasterizer, with a chunk boundary inside a band.
        small.chunkPoints = 1_000
        #expect(chunked.draw(small, x: x, y: y, classes: classes, clip: clip) == one)
        // Keyed and sorted on two threads, odd halves included (each onto fresh pixels: a draw blends).
        for (chunk, parallel) in [(3_000, 1), (1_001, 2), (7, 3)] {
            var fresh = Pixels(width: 300, height: 200)
            small.chunkPoints = chunk
            small.parallelPoints = parallel
            #expect(fresh.draw(small, x: x, y: y, classes: classes, clip: clip) == one)
            #expect(fresh.storage == whole.storage)
        }

        // A clip of 40,000 x 1 pixels has rows wider than a band: points are added one by one.
        var wide = Pixels(width: 40_000, height: 1)
        let line = (0..<n).map { Float($0 * 13) + 0.5 }
        let s = wide.draw(DensityRasterizer(minimumOpacity: 1), x: line, y: [Float](repeating: 0.5, count: n), classes: classes,
                          clip: Rect(x: 0, y: 0, width: 40_000, height: 1))
        #expect(s.drawn == line.count { $0 < 40_000 } && s.filledPixels == s.drawn)
        #expect(wide[13, 0] & 0xFFFFFF == rgb(Palette.color(forClass: 6)))  // point 1: class 6
    }

    @Test func classesPastTheColourLimitWrap() {
        // 300 colours: only the first 255 are used, and classes wrap modulo 255.
        let colours = (0..<300).map { Color(hex: UInt32($0) << 8) }
        let rasterizer = DensityRasterizer(classColours: colours, minimumOpacity: 1)
        var pixels = Pixels(width: 4, height: 4)
        pixels.draw(rasterizer, x: [0.5, 1.5, 2.5], y: [0.5, 0.5, 0.5], classes: [254, 255, 299], clip: Rect(x: 0, y: 0, width: 4, height: 4))
        #expect(pixels[0, 0] & 0xFFFFFF == 254 << 8 && pixels[1, 0] & 0xFFFFFF == 0 && pixels[2, 0] & 0xFFFFFF == 44 << 8)
    }

    @Test func coverageFollowsThePoissonEstimate() {
        let clip = Rect(x: 0, y: 0, width: 600, height: 600)
        for (n, r) in [(0, 2.0), (1, 2), (1000, 2), (20_000, 2), (50_000, 1.5), (1_000_000, 1.5)] {
            let expected = 1 - exp(-Double(n) * Double.pi * r * r / 360_000)
            #expect(abs(DensityRasterizer.expectedCoverage(pointCount: n, dotRadius: r, clip: clip) - expected) < 1e-5, "\(n)")
        }
        #expect(DensityRasterizer.expectedCoverage(pointCount: 10, dotRadius: .nan, clip: clip) == 0)
        #expect(DensityRasterizer.expectedCoverage(pointCount: 10, dotRadius: 2, clip: Rect(x: 0, y: 0, width: 0, height: 5)) == 1)
        #expect(DensityRasterizer.expectedCoverage(pointCount: .max, dotRadius: .infinity, clip: clip) == 1)
        #expect(!DensityRasterizer.prefersDensity(pointCount: 10_000, dotRadius: 2, clip: clip))
        #expect(DensityRasterizer.prefersDensity(pointCount: 40_000, dotRadius: 2, clip: clip))  // covers 75%
        // Dots that would cover 65% of it, but at a point per 12 pixels: a density image would be faint.
        #expect(!DensityRasterizer.prefersDensity(pointCount: 30_000, dotRadius: 2, clip: clip))
        #expect(!DensityRasterizer.prefersDensity(pointCount: 10_000, dotRadius: 2, clip: Rect(x: 0, y: 0, width: 420, height: 420)))
        #expect(DensityRasterizer.prefersDensity(pointCount: 10_000, dotRadius: 2, clip: Rect(x: 0, y: 0, width: 150, height: 150)))
        #expect(DensityRasterizer.prefersDensity(pointCount: 50_000, dotRadius: 0.5, clip: clip))
    }
}
