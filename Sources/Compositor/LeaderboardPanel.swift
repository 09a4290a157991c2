import Canvas

/// The leaderboard: the ranked samples with their thumbnails, class and value. Between two
/// checkpoints the next board fades in row by row; a row that stays the same does not flicker.
extension FrameCompositor {
    /// How a kind's board is headed and its values read.
    private struct Wording {
        let title: String
        /// The caption, given the board's power of ten (" (×1e-4)") or "".
        let caption: (String) -> String
        let valueName: String
    }

    private static func wording(_ kind: LeaderboardKind, approximate: Bool = false) -> Wording {
        switch kind {
        case .outliers where approximate:
            Wording(title: "Most atypical samples", caption: { "approximate kNN outlier score\($0), order exact" },
                    valueName: "score")
        case .labelIssues where approximate:
            Wording(title: "Likely label issues", caption: { "kNN-AUM\($0) on approximate neighbours: lowest first" },
                    valueName: "kNN-AUM")
        case .outliers:
            Wording(title: "Most atypical samples", caption: { "kNN outlier score\($0): lower is more atypical" }, valueName: "score")
        case .labelIssues:
            Wording(title: "Likely label issues", caption: { "kNN-AUM\($0), the mean neighbour vote margin: lowest first" },
                    valueName: "kNN-AUM")
        case .movers:
            Wording(title: "Biggest movers", caption: { "move against neighbours since last checkpoint\($0) (+1: vote flipped)" },
                    valueName: "moved")
        case .disagreement:
            Wording(title: "Runs disagree most", caption: { "outlier percentile and label agreement differences\($0)" },
                    valueName: "differs")
        }
    }

    func drawLeaderboard(_ frame: FrameContent, u: Double) throws(CanvasError) {
        try drawLeaderboard(frame, in: layout.leaderboard, u: u)
    }

    /// The board's title, caption and rows in `area`: one column up to four entries, two beyond,
    /// unless `compact`, where one column holds as many rows as stay legible.
    func drawLeaderboard(_ frame: FrameContent, in area: Rect, compact: Bool = false, u: Double) throws(CanvasError) {
        let board = BoardTexts(frame)
        let wording = Self.wording(board.nearer.kind, approximate: board.nearer.approximate)
        context.text(wording.title, x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        context.text(wording.caption(board.scale.map { " (×\($0))" } ?? ""), x: area.x, y: area.y + 32 * u, size: 12 * u,
                     color: Palette.secondaryInk, maxWidth: area.width)
        try drawLeaderboardRows(frame, in: area, top: area.y + 40 * u, compact: compact, u: u)
    }

    /// A board's title and caption over several lists (a comparison's, one per run): the caption
    /// without a power of ten, which each list's heading gives.
    func drawLeaderboardHeading(_ kind: LeaderboardKind, in area: Rect, u: Double) {
        let wording = Self.wording(kind)
        context.text(wording.title, x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        context.text(wording.caption(""), x: area.x, y: area.y + 32 * u, size: 12 * u, color: Palette.secondaryInk, maxWidth: area.width)
    }

    /// The power of ten a board's values are written at (" ×1e-4"), at the frame's blend; nil for none.
    func leaderboardScale(_ frame: FrameContent) -> String? { BoardTexts(frame).scale }

    /// The rows of `frame`'s board in `area` from `top` down; a changing row fades out and the next in.
    /// Compact: one column of rows no thinner than three legible lines, and a count of those left out.
    func drawLeaderboardRows(_ frame: FrameContent, in area: Rect, top: Double, compact: Bool, u: Double) throws(CanvasError) {
        let board = BoardTexts(frame)
        let (blend, current, incoming) = (board.blend, board.current, board.incoming)
        let (currentTexts, incomingTexts) = (board.currentTexts, board.incomingTexts)
        let wording = Self.wording(board.nearer.kind)
        let slots = max(current.entries.count, incoming.entries.count)
        guard slots > 0 else {
            // Movers, at the first checkpoint: nothing has moved yet.
            context.text("nothing to rank yet", x: area.x, y: top + 20 * u, size: 13 * u, color: Palette.faintInk, maxWidth: area.width)
            return
        }
        var shownSlots = slots
        var rowsArea = area
        if compact {
            // 42 units keep the text at 11 px at 720p (LeaderboardGrid's 0.26 of a row).
            let fitting = max(Int(((area.maxY - top) / (42 * u)).rounded(.down)), 1)
            if fitting < slots {
                shownSlots = max(fitting - 1, 1)
                rowsArea = Rect(x: area.x, y: area.y, width: area.width, height: area.height - 18 * u)
                context.text("+\(slots - shownSlots) more", x: area.x, y: area.maxY - 4 * u, size: 12 * u, color: Palette.secondaryInk,
                             maxWidth: area.width)
            }
        }
        let grid = LeaderboardGrid(area: rowsArea, top: top, slots: shownSlots, hasThumbnails: setting.thumbnails != nil,
                                   columns: compact || shownSlots <= 4 ? 1 : 2, compact: compact && area.width < 240 * u, u: u)
        for slot in 0..<shownSlots {
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
                    try drawRow(slot: slot, index: old.index, value: "\(Self.wording(current.kind).valueName) \(currentTexts.texts[slot])",
                                grid: grid, u: u)
                }
            }
            if let new, frame.incoming != nil {
                try context.withOpacity(min(max((blend - 0.45) / 0.25, 0), 1), clip: grid.cell(slot)) { () throws(CanvasError) in
                    try drawRow(slot: slot, index: new.index, value: "\(Self.wording(incoming.kind).valueName) \(incomingTexts.texts[slot])",
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
        let maxWidth = cell.width - thumb - grid.trailingSpace
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

/// A frame's board between two checkpoints: the current and incoming entries, and their values
/// written on one scale each.
private struct BoardTexts {
    let blend: Double
    let current: Leaderboard
    let incoming: Leaderboard
    let currentTexts: (texts: [String], scale: String?)
    let incomingTexts: (texts: [String], scale: String?)

    init(_ frame: FrameContent) {
        blend = min(max(frame.blend.isNaN ? 0 : frame.blend, 0), 1)
        current = frame.leaderboard
        incoming = frame.incoming ?? current
        // One scale for every value of a board: 0.0001938 beside 7.931e-5 would not compare at a glance.
        currentTexts = NumberText.onOneScale(current.entries.map { Double($0.value) })
        incomingTexts = NumberText.onOneScale(incoming.entries.map { Double($0.value) })
    }

    /// The board nearer in time: the current one up to half way, then the incoming one.
    var nearer: Leaderboard { blend < 0.5 ? current : incoming }
    var scale: String? { (blend < 0.5 ? currentTexts : incomingTexts).scale }
}

/// The leaderboard's cells, in one or two columns.
private struct LeaderboardGrid {
    let area: Rect
    let top: Double
    let rows: Int
    let cellWidth: Double
    let cellHeight: Double
    /// Without images, the text takes the whole cell instead of sitting beside empty tiles.
    let thumbnailSide: Double
    let textSize: Double
    /// Room kept free at a row's end.
    let trailingSpace: Double

    /// Compact: a narrow list's smaller thumbnails and less room at the rows' ends leave its text room.
    init(area: Rect, top: Double, slots: Int, hasThumbnails: Bool, columns: Int, compact: Bool, u: Double) {
        self.area = area
        self.top = top
        rows = (slots + columns - 1) / columns
        cellWidth = area.width / Double(columns)
        cellHeight = (area.maxY - top) / Double(rows)
        thumbnailSide = hasThumbnails ? min(cellHeight - 8 * u, (compact ? 40 : 64) * u) : 0
        trailingSpace = (compact ? 4 : 16) * u
        textSize = min(13 * u, cellHeight * 0.26)
    }

    func cell(_ slot: Int) -> Rect {
        Rect(x: area.x + Double(slot / rows) * cellWidth, y: top + Double(slot % rows) * cellHeight, width: cellWidth, height: cellHeight)
    }
}
