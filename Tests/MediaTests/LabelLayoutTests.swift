import Canvas
@testable import Compositor
import Testing

@Suite struct LabelLayoutTests {
    typealias Anchor = LabelLayout.Anchor

    /// SplitMix64: the same numbers on every platform.
    struct Random {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func uniform(_ low: Double, _ high: Double) -> Double {
            low + (high - low) * Double(next() >> 11) / Double(1 << 53)
        }
    }

    /// The scatter panel at 720p.
    static let panel = Rect(x: 25, y: 77, width: 616, height: 616)

    /// Checks every promise `place` makes; returns the placements that had to overlap.
    @discardableResult
    func verify(_ placements: [LabelLayout.Placement?], _ anchors: [Anchor], panel: Rect, obstacles: [Rect] = [],
                _ context: String, sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        #expect(placements.count == anchors.count, "\(context)", sourceLocation: sourceLocation)
        let tolerance = 1e-9 * max(1, abs(panel.x), abs(panel.y), panel.width, panel.height)
        // Centres outside the panel are clamped onto it, as the rings are drawn.
        func centre(_ a: Anchor) -> (Double, Double) {
            (min(max(a.centre.x, panel.x), panel.maxX), min(max(a.centre.y, panel.y), panel.maxY))
        }
        func distance(_ r: Rect, _ p: (Double, Double)) -> Double {
            let dx = min(max(p.0, r.x), r.maxX) - p.0, dy = min(max(p.1, r.y), r.maxY) - p.1
            return (dx * dx + dy * dy).squareRoot()
        }
        func overlap(_ a: Rect, _ b: Rect) -> Bool {
            a.x < b.maxX - tolerance && b.x < a.maxX - tolerance && a.y < b.maxY - tolerance && b.y < a.maxY - tolerance
        }
        var overlapping = 0
        for (i, anchor) in anchors.enumerated() where i < placements.count {
            guard anchor.centre.x.isFinite, anchor.centre.y.isFinite else {
                #expect(placements[i] == nil, "\(context): anchor \(i) has no place", sourceLocation: sourceLocation)
                continue
            }
            guard let p = placements[i] else {
                Issue.record("\(context): anchor \(i) not placed", sourceLocation: sourceLocation)
                continue
            }
            let r = p.rect
            #expect(r.x >= panel.x - tolerance && r.y >= panel.y - tolerance && r.maxX <= panel.maxX + tolerance
                        && r.maxY <= panel.maxY + tolerance, "\(context): label \(i) \(r) outside \(panel)", sourceLocation: sourceLocation)
            let width = anchor.labelWidth > 0 ? min(anchor.labelWidth, panel.width) : 0
            let height = anchor.labelHeight > 0 ? min(anchor.labelHeight, panel.height) : 0
            #expect(abs(r.width - width) <= tolerance && abs(r.height - height) <= tolerance,
                    "\(context): label \(i) is \(r.width) x \(r.height)", sourceLocation: sourceLocation)
            if let leader = p.leader {
                let c = centre(anchor)
                func length(_ p: LabelLayout.Point) -> Double { ((p.x - c.0) * (p.x - c.0) + (p.y - c.1) * (p.y - c.1)).squareRoot() }
                #expect(abs(length(leader.from) - anchor.ringRadius) < 1e-6, "\(context): leader \(i) starts off the ring",
                        sourceLocation: sourceLocation)
                #expect(distance(r, (leader.to.x, leader.to.y)) < 1e-9 && abs(distance(r, c) - length(leader.to)) < 1e-6,
                        "\(context): leader \(i) does not end at the label's nearest point", sourceLocation: sourceLocation)
            }
            if p.overlaps {
                overlapping += 1
                continue
            }
            for (j, other) in anchors.enumerated() where other.centre.x.isFinite && other.centre.y.isFinite {
                #expect(distance(r, centre(other)) >= max(other.ringRadius, 0) - 1e-9,
                        "\(context): label \(i) covers ring \(j)", sourceLocation: sourceLocation)
                // A label that had to overlap may cover the clear ones; those never cover each other.
                if j != i, j < placements.count, let q = placements[j], !q.overlaps {
                    #expect(!overlap(r, q.rect), "\(context): labels \(i) and \(j) overlap", sourceLocation: sourceLocation)
                }
            }
            for o in obstacles {
                #expect(!overlap(r, o), "\(context): label \(i) covers obstacle \(o)", sourceLocation: sourceLocation)
            }
        }
        return overlapping
    }

    /// Rank labels as the scatter sets them at 720p: "1" to "32" in 12 px bold, rings of 10 px.
    func rankAnchor(_ rank: Int, x: Double, y: Double) -> Anchor {
        Anchor(x: x, y: y, ringRadius: 10, labelWidth: rank < 10 ? 8 : 15, labelHeight: 12)
    }

    @Test func aLoneLabelSitsBesideItsRingUpperRight() {
        let anchors = [rankAnchor(1, x: 300, y: 300)]
        let placements = LabelLayout.place(anchors, in: Self.panel)
        verify(placements, anchors, panel: Self.panel, "lone")
        let p = placements[0]!
        #expect(p.leader == nil && !p.overlaps)
        #expect(p.rect.x > 300 && p.rect.maxY < 300, "upper right: \(p.rect)")
        // Touching the circle of radius ring + gap with its lower left corner.
        let dx = p.rect.x - 300, dy = 300 - p.rect.maxY
        #expect(abs((dx * dx + dy * dy).squareRoot() - 13) < 1e-9)
    }

    @Test(arguments: [1, 2, 5, 8, 9, 16, 24, 32])
    func anchorsAtOnePointFanOutWithoutOverlap(count: Int) {
        for (x, y) in [(333.0, 385.0), (25.0, 77.0), (641.0, 693.0), (641.0, 77.0), (25.0, 693.0), (333.0, 77.0), (26, 400)] {
            let anchors = (1...count).map { rankAnchor($0, x: x, y: y) }
            let placements = LabelLayout.place(anchors, in: Self.panel)
            let overlapping = verify(placements, anchors, panel: Self.panel, "\(count) at (\(x), \(y))")
            #expect(overlapping == 0, "\(count) at (\(x), \(y)): \(overlapping) labels had nowhere clear")
            // Past the eight near positions (fewer in a corner), labels need leaders.
            if count > 8 { #expect(placements.contains { $0?.leader != nil }) }
        }
    }

    @Test(arguments: 0..<60)
    func denseRandomClustersNeverOverlap(seed: Int) {
        var random = Random(state: UInt64(seed))
        let panel = seed % 3 == 0 ? Self.panel : Rect(x: 36, y: 115, width: 927, height: 927)  // 720p, 1080p
        let count = 1 + seed % 32
        // A cluster around a point anywhere, corners and edges included, 0 to 40 px across.
        let (cx, cy) = (random.uniform(panel.x, panel.maxX), random.uniform(panel.y, panel.maxY))
        let spread = random.uniform(0, 40)
        let scale = panel.width / 616
        let anchors = (1...count).map { rank in
            Anchor(x: min(max(cx + random.uniform(-spread, spread), panel.x), panel.maxX),
                   y: min(max(cy + random.uniform(-spread, spread), panel.y), panel.maxY),
                   ringRadius: 10 * scale, labelWidth: random.uniform(6, 40) * scale, labelHeight: 12 * scale)
        }
        let obstacles = seed % 4 == 1 ? [Rect(x: cx - 20, y: cy - 60, width: 40, height: 30)] : []
        let placements = LabelLayout.place(anchors, in: panel, avoiding: obstacles, gap: 3 * scale)
        let overlapping = verify(placements, anchors, panel: panel, obstacles: obstacles, "seed \(seed)")
        #expect(overlapping == 0, "seed \(seed): \(overlapping) of \(count) labels overlap")
        #expect(LabelLayout.place(anchors, in: panel, avoiding: obstacles, gap: 3 * scale) == placements, "deterministic")
    }

    @Test(arguments: 0..<20)
    func scatteredAnchorsKeepTheirLabelsNear(seed: Int) {
        var random = Random(state: UInt64(1000 + seed))
        let anchors = (1...32).map { rankAnchor($0, x: random.uniform(25, 641), y: random.uniform(77, 693)) }
        let placements = LabelLayout.place(anchors, in: Self.panel)
        #expect(verify(placements, anchors, panel: Self.panel, "seed \(seed)") == 0)
        // Spread over the panel, nearly every label finds a place beside its ring.
        #expect(placements.count { $0?.leader != nil } <= 4)
    }

    @Test func avoidsObstaclesAndLaterRings() {
        // Rank 1's upper right holds an obstacle and its right the ring of rank 2.
        let anchors = [rankAnchor(1, x: 300, y: 300), rankAnchor(2, x: 325, y: 300)]
        let obstacle = Rect(x: 305, y: 270, width: 40, height: 22)
        let placements = LabelLayout.place(anchors, in: Self.panel, avoiding: [obstacle])
        #expect(verify(placements, anchors, panel: Self.panel, obstacles: [obstacle], "obstacle") == 0)
        #expect(placements[0]!.leader == nil && placements[0]!.rect.y > 300, "rank 1 goes below: \(placements[0]!.rect)")
    }

    /// Leaders crossing labels, over all pairs.
    func crossings(_ placements: [LabelLayout.Placement]) -> Int {
        var count = 0
        for (i, p) in placements.enumerated() {
            guard let leader = p.leader else { continue }
            for (j, q) in placements.enumerated() where j != i {
                let box = LabelLayout.Box(x0: q.rect.x, y0: q.rect.y, x1: q.rect.maxX, y1: q.rect.maxY)
                if box.crossed(from: (leader.from.x, leader.from.y), to: (leader.to.x, leader.to.y)) { count += 1 }
            }
        }
        return count
    }

    @Test func leadersKeepOffOtherLabelsWhereThereIsRoom() {
        for count in [9, 12, 16, 24, 32] {
            for spread in [0.0, 6, 12, 25] {
                var random = Random(state: UInt64(count))
                let anchors = (1...count).map { rankAnchor($0, x: 333 + random.uniform(-spread, spread), y: 385 + random.uniform(-spread, spread)) }
                let placements = LabelLayout.place(anchors, in: Self.panel).map { $0! }
                let leaders = placements.count { $0.leader != nil }, crossed = crossings(placements)
                // Up to 12 anchors, or 16 not all on one point, leaders find a way between the labels;
                // in a pile of 32 on one point most leaders must cross the ring of labels beside it.
                if count <= 12 || (count == 16 && spread > 0) {
                    #expect(crossed == 0, "\(count) anchors spread \(spread): \(crossed) crossings")
                } else {
                    #expect(crossed <= leaders, "\(count) anchors spread \(spread): \(crossed) crossings for \(leaders) leaders")
                }
            }
        }
    }

    @Test func sizesThatCannotFitStillEndInsideThePanel() {
        // A panel smaller than 32 labels: every label inside it, the crowded ones marked.
        let small = Rect(x: 10, y: 10, width: 40, height: 30)
        let anchors = (1...32).map { rankAnchor($0, x: 30, y: 25) }
        let placements = LabelLayout.place(anchors, in: small)
        #expect(verify(placements, anchors, panel: small, "small panel") > 0)
        // A label wider and taller than the panel is clipped to it.
        let wide = [Anchor(x: 100, y: 100, ringRadius: 5, labelWidth: 5000, labelHeight: 900)]
        let clipped = LabelLayout.place(wide, in: Self.panel)
        verify(clipped, wide, panel: Self.panel, "wide")
        #expect(clipped[0]!.rect == Self.panel && clipped[0]!.overlaps)
        // Obstacles over the whole panel leave nothing clear.
        let covered = LabelLayout.place([rankAnchor(1, x: 300, y: 300)], in: Self.panel, avoiding: [Self.panel])
        #expect(covered[0]!.overlaps)
        verify(covered, [rankAnchor(1, x: 300, y: 300)], panel: Self.panel, "covered")
    }

    @Test func degenerateInputsDoNotTrap() {
        let nan = Double.nan, inf = Double.infinity
        #expect(LabelLayout.place([], in: Self.panel).isEmpty)
        // NaN and infinite centres get no label; the others are placed as if those were absent.
        let anchors = [Anchor(x: nan, y: 300, ringRadius: 10, labelWidth: 8, labelHeight: 12), rankAnchor(2, x: 300, y: 300),
                       Anchor(x: 300, y: -inf, ringRadius: 10, labelWidth: 8, labelHeight: 12)]
        let placements = LabelLayout.place(anchors, in: Self.panel)
        verify(placements, anchors, panel: Self.panel, "nan")
        #expect(placements[0] == nil && placements[2] == nil && placements[1] == LabelLayout.place([anchors[1]], in: Self.panel)[0])
        // Panels: empty, negative, NaN, infinite, far away.
        for panel in [Rect(x: 10, y: 10, width: 0, height: 0), Rect(x: 10, y: 10, width: -50, height: 20),
                      Rect(x: 1e300, y: -1e300, width: 1e300, height: 10), Rect(x: 0, y: 0, width: 1, height: 1)] {
            let anchors = (1...32).map { rankAnchor($0, x: panel.x, y: panel.y) }
            verify(LabelLayout.place(anchors, in: panel), anchors, panel: Rect(x: panel.x, y: panel.y, width: max(panel.width, 0),
                                                                              height: max(panel.height, 0)), "panel \(panel)")
        }
        for panel in [Rect(x: nan, y: 0, width: 10, height: 10), Rect(x: 0, y: 0, width: inf, height: 10),
                      Rect(x: 1.7e308, y: 0, width: 1.7e308, height: 10)] {
            #expect(LabelLayout.place([rankAnchor(1, x: 0, y: 0)], in: panel) == [nil], "\(panel)")
        }
        // Hostile sizes, radii, gaps, obstacles and centres far outside the panel.
        let hostile = [Anchor(x: 1e300, y: -1e300, ringRadius: inf, labelWidth: nan, labelHeight: -3),
                       Anchor(x: 300, y: 300, ringRadius: nan, labelWidth: inf, labelHeight: 1e-300),
                       Anchor(x: -5e307, y: 400, ringRadius: -4, labelWidth: 30, labelHeight: 12),
                       Anchor(x: 100, y: 100, ringRadius: 1e308, labelWidth: 30, labelHeight: 12)]
        for gap in [nan, -1, inf, 0, 1e300] {
            let obstacles = [Rect(x: nan, y: 0, width: 10, height: 10), Rect(x: 0, y: 0, width: -inf, height: 5)]
            let placed = LabelLayout.place(hostile, in: Self.panel, avoiding: obstacles, gap: gap)
            #expect(placed.allSatisfy { $0 != nil }, "gap \(gap)")
            for p in placed.compactMap({ $0 }) {
                #expect([p.rect.x, p.rect.y, p.rect.width, p.rect.height].allSatisfy { $0.isFinite }, "gap \(gap): \(p.rect)")
                #expect(p.rect.x >= Self.panel.x && p.rect.maxX <= Self.panel.maxX + 1e-9 && p.rect.y >= Self.panel.y
                            && p.rect.maxY <= Self.panel.maxY + 1e-9, "gap \(gap): \(p.rect)")
                if let l = p.leader { #expect([l.from.x, l.from.y, l.to.x, l.to.y].allSatisfy { $0.isFinite }) }
            }
        }
    }

    @Test func sineAndCosineAreAccurate() {
        for i in -100...100 {
            let angle = Double(i) * 0.173
            let (s, c) = LabelLayout.sinCos(angle)
            #expect(abs(s * s + c * c - 1) < 1e-12)
        }
        let quarter = LabelLayout.sinCos(Double.pi / 2), sixth = LabelLayout.sinCos(Double.pi / 6)
        #expect(abs(quarter.sin - 1) < 1e-12 && abs(quarter.cos) < 1e-12)
        #expect(abs(sixth.sin - 0.5) < 1e-12 && abs(sixth.cos - 0.75.squareRoot()) < 1e-12)
    }
}
