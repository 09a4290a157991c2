import Canvas
import RunFormat

extension FrameCompositor {
    // MARK: Loss chart

    func drawLossChart(_ frame: FrameContent, u: Double) {
        let area = layout.lossChart
        context.text("Training loss", x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        let whole = setting.wholeRunLosses ?? frame.losses
        let current = frame.losses
        guard let axes = lossAxes(area: area, whole: [whole], current: [current], step: frame.step, u: u) else { return }
        let (plot, bottom, top, note) = (axes.plot, axes.bottom, axes.top, axes.note)
        let (px, py) = drawLossAxes(plot: plot, area: area, minStep: axes.minStep, maxStep: axes.maxStep, bottom: bottom, top: top, u: u)
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
        let x = min(max(px(frame.stepPosition), plot.x), plot.maxX)
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

    /// Where a loss chart in `area` plots and what its axes span: the steps of every finite loss, from 0
    /// to the film's step or the training's last, and the plausible losses (`plausibleRange`); `note`
    /// says how many losses are not shown (non-finite) or clipped. `whole` holds each run's whole
    /// losses when known (else its current ones). Without a finite loss the plot says so, and nil.
    struct LossAxes {
        let plot: Rect
        let minStep: Double
        let maxStep: Double
        let bottom: Double
        let top: Double
        let note: String
    }

    func lossAxes(area: Rect, whole: [LossHistory], current: [LossHistory], step: Int, u: Double) -> LossAxes? {
        let plot = Rect(x: area.x + 46 * u, y: area.y + 28 * u, width: area.width - 52 * u, height: area.height - 62 * u)
        let finite = zip(whole, current).flatMap { $0.training + $0.evaluation + $1.training + $1.evaluation }.filter { $0.loss.isFinite }
        // NaN and infinite losses have no place on the axis: they are left out, and the chart says how many.
        let nonFinite = whole.reduce(0) { $0 + ($1.training + $1.evaluation).count { !$0.loss.isFinite } }
        let omission = nonFinite == 0 ? nil : "\(nonFinite) non-finite loss\(nonFinite == 1 ? "" : "es") not shown"
        guard !finite.isEmpty else {
            context.fill(plot, Palette.panel)
            context.strokeRect(plot, Palette.rule, width: 1)
            context.text(omission ?? "no loss logged", x: plot.x + plot.width / 2, y: plot.y + plot.height / 2, size: 13 * u,
                         color: Palette.faintInk, anchor: .center, maxWidth: plot.width)
            return nil
        }
        let maxStep = Double(max(finite.map(\.step).max()!, step, setting.finalStep ?? 1, 1))
        let minStep = Double(min(finite.map(\.step).min()!, 0))
        let shown = Self.plausibleRange(finite.map(\.loss))
        let bottom = min(0, shown.lowerBound)
        // 8% headroom above the highest loss, capped at the largest Double rather than infinity.
        let highest = shown.upperBound
        let top = highest > 0 ? min(highest * 1.08, .greatestFiniteMagnitude) : bottom < 0 ? 0 : 1
        let clipped = whole.reduce(0) { $0 + ($1.training + $1.evaluation).count { $0.loss.isFinite && !shown.contains($0.loss) } }
        let note = [omission, clipped == 0 ? nil : "\(clipped) clipped"].compactMap { $0 }.joined(separator: " · ")
        return LossAxes(plot: plot, minStep: minStep, maxStep: maxStep, bottom: bottom, top: top, note: note)
    }

    /// The chart's grid, ticks and axis names around `plot`, for steps from `minStep` to `maxStep`
    /// and losses from `bottom` to `top`; returns the scales from step and loss to pixels.
    func drawLossAxes(plot: Rect, area: Rect, minStep: Double, maxStep: Double, bottom: Double, top: Double,
                      u: Double) -> (AxisScale, AxisScale) {
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
        return (px, py)
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
}
