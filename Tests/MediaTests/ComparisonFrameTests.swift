import Canvas
@testable import Compositor
import Foundation
import LinearAlgebra
import RunFormat
import Testing

/// `embedlapse compare`'s frames: two runs side by side under one fixed view.
@Suite struct ComparisonFrameTests {
    /// The thumbnails' one colour: no class colour, ink, grey or antialiased text takes it.
    static let thumbnailColour: [UInt8] = [10, 200, 60]
    static var thumbnailPixel: UInt32 { thumbnailColour.reduce(0) { $0 << 8 | UInt32($1) } }

    func setting(n: Int, classes: Int = 3, shared: Bool = false, thumbnails: Bool = true) -> FilmSetting {
        let images = Thumbnails(count: n, height: 4, width: 4, channels: 3,
                                pixels: Array([[UInt8]](repeating: Self.thumbnailColour, count: n * 16).joined()))
        var setting = FilmSetting(sampleCount: n, dimension: 64, labels: (0..<n).map { $0 % classes },
                                  classNames: (0..<classes).map { "class \($0)" }, thumbnails: thumbnails ? images : nil,
                                  wholeRunLosses: nil, checkpointCount: nil, finalStep: 200, title: nil, alignment: "aligned")
        setting.comparison = ComparisonSetting(names: ["frozen backbone", "full fine-tuning"], dimensions: [64, 128],
                                               sharedLeaderboard: shared)
        return setting
    }

    func content(_ points: PlanarPoints, ringed: [Int] = [], measure: LeaderboardKind = .outliers, step: Int = 100,
                 losses: [Double] = [2, 1.2, 0.8], evaluation: [Double] = []) -> FrameContent {
        let history = LossHistory(training: losses.enumerated().map { .init(step: $0.offset * 50, loss: $0.element) },
                                  evaluation: evaluation.enumerated().map { .init(step: $0.offset * 50, loss: $0.element) })
        return FrameContent(step: step, epoch: nil, checkpointIndex: 2, points: points,
                            leaderboard: Leaderboard(kind: measure, entries: ringed.map { .init(index: $0, value: 0.1) }),
                            losses: history)
    }

    func comparison(_ left: FrameContent, _ right: FrameContent, states: [ComparisonContent.PanelState] = [.current, .current],
                    step: Int = 100) -> ComparisonContent {
        ComparisonContent(step: step, stepPosition: Double(step),
                          panels: [.init(content: left, state: states[0]), .init(content: right, state: states[1])])
    }

    /// Points in rings around the origin, class by index.
    func cloud(_ n: Int, turn: Float = 0) -> PlanarPoints {
        let angles = (0..<n).map { Float($0) * 2.399 + turn }
        let radii = (0..<n).map { 0.2 + 0.7 * Float($0 % 17) / 17 }
        return PlanarPoints(x: zip(angles, radii).map { cos($0) * $1 }, y: zip(angles, radii).map { sin($0) * $1 })
    }

    func pixel(_ surface: ImageSurface, _ x: Int, _ y: Int) -> UInt32 {
        surface.withMutablePixels { p, stride in p[y * stride + x] } & 0xFFFFFF
    }

    func pixels(_ surface: ImageSurface, in rect: Rect) -> [UInt32] {
        surface.withMutablePixels { p, stride in
            var out: [UInt32] = []
            for y in Int(rect.y.rounded(.up))..<Int(rect.maxY.rounded(.down)) {
                for x in Int(rect.x.rounded(.up))..<Int(rect.maxX.rounded(.down)) { out.append(p[y * stride + x] & 0xFFFFFF) }
            }
            return out
        }
    }

    /// How many pixels differ between two equally long pixel lists (a count, not the lists: a
    /// failure should not print a million numbers).
    func differing(_ a: [UInt32], _ b: [UInt32]) -> Int {
        a.count == b.count ? zip(a, b).count { $0 != $1 } : max(a.count, b.count)
    }

    func isNear(_ p: UInt32, _ colour: Color, within tolerance: Double = 0.04) -> Bool {
        let r = Double(p >> 16 & 0xFF) / 255, g = Double(p >> 8 & 0xFF) / 255, b = Double(p & 0xFF) / 255
        return abs(r - colour.red) < tolerance && abs(g - colour.green) < tolerance && abs(b - colour.blue) < tolerance
    }

    func layout(_ compositor: FrameCompositor) throws -> ComparisonLayout { try #require(compositor.comparisonLayout) }

    @Test func eachPanelShowsItsRunsClassesInsideItsOwnBox() throws {
        // Left run: every point of class 0 at (-0.5, 0); right run: every point of class 1 at (0.5, 0).
        let n = 200
        let s = setting(n: n, classes: 2)
        let compositor = try FrameCompositor(width: 1280, height: 720, setting: s)
        // The other class's points are NaN there: not drawn, not even as markers on the edge.
        let left = PlanarPoints(x: (0..<n).map { $0 % 2 == 0 ? -0.5 : .nan }, y: [Float](repeating: 0, count: n))
        let right = PlanarPoints(x: (0..<n).map { $0 % 2 == 1 ? 0.5 : .nan }, y: [Float](repeating: 0, count: n))
        try compositor.draw(comparison(content(left), content(right)))
        let boxes = try layout(compositor).panels
        #expect(boxes.count == 2 && boxes[0].width == boxes[1].width && boxes[0].height == boxes[1].height)
        #expect(boxes[0].maxX < boxes[1].x, "side by side, not overlapping")
        for (panel, (box, expected)) in zip(boxes, [(-0.5, 0), (0.5, 1)]).enumerated() {
            let at = try #require(FrameCompositor.screen(Float(expected.0), 0, in: box))
            #expect(isNear(pixel(compositor.surface, Int(at.0), Int(at.1)), Palette.color(forClass: expected.1)), "panel \(panel)")
            let inBox = pixels(compositor.surface, in: box)
            #expect(inBox.contains { isNear($0, Palette.color(forClass: expected.1)) }, "panel \(panel) has its class")
            #expect(!inBox.contains { isNear($0, Palette.color(forClass: 1 - expected.1), within: 0.02) }, "and not the other run's")
        }
    }

    @Test(arguments: [(1280, 720), (1920, 1080), (960, 540)])
    func aPointLandsAtTheSameRelativePlaceInBothPanels(width: Int, height: Int) throws {
        let n = 400
        let compositor = try FrameCompositor(width: width, height: height, setting: setting(n: n))
        let points = cloud(n)
        // The same content in both panels: the panels' insides are the same pixels, shifted.
        try compositor.draw(comparison(content(points, ringed: [0, 5, 9]), content(points, ringed: [0, 5, 9])))
        let boxes = try layout(compositor).panels
        let dx = boxes[1].x - boxes[0].x
        #expect(dx == dx.rounded(), "panels a whole number of pixels apart")
        let inside = { (box: Rect) in Rect(x: box.x + 2, y: box.y + 2, width: box.width - 4, height: box.height - 4) }
        #expect(differing(pixels(compositor.surface, in: inside(boxes[0])), pixels(compositor.surface, in: inside(boxes[1]))) == 0)
        // One point planted at the same display coordinate lands at the same place relative to each box.
        var planted = PlanarPoints(x: [Float](repeating: 5, count: n), y: [Float](repeating: 5, count: n))
        planted.x[1] = 0.62
        planted.y[1] = -0.37
        try compositor.draw(comparison(content(planted), content(planted)))
        for box in boxes {
            let at = try #require(FrameCompositor.screen(0.62, -0.37, in: box))
            #expect(isNear(pixel(compositor.surface, Int(at.0), Int(at.1)), Palette.color(forClass: 1).withAlpha(1), within: 0.12),
                    "planted point in \(box)")
            let relative = ((at.0 - box.x) / box.width, (at.1 - box.y) / box.height)
            #expect(abs(relative.0 - (0.62 + 1.08) / 2.16) < 1e-6 && abs(relative.1 - (1.08 + 0.37) / 2.16) < 1e-6)
        }
    }

    @Test func olderFinishedAndNotStartedStatesChangeOnlyThatHeader() throws {
        let n = 300
        let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: n))
        let headers = try layout(compositor).headers
        // A fresh surface's first frame differs from later ones at the panel borders: start warm.
        try compositor.draw(comparison(content(cloud(n)), content(cloud(n))))
        func headerPixels(_ state: ComparisonContent.PanelState) throws -> [[UInt32]] {
            try compositor.draw(comparison(content(cloud(n)), content(cloud(n, turn: 1)), states: [.current, state]))
            return headers.map { pixels(compositor.surface, in: $0) }
        }
        let current = try headerPixels(.current)
        let states: [ComparisonContent.PanelState] = [.older(shownStep: 80), .finished(lastStep: 60), .notStarted(firstStep: 150)]
        var seen = [current[1]]
        for state in states {
            let drawn = try headerPixels(state)
            #expect(differing(drawn[0], current[0]) == 0, "the left header stays as it was")
            #expect(seen.allSatisfy { differing($0, drawn[1]) > 100 }, "\(state) reads differently")
            // Marked: the badge's grey fills part of the header.
            #expect(drawn[1].count { $0 == 0xECECEC } > 500, "\(state) on a badge")
            seen.append(drawn[1])
        }
        #expect(current[1].count { $0 == 0xECECEC } < 50, "a current checkpoint has no badge")
        #expect(FrameCompositor.stateText(.older(shownStep: 1_200), step: 1_300).text == "showing step 1,200 (older)")
        #expect(FrameCompositor.stateText(.finished(lastStep: 600), step: 700).text == "finished at step 600")
        #expect(FrameCompositor.stateText(.notStarted(firstStep: 20), step: 0).text == "starts at step 20")
        #expect(FrameCompositor.stateText(.current, step: 40) == ("step 40", false))
    }

    @Test(arguments: [(1280, 720), (1920, 1080), (960, 540)])
    func bothPanelsLabelsStayInsideTheirOwnPanelWithoutOverlap(width: Int, height: Int) throws {
        let n = 500
        let compositor = try FrameCompositor(width: width, height: height, setting: setting(n: n))
        let ringedLeft = Array(0..<8), ringedRight = Array(stride(from: 3, to: 40, by: 5))
        var right = content(cloud(n, turn: 0.5), ringed: ringedRight)
        right.incoming = Leaderboard(kind: .outliers, entries: (20..<28).map { .init(index: $0, value: 0.2) })
        right.blend = 0.4
        right.trails = [cloud(n, turn: 0.3), cloud(n, turn: 0.4)]
        right.trailOpacities = [0.2, 0.4]
        try compositor.draw(comparison(content(cloud(n), ringed: ringedLeft), right))
        let labels = compositor.drawnLabels
        let boxes = try layout(compositor).panels
        let leftLabels = labels.filter { $0.rect.maxX <= boxes[0].maxX }
        let rightLabels = labels.filter { $0.rect.x >= boxes[1].x }
        #expect(leftLabels.count == 8 && rightLabels.count == labels.count - 8, "\(labels.count) labels")
        #expect(rightLabels.count >= 8, "the incoming board's rings are labelled as they fade in")
        for (box, group) in [(boxes[0], leftLabels), (boxes[1], rightLabels)] {
            for label in group {
                #expect(label.rect.x >= box.x && label.rect.maxX <= box.maxX && label.rect.y >= box.y && label.rect.maxY <= box.maxY)
            }
            for (i, a) in group.enumerated() {
                for b in group[(i + 1)...] {
                    let apart = a.rect.maxX <= b.rect.x || b.rect.maxX <= a.rect.x || a.rect.maxY <= b.rect.y || b.rect.maxY <= a.rect.y
                    #expect(apart, "\(a.text) and \(b.text) overlap")
                }
            }
        }
    }

    @Test func theLossChartDrawsBothRunsInTheirOwnColours() throws {
        let n = 100
        let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: n))
        let left = content(cloud(n), losses: [2.2, 1.5, 1.2], evaluation: [2.3, 1.7, 1.5])
        let right = content(cloud(n), losses: [2.0, 0.9, 0.4])
        try compositor.draw(comparison(left, right))
        let chart = pixels(compositor.surface, in: try layout(compositor).lossChart)
        for run in 0..<2 {
            #expect(chart.count { isNear($0, Palette.color(forRun: run), within: 0.03) } > 100, "run \(run)'s curve")
        }
        for label in 0..<3 {
            #expect(!chart.contains { isNear($0, Palette.color(forClass: label), within: 0.01) }, "no class colour in the chart")
        }
    }

    @Test func perRunListsAreSideBySideAndASharedOneIsListedOnce() throws {
        let n = 100
        func thumbnailColumns(shared: Bool) throws -> [Int] {
            let compositor = try FrameCompositor(width: 1280, height: 720, setting: setting(n: n, shared: shared))
            let measure: LeaderboardKind = shared ? .disagreement : .outliers
            try compositor.draw(comparison(content(cloud(n), ringed: [1, 2, 3], measure: measure),
                                           content(cloud(n), ringed: shared ? [1, 2, 3] : [4, 5, 6, 7], measure: measure)))
            let area = try layout(compositor).leaderboard
            let halves = [Rect(x: area.x, y: area.y, width: area.width / 2, height: area.height),
                          Rect(x: area.x + area.width / 2, y: area.y, width: area.width / 2, height: area.height)]
            return halves.map { pixels(compositor.surface, in: $0).count { $0 == Self.thumbnailPixel } }
        }
        let perRun = try thumbnailColumns(shared: false)
        #expect(perRun[0] > 0 && perRun[1] > 0, "a list of thumbnails under each run's name: \(perRun)")
        #expect(perRun[1] > perRun[0], "the right run lists four samples, the left three: \(perRun)")
        let shared = try thumbnailColumns(shared: true)
        #expect(shared[0] > 0 && shared[1] == 0, "one list of three, in one column: \(shared)")
    }

    @Test func densityWorksInEachPanel() throws {
        let n = 60_000
        var s = setting(n: n, classes: 4, thumbnails: false)
        s.pointStyle = .density
        let compositor = try FrameCompositor(width: 1280, height: 720, setting: s)
        let points = cloud(n)
        try compositor.draw(comparison(content(points, ringed: [0, 1]), content(points, ringed: [2, 3])))
        let boxes = try layout(compositor).panels
        let inside = { (box: Rect) in Rect(x: box.x + 2, y: box.y + 2, width: box.width - 4, height: box.height - 4) }
        #expect(pixels(compositor.surface, in: inside(boxes[0])).count { $0 != 0xFAFAFA && $0 != 0xEBEBEB } > 1_000)
        #expect(compositor.drawnLabels.count == 4)
    }

    @Test func aComparisonLeavesTheSingleFilmFrameAsItWas() throws {
        let n = 300
        var single = setting(n: n)
        single.comparison = nil
        let frame = content(cloud(n), ringed: [0, 1, 2])
        // Drawn after one frame each: a fresh surface's first frame differs at the panel's border
        // (the same two draws of a single film differ there too).
        let alone = try FrameCompositor(width: 1280, height: 720, setting: single)
        try alone.draw(frame)
        try alone.draw(frame)
        let both = try FrameCompositor(width: 1280, height: 720, setting: setting(n: n))
        try both.draw(comparison(content(cloud(n, turn: 2), ringed: [4, 5]), content(cloud(n), ringed: [6])))
        try both.draw(frame)
        let all = Rect(x: 0, y: 0, width: 1280, height: 720)
        #expect(differing(pixels(alone.surface, in: all), pixels(both.surface, in: all)) == 0)
        #expect(alone.drawnLabels == both.drawnLabels && alone.drawnLabels.count == 3)
    }

    @Test func hostileComparisonsDrawWithoutCrashing() throws {
        let n = 50
        let compositor = try FrameCompositor(width: 960, height: 540, setting: setting(n: n))
        let nan = PlanarPoints(x: [Float](repeating: .nan, count: n), y: [Float](repeating: .infinity, count: n))
        try compositor.draw(comparison(content(nan, ringed: [0, 1], losses: [.nan, .infinity]), content(cloud(n), losses: [])))
        try compositor.draw(ComparisonContent(step: 0, stepPosition: .nan, panels: []))
        try compositor.draw(ComparisonContent(step: .max, stepPosition: -.infinity,
                                              panels: [.init(content: content(cloud(n)), state: .older(shownStep: .min)),
                                                       .init(content: content(nan, ringed: [3]), state: .finished(lastStep: -1))]))
        try compositor.draw(ComparisonContent(step: 5, stepPosition: 5, panels: [.init(content: content(cloud(n)), state: .current)]))
        // No comparison in the setting: the frame still draws, naming the runs by number.
        var plain = setting(n: n)
        plain.comparison = nil
        let other = try FrameCompositor(width: 1280, height: 720, setting: plain)
        try other.draw(comparison(content(cloud(n)), content(cloud(n))))
        #expect(other.runName(1) == "run 2")
    }
}

