import Canvas

/// The leaderboard: the ranked samples with their thumbnails, class and value. Between two
/// checkpoints the next board fades in row by row; a row that stays the same does not flicker.
extension FrameCompositor {
    /// How a measure's board is headed and its values read.
    private struct Wording {
        let title: String
        /// The caption, given the board's power of ten (" (×1e-4)") or "".
        let caption: (String) -> String
        let valueName: String
    }

    private static func wording(_ measure: LeaderboardMeasure) -> Wording {
        switch measure {
        case .outlierScore:
            Wording(title: "Most atypical samples", caption: { "kNN outlier score\($0): lower is more atypical" }, valueName: "score")
        case .labelMargin:
            Wording(title: "Likely label issues", caption: { "kNN-AUM\($0), the mean neighbour vote margin: lowest first" },
                    valueName: "kNN-AUM")
        case .movement:
            Wording(title: "Biggest movers", caption: { "move against neighbours since last checkpoint\($0) (+1: vote flipped)" },
                    valueName: "moved")
        }
    }

    func drawLeaderboard(_ frame: FrameContent, u: Double) throws(CanvasError) {
        let blend = min(max(frame.blend.isNaN ? 0 : frame.blend, 0), 1)
        let current = frame.leaderboard
        let incoming = frame.incoming ?? current
        let nearer = blend < 0.5 ? current : incoming
        let area = layout.leaderboard
        let wording = Self.wording(nearer.measure)
        context.text(wording.title, x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        // One scale for every value of a board: 0.0001938 beside 7.931e-5 would not compare at a glance.
        let currentTexts = NumberText.onOneScale(current.entries.map { Double($0.value) })
        let incomingTexts = NumberText.onOneScale(incoming.entries.map { Double($0.value) })
        let scale = (blend < 0.5 ? currentTexts : incomingTexts).scale.map { " (×\($0))" } ?? ""
        context.text(wording.caption(scale), x: area.x, y: area.y + 32 * u, size: 12 * u,
                     color: Palette.secondaryInk, maxWidth: area.width)
        let slots = max(current.entries.count, incoming.entries.count)
        guard slots > 0 else {
            // Movers, at the first checkpoint: nothing has moved yet.
            context.text("nothing to rank yet", x: area.x, y: area.y + 60 * u, size: 13 * u, color: Palette.faintInk, maxWidth: area.width)
            return
        }
        let grid = LeaderboardGrid(area: area, top: area.y + 40 * u, slots: slots, hasThumbnails: setting.thumbnails != nil, u: u)
        for slot in 0..<slots {
            let old = current.entries.indices.contains(slot) ? current.entries[slot] : nil
            let new = incoming.entries.indices.contains(slot) ? incoming.entries[slot] : nil
            if let old, let new, old.index == new.index {
                // The same sample keeps its place: only its value changes, at the halfway point.
                let text = blend < 0.5 ? currentTexts.texts[slot] : incomingTexts.texts[slot]
                try drawRow(slot: slot, index: old.index, value: "\(wording.valueName) \(text)", grid: grid, u: u)
                continue
            }
            // A row that changes fades out and then in, overlapping only briefly around the middle:
            // two texts over each other for long would read as neither, and a blank board flickers.
            if let old {
                try context.withOpacity(min(max((0.55 - blend) / 0.25, 0), 1), clip: grid.cell(slot)) { () throws(CanvasError) in
                    try drawRow(slot: slot, index: old.index, value: "\(Self.wording(current.measure).valueName) \(currentTexts.texts[slot])",
                                grid: grid, u: u)
                }
            }
            if let new, frame.incoming != nil {
                try context.withOpacity(min(max((blend - 0.45) / 0.25, 0), 1), clip: grid.cell(slot)) { () throws(CanvasError) in
                    try drawRow(slot: slot, index: new.index, value: "\(Self.wording(incoming.measure).valueName) \(incomingTexts.texts[slot])",
                                grid: grid, u: u)
                }
            }
        }
    }

    /// One row: thumbnail, rank and class, value, sample index.
    private func drawRow(slot: Int, index: Int, value: String, grid: LeaderboardGrid, u: Double) throws(CanvasError) {
        let cell = grid.cell(slot)
        let thumb = grid.thumbnailSide
        let y = cell.y + (cell.height - thumb) / 2
        if let image = try thumbnail(index) {
            let frameRect = Rect(x: cell.x, y: y, width: thumb, height: thumb)
            context.draw(image, in: frameRect, pixelated: Double(image.width * 2) <= thumb)
            context.strokeRect(frameRect, Palette.rule, width: 1)
        }
        let textSize = grid.textSize
        let textX = cell.x + (thumb > 0 ? thumb + 10 * u : 0)
        let maxWidth = cell.width - thumb - 16 * u
        let lineGap = textSize * 1.35
        let middle = thumb > 0 ? y + thumb / 2 : cell.y + cell.height / 2
        let baseline = middle - lineGap + textSize * 0.35
        let rankWidth = context.text("#\(slot + 1)", x: textX, y: baseline, size: textSize, weight: .bold, color: Palette.ink)
        if let label = label(of: index) {
            context.circle(center: (textX + rankWidth + 10 * u, baseline - textSize * 0.35), radius: 4 * u,
                           fill: Palette.color(forClass: label))
        }
        context.text(className(of: index), x: textX + rankWidth + 18 * u, y: baseline, size: textSize, color: Palette.ink,
                     maxWidth: maxWidth - rankWidth - 20 * u)
        context.text(value, x: textX, y: baseline + lineGap, size: textSize * 0.92, color: Palette.secondaryInk, maxWidth: maxWidth)
        context.text("sample \(index)", x: textX, y: baseline + 2 * lineGap, size: textSize * 0.92, color: Palette.secondaryInk)
    }
}

/// The leaderboard's cells: one column up to four entries, two beyond.
private struct LeaderboardGrid {
    let area: Rect
    let top: Double
    let rows: Int
    let cellWidth: Double
    let cellHeight: Double
    /// Without images, the text takes the whole cell instead of sitting beside empty tiles.
    let thumbnailSide: Double
    let textSize: Double

    init(area: Rect, top: Double, slots: Int, hasThumbnails: Bool, u: Double) {
        self.area = area
        self.top = top
        let columns = slots > 4 ? 2 : 1
        rows = (slots + columns - 1) / columns
        cellWidth = area.width / Double(columns)
        cellHeight = (area.maxY - top) / Double(rows)
        thumbnailSide = hasThumbnails ? min(cellHeight - 8 * u, 64 * u) : 0
        textSize = min(13 * u, cellHeight * 0.26)
    }

    func cell(_ slot: Int) -> Rect {
        Rect(x: area.x + Double(slot / rows) * cellWidth, y: top + Double(slot % rows) * cellHeight, width: cellWidth, height: cellHeight)
    }
}
