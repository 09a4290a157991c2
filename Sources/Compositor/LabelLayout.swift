import Canvas

/// Places the labels of ringed points (the outliers' ranks) so that no label covers another label,
/// any ring or an obstacle, and every label lies inside the panel.
///
/// Greedy and deterministic: anchors are placed in the order given (rank 1 first), each at the
/// first clear candidate. The near candidates are the eight classic positions around the ring, just
/// past its edge (upper right first); then come rings of candidates at growing distance, tried first
/// in the direction pointing away from the anchors' centroid, whose labels get a leader line. Work is
/// bounded: at most `maximumCandidates` candidates an anchor, each checked against every label, ring
/// and obstacle, so 32 anchors take well under a millisecond. Where no candidate is clear (a panel
/// too small for the labels), the candidate with the least overlapping area is used and marked.
///
/// Coordinates are pixels, y down; a label's rect is its measured text box.
public enum LabelLayout {
    public struct Point: Sendable, Equatable {
        public var x, y: Double

        public init(x: Double, y: Double) {
            self.x = x
            self.y = y
        }
    }

    /// A ringed point and the size of its label.
    public struct Anchor: Sendable, Equatable {
        /// The ring's centre. A NaN or infinite centre gets no label; one outside the panel is first
        /// clamped onto the panel (where the scatter draws it).
        public var centre: Point
        /// The ring's outer radius, stroke included: no label overlaps this disc. NaN reads as 0.
        public var ringRadius: Double
        /// The label's size; a label larger than the panel is clipped to it. NaN or negative reads as 0.
        public var labelWidth, labelHeight: Double

        public init(x: Double, y: Double, ringRadius: Double, labelWidth: Double, labelHeight: Double) {
            centre = Point(x: x, y: y)
            self.ringRadius = ringRadius
            self.labelWidth = labelWidth
            self.labelHeight = labelHeight
        }
    }

    /// A line from the ring's edge to the nearest point of a label placed away from its ring.
    public struct Leader: Sendable, Equatable {
        public let from, to: Point
    }

    public struct Placement: Sendable, Equatable {
        /// Where the label goes: inside the panel, at most the panel's size.
        public let rect: Rect
        /// Set when the label is not beside its ring.
        public let leader: Leader?
        /// True when no clear position existed: `rect` then overlaps a label, ring or obstacle, as
        /// little as the candidates allowed.
        public let overlaps: Bool
    }

    /// Rings of far candidates tried past the eight near ones, and the most directions on one ring:
    /// together they bound the work an anchor costs (8 + 24 x 48 candidates).
    static let farRings = 24
    static let mostDirections = 48
    public static let maximumCandidates = 8 + farRings * mostDirections

    /// Places one label for each anchor, in order; nil for an anchor whose centre is NaN or infinite,
    /// and for every anchor when the panel is not finite.
    ///
    /// - Parameters:
    ///   - gap: the space between a ring's edge and a label beside it (pixels, so scale it with the
    ///     frame); labels also keep `gap / 2` from each other and from other rings.
    ///   - obstacles: rects no label may overlap (a legend, a note); non-finite ones are ignored.
    public static func place(_ anchors: [Anchor], in panel: Rect, avoiding obstacles: [Rect] = [], gap: Double = 3) -> [Placement?] {
        guard panel.x.isFinite, panel.y.isFinite, panel.width.isFinite, panel.height.isFinite else {
            return anchors.map { _ in nil }
        }
        let bounds = Box(x0: panel.x, y0: panel.y, x1: panel.x + max(panel.width, 0), y1: panel.y + max(panel.height, 0))
        guard bounds.x1.isFinite, bounds.y1.isFinite else { return anchors.map { _ in nil } }
        var layout = Layout(bounds: bounds, gap: gap, anchors: anchors, obstacles: obstacles)
        return layout.placeAll()
    }

    /// An axis-aligned box by its edges; cheaper to test than `Rect`.
    struct Box: Equatable {
        var x0, y0, x1, y1: Double

        var width: Double { x1 - x0 }
        var height: Double { y1 - y0 }

        /// Whether the boxes share area once `self` is grown by `pad` on every side (touching is not overlapping).
        func overlaps(_ other: Box, pad: Double = 0) -> Bool {
            x0 - pad < other.x1 && other.x0 < x1 + pad && y0 - pad < other.y1 && other.y0 < y1 + pad
        }

        func overlapArea(_ other: Box) -> Double {
            max(min(x1, other.x1) - max(x0, other.x0), 0) * max(min(y1, other.y1) - max(y0, other.y0), 0)
        }

        /// The point of the box nearest to (x, y).
        func nearest(_ x: Double, _ y: Double) -> (Double, Double) { (min(max(x, x0), x1), min(max(y, y0), y1)) }

        /// Whether the disc at (cx, cy) of radius r reaches into the box.
        func meets(disc cx: Double, _ cy: Double, radius r: Double) -> Bool {
            guard r > 0 else { return x0 < cx && cx < x1 && y0 < cy && cy < y1 }
            let (nx, ny) = nearest(cx, cy)
            let dx = nx - cx, dy = ny - cy
            return dx * dx + dy * dy < r * r
        }

        /// Whether the segment from a to b passes through the box's interior (Liang-Barsky clipping).
        func crossed(from a: (Double, Double), to b: (Double, Double)) -> Bool {
            let dx = b.0 - a.0, dy = b.1 - a.1
            var t0 = 0.0, t1 = 1.0
            // Clips the segment's parameter range to one side: inside where p t <= q.
            func clip(_ p: Double, _ q: Double) -> Bool {
                if p == 0 { return q > 0 }
                let t = q / p
                if p < 0 { t0 = max(t0, t) } else { t1 = min(t1, t) }
                return t0 < t1
            }
            return clip(-dx, a.0 - x0) && clip(dx, x1 - a.0) && clip(-dy, a.1 - y0) && clip(dy, y1 - a.1)
        }
    }

    /// Sine and cosine by their Taylor series after reduction to [-pi, pi], within 1e-12: the
    /// Compositor imports no libm, and the layout comes out the same on every platform.
    static func sinCos(_ angle: Double) -> (sin: Double, cos: Double) {
        let a = angle - 2 * Double.pi * (angle / (2 * Double.pi)).rounded()
        let a2 = a * a
        var sinTerm = a, sin = a, cosTerm = 1.0, cos = 1.0
        for k in 1...13 {
            cosTerm *= -a2 / Double((2 * k - 1) * (2 * k))
            cos += cosTerm
            sinTerm *= -a2 / Double(2 * k * (2 * k + 1))
            sin += sinTerm
        }
        return (sin, cos)
    }

    private struct Item {
        let index: Int
        let x, y, radius, width, height: Double
    }

    private struct Layout {
        let bounds: Box
        let gap: Double
        let items: [Item]
        let obstacles: [Box]
        let centroid: (Double, Double)
        let anchorCount: Int
        var labels: [Box] = []
        var leaders: [((Double, Double), (Double, Double))] = []

        init(bounds: Box, gap: Double, anchors: [Anchor], obstacles: [Rect]) {
            self.bounds = bounds
            let extent = max(bounds.width, bounds.height)
            // Clamped so that no sum below overflows or turns NaN, whatever the input.
            func clean(_ v: Double, _ limit: Double) -> Double { v > 0 ? min(v, limit) : 0 }  // NaN fails `v > 0`
            self.gap = clean(gap, extent)
            // A ring wider than the panel's diagonal covers all of it from anywhere inside: no need for more.
            let widest = (bounds.width * bounds.width + bounds.height * bounds.height).squareRoot() + 1
            anchorCount = anchors.count
            items = anchors.enumerated().compactMap { index, anchor in
                guard anchor.centre.x.isFinite, anchor.centre.y.isFinite else { return nil }
                return Item(index: index, x: min(max(anchor.centre.x, bounds.x0), bounds.x1),
                            y: min(max(anchor.centre.y, bounds.y0), bounds.y1),
                            radius: clean(anchor.ringRadius, widest), width: clean(anchor.labelWidth, bounds.width),
                            height: clean(anchor.labelHeight, bounds.height))
            }
            self.obstacles = obstacles.compactMap { r in
                let box = Box(x0: r.x, y0: r.y, x1: r.x + r.width, y1: r.y + r.height)
                return [box.x0, box.y0, box.x1, box.y1].allSatisfy(\.isFinite) && box.x1 > box.x0 && box.y1 > box.y0 ? box : nil
            }
            let n = Double(max(items.count, 1))
            centroid = (items.reduce(0) { $0 + $1.x / n }, items.reduce(0) { $0 + $1.y / n })
        }

        mutating func placeAll() -> [Placement?] {
            var placements = [Placement?](repeating: nil, count: anchorCount)
            for item in items { placements[item.index] = place(item) }
            return placements
        }

        /// `box` moved the least way into the panel (the size already fits).
        func inside(_ box: Box) -> Box {
            let x0 = max(min(box.x0, bounds.x1 - box.width), bounds.x0)
            let y0 = max(min(box.y0, bounds.y1 - box.height), bounds.y0)
            return Box(x0: x0, y0: y0, x1: min(x0 + box.width, bounds.x1), y1: min(y0 + box.height, bounds.y1))
        }

        /// Calls `body` with each candidate for `item` and its ring (0 for the near eight), nearest
        /// first, until it returns true.
        func forEachCandidate(_ item: Item, _ body: (Box, Int) -> Bool) {
            let (cx, cy, w, h) = (item.x, item.y, item.width, item.height)
            let s = item.radius + gap, t = s * 0.5.squareRoot()
            // The classic eight, each touching the circle of radius s with a corner or an edge's middle.
            let near: [(Double, Double)] = [
                (cx + t, cy - t - h), (cx + s, cy - h / 2), (cx + t, cy + t),  // upper right, right, lower right
                (cx - t - w, cy - t - h), (cx - s - w, cy - h / 2), (cx - t - w, cy + t),  // the same on the left
                (cx - w / 2, cy - s - h), (cx - w / 2, cy + s),  // above, below
            ]
            var previous: Box?
            func offer(_ x: Double, _ y: Double, _ ring: Int) -> Bool {
                let box = inside(Box(x0: x, y0: y, x1: x + w, y1: y + h))
                defer { previous = box }
                return box != previous && body(box, ring)  // clamping onto the border repeats candidates
            }
            for (x, y) in near where offer(x, y, 0) { return }

            // Farther rings: each label lies beyond the circle of radius d, its box's nearest side
            // (or corner) toward the centre at distance d along the direction.
            let step = max(h, 1) + gap
            let spacing = max((w + h) / 2 + gap, 2)
            let diagonal = (bounds.width * bounds.width + bounds.height * bounds.height).squareRoot()
            let outward: (Double, Double) = {
                let dx = cx - centroid.0, dy = cy - centroid.1, length = (dx * dx + dy * dy).squareRoot()
                return length > 1e-6 ? (dx / length, dy / length) : (0.5.squareRoot(), -0.5.squareRoot())  // else upper right
            }()
            for ring in 1...farRings {
                let d = s + Double(ring) * step
                guard d - step <= diagonal + max(w, h) else { return }  // beyond, every candidate clamps onto one spot
                let directions = min(max(Int((2 * Double.pi * d / spacing).rounded(.up)), 8), mostDirections)
                let turn = 2 * Double.pi / Double(directions)
                for j in 0..<directions {
                    // Outward first, then alternately either side of it.
                    let (sin, cos) = sinCos(Double((j + 1) / 2) * turn * (j % 2 == 1 ? 1 : -1))
                    let ux = outward.0 * cos - outward.1 * sin, uy = outward.0 * sin + outward.1 * cos
                    let reach = d + abs(ux) * w / 2 + abs(uy) * h / 2
                    if offer(cx + ux * reach - w / 2, cy + uy * reach - h / 2, ring) { return }
                }
            }
        }

        /// Whether `box` is clear of every obstacle, placed label and ring.
        func isClear(_ box: Box) -> Bool {
            let pad = gap / 2
            for o in obstacles where box.overlaps(o) { return false }
            for l in labels where box.overlaps(l, pad: pad) { return false }
            for r in items where box.meets(disc: r.x, r.y, radius: r.radius + pad) { return false }
            return true
        }

        /// The leader for `box`, nil when the label sits beside the ring.
        func leader(_ item: Item, _ box: Box) -> ((Double, Double), (Double, Double))? {
            let (qx, qy) = box.nearest(item.x, item.y)
            let dx = qx - item.x, dy = qy - item.y
            let distance = (dx * dx + dy * dy).squareRoot()
            guard distance > item.radius + 2 * gap + 1 else { return nil }
            return ((item.x + dx / distance * item.radius, item.y + dy / distance * item.radius), (qx, qy))
        }

        /// How many leaders the label covers, and labels its leader crosses.
        func crossings(_ box: Box, _ leader: ((Double, Double), (Double, Double))?) -> Int {
            var count = 0
            for l in leaders where box.crossed(from: l.0, to: l.1) { count += 1 }
            guard let leader else { return count }
            for l in labels where l.crossed(from: leader.0, to: leader.1) { count += 1 }
            return count
        }

        func overlapCost(_ box: Box) -> Double {
            var cost = 0.0
            for o in obstacles { cost += box.overlapArea(o) }
            for l in labels { cost += box.overlapArea(l) }
            for r in items {
                // The disc's bounding square stands in for the disc: an upper bound, cheap and monotone.
                cost += box.overlapArea(Box(x0: r.x - r.radius, y0: r.y - r.radius, x1: r.x + r.radius, y1: r.y + r.radius))
                if box.meets(disc: r.x, r.y, radius: r.radius) { cost += 1 }  // so that a point ring (radius 0) counts
            }
            return cost
        }

        mutating func place(_ item: Item) -> Placement {
            // The first clear candidate whose leader crosses nothing; failing that (a pile of labels
            // around one point leaves leaders no way out), the clear one with the fewest crossings
            // from the first clear ring and the next.
            var chosen: Box?, fewest = Int.max, lastRing = Int.max
            forEachCandidate(item) { box, ring in
                guard ring <= lastRing else { return true }
                guard isClear(box) else { return false }
                let count = crossings(box, leader(item, box))
                if count < fewest { (chosen, fewest) = (box, count) }
                lastRing = min(lastRing, ring + 1)
                return count == 0
            }
            var overlaps = false
            if chosen == nil {
                // Nothing clear: the least overlap, the nearest candidate among equals.
                var best = Double.infinity
                forEachCandidate(item) { box, _ in
                    let cost = overlapCost(box)
                    if cost < best { (best, chosen) = (cost, box) }
                    return false
                }
                overlaps = best > 0
            }
            let box = chosen ?? inside(Box(x0: item.x, y0: item.y, x1: item.x + item.width, y1: item.y + item.height))
            let line = leader(item, box)
            labels.append(box)
            if let line { leaders.append(line) }
            return Placement(rect: Rect(x: box.x0, y: box.y0, width: box.width, height: box.height),
                             leader: line.map { Leader(from: Point(x: $0.0.0, y: $0.0.1), to: Point(x: $0.1.0, y: $0.1.1)) },
                             overlaps: overlaps)
        }
    }
}
