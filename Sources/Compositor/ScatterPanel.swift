import Canvas
import LinearAlgebra

/// The scatter: class-coloured points in the film's fixed view, their trails, markers on the edge
/// for points beyond the view, and the ringed samples of the leaderboard.
extension FrameCompositor {
    /// A sample ringed in the scatter: rank label and opacity (rings fade between checkpoints).
    struct Mark {
        let index: Int
        let rank: Int
        let opacity: Double
    }

    /// Where a display point lands in the scatter panel `box`, not clamped; nil for a NaN or infinite point.
    static func screen(_ x: Float, _ y: Float, in box: Rect) -> (Double, Double)? {
        guard x.isFinite, y.isFinite else { return nil }
        let half = Self.viewHalfExtent
        return (box.x + (Double(x) + half) / (2 * half) * box.width, box.y + (half - Double(y)) / (2 * half) * box.height)
    }

    /// The most trail lines drawn in one frame (points times segments).
    static let mostTrailLines = 2_000_000

    /// Whether a display point is inside the film's fixed view.
    static func inView(_ x: Float, _ y: Float) -> Bool {
        abs(Double(x)) <= viewHalfExtent && abs(Double(y)) <= viewHalfExtent
    }

    /// Draws `frame`'s points, trails, edge markers and rings in the panel `box` (the film's
    /// fixed view fills it), and returns the rank labels it placed there.
    func drawScatter(_ frame: FrameContent, in box: Rect, u: Double) -> [DrawnLabel] {
        func screen(_ x: Float, _ y: Float) -> (Double, Double)? { Self.screen(x, y, in: box) }
        context.fill(box, Palette.panel)
        // Faint cross-hairs through the centroid give the eye a fixed reference as the cloud turns.
        let centre = screen(0, 0)!
        context.line(from: (box.x, centre.1), to: (box.maxX, centre.1), Palette.grid, width: 1)
        context.line(from: (centre.0, box.y), to: (centre.0, box.maxY), Palette.grid, width: 1)
        context.strokeRect(box, Palette.rule, width: 1)

        let n = frame.points.count
        let radius = (n <= 2_000 ? 3.2 : n <= 6_000 ? 2.5 : n <= 20_000 ? 2.0 : 1.5) * u
        let inside = Rect(x: box.x + 1, y: box.y + 1, width: box.width - 2, height: box.height - 2)
        let classColours = (0..<max(setting.classNames.count, 1)).map { Palette.color(forClass: $0) }
        func colourIndex(_ i: Int) -> Int { label(of: i).map { (($0 % classColours.count) + classColours.count) % classColours.count } ?? 0 }
        let dense = switch setting.pointStyle {
        case .dots: false
        case .density: true
        case .auto: DensityRasterizer.prefersDensity(pointCount: n, dotRadius: radius, clip: inside)
        }
        // Trails under dots; a density view has no room for them (a line per point would be a fog).
        if !frame.trails.isEmpty && !dense {
            drawTrails(frame, in: box, clip: inside, colours: classColours, colourIndex: colourIndex, u: u)
        }
        var beyond: [Int] = []
        for i in 0..<n where !Self.inView(frame.points.x[i], frame.points.y[i]) && frame.points.x[i].isFinite && frame.points.y[i].isFinite {
            beyond.append(i)
        }
        surface.withMutablePixels { pixels, stride in
            if dense {
                let half = Self.viewHalfExtent
                let transform = DensityRasterizer.Transform(scaleX: box.width / (2 * half), offsetX: box.x + box.width / 2,
                                                            scaleY: -box.height / (2 * half), offsetY: box.y + box.height / 2)
                density.classColours = Palette.classes  // wraps labels as the dots and the legend do
                density.draw(x: frame.points.x, y: frame.points.y, classes: setting.labels?.count == n ? setting.labels : nil,
                             transform: transform, clip: inside, into: pixels, stride: stride)
                return
            }
            let rasterizer = DotRasterizer(radius: radius, clip: inside)
            let inks = classColours.map { DotRasterizer.Ink($0.withAlpha(0.8)) }
            for i in 0..<n where Self.inView(frame.points.x[i], frame.points.y[i]) {
                guard let (sx, sy) = screen(frame.points.x[i], frame.points.y[i]) else { continue }
                rasterizer.draw(cx: sx, cy: sy, ink: inks[colourIndex(i)], into: pixels, stride: stride)
            }
        }
        drawEdgeMarkers(beyond, of: frame.points, in: box, colours: classColours, colourIndex: colourIndex, u: u)
        return drawMarks(frame, in: box, dense: dense, u: u)
    }

    /// The leaderboard's samples, ringed: the next checkpoint's fade in as the current ones fade out.
    func marks(_ frame: FrameContent) -> [Mark] {
        let current = frame.leaderboard.entries.map(\.index)
        guard let incoming = frame.incoming?.entries.map(\.index) else {
            return current.enumerated().map { Mark(index: $0.element, rank: $0.offset + 1, opacity: 1) }
        }
        let blend = min(max(frame.blend.isNaN ? 0 : frame.blend, 0), 1)
        // A sample on both boards stays ringed, under the rank of the nearer checkpoint.
        let (nearer, farther) = blend < 0.5 ? (current, incoming) : (incoming, current)
        var marks: [Mark] = []
        for (rank, index) in nearer.enumerated() {
            let onBoth = farther.contains(index)
            marks.append(Mark(index: index, rank: rank + 1, opacity: onBoth ? 1 : (blend < 0.5 ? 1 - blend : blend)))
        }
        for (rank, index) in farther.enumerated() where !nearer.contains(index) {
            marks.append(Mark(index: index, rank: rank + 1, opacity: blend < 0.5 ? blend : 1 - blend))
        }
        return marks
    }

    /// Rings around the ranked samples and their rank numbers, placed so that no number covers
    /// another or a ring, and none leaves the panel (with a leader line where the rings crowd).
    /// Returns the labels drawn, highest rank first.
    private func drawMarks(_ frame: FrameContent, in box: Rect, dense: Bool, u: Double) -> [DrawnLabel] {
        let ringRadius = 8 * u, textSize = 12 * u
        // Highest rank first: it gets the first choice of place. Rings of any opacity are obstacles.
        var shown: [(mark: Mark, centre: (Double, Double))] = []
        for mark in marks(frame).sorted(by: { ($0.opacity, -$0.rank) > ($1.opacity, -$1.rank) })
        where mark.opacity > 0 && frame.points.x.indices.contains(mark.index) {
            guard let p = Self.screen(frame.points.x[mark.index], frame.points.y[mark.index], in: box) else { continue }
            // A ringed sample beyond the view is ringed on the edge, where its marker points out.
            shown.append((mark, (min(max(p.0, box.x + 2), box.maxX - 2), min(max(p.1, box.y + 2), box.maxY - 2))))
        }
        if dense {
            // In a density view a sample is a pixel's share: the ringed ones are drawn as dots again.
            let rasterizer = DotRasterizer(radius: 3 * u, clip: Rect(x: box.x + 1, y: box.y + 1, width: box.width - 2, height: box.height - 2))
            surface.withMutablePixels { pixels, stride in
                for item in shown {
                    let colour = label(of: item.mark.index).map { Palette.color(forClass: $0) } ?? Palette.color(forClass: 0)
                    rasterizer.draw(cx: item.centre.0, cy: item.centre.1, ink: DotRasterizer.Ink(colour.withAlpha(item.mark.opacity)),
                                    into: pixels, stride: stride)
                }
            }
        }
        let texts = shown.map { "\($0.mark.rank)" }
        let anchors = zip(shown, texts).map { item, text in
            LabelLayout.Anchor(x: item.centre.0, y: item.centre.1, ringRadius: ringRadius + 2 * u,
                               labelWidth: context.textWidth(text, size: textSize, weight: .bold), labelHeight: 0.75 * textSize)
        }
        let placements = LabelLayout.place(anchors, in: Rect(x: box.x + 2, y: box.y + 2, width: box.width - 4, height: box.height - 4),
                                           gap: 2 * u)
        // Drawn lowest rank last, on top.
        for (item, _) in zip(shown, placements).reversed() {
            let a = item.mark.opacity
            context.circle(center: item.centre, radius: ringRadius, stroke: Color.white.withAlpha(0.9 * a), lineWidth: 4 * u)
            context.circle(center: item.centre, radius: ringRadius, stroke: Palette.ink.withAlpha(a), lineWidth: 1.6 * u)
        }
        var drawn: [DrawnLabel] = []
        for ((item, placement), text) in zip(zip(shown, placements), texts).reversed() {
            guard let placement else { continue }
            let a = item.mark.opacity
            if let leader = placement.leader {
                context.line(from: (leader.from.x, leader.from.y), to: (leader.to.x, leader.to.y), Palette.secondaryInk.withAlpha(0.8 * a),
                             width: 1 * u)
            }
            let r = placement.rect
            // A white plate keeps the number readable over dense points.
            context.fill(Rect(x: r.x - 1.5 * u, y: r.y - 1.5 * u, width: r.width + 3 * u, height: r.height + 3 * u), Color.white.withAlpha(0.75 * a))
            context.text(text, x: r.x, y: r.maxY, size: textSize, weight: .bold, color: Palette.ink.withAlpha(a))
            drawn.append(DrawnLabel(text: text, rect: r))
        }
        return drawn.reversed()
    }

    /// Points beyond the view, as small triangles on the panel's edge pointing outward, where the
    /// ray from the view's centre leaves it. One marker per class per few pixels of edge, so that
    /// any number of such points costs a bounded number of marks.
    private func drawEdgeMarkers(_ beyond: [Int], of points: PlanarPoints, in box: Rect, colours: [Color], colourIndex: (Int) -> Int,
                                 u: Double) {
        guard !beyond.isEmpty else { return }
        let depth = 6 * u, halfBase = 3.5 * u
        let half = Self.viewHalfExtent
        var drawn = Set<Int>()
        let bin = max(2 * halfBase, 1)
        for i in beyond {
            let x = Double(points.x[i]), y = Double(points.y[i])
            // Scale the point back along its ray onto the view's square border.
            let reach = max(abs(x), abs(y)) / half
            let ex = x / reach, ey = y / reach
            let onSide = abs(x) >= abs(y)  // leaves through the left or right edge
            let sx = box.x + (ex + half) / (2 * half) * box.width, sy = box.y + (half - ey) / (2 * half) * box.height
            let along = onSide ? sy : sx
            let edge = onSide ? (x > 0 ? 1 : 0) : (y > 0 ? 2 : 3)
            let key = (edge * 100_000 + Int(min(max(along / bin, 0), 99_999))) * colours.count + colourIndex(i)
            guard drawn.insert(key).inserted else { continue }
            let position = min(max(along, (onSide ? box.y : box.x) + halfBase + 1), (onSide ? box.maxY : box.maxX) - halfBase - 1)
            let corners: [(Double, Double)]
            switch edge {
            case 0: corners = [(box.x + 1, position), (box.x + 1 + depth, position - halfBase), (box.x + 1 + depth, position + halfBase)]
            case 1: corners = [(box.maxX - 1, position), (box.maxX - 1 - depth, position - halfBase), (box.maxX - 1 - depth, position + halfBase)]
            case 2: corners = [(position, box.y + 1), (position - halfBase, box.y + 1 + depth), (position + halfBase, box.y + 1 + depth)]
            default: corners = [(position, box.maxY - 1), (position - halfBase, box.maxY - 1 - depth), (position + halfBase, box.maxY - 1 - depth)]
            }
            context.fillPolygon(corners, colours[colourIndex(i)].withAlpha(0.85))
        }
    }

    /// `--trails`: a line from each point's oldest kept checkpoint position through the later ones
    /// to where it is now, fading with age.
    private func drawTrails(_ frame: FrameContent, in box: Rect, clip: Rect, colours: [Color], colourIndex: (Int) -> Int, u: Double) {
        let path = frame.trails + [frame.points]
        let segments = path.count - 1
        let n = frame.points.count
        let lines = LineRasterizer(clip: clip)
        // A bounded number of trail lines a frame: beyond it, every few points' trails are drawn.
        let every = max(1, (n * segments + Self.mostTrailLines - 1) / Self.mostTrailLines)
        surface.withMutablePixels { pixels, stride in
            for segment in 0..<segments {
                let from = path[segment], to = path[segment + 1]
                guard from.count == n, to.count == n else { continue }
                let opacity = frame.trailOpacities.indices.contains(segment) ? min(max(frame.trailOpacities[segment], 0), 1) : 0.3
                guard opacity > 0 else { continue }
                let inks = colours.map { DotRasterizer.Ink($0.withAlpha(opacity)) }
                // Only where both ends are in view: a line to a point beyond it would streak across the panel.
                for i in Swift.stride(from: 0, to: n, by: every) where Self.inView(from.x[i], from.y[i]) && Self.inView(to.x[i], to.y[i]) {
                    guard let a = Self.screen(from.x[i], from.y[i], in: box), let b = Self.screen(to.x[i], to.y[i], in: box) else { continue }
                    lines.draw(from: a, to: b, ink: inks[colourIndex(i)], into: pixels, stride: stride)
                }
            }
        }
    }
}

/// Thin anti-aliased lines straight into an ARGB32 pixel buffer (Xiaolin Wu's algorithm): a trail
/// is one short segment per point per checkpoint, too many for Cairo's path machinery.
struct LineRasterizer {
    private let left, top, right, bottom: Double

    init(clip: Rect) {
        left = clip.x.isFinite ? clip.x : 0
        top = clip.y.isFinite ? clip.y : 0
        right = clip.maxX.isFinite ? clip.maxX : 0
        bottom = clip.maxY.isFinite ? clip.maxY : 0
    }

    /// Blends a one-pixel line of `ink` from `a` to `b`; the parts outside the clip are not drawn.
    func draw(from a: (Double, Double), to b: (Double, Double), ink: DotRasterizer.Ink,
              into pixels: UnsafeMutablePointer<UInt32>, stride: Int) {
        // Clamping both ends into the clip bounds every loop below by the clip's size.
        func clamped(_ p: (Double, Double)) -> (Double, Double)? {
            guard p.0.isFinite, p.1.isFinite else { return nil }
            return (min(max(p.0, left), right - 1), min(max(p.1, top), bottom - 1))
        }
        guard right - left >= 1, bottom - top >= 1, var p = clamped(a), var q = clamped(b) else { return }
        let steep = abs(q.1 - p.1) > abs(q.0 - p.0)
        if steep { p = (p.1, p.0); q = (q.1, q.0) }
        if p.0 > q.0 { swap(&p, &q) }
        let run = q.0 - p.0
        let gradient = run < 1e-9 ? 0 : (q.1 - p.1) / run
        // Pixel centres sit at whole numbers plus one half.
        let start = Int(p.0.rounded(.down)), end = Int(q.0.rounded(.down))
        var y = p.1 + gradient * (Double(start) + 0.5 - p.0) - 0.5
        for major in start...end {
            let base = y.rounded(.down)
            let fraction = y - base
            plot(major, Int(base), 1 - fraction, steep, ink, pixels, stride)
            plot(major, Int(base) + 1, fraction, steep, ink, pixels, stride)
            y += gradient
        }
    }

    @inline(__always)
    private func plot(_ major: Int, _ minor: Int, _ coverage: Double, _ steep: Bool, _ ink: DotRasterizer.Ink,
                      _ pixels: UnsafeMutablePointer<UInt32>, _ stride: Int) {
        let (x, y) = steep ? (minor, major) : (major, minor)
        guard Double(x) >= left, Double(x) < right, Double(y) >= top, Double(y) < bottom else { return }
        let a = (UInt32(coverage * Double(ink.alpha)) * 255) >> 8  // parenthesised: in Swift, >> binds tighter than *
        guard a > 0 else { return }
        let p = pixels[y * stride + x], keep = 255 - a
        let r = (ink.red * a + (p >> 16 & 0xFF) * keep + 127) / 255
        let g = (ink.green * a + (p >> 8 & 0xFF) * keep + 127) / 255
        let b = (ink.blue * a + (p & 0xFF) * keep + 127) / 255
        pixels[y * stride + x] = 0xFF00_0000 | r << 16 | g << 8 | b
    }
}
