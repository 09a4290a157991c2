import Foundation
import Canvas
@testable import Compositor
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
                                             outliers: (0..<8).map { .init(index: $0, value: 0.1) }, losses: LossHistory()))
        }
    }
}

/// Issue 10: no input makes the compositor crash, hang or misread.
@Suite struct CompositorRobustnessTests {
    /// Doubles at the edges: zeros, subnormals, the normal range's ends, values near precision
    /// limits and ones whose differences or 8% headroom overflow.
    static let extremeDoubles: [Double] = {
        let positive: [Double] = [.leastNonzeroMagnitude, 3 * .leastNonzeroMagnitude, .leastNormalMagnitude, 1e-300, 1e-10,
                                  1, 1.0.nextUp, 2, 1e15, 1e15 + 1, 1e300, 1.67e308, 1.7e308,
                                  Double.greatestFiniteMagnitude.nextDown, .greatestFiniteMagnitude]
        return [0, -0.0] + positive + positive.map { -$0 }
    }()

    static let extremeFloats: [Float] = [.nan, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                         .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, 0, 1e30, -1e30, 1, -1]

    func setting(n: Int, classNames: [String]? = nil, title: String? = "robustness", losses: LossHistory? = nil) -> FilmSetting {
        let names = classNames ?? ["cat", "dog", "bird"]
        return FilmSetting(sampleCount: n, dimension: 8, labels: (0..<n).map { $0 % names.count }, classNames: names,
                           thumbnails: nil, wholeRunLosses: losses, checkpointCount: 3, title: title, alignment: "aligned")
    }

    func frame(x: [Float], y: [Float], losses: LossHistory = LossHistory(training: [.init(step: 0, loss: 1)]),
               step: Int = 50, outliers: Int = 0) -> FrameContent {
        FrameContent(step: step, epoch: 0.5, checkpointIndex: 1, points: PlanarPoints(x: x, y: y),
                     outliers: (0..<min(outliers, x.count)).map { .init(index: $0, value: 0.5) }, losses: losses)
    }

    func pixels(_ surface: ImageSurface) -> [UInt32] {
        surface.withMutablePixels { p, stride in (0..<surface.height * stride).map { p[$0] } }
    }

    @Test(.timeLimit(.minutes(1)))
    func ticksEndForEveryRange() {
        let values = Self.extremeDoubles + [.nan, .infinity, -.infinity]
        for low in values {
            for high in values {
                for count in [-1, 0, 1, 4, 5, 50, 1_000_000] {
                    let ticks = Ticks.values(from: low, to: high, about: count)
                    #expect(ticks.count <= 2 * min(max(count, 1), Ticks.largestCount) + 2, "\(low)...\(high), about \(count)")
                    guard low.isFinite, high.isFinite, low < high, count > 0 else { continue }
                    #expect(ticks.allSatisfy(\.isFinite) && zip(ticks, ticks.dropFirst()).allSatisfy { $0 < $1 },
                            "\(low)...\(high), about \(count): \(ticks)")
                    let slack = (high / 2 - low / 2) * 1e-6
                    #expect(ticks.allSatisfy { $0 >= low - slack && $0 <= high + slack }, "\(low)...\(high): \(ticks)")
                    if count >= 3 { #expect(!ticks.isEmpty, "\(low)...\(high), about \(count)") }
                    let step = Ticks.step(from: low, to: high, about: count)
                    #expect(step.map { $0.isFinite && $0 > 0 } == true)
                    for tick in ticks {
                        let label = Ticks.label(tick, step: step!)
                        #expect(!label.isEmpty && !label.contains("inf") && !label.contains("nan"), "\(tick) read as \(label)")
                    }
                }
            }
        }
    }

    @Test func numbersReadAsTheyAre() {
        #expect(Ticks.formatted(0.00001, decimals: 5) == "0.00001")
        #expect(Ticks.formatted(-0.25, decimals: 3) == "-0.250")
        #expect(Ticks.formatted(12.345, decimals: 1) == "12.3")
        #expect(Ticks.formatted(.nan, decimals: 2) == "nan")
        #expect(Ticks.label(1.5e17, step: 1e16) == "1.5e17")
        #expect(Ticks.label(2e-8, step: 1e-8) == "2e-8")
        #expect(Ticks.label(0, step: 5e-324) == "0")
        #expect(Ticks.label(0.25, step: 0.05) == "0.25")
        #expect(Ticks.label(20_000, step: 5_000) == "20k")
        #expect(NumberText.significant(1.5e17) == "1.500e17")
        #expect(NumberText.significant(1e300) == "1.000e300")
        #expect(NumberText.significant(.leastNonzeroMagnitude) == "4.941e-324")
        #expect(NumberText.significant(9.99996, 4) == "10.00")
        #expect(NumberText.significant(0.0000999996, 4) == "0.0001000")
        #expect(NumberText.significant(0.00000999996, 4) == "1.000e-5")
        #expect(NumberText.grouped(Int.min) == "-9,223,372,036,854,775,808")
    }

    @Test(.timeLimit(.minutes(1)))
    func drawsAnyLossHistory() throws {
        let nonFinite: [Double] = [.nan, .infinity, -.infinity]
        let histories: [[Double]] = [
            [.nan], nonFinite, [1e300], [1.7e308, 2], [-1.7e308, 1.7e308], [.greatestFiniteMagnitude],
            [.leastNonzeroMagnitude, 3 * .leastNonzeroMagnitude], [0, 0], [-5, -1], [2, .nan, 1, .infinity, 0.5],
            Self.extremeDoubles, Self.extremeDoubles + nonFinite,
        ]
        let n = 20
        let points = (0..<n).map { Float($0) / Float(n) - 0.5 }
        for losses in histories {
            for (first, last) in [(0, 100), (Int.min, Int.max), (Int.max - 100, Int.max)] {
                // Consecutive steps from `first`, the last one at `last`.
                let logged = losses.indices.map { LossHistory.Point(step: $0 == losses.count - 1 ? last : first + $0, loss: losses[$0]) }
                let history = LossHistory(training: logged, evaluation: logged.reversed())
                for whole in [nil, history] {
                    let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: n, losses: whole))
                    let start = ContinuousClock.now
                    try compositor.draw(frame(x: points, y: points, losses: history, step: last))
                    #expect(ContinuousClock.now - start < .seconds(1), "losses \(losses)")
                }
            }
        }
    }

    /// A board from the approximate search says so in its caption, and only there.
    @Test func anApproximateBoardSaysSoInItsCaption() throws {
        func board(approximate: Bool) throws -> [UInt32] {
            let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: 4))
            var content = frame(x: [0, 0.1, 0.2, 0.3], y: [0, 0.1, 0.2, 0.3], outliers: 2)
            content.leaderboard.approximate = approximate
            try compositor.draw(content)
            return pixels(compositor.surface)
        }
        let exact = try board(approximate: false), approximate = try board(approximate: true)
        let stride = exact.count / 720
        let differing = (0..<exact.count).filter { exact[$0] != approximate[$0] }
        #expect(differing.count > 100, "the caption changes")
        // The caption is one line under the board's title, in the right-hand column.
        #expect(differing.allSatisfy { $0 % stride >= 840 && (360..<390).contains($0 / stride) })
    }

    @Test func saysHowManyLossesAreLeftOut() throws {
        let finite = [LossHistory.Point(step: 0, loss: 2), .init(step: 50, loss: 1), .init(step: 100, loss: 0.5)]
        let withNaN = finite + [.init(step: 120, loss: .nan), .init(step: 130, loss: .infinity)]
        func chart(_ losses: [LossHistory.Point]) throws -> [UInt32] {
            let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: 4, losses: nil))
            try compositor.draw(frame(x: [0, 0.1, 0.2, 0.3], y: [0, 0.1, 0.2, 0.3], losses: LossHistory(training: losses), step: 100))
            return pixels(compositor.surface)
        }
        let plain = try chart(finite), noted = try chart(withNaN)
        // At 720p the plot's top-left corner is at (890, 104); the note sits just inside it. The
        // finite points, so the axes and the curve, are the same in both frames.
        let stride = plain.count / 720
        let differing = (104..<122).flatMap { y in (890..<1100).map { y * stride + $0 } }.filter { plain[$0] != noted[$0] }
        #expect(differing.count > 50, "the note is drawn")
        let elsewhere = (0..<plain.count).filter { plain[$0] != noted[$0] && !((104..<122).contains($0 / stride) && (890..<1100).contains($0 % stride)) }
        #expect(elsewhere.isEmpty, "the axis comes from the finite losses alone")
    }

    @Test func skipsNonFiniteDisplayPointsAndClampsHugeOnes() throws {
        let specials = Self.extremeFloats
        let x = specials.flatMap { a in specials.map { _ in a } }, y = specials.flatMap { _ in specials }
        let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: x.count))
        try compositor.draw(frame(x: x, y: y, outliers: x.count))

        let empty = try FrameCompositor(width: 1280, height: 720, setting: setting(n: 0))
        try empty.draw(frame(x: [], y: []))
        let nonFinite = specials.filter { !$0.isFinite }
        let skipped = try FrameCompositor(width: 1280, height: 720, setting: setting(n: 0))
        try skipped.draw(frame(x: nonFinite + [0, 0, 0], y: [0, 0, 0] + nonFinite))
        #expect(pixels(skipped.surface) == pixels(empty.surface), "NaN and infinite points are left out")

        let huge = try FrameCompositor(width: 1280, height: 720, setting: setting(n: 0))
        try huge.draw(frame(x: [.greatestFiniteMagnitude], y: [0]))
        // The scatter spans x 24...644 at 720p: the point sits on its right border.
        let stride = pixels(empty.surface).count / 720
        #expect(pixels(huge.surface)[386 * stride + 641] != pixels(empty.surface)[386 * stride + 641])
    }

    @Test func dotRasterizerTakesAnyCoordinates() {
        let size = 64
        var buffer = [UInt32](repeating: 0xFFFF_FFFF, count: size * size)
        let doubles = Self.extremeDoubles + [.nan, .infinity, -.infinity, Double(Int.max), -Double(Int.max), 1e19]
        let clips = [Rect(x: 1, y: 1, width: 62, height: 62), Rect(x: .nan, y: 0, width: 10, height: 10),
                     Rect(x: -1e300, y: -1e300, width: 1e300, height: 1e300)]
        for radius in [2.5, 0, -1, .nan, .infinity, 1e300] {
            for clip in clips.prefix(radius == 2.5 ? 3 : 1) {
                let rasterizer = DotRasterizer(radius: radius, clip: clip)
                buffer.withUnsafeMutableBufferPointer { pixels in
                    for cx in doubles {
                        for cy in doubles {
                            // Only the first clip lies inside the buffer; the others must draw nowhere.
                            guard clip == clips[0] || !(cx.isFinite && cy.isFinite && abs(cx) < 1e6 && abs(cy) < 1e6) else { continue }
                            rasterizer.draw(cx: cx, cy: cy, ink: DotRasterizer.Ink(Color(red: .nan, green: 2, blue: -1, alpha: .infinity)),
                                            into: pixels.baseAddress!, stride: size)
                        }
                    }
                }
            }
        }
        #expect(buffer[0] == 0xFFFF_FFFF && buffer[size * size - 1] == 0xFFFF_FFFF, "nothing drawn outside the clip")
        #expect(buffer[2 * size + 2] == 0xFF00_FF00, "the dot at (2, 2), in the ink's channels clamped to 0...1")
    }

    /// Names with control characters, noncharacters (which Cairo refuses), bidirectional
    /// overrides, private use, a grapheme of ten thousand combining marks, and emoji sequences.
    static func scalars(_ values: UInt32...) -> String {
        String(String.UnicodeScalarView(values.map { Unicode.Scalar($0)! }))  // Swift refuses noncharacters in literals
    }

    static let oddNames = [
        "tab\there", "line\nbreak\r\n", "nul\u{0}byte", "bell\u{7}\u{1B}[31m", "del\u{7F}c1\u{85}\u{9F}",
        "non" + scalars(0xFFFF, 0xFFFE, 0xFDD0, 0x1FFFF, 0x10FFFF), "\u{202E}reversed\u{202C}", "private\u{E000}\u{F8FF}",
        "e" + String(repeating: "\u{301}", count: 10_000), "👩‍👩‍👧‍👦🏳️‍🌈", "\u{FEFF}\u{200B}\u{200D}", "",
        "unassigned\u{378}\u{E01F0}", "\u{FFFD}",
    ]

    @Test(.timeLimit(.minutes(1)))
    func drawsHugeAndOddTextQuickly() throws {
        let huge = String(repeating: "Wide title \u{7}" + Self.scalars(0xFFFF) + " ", count: 100_000 / 16 + 1)
        let megabyte = String(repeating: "x", count: 1_000_000)
        for (title, names) in [(huge, [huge, huge + "2", "short"]), (megabyte, [megabyte]), (huge, Self.oddNames),
                               (Self.oddNames.joined(), Self.oddNames.map { $0 + huge })] {
            let n = 40
            let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: n, classNames: names, title: title))
            let points = (0..<n).map { Float($0) / Float(n) - 0.5 }
            let start = ContinuousClock.now
            try compositor.draw(frame(x: points, y: points.reversed(), outliers: 8))
            #expect(ContinuousClock.now - start < .seconds(1), "\(names.count) names of up to \(names.map(\.count).max()!) characters")
        }
    }

    @Test func impossibleFrameSizesThrow() {
        for (width, height) in [(Int.max, 720), (1280, Int(Int32.max) + 1), (-1, 720), (40_000, 10)] {
            #expect(throws: CanvasError.self) { try FrameCompositor(width: width, height: height, setting: setting(n: 0)) }
        }
    }

    @Test func manyClassesDrawQuickly() throws {
        let names = (0..<100_000).map { "class \($0)" }
        let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: 40, classNames: names))
        let points = (0..<40).map { Float($0) / 40 - 0.5 }
        let start = ContinuousClock.now
        try compositor.draw(frame(x: points, y: points, outliers: 8))
        #expect(ContinuousClock.now - start < .seconds(1), "the legend lists what fits and counts the rest")
    }

    @Test func fittingStaysWithinTheWidthAndKeepsTheSuffix() throws {
        let context = try GraphicsContext(ImageSurface(width: 16, height: 16))
        let long = String(repeating: "Wide words, ", count: 10_000)
        for text in [long, "short"] + Self.oddNames {
            for maxWidth in [-1, 0, 4, 30, 120, 500, 5_000, .infinity, .nan] {
                let fitted = context.fitting(text, keeping: " (123)", maxWidth: maxWidth, size: 13)
                let width = context.textWidth(fitted, size: 13)
                #expect(fitted.isEmpty || width <= maxWidth, "\(fitted.debugDescription) is \(width) wide, not \(maxWidth)")
                #expect(fitted.unicodeScalars.count <= GraphicsContext.characterLimit)
                if maxWidth >= 120 && text != "" { #expect(fitted.hasSuffix(" (123)"), "\(fitted.debugDescription)") }
            }
        }
        #expect(context.fitting("short", keeping: " (1)", maxWidth: 500, size: 13) == "short (1)")
        #expect(context.fitting(long, maxWidth: 200, size: 13).hasSuffix("…"))
        let odd = context.fitting("a\tb\u{0}c" + Self.scalars(0xFFFF), maxWidth: 500, size: 13)
        #expect(odd == "a b\u{FFFD}c\u{FFFD}")
        try context.checkStatus()
    }
}

@Suite struct LossAxisTests {
    @Test func anAbsurdLossIsClippedAndTheCurveKeepsItsShape() {
        let losses = [1e300, 2.5, 1.5, 1.0, 0.8, 0.7, 0.6, 0.5, 0.4]
        #expect(FrameCompositor.plausibleRange(losses) == 0.4...2.5)
        #expect(FrameCompositor.plausibleRange([-1e308, 3, 2, 1, 0.5, 0.25]) == 0.25...3)
    }

    @Test(arguments: [
        (0..<200).map { 2.3 * exp(-Double($0) / 40) + 0.05 },    // an ordinary fine-tuning curve
        [5, 1, 1, 1, 1, 1, 1, 50],                               // one spike, within reason
        [1e300, 1e299, 5e299, 2e300, 3e300],                     // absurd everywhere, so ordinary here
        [0, 0, 0, 0, 0, 0],
    ])
    func ordinaryCurvesAreShownWhole(losses: [Double]) {
        #expect(FrameCompositor.plausibleRange(losses) == losses.min()!...losses.max()!)
    }
}

@Suite struct ScoreScaleTests {
    @Test func scoresOfOneFrameShareTheirDecimals() {
        let plain = NumberText.onOneScale([0.005306, 0.01159, 0.02339])
        #expect(plain.texts == ["0.00531", "0.01159", "0.02339"] && plain.scale == nil)
        let tiny = NumberText.onOneScale([7.931e-5, 0.0001938])
        #expect(tiny.texts == ["0.793", "1.938"] && tiny.scale == "1e-4")
        let mixed = NumberText.onOneScale([0, .nan, 2.5])
        #expect(mixed.texts == ["0.000", "nan", "2.500"] && mixed.scale == nil)
        // Scores far below the largest are not shown as a zero they are not.
        let vanishing = NumberText.onOneScale([1e-12, 0.1145, -3e-9])
        #expect(vanishing.texts == ["<0.0001", "0.1145", ">-0.0001"] && vanishing.scale == nil)
    }
}
