import Canvas
import LinearAlgebra
import RunFormat

/// Draws frames: title, class-coloured scatter with ringed outliers, legend, loss chart and
/// the leaderboard of the most atypical samples. Owns its Cairo surface; one frame at a time.
public final class FrameCompositor {
    public let surface: ImageSurface
    let context: GraphicsContext
    let setting: FilmSetting
    let layout: FrameLayout
    /// The layout of comparison frames, set when `setting.comparison` is.
    let comparisonLayout: ComparisonLayout?
    let classCounts: [Int]
    var thumbnailCache: [Int: ImageSurface] = [:]
    /// Made at the first dense frame and kept: its buffers are reused frame after frame.
    lazy var density = DensityRasterizer(minimumOpacity: 0.35)
    /// The text labels the last `draw` put inside the scatter panel (`--dump-data` writes them).
    public internal(set) var drawnLabels: [DrawnLabel] = []

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
        comparisonLayout = setting.comparison.map {
            ComparisonLayout(width: Double(width), height: Double(height), panels: $0.names.count, legendEntries: setting.classNames.count)
        }
        var counts = [Int](repeating: 0, count: setting.classNames.count)
        for label in setting.labels ?? [] where counts.indices.contains(label) { counts[label] += 1 }
        classCounts = counts
    }

    /// Draws `frame` onto `surface` and checks Cairo's status.
    public func draw(_ frame: FrameContent) throws(CanvasError) {
        let u = layout.unit
        context.fill(Rect(x: 0, y: 0, width: layout.width, height: layout.height), .white)
        drawTitle(frame, u: u)
        drawnLabels = drawScatter(frame, in: layout.scatter, u: u)
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
        // What the picture is, how far to trust it, how it is aligned: where all three do not fit,
        // the last gives way whole rather than be cut mid-phrase.
        var parts = ["\(setting.projection) of \(NumberText.grouped(setting.sampleCount)) evaluation embeddings (\(setting.dimension)-d)",
                     frame.faithfulness, setting.alignment].compactMap { $0 }
        let room = layout.width - 2 * layout.margin
        while parts.count > 1, context.textWidth(parts.joined(separator: "  ·  "), size: 13 * u) > room { parts.removeLast() }
        context.text(parts.joined(separator: "  ·  "), x: x, y: 58 * u, size: 13 * u, color: Palette.secondaryInk, maxWidth: room)
    }

    func drawLegend(u: Double) {
        drawLegend(in: layout.legend, columns: 1, thinnestRow: Self.thinnestLegendRow, u: u)
    }

    /// The class legend in `box`, filled column by column; rows thinner than `thinnestRow` (at
    /// 720p) are not drawn: the last row then counts the classes left out.
    func drawLegend(in box: Rect, columns: Int, thinnestRow: Double, u: Double) {
        guard !setting.classNames.isEmpty else { return }
        context.text("Classes", x: box.x, y: box.y + 12 * u, size: 13 * u, weight: .bold, color: Palette.ink)
        let classes = setting.classNames.count
        let columns = max(columns, 1)
        // Rows too thin to read would cost a text layout each for nothing: past them, the last row counts the rest.
        let legibleRows = min(Double((classes + columns - 1) / columns), ((box.height - 24 * u) / (thinnestRow * u)).rounded(.down))
        let rows = Int(max(legibleRows, 1))  // 1...classes, NaN included
        let listed = rows * columns < classes ? rows * columns - 1 : classes
        let rowHeight = min(22 * u, (box.height - 24 * u) / Double(rows))
        let textSize = min(13 * u, rowHeight * 0.7)
        let columnWidth = box.width / Double(columns)
        func rowMiddle(_ slot: Int) -> Double { box.y + 24 * u + (Double(slot % rows) + 0.5) * rowHeight }
        func left(_ slot: Int) -> Double { box.x + Double(slot / rows) * columnWidth }
        for (label, name) in setting.classNames.prefix(listed).enumerated() {
            let y = rowMiddle(label), x = left(label)
            context.circle(center: (x + 6 * u, y), radius: 5 * u, fill: Palette.color(forClass: label))
            let count = setting.labels == nil ? "" : " (\(classCounts[label]))"
            context.text(name, keeping: count, x: x + 16 * u, y: y + textSize * 0.36, size: textSize, color: Palette.ink,
                         maxWidth: columnWidth - 16 * u)
        }
        if listed < classes {
            context.text("+\(NumberText.grouped(classes - listed)) more", x: left(listed) + 16 * u, y: rowMiddle(listed) + textSize * 0.36,
                         size: textSize, color: Palette.secondaryInk, maxWidth: columnWidth - 16 * u)
        }
    }

    /// Sample `index`'s label, if the run has one for it.
    func label(of index: Int) -> Int? {
        guard let labels = setting.labels, labels.indices.contains(index) else { return nil }
        return labels[index]
    }

    func className(of index: Int) -> String {
        guard let label = label(of: index) else { return "unlabelled" }
        return setting.classNames.indices.contains(label) ? setting.classNames[label] : "class \(label)"
    }

    func thumbnail(_ index: Int) throws(CanvasError) -> ImageSurface? {
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
