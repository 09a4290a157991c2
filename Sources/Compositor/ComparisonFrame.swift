import Canvas
import LinearAlgebra
import RunFormat

/// Comparison frames (`embedlapse compare`): two runs on one evaluation set side by side, each in
/// its own scatter panel under the same fixed view, with one loss chart for both runs and their
/// leaderboards (one shared list, or one per run).
extension FrameCompositor {
    /// Draws `comparison` onto `surface` and checks Cairo's status. `drawnLabels` then holds
    /// every panel's rank labels, left panel first.
    ///
    /// The layout is the one chosen at init from `setting.comparison`; a frame with another number
    /// of panels than the setting names gets a layout made for it.
    public func draw(_ comparison: ComparisonContent) throws(CanvasError) {
        let panels = comparison.panels
        let layout = comparisonLayout.flatMap { $0.panels.count == max(panels.count, 1) ? $0 : nil }
            ?? ComparisonLayout(width: self.layout.width, height: self.layout.height, panels: panels.count,
                                legendEntries: setting.classNames.count)
        let u = layout.unit
        context.fill(Rect(x: 0, y: 0, width: layout.width, height: layout.height), .white)
        drawComparisonTitle(comparison, layout: layout, u: u)
        var labels: [DrawnLabel] = []
        for (run, panel) in zip(panels.indices, panels) {
            drawPanelHeader(run: run, panel: panel, step: comparison.step, in: layout.headers[run], u: u)
            labels += drawScatter(panel.content, in: layout.panels[run], u: u)
        }
        drawnLabels = labels
        drawLegend(in: layout.legend, columns: layout.legendColumns, thinnestRow: ComparisonLayout.legendRow, u: u)
        drawComparisonLossChart(comparison, in: layout.lossChart, u: u)
        try drawComparisonLeaderboards(comparison, in: layout.leaderboard, u: u)
        try context.checkStatus()
    }

    /// Run `run`'s name, as the setting gives it.
    func runName(_ run: Int) -> String {
        guard let names = setting.comparison?.names, names.indices.contains(run), !names[run].isEmpty else { return "run \(run + 1)" }
        return names[run]
    }

    /// The words a panel's header gives its state, and whether they mark it as not current.
    static func stateText(_ state: ComparisonContent.PanelState, step: Int) -> (text: String, marked: Bool) {
        switch state {
        case .current: ("step \(NumberText.grouped(step))", false)
        case .older(let shown): ("showing step \(NumberText.grouped(shown)) (older)", true)
        case .finished(let last): ("finished at step \(NumberText.grouped(last))", true)
        case .notStarted(let first): ("starts at step \(NumberText.grouped(first))", true)
        }
    }

    // MARK: Title

    private func drawComparisonTitle(_ comparison: ComparisonContent, layout: ComparisonLayout, u: Double) {
        let x = layout.margin
        let headingWidth = context.text("Step \(NumberText.grouped(comparison.step))", x: x, y: 34 * u, size: 24 * u, weight: .bold,
                                        color: Palette.ink)
        let runs = comparison.panels.indices.map { runName($0) }
        let title = setting.title ?? runs.joined(separator: " vs ")
        context.text(title, x: x + headingWidth + 18 * u, y: 34 * u, size: 15 * u, color: Palette.secondaryInk,
                     maxWidth: layout.width - x - headingWidth - 30 * u - layout.margin)
        let dimensions = setting.comparison?.dimensions ?? []
        let widths = runs.indices.map { run in
            "\(runs[run]) \(dimensions.indices.contains(run) ? "\(dimensions[run])-d" : "?-d")"
        }
        // Long names give way to the alignment's phrase.
        let samples = "\(setting.projection) of \(NumberText.grouped(setting.sampleCount)) evaluation samples (\(widths.joined(separator: ", ")))"
        context.text(samples, keeping: "  ·  each run aligned over time, the right run rotated onto the left (Procrustes)", x: x, y: 58 * u,
                     size: 13 * u, color: Palette.secondaryInk, maxWidth: layout.width - 2 * layout.margin)
    }

    // MARK: Panel headers

    /// The run's colour key and name, its accuracy where known, and its state at the right: plain
    /// for a current checkpoint, on a grey badge for an older, finished or not yet started one.
    private func drawPanelHeader(run: Int, panel: ComparisonContent.Panel, step: Int, in box: Rect, u: Double) {
        let baseline = box.y + 18 * u
        let keyWidth = 16 * u
        context.line(from: (box.x, baseline - 5 * u), to: (box.x + keyWidth, baseline - 5 * u), Palette.color(forRun: run), width: 3 * u)
        let (state, marked) = Self.stateText(panel.state, step: step)
        let stateSize = 13 * u
        let stateWidth = min(context.textWidth(state, size: stateSize, weight: marked ? .bold : .regular), box.width * 0.6)
        let badgePadding = marked ? 7 * u : 0
        let stateLeft = box.maxX - stateWidth - badgePadding
        if marked {
            let badge = Rect(x: stateLeft - badgePadding, y: baseline - 14 * u, width: stateWidth + 2 * badgePadding, height: 19 * u)
            context.fill(badge, Palette.badge)
            context.strokeRect(badge, Palette.rule, width: 1)
        }
        context.text(state, x: stateLeft, y: baseline, size: stateSize, weight: marked ? .bold : .regular,
                     color: marked ? Palette.secondaryInk : Palette.ink, maxWidth: stateWidth)
        // The name gets what the state leaves; the accuracy only where the name still reads whole.
        let nameLeft = box.x + keyWidth + 6 * u
        let room = stateLeft - badgePadding - 12 * u - nameLeft
        let name = runName(run)
        let nameWidth = context.textWidth(name, size: 15 * u, weight: .bold)
        let drawn = context.text(name, x: nameLeft, y: baseline, size: 15 * u, weight: .bold, color: Palette.ink, maxWidth: room)
        // Then the accuracy and how far the picture can be trusted, each only where it reads whole.
        var left = nameLeft + drawn + 10 * u
        let notes = [panel.content.testAccuracy.flatMap { $0.isFinite ? "accuracy \(Ticks.formatted(100 * $0, decimals: 1))%" : nil },
                     panel.content.faithfulness].compactMap { $0 }
        for text in notes where drawn >= nameWidth {
            let width = context.textWidth(text, size: 13 * u)
            guard width <= stateLeft - badgePadding - 12 * u - left else { break }
            context.text(text, x: left, y: baseline, size: 13 * u, color: Palette.secondaryInk)
            left += width + 10 * u
        }
    }

    // MARK: Loss chart

    /// Both runs' losses up to the film's step on one pair of axes, each run in its colour
    /// (evaluation dashed), with a key by run name and the cursor at the film's step.
    private func drawComparisonLossChart(_ comparison: ComparisonContent, in area: Rect, u: Double) {
        let titleWidth = context.text("Training loss", x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        let current = comparison.panels.map(\.content.losses)
        let given = setting.comparison?.wholeRunLosses
        let whole = given?.count == current.count ? given! : current
        guard let axes = lossAxes(area: area, whole: whole, current: current, step: comparison.step, u: u) else { return }
        let (plot, bottom, top, note) = (axes.plot, axes.bottom, axes.top, axes.note)
        let (px, py) = drawLossAxes(plot: plot, area: area, minStep: axes.minStep, maxStep: axes.maxStep, bottom: bottom, top: top, u: u)
        func curve(_ points: [LossHistory.Point]) -> [(Double, Double)] {
            points.filter { $0.loss.isFinite }.map { (px(Double($0.step)), py(min(max($0.loss, bottom), top))) }
        }
        let hasEvaluation = zip(whole, current).contains { !$0.evaluation.isEmpty || !$1.evaluation.isEmpty }
        for (run, (wholeRun, now)) in zip(whole, current).enumerated() {
            let colour = Palette.color(forRun: run)
            if given != nil { context.polyline(curve(wholeRun.training), colour.withAlpha(0.22), width: 1.5 * u) }
            context.polyline(curve(now.training), colour, width: 2 * u)
            context.setDash([5 * u, 4 * u])
            if given != nil { context.polyline(curve(wholeRun.evaluation), colour.withAlpha(0.22), width: 1.5 * u) }
            context.polyline(curve(now.evaluation), colour, width: 2 * u)
            context.setDash([])
        }
        if !note.isEmpty {
            let width = min(context.textWidth(note, size: 11 * u), plot.width - 12 * u)
            context.fill(Rect(x: plot.x + 3 * u, y: plot.y + 2 * u, width: width + 6 * u, height: 14 * u), .white)
            context.text(note, x: plot.x + 6 * u, y: plot.y + 12 * u, size: 11 * u, color: Palette.highlight, maxWidth: plot.width - 12 * u)
        }
        // The film's step: a vertical rule, and a marker on each run's last logged loss.
        let position = comparison.stepPosition.isFinite ? comparison.stepPosition : Double(comparison.step)
        let x = min(max(px(position), plot.x), plot.maxX)
        context.line(from: (x, plot.y), to: (x, plot.maxY), Palette.ink.withAlpha(0.35), width: 1 * u)
        var latest: [String] = []
        for (run, now) in current.enumerated() {
            let last = now.training.last(where: { $0.loss.isFinite })
            if let last {
                context.circle(center: (px(Double(last.step)), py(min(max(last.loss, bottom), top))), radius: 4 * u,
                               fill: Palette.color(forRun: run), stroke: .white, lineWidth: 1.5 * u)
            }
            var reading = last.map { NumberText.significant($0.loss, 4) } ?? ""
            if let eval = now.evaluation.last(where: { $0.loss.isFinite }) {
                reading += (reading.isEmpty ? "eval " : " / ") + NumberText.significant(eval.loss, 4)
            }
            latest.append(reading)
        }
        drawLossKey(runs: current.count, readings: latest, evaluation: hasEvaluation,
                    from: area.x + titleWidth + 16 * u, to: plot.maxX, baseline: area.y + 14 * u, u: u)
    }

    /// The loss chart's key in its title row, right-aligned: each run's line, name and last loss,
    /// then how evaluation loss is drawn. What does not fit gives way: readings, then the names' ends.
    private func drawLossKey(runs: Int, readings: [String], evaluation: Bool, from left: Double, to right: Double, baseline: Double,
                             u: Double) {
        guard runs > 0 else { return }
        let size = 12 * u, line = 16 * u, gap = 14 * u
        let names = (0..<runs).map { runName($0) }
        let evaluationText = evaluation ? "dashed: evaluation" : ""
        let evaluationWidth = evaluation ? context.textWidth(evaluationText, size: 11 * u) + gap : 0
        func width(_ run: Int, reading: Bool) -> Double {
            line + 5 * u + context.textWidth(names[run], size: size, weight: .bold)
                + (reading && !readings[run].isEmpty ? 5 * u + context.textWidth(readings[run], size: size) : 0)
        }
        let room = right - left - evaluationWidth - Double(runs - 1) * gap
        var withReadings = true
        var widths = (0..<runs).map { width($0, reading: true) }
        if widths.reduce(0, +) > room {
            withReadings = false
            widths = (0..<runs).map { width($0, reading: false) }
        }
        // Names cut to equal shares where even they do not fit.
        let share = widths.reduce(0, +) > room ? max(room / Double(runs), 0) : .infinity
        widths = widths.map { min($0, share) }
        var x = right - evaluationWidth - widths.reduce(0, +) - Double(runs - 1) * gap
        for run in 0..<runs {
            let end = x + widths[run]
            context.line(from: (x, baseline - 4 * u), to: (x + line, baseline - 4 * u), Palette.color(forRun: run), width: 2.5 * u)
            var textX = x + line + 5 * u
            textX += context.text(names[run], x: textX, y: baseline, size: size, weight: .bold, color: Palette.ink,
                                  maxWidth: max(end - textX, 0))
            if withReadings && !readings[run].isEmpty {
                context.text(readings[run], x: textX + 5 * u, y: baseline, size: size, color: Palette.secondaryInk)
            }
            x = end + gap
        }
        if evaluation {
            context.text(evaluationText, x: right, y: baseline, size: 11 * u, color: Palette.secondaryInk, anchor: .right)
        }
    }

    // MARK: Leaderboards

    /// One shared board (the first panel's, with its fade), or a compact list per run side by side
    /// under one title, each headed by its run's name.
    private func drawComparisonLeaderboards(_ comparison: ComparisonContent, in area: Rect, u: Double) throws(CanvasError) {
        guard let first = comparison.panels.first else { return }
        if setting.comparison?.sharedLeaderboard ?? true || comparison.panels.count == 1 {
            let slots = max(first.content.leaderboard.entries.count, first.content.incoming?.entries.count ?? 0)
            // One column where every row stays legible in it, two otherwise.
            let oneColumn = (area.height - 40 * u) / (42 * u) >= Double(slots)
            try drawLeaderboard(first.content, in: area, compact: oneColumn, u: u)
            return
        }
        let blend = min(max(first.content.blend.isNaN ? 0 : first.content.blend, 0), 1)
        let measure = (blend < 0.5 ? first.content.leaderboard : first.content.incoming ?? first.content.leaderboard).kind
        drawLeaderboardHeading(measure, in: area, u: u)
        let runs = comparison.panels.count
        let gap = 12 * u
        let width = (area.width - gap * Double(runs - 1)) / Double(runs)
        for (run, panel) in comparison.panels.enumerated() {
            let column = Rect(x: area.x + Double(run) * (width + gap), y: area.y + 44 * u, width: width, height: area.height - 44 * u)
            let baseline = column.y + 13 * u
            context.line(from: (column.x, baseline - 4.5 * u), to: (column.x + 12 * u, baseline - 4.5 * u), Palette.color(forRun: run),
                         width: 3 * u)
            let scale = leaderboardScale(panel.content).map { "  ×\($0)" } ?? ""
            context.text(runName(run), keeping: scale, x: column.x + 17 * u, y: baseline, size: 13 * u, weight: .bold, color: Palette.ink,
                         maxWidth: column.width - 17 * u)
            try drawLeaderboardRows(panel.content, in: column, top: column.y + 20 * u, compact: true, u: u)
        }
    }
}

/// Where each part of a comparison frame goes, in pixels; everything scales with the frame height
/// as `FrameLayout` does. The scatter panels side by side under their headers, the loss chart
/// below them across their width; to the right, the class legend over the leaderboards.
struct ComparisonLayout {
    let width: Double
    let height: Double
    let unit: Double
    let margin: Double
    /// One per run, left first: the header over each panel, and the panel.
    let headers: [Rect]
    let panels: [Rect]
    let legend: Rect
    let legendColumns: Int
    let lossChart: Rect
    let leaderboard: Rect

    /// The thinnest legend row at 720p: its text stays 11 px and more.
    static let legendRow = 16.0

    init(width: Double, height: Double, panels count: Int, legendEntries: Int) {
        self.width = width
        self.height = height
        let u = min(height / 720, width / 1280 * 1.2)
        unit = u
        margin = 24 * u
        let top = 76 * u, headerHeight = 28 * u
        let panelTop = top + headerHeight
        let runs = max(count, 1)
        let gap = 16 * u, rightGap = 20 * u, chartGap = 14 * u
        let rightWanted = min(350 * u, width * 0.3)
        let byWidth = (width - 2 * margin - rightWanted - rightGap - Double(runs - 1) * gap) / Double(runs)
        let byHeight = height - panelTop - margin - chartGap - 150 * u
        let side = max(min(byWidth, byHeight).rounded(.down), 0)
        let left = 24 * u
        panels = (0..<runs).map { Rect(x: left + Double($0) * (side + gap), y: panelTop, width: side, height: side) }
        headers = (0..<runs).map { Rect(x: left + Double($0) * (side + gap), y: top, width: side, height: headerHeight) }
        let panelsRight = left + Double(runs) * side + Double(runs - 1) * gap
        let chartTop = panelTop + side + chartGap
        lossChart = Rect(x: margin, y: chartTop, width: panelsRight - margin, height: height - margin - chartTop)
        let rightX = panelsRight + rightGap
        let rightWidth = max(width - margin - rightX, 0)
        legendColumns = legendEntries > 4 && rightWidth >= 240 * u ? 2 : 1
        let rows = (legendEntries + legendColumns - 1) / legendColumns
        let legendHeight = legendEntries == 0 ? 0 : min(24 * u + Double(rows) * 19 * u, (height - top - margin) * 0.4)
        legend = Rect(x: rightX, y: top, width: rightWidth, height: legendHeight)
        let boardTop = legendEntries == 0 ? top : legend.maxY + 18 * u
        leaderboard = Rect(x: rightX, y: boardTop, width: rightWidth, height: max(height - margin - boardTop, 0))
    }
}
