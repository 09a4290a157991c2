import Canvas
import LinearAlgebra
import RunFormat

/// The film's closing frame (`--summary-frame`): a map of the whole run in the manner of dataset
/// cartography (Swayamdipta et al. 2020), with kNN label votes in place of the model's
/// probabilities. Each sample sits at its label agreement's variability (x) and mean (y) over
/// the checkpoints; the regions easy, ambiguous and hard are marked with their counts, and the
/// samples most likely mislabelled are listed.
public struct SummaryMap: Sendable {
    public enum Region: Int, Sendable, CaseIterable {
        case easy, ambiguous, hard
    }

    /// x: the variability (standard deviation) of each sample's label agreement; y: its mean.
    public var points: PlanarPoints
    public var regions: [Region]
    /// From this variability on, a sample is ambiguous.
    public var ambiguousVariability: Double
    /// Below this mean agreement (and not ambiguous), a sample is hard.
    public var easyAgreement: Double
    public var checkpoints: Int
    public var lastStep: Int
    /// The lowest kNN-AUM over the run: the likeliest label issues.
    public var worst: Leaderboard

    public init(points: PlanarPoints, regions: [Region], ambiguousVariability: Double, easyAgreement: Double, checkpoints: Int,
                lastStep: Int, worst: Leaderboard) {
        self.points = points
        self.regions = regions
        self.ambiguousVariability = ambiguousVariability
        self.easyAgreement = easyAgreement
        self.checkpoints = checkpoints
        self.lastStep = lastStep
        self.worst = worst
    }
}

extension FrameCompositor {
    /// Draws the summary map onto `surface` and checks Cairo's status.
    public func drawSummary(_ map: SummaryMap) throws(CanvasError) {
        let u = layout.unit
        context.fill(Rect(x: 0, y: 0, width: layout.width, height: layout.height), .white)
        let x = layout.margin
        let headingWidth = context.text("Training dynamics", x: x, y: 34 * u, size: 24 * u, weight: .bold, color: Palette.ink)
        context.text("\(map.checkpoints) checkpoints to step \(NumberText.grouped(map.lastStep))", x: x + headingWidth + 18 * u, y: 34 * u,
                     size: 15 * u, color: Palette.secondaryInk, maxWidth: layout.width - x - headingWidth - 30 * u - layout.margin)
        context.text("Each of \(NumberText.grouped(map.points.count)) samples: how often its nearest neighbours shared its label over the run (mean), and how much that swung",
                     x: x, y: 58 * u, size: 13 * u, color: Palette.secondaryInk, maxWidth: layout.width - 2 * layout.margin)
        drawMap(map, u: u)
        drawLegend(u: u)
        drawRegionKey(map, u: u)
        let list = FrameContent(step: map.lastStep, epoch: nil, checkpointIndex: max(map.checkpoints - 1, 0), points: map.points,
                                leaderboard: map.worst, losses: LossHistory())
        try drawLeaderboard(list, u: u)
        drawnLabels = []
        try context.checkStatus()
    }

    private func drawMap(_ map: SummaryMap, u: Double) {
        let box = layout.scatter
        context.fill(box, .white)
        let plot = Rect(x: box.x + 48 * u, y: box.y + 8 * u, width: box.width - 58 * u, height: box.height - 52 * u)
        context.fill(plot, Palette.panel)
        let finite = map.points.x.filter(\.isFinite)
        // Agreement is a fraction, so its standard deviation is at most 0.5.
        let xMax = max(0.5, Double(finite.max() ?? 0))
        let px = AxisScale(from: 0, to: xMax, onto: plot.x, length: plot.width)
        let py = AxisScale(from: 0, to: 1, onto: plot.maxY, length: -plot.height)

        // The regions' borders, and their names with counts.
        let split = px(map.ambiguousVariability), floor = py(map.easyAgreement)
        context.fill(Rect(x: split, y: plot.y, width: plot.maxX - split, height: plot.height), Color(hex: 0xF1F1F1))
        context.setDash([4 * u, 4 * u])
        context.line(from: (split, plot.y), to: (split, plot.maxY), Palette.faintInk, width: 1)
        context.line(from: (plot.x, floor), to: (split, floor), Palette.faintInk, width: 1)
        context.setDash([])
        for tick in Ticks.values(from: 0, to: 1, about: 5) {
            context.line(from: (plot.x - 4 * u, py(tick)), to: (plot.x, py(tick)), Palette.faintInk, width: 1)
            context.text(Ticks.label(tick, step: 0.2), x: plot.x - 7 * u, y: py(tick) + 4 * u, size: 11 * u, color: Palette.secondaryInk,
                         anchor: .right)
        }
        let xStep = Ticks.step(from: 0, to: xMax, about: 5) ?? 0.1
        for tick in Ticks.values(from: 0, to: xMax, about: 5) {
            context.line(from: (px(tick), plot.maxY), to: (px(tick), plot.maxY + 4 * u), Palette.faintInk, width: 1)
            context.text(Ticks.label(tick, step: xStep), x: px(tick), y: plot.maxY + 16 * u, size: 11 * u, color: Palette.secondaryInk,
                         anchor: .center)
        }
        context.strokeRect(plot, Palette.rule, width: 1)
        context.text("variability of label agreement", x: plot.x + plot.width / 2, y: plot.maxY + 33 * u, size: 12 * u,
                     color: Palette.secondaryInk, anchor: .center)
        context.verticalText("mean label agreement", x: box.x + 10 * u, y: plot.y + plot.height / 2, size: 12 * u, color: Palette.secondaryInk)

        let n = map.points.count
        let inside = Rect(x: plot.x + 1, y: plot.y + 1, width: plot.width - 2, height: plot.height - 2)
        let radius = (n <= 2_000 ? 3.2 : n <= 6_000 ? 2.5 : n <= 20_000 ? 2.0 : 1.5) * u
        let colours = (0..<max(setting.classNames.count, 1)).map { Palette.color(forClass: $0) }
        surface.withMutablePixels { pixels, stride in
            if DensityRasterizer.prefersDensity(pointCount: n, dotRadius: radius, clip: inside) {
                density.classColours = colours
                let transform = DensityRasterizer.Transform(scaleX: plot.width / xMax, offsetX: plot.x, scaleY: -plot.height, offsetY: plot.maxY)
                density.draw(x: map.points.x, y: map.points.y, classes: setting.labels?.count == n ? setting.labels : nil,
                             transform: transform, clip: inside, into: pixels, stride: stride)
                return
            }
            let rasterizer = DotRasterizer(radius: radius, clip: inside)
            let inks = colours.map { DotRasterizer.Ink($0.withAlpha(0.6)) }
            for i in 0..<n {
                let ink = label(of: i).map { inks[(($0 % inks.count) + inks.count) % inks.count] } ?? inks[0]
                rasterizer.draw(cx: px(Double(map.points.x[i])), cy: py(Double(map.points.y[i])), ink: ink, into: pixels, stride: stride)
            }
        }

        var counts = [Int](repeating: 0, count: SummaryMap.Region.allCases.count)
        for region in map.regions { counts[region.rawValue] += 1 }
        func name(_ region: SummaryMap.Region, _ x: Double, _ y: Double, anchor: TextAnchor) {
            let text = "\(Self.regionName(region))  \(NumberText.grouped(counts[region.rawValue]))"
            let width = context.textWidth(text, size: 13 * u, weight: .bold)
            let left = anchor == .right ? x - width : x
            context.fill(Rect(x: left - 4 * u, y: y - 13 * u, width: width + 8 * u, height: 18 * u), Color.white.withAlpha(0.85))
            context.text(text, x: x, y: y, size: 13 * u, weight: .bold, color: Palette.ink, anchor: anchor)
        }
        name(.easy, split - 8 * u, plot.y + 20 * u, anchor: .right)
        name(.hard, split - 8 * u, plot.maxY - 10 * u, anchor: .right)
        name(.ambiguous, plot.maxX - 8 * u, plot.y + 20 * u, anchor: .right)
    }

    static func regionName(_ region: SummaryMap.Region) -> String {
        switch region {
        case .easy: "easy"
        case .ambiguous: "ambiguous"
        case .hard: "hard / likely mislabelled"
        }
    }

    /// What the regions mean, where the loss chart stands in the film's frames.
    private func drawRegionKey(_ map: SummaryMap, u: Double) {
        let area = layout.lossChart
        context.text("Reading the map", x: area.x, y: area.y + 14 * u, size: 15 * u, weight: .bold, color: Palette.ink)
        let lines = [
            ("easy", "neighbours shared its label throughout"),
            ("ambiguous", "the vote swung (variability ≥ \(Ticks.formatted(map.ambiguousVariability, decimals: 2)))"),
            ("hard", "most neighbours had another label (mean < \(Ticks.formatted(map.easyAgreement, decimals: 2)))"),
        ]
        var y = area.y + 42 * u
        for (term, meaning) in lines {
            let width = context.text(term, x: area.x, y: y, size: 13 * u, weight: .bold, color: Palette.ink)
            context.text(" " + meaning, x: area.x + width, y: y, size: 13 * u, color: Palette.secondaryInk, maxWidth: area.width - width)
            y += 22 * u
        }
        context.text("Review the hard samples for label errors first.",
                     x: area.x, y: y + 6 * u, size: 12 * u, color: Palette.secondaryInk, maxWidth: area.width)
    }
}
