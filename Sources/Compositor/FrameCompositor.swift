import Canvas
import LinearAlgebra
import RunFormat

/// What stays the same in every frame of one film.
public struct FilmSetting: Sendable {
    public var sampleCount: Int
    public var dimension: Int
    public var labels: [Int]?
    public var classNames: [String]
    public var thumbnails: Thumbnails?
    /// The whole run's losses when known in advance (offline); drawn faint behind the current part.
    public var wholeRunLosses: LossHistory?
    /// How many checkpoints the film will have, when known.
    public var checkpointCount: Int?
    /// The last step of the training, when known in advance: the loss chart's axis spans it from the start.
    public var finalStep: Int?
    public var title: String?
    /// One phrase saying how frames are aligned, for the subtitle.
    public var alignment: String

    public init(sampleCount: Int, dimension: Int, labels: [Int]?, classNames: [String], thumbnails: Thumbnails?,
                wholeRunLosses: LossHistory?, checkpointCount: Int?, finalStep: Int? = nil, title: String?, alignment: String) {
        self.sampleCount = sampleCount
        self.dimension = dimension
        self.labels = labels
        self.classNames = classNames
        self.thumbnails = thumbnails
        self.wholeRunLosses = wholeRunLosses
        self.checkpointCount = checkpointCount
        self.finalStep = finalStep
        self.title = title
        self.alignment = alignment
    }
}

/// One frame's data: a checkpoint's aligned projection and outliers.
public struct FrameContent: Sendable {
    public struct Outlier: Sendable, Equatable {
        public let index: Int
        public let score: Float
        public init(index: Int, score: Float) {
            self.index = index
            self.score = score
        }
    }

    public var step: Int
    public var epoch: Double?
    /// 0-based position of the checkpoint in the run.
    public var checkpointIndex: Int
    /// Display coordinates (see `Aligner`): about unit radius.
    public var points: PlanarPoints
    /// Most atypical first.
    public var outliers: [Outlier]
    /// The losses logged up to this checkpoint.
    public var losses: LossHistory
    /// Accuracy on the evaluation set, shown in the title when known.
    public var testAccuracy: Double?

    public init(step: Int, epoch: Double?, checkpointIndex: Int, points: PlanarPoints, outliers: [Outlier], losses: LossHistory,
                testAccuracy: Double? = nil) {
        self.step = step
        self.epoch = epoch
        self.checkpointIndex = checkpointIndex
        self.points = points
        self.outliers = outliers
        self.losses = losses
        self.testAccuracy = testAccuracy
    }
}

/// Draws frames: title, class-coloured scatter with ringed outliers, legend, loss chart and
/// the leaderboard of the most atypical samples. Owns its Cairo surface; one frame at a time.
public final class FrameCompositor {
    public let surface: ImageSurface
    private let context: GraphicsContext
    private let setting: FilmSetting
    private let layout: FrameLayout
    private let classCounts: [Int]
    private var thumbnailCache: [Int: ImageSurface] = [:]

    /// Half the side of the scatter's view in display units: the 99th-percentile radius is 1,
    /// so the few points beyond 1.08 sit clamped on the border.
    public static let viewHalfExtent = 1.08

    /// The thinnest legend row, in pixels at 720p: about 100 classes are listed, then a count of the rest.
    static let thinnestLegendRow = 6.0

    public init(width: Int, height: Int, setting: FilmSetting) throws(CanvasError) {
        surface = try ImageSurface(width: width, height: height)
        context = try GraphicsContext(surface)
        self.setting = setting
        layout = FrameLayout(width: Double(width), height: Double(height), legendEntries: setting.classNames.count)
        var counts = [Int](repeating: 0, count: setting.classNames.count)
        for label in setting.labels ?? [] where counts.indices.contains(label) { counts[label] += 1 }
        classCounts = counts
    }

    /// Draws `frame` onto `surface` and checks Cairo's status.
    public func draw(_ frame: FrameContent) throws(CanvasError) {
        let u = layout.unit
        context.fill(Rect(x: 0, y: 0, width: layout.width, height: layout.height), .white)
        drawTitle(frame, u: u)
        drawScatter(frame, u: u)
        drawLegend(u: u)
        drawLossChart(frame, u: u)
        try drawLeaderboard(frame, u: u)
        try context.checkStatus()
    }

    // MARK: Title

    private func drawTitle(_ frame: FrameContent, u: Double) {
        var heading = "Step \(NumberText.grouped(frame.step))"
        if let epoch = frame.epoch { heading += "  ·  epoch \(Ticks.formatted(epoch, decimals: 2))" }
        if let accuracy = frame.testAccuracy { heading += "  ·  accuracy \(Ticks.formatted(100 * accuracy, decimals: 1))%" }
        let x = layout.margin
        let headingWidth = context.text(heading, x: x, y: 34 * u, size: 24 * u, weight: .bold, color: Palette.ink)
        var position = "checkpoint \(frame.checkpointIndex + 1)"
        if let total = setting.checkpointCount { position += " of \(total)" }
        // A long title gives way to the checkpoint count, which changes from frame to frame.
        let title = setting.title ?? ""
        context.text(title, keeping: title.isEmpty ? position : "  ·  " + position, x: x + headingWidth + 18 * u, y: 34 * u,
                     size: 15 * u, color: Palette.secondaryInk, maxWidth: layout.width - x - headingWidth - 30 * u - layout.margin)
        let subtitle = "PCA of \(NumberText.grouped(setting.sampleCount)) evaluation embeddings (\(setting.dimension)-d)  ·  \(setting.alignment)"
        context.text(subtitle, x: x, y: 58 * u, size: 13 * u, color: Palette.secondaryInk, maxWidth: layout.width - 2 * layout.margin)
    }

    // MARK: Scatter

    /// Where a display point lands, clamped onto the border when beyond the view; nil for a NaN
    /// or infinite point, which has no place to be drawn.
    private func screen(_ x: Float, _ y: Float) -> (Double, Double)? {
        guard x.isFinite, y.isFinite else { return nil }
        let box = layout.scatter
        let half = Self.viewHalfExtent
        let sx = box.x + (Double(x) + half) / (2 * half) * box.width
        let sy = box.y + (half - Double(y)) / (2 * half) * box.height
        return (min(max(sx, box.x + 2), box.maxX - 2), min(max(sy, box.y + 2), box.maxY - 2))
    }

    private func drawScatter(_ frame: FrameContent, u: Double) {
        let box = layout.scatter
        context.fill(box, Palette.panel)
        // Faint cross-hairs through the centroid give the eye a fixed reference as the cloud turns.
        let centre = screen(0, 0)!
        context.line(from: (box.x, centre.1), to: (box.maxX, centre.1), Palette.grid, width: 1)
        context.line(from: (centre.0, box.y), to: (centre.0, box.maxY), Palette.grid, width: 1)
        context.strokeRect(box, Palette.rule, width: 1)

        let n = frame.points.count
        let radius = (n <= 2_000 ? 3.2 : n <= 6_000 ? 2.5 : n <= 20_000 ? 2.0 : 1.5) * u
        let rasterizer = DotRasterizer(radius: radius, clip: Rect(x: box.x + 1, y: box.y + 1, width: box.width - 2, height: box.height - 2))
        let inks = (0..<max(setting.classNames.count, 1)).map { DotRasterizer.Ink(Palette.color(forClass: $0).withAlpha(0.8)) }
        surface.withMutablePixels { pixels, stride in
            for i in 0..<n {
                guard let (sx, sy) = screen(frame.points.x[i], frame.points.y[i]) else { continue }
                let ink = label(of: i).map { inks[(($0 % inks.count) + inks.count) % inks.count] } ?? inks[0]
                rasterizer.draw(cx: sx, cy: sy, ink: ink, into: pixels, stride: stride)
            }
        }

        for (rank, outlier) in frame.outliers.enumerated().reversed() where frame.points.x.indices.contains(outlier.index) {
            guard let p = screen(frame.points.x[outlier.index], frame.points.y[outlier.index]) else { continue }
            context.circle(center: p, radius: 8 * u, stroke: Color.white.withAlpha(0.9), lineWidth: 4 * u)
            context.circle(center: p, radius: 8 * u, stroke: Palette.ink, lineWidth: 1.6 * u)
            let labelX = p.0 + 9 * u < box.maxX - 14 * u ? p.0 + 9 * u : p.0 - 18 * u
            context.text("\(rank + 1)", x: labelX, y: p.1 - 7 * u, size: 12 * u, weight: .bold, color: Palette.ink)
        }
    }

    private func drawLegend(u: Double) {
        guard !setting.classNames.isEmpty else { return }
        let box = layout.legend
        context.text("Classes", x: box.x, y: box.y + 12 * u, size: 13 * u, weight: .bold, color: Palette.ink)
        let classes = setting.classNames.count
        // Rows too thin to read would cost a text layout each for nothing: past them, the last row counts the rest.
        let legibleRows = min(Double(classes), ((box.height - 24 * u) / (Self.thinnestLegendRow * u)).rounded(.down))
        let rows = Int(max(legibleRows, 1))  // 1...classes, NaN included
        let listed = rows < classes ? rows - 1 : classes
        let rowHeight = min(22 * u, (box.height - 24 * u) / Double(rows))
        let textSize = min(13 * u, rowHeight * 0.7)
        func rowMiddle(_ row: Int) -> Double { box.y + 24 * u + (Double(row) + 0.5) * rowHeight }
        for (label, name) in setting.classNames.prefix(listed).enumerated() {
            let y = rowMiddle(label)
            context.circle(center: (box.x + 6 * u, y), radius: 5 * u, fill: Palette.color(forClass: label))
            let count = setting.labels == nil ? "" : " (\(classCounts[label]))"
            context.text(name, keeping: count, x: box.x + 16 * u, y: y + textSize * 0.36, size: textSize, color: Palette.ink,
                         maxWidth: box.width - 16 * u)
        }
        if listed < classes {
            context.text("+\(NumberText.grouped(classes - listed)) more", x: box.x + 16 * u, y: rowMiddle(listed) + textSize * 0.36,
                         size: textSize, color: Palette.secondaryInk, maxWidth: box.width - 16 * u)
        }
    }

    // MARK: Loss chart

    private func drawLossChart(_ frame: FrameContent, u: Double) {
        let area = layout.lossChart
        context.text("Training loss", x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        let whole = setting.wholeRunLosses ?? frame.losses
        let current = frame.losses
        let plot = Rect(x: area.x + 46 * u, y: area.y + 28 * u, width: area.width - 52 * u, height: area.height - 62 * u)
        let finite = (whole.training + whole.evaluation + current.training + current.evaluation).filter { $0.loss.isFinite }
        // NaN and infinite losses have no place on the axis: they are left out, and the chart says how many.
        let nonFinite = (whole.training + whole.evaluation).count { !$0.loss.isFinite }
        let omission = nonFinite == 0 ? nil : "\(nonFinite) non-finite loss\(nonFinite == 1 ? "" : "es") not shown"
        guard !finite.isEmpty else {
            context.fill(plot, Palette.panel)
            context.strokeRect(plot, Palette.rule, width: 1)
            context.text(omission ?? "no loss logged", x: plot.x + plot.width / 2, y: plot.y + plot.height / 2, size: 13 * u,
                         color: Palette.faintInk, anchor: .center, maxWidth: plot.width)
            return
        }
        let maxStep = Double(max(finite.map(\.step).max()!, frame.step, setting.finalStep ?? 1, 1))
        let minStep = Double(min(finite.map(\.step).min()!, 0))
        let shown = Self.plausibleRange(finite.map(\.loss))
        let bottom = min(0, shown.lowerBound)
        // 8% headroom above the highest loss, capped at the largest Double rather than infinity.
        let highest = shown.upperBound
        let top = highest > 0 ? min(highest * 1.08, .greatestFiniteMagnitude) : bottom < 0 ? 0 : 1
        let clipped = (whole.training + whole.evaluation).count { $0.loss.isFinite && !shown.contains($0.loss) }
        let notes = [omission, clipped == 0 ? nil : "\(clipped) clipped"]
        let note = notes.compactMap { $0 }.joined(separator: " · ")
        let px = AxisScale(from: minStep, to: maxStep, onto: plot.x, length: plot.width)
        let py = AxisScale(from: bottom, to: top, onto: plot.maxY, length: -plot.height)

        let yStep = Ticks.step(from: bottom, to: top, about: 4) ?? 1
        for tick in Ticks.values(from: bottom, to: top, about: 4) {
            context.line(from: (plot.x, py(tick)), to: (plot.maxX, py(tick)), Palette.grid, width: 1)
            context.text(Ticks.label(tick, step: yStep), x: plot.x - 6 * u, y: py(tick) + 4 * u, size: 11 * u,
                         color: Palette.secondaryInk, anchor: .right)
        }
        let xStep = Ticks.step(from: minStep, to: maxStep, about: 5) ?? 1
        for tick in Ticks.values(from: minStep, to: maxStep, about: 5) {
            context.line(from: (px(tick), plot.maxY), to: (px(tick), plot.maxY + 4 * u), Palette.faintInk, width: 1)
            context.text(Ticks.label(tick, step: xStep), x: px(tick), y: plot.maxY + 16 * u, size: 11 * u,
                         color: Palette.secondaryInk, anchor: .center)
        }
        context.line(from: (plot.x, plot.maxY), to: (plot.maxX, plot.maxY), Palette.faintInk, width: 1)
        context.line(from: (plot.x, plot.y), to: (plot.x, plot.maxY), Palette.faintInk, width: 1)
        context.text("step", x: plot.x + plot.width / 2, y: plot.maxY + 31 * u, size: 12 * u, color: Palette.secondaryInk, anchor: .center)
        context.verticalText("loss", x: area.x + 8 * u, y: plot.y + plot.height / 2, size: 12 * u, color: Palette.secondaryInk)
        func curve(_ points: [LossHistory.Point]) -> [(Double, Double)] {
            points.filter { $0.loss.isFinite }.map { (px(Double($0.step)), py(min(max($0.loss, bottom), top))) }
        }
        context.polyline(curve(whole.training), Palette.loss.withAlpha(0.25), width: 1.5 * u)
        context.polyline(curve(current.training), Palette.loss, width: 2 * u)
        if !whole.evaluation.isEmpty {
            context.setDash([5 * u, 4 * u])
            context.polyline(curve(whole.evaluation), Palette.evaluationLoss.withAlpha(0.25), width: 1.5 * u)
            context.polyline(curve(current.evaluation), Palette.evaluationLoss, width: 2 * u)
            context.setDash([])
        }
        if !note.isEmpty {
            // Over the curves, on a white plate: the note sits in the plot's top corner, where a clipped curve runs.
            let width = min(context.textWidth(note, size: 11 * u), plot.width - (whole.evaluation.isEmpty ? 12 : 160) * u)
            context.fill(Rect(x: plot.x + 3 * u, y: plot.y + 2 * u, width: width + 6 * u, height: 14 * u), .white)
            context.text(note, x: plot.x + 6 * u, y: plot.y + 12 * u, size: 11 * u, color: Palette.highlight,
                         maxWidth: plot.width - (whole.evaluation.isEmpty ? 12 : 160) * u)
        }
        // The current step: a vertical rule, and a marker on the last logged loss.
        let x = px(Double(frame.step))
        context.line(from: (x, plot.y), to: (x, plot.maxY), Palette.highlight.withAlpha(0.5), width: 1 * u)
        var readout = "step \(NumberText.grouped(frame.step))"
        if let last = current.training.last(where: { $0.loss.isFinite }) {
            context.circle(center: (px(Double(last.step)), py(min(max(last.loss, bottom), top))), radius: 4.5 * u, fill: Palette.highlight,
                           stroke: .white, lineWidth: 1.5 * u)
            readout = "loss \(NumberText.significant(last.loss, 4))"
        }
        if let eval = current.evaluation.last(where: { $0.loss.isFinite }) {
            readout += "   eval \(NumberText.significant(eval.loss, 4))"
        }
        context.text(readout, x: plot.maxX, y: area.y + 14 * u, size: 13 * u, color: Palette.ink, anchor: .right)
        if !whole.evaluation.isEmpty {
            let keyY = plot.y + 12 * u
            context.line(from: (plot.maxX - 150 * u, keyY), to: (plot.maxX - 132 * u, keyY), Palette.loss, width: 2 * u)
            context.text("train", x: plot.maxX - 128 * u, y: keyY + 4 * u, size: 11 * u, color: Palette.secondaryInk)
            context.setDash([5 * u, 4 * u])
            context.line(from: (plot.maxX - 80 * u, keyY), to: (plot.maxX - 62 * u, keyY), Palette.evaluationLoss, width: 2 * u)
            context.setDash([])
            context.text("eval", x: plot.maxX - 58 * u, y: keyY + 4 * u, size: 11 * u, color: Palette.secondaryInk)
        }
    }

    /// The range of losses the axis shows: all of them, unless a few are absurd (more than 100
    /// spreads beyond the quartiles, as a logged 1e300 or a diverged step), which would flatten the
    /// rest of the curve onto the axis; those are clipped to its edge.
    static func plausibleRange(_ losses: [Double]) -> ClosedRange<Double> {
        let sorted = losses.sorted()
        guard sorted.count >= 5 else { return sorted.first! ... sorted.last! }
        let low = sorted[sorted.count / 4], high = sorted[sorted.count * 3 / 4]
        let spread = max(high - low, abs(high), abs(low), .leastNormalMagnitude)
        let fence = (low - 100 * spread) ... (high + 100 * spread)
        let kept = sorted.filter { fence.contains($0) }
        return kept.first! ... kept.last!
    }

    // MARK: Leaderboard

    private func drawLeaderboard(_ frame: FrameContent, u: Double) throws(CanvasError) {
        let area = layout.leaderboard
        context.text("Most atypical samples", x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        let entries = frame.outliers
        // One scale for every score of the frame: 0.0001938 beside 7.931e-5 would not compare at a glance.
        let scores = NumberText.onOneScale(entries.map { Double($0.score) })
        let caption = scores.scale.map { "kNN outlier score (×\($0)): lower is more atypical" } ?? "kNN outlier score: lower is more atypical"
        context.text(caption, x: area.x, y: area.y + 32 * u, size: 12 * u, color: Palette.secondaryInk, maxWidth: area.width)
        guard !entries.isEmpty else { return }
        let columns = entries.count > 4 ? 2 : 1
        let rows = (entries.count + columns - 1) / columns
        let top = area.y + 40 * u
        let cellWidth = area.width / Double(columns)
        let cellHeight = (area.maxY - top) / Double(rows)
        // Without images, the text takes the whole cell instead of sitting beside empty tiles.
        let thumb = setting.thumbnails == nil ? 0 : min(cellHeight - 8 * u, 64 * u)
        let textSize = min(13 * u, cellHeight * 0.26)
        for (rank, entry) in entries.enumerated() {
            let column = rank / rows, row = rank % rows
            let x = area.x + Double(column) * cellWidth
            let y = top + Double(row) * cellHeight + (cellHeight - thumb) / 2
            if let image = try thumbnail(entry.index) {
                let frameRect = Rect(x: x, y: y, width: thumb, height: thumb)
                context.draw(image, in: frameRect, pixelated: Double(image.width * 2) <= thumb)
                context.strokeRect(frameRect, Palette.rule, width: 1)
            }
            let textX = x + (thumb > 0 ? thumb + 10 * u : 0)
            let maxWidth = cellWidth - thumb - 16 * u
            let lineGap = textSize * 1.35
            let middle = thumb > 0 ? y + thumb / 2 : top + (Double(row) + 0.5) * cellHeight
            let baseline = middle - lineGap + textSize * 0.35
            let rankWidth = context.text("#\(rank + 1)", x: textX, y: baseline, size: textSize, weight: .bold, color: Palette.ink)
            let className = className(of: entry.index)
            if let label = label(of: entry.index) {
                context.circle(center: (textX + rankWidth + 10 * u, baseline - textSize * 0.35), radius: 4 * u,
                               fill: Palette.color(forClass: label))
            }
            context.text(className, x: textX + rankWidth + 18 * u, y: baseline, size: textSize, color: Palette.ink,
                         maxWidth: maxWidth - rankWidth - 20 * u)
            context.text("score \(scores.texts[rank])", x: textX, y: baseline + lineGap,
                         size: textSize * 0.92, color: Palette.secondaryInk)
            context.text("sample \(entry.index)", x: textX, y: baseline + 2 * lineGap, size: textSize * 0.92, color: Palette.secondaryInk)
        }
    }

    /// Sample `index`'s label, if the run has one for it.
    private func label(of index: Int) -> Int? {
        guard let labels = setting.labels, labels.indices.contains(index) else { return nil }
        return labels[index]
    }

    private func className(of index: Int) -> String {
        guard let label = label(of: index) else { return "unlabelled" }
        return setting.classNames.indices.contains(label) ? setting.classNames[label] : "class \(label)"
    }

    private func thumbnail(_ index: Int) throws(CanvasError) -> ImageSurface? {
        guard let thumbnails = setting.thumbnails, (0..<thumbnails.count).contains(index) else { return nil }
        if let cached = thumbnailCache[index] { return cached }
        let image = try ImageSurface(pixels: thumbnails.image(index), width: thumbnails.width,
                                     height: thumbnails.height, channels: thumbnails.channels)
        if thumbnailCache.count > 256 { thumbnailCache.removeAll() }
        thumbnailCache[index] = image
        return image
    }
}

/// Where each part of the frame goes, in pixels; everything scales with the frame height.
struct FrameLayout {
    let width: Double
    let height: Double
    let unit: Double
    let margin: Double
    let scatter: Rect
    let legend: Rect
    let lossChart: Rect
    let leaderboard: Rect

    init(width: Double, height: Double, legendEntries: Int) {
        self.width = width
        self.height = height
        unit = min(height / 720, width / 1280 * 1.2)
        margin = 24 * unit
        let top = 76 * unit
        let side = min(height - top - margin, width * 0.5)
        scatter = Rect(x: margin, y: top, width: side, height: side)
        let legendWidth = legendEntries > 0 ? min(170 * unit, width * 0.15) : 0
        legend = Rect(x: scatter.maxX + 14 * unit, y: top, width: legendWidth, height: side)
        let rightX = legend.maxX + (legendEntries > 0 ? 16 * unit : 0)
        let rightWidth = width - rightX - margin
        lossChart = Rect(x: rightX, y: top, width: rightWidth, height: side * 0.42)
        leaderboard = Rect(x: rightX, y: lossChart.maxY + 14 * unit, width: rightWidth, height: top + side - lossChart.maxY - 14 * unit)
    }
}
