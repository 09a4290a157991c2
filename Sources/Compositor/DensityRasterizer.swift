import Canvas
import Dispatch
import LinearAlgebra

/// Draws a dense scatter as a density image, as datashader does: points are counted per pixel, each
/// pixel takes the count-weighted mix of its points' class colours, and its opacity grows with its
/// count, so that 50,000 to 1,000,000 points show their structure where dots would merge into a blot.
///
/// Per pixel the grid keeps, in 8 bytes, the count and the sums of the points' red, green and blue
/// (a count per class would cost 33 times as much); a pixel's 257th point moves those into a side
/// table of 64-bit sums, so nothing overflows and no count is lost. The grid is reused from frame
/// to frame: make one rasterizer and draw every frame with it, on one thread at a time. A clip of
/// more than `maximumBins` pixels is counted in squares of 2 x 2 pixels (or 4 x 4, ...), which bounds
/// the grid at 32 MiB, plus 8 MiB for sorting the points.
///
/// Adding a million points one by one to an 8 MiB grid waits on memory for most of them. So each
/// point's cell is first computed, the points are sorted by band of rows (256 KiB of grid, half a
/// core's L2 cache), and each band is emptied (which brings it into the cache at the memory's full
/// speed), its points added, and its counts tallied for the tone map while it is still there.
///
/// The opacity comes from histogram equalisation of the counts over the non-empty pixels (datashader's
/// `how='eq_hist'`): a pixel's opacity is its count's rank among them, from `minimumOpacity` for the
/// sparsest to 1 for the densest. A logarithm of counts that span 1 to 10,000 still leaves most
/// pixels of a cluster one even shade and the outskirts faint; ranks spread every level of density
/// over the whole range, and, being ranks, they barely change from one frame of a film to the next.
public final class DensityRasterizer {
    /// An affine map from data coordinates to pixels: `x * scaleX + offsetX`, `y * scaleY + offsetY`.
    public struct Transform: Sendable, Equatable {
        public var scaleX, offsetX, scaleY, offsetY: Double

        public init(scaleX: Double = 1, offsetX: Double = 0, scaleY: Double = 1, offsetY: Double = 0) {
            self.scaleX = scaleX
            self.offsetX = offsetX
            self.scaleY = scaleY
            self.offsetY = offsetY
        }

        public static let identity = Transform()
    }

    /// What one `draw` did with the points.
    public struct Summary: Sendable, Equatable {
        /// Points counted into the clip.
        public var drawn = 0
        /// Finite points outside the clip (the caller marks those at the edge).
        public var outside = 0
        /// Points with a NaN or infinite coordinate (or one the transform took there).
        public var nonFinite = 0
        /// Non-empty pixels (grid cells, when the clip is counted in squares).
        public var filledPixels = 0
        /// The most points in one pixel (cell).
        public var densestPixel = 0

        public init() {}
    }

    /// The most grid cells: 2048 x 2048, 32 MiB. A larger clip is counted in squares of pixels.
    public static let maximumBins = 1 << 22

    /// The class colours used: a point's colour index has 8 bits, shared with `unlabelled`.
    public static let mostClassColours = 255

    /// The colour of points of class k is `classColours[k % count]` (wrapping like
    /// `Palette.color(forClass:)`, negative classes included; at most the first `mostClassColours`
    /// count); of points without a class, `unlabelled`. Alpha is ignored: the density sets the opacity.
    public var classColours: [Color] { didSet { makeTable() } }
    public var unlabelled: Color { didSet { makeTable() } }
    /// The opacity of the sparsest pixels, 0...1, so that a lone point stays visible.
    public var minimumOpacity: Double

    /// What one point of each colour adds to a cell: the class colours, then `unlabelled`.
    private var increments: [UInt64] = []

    // A cell, in 64 bits: a flag for a spilled cell (63), the count (48...62, at most 257), and
    // the sums of red (32...47), green (16...31) and blue (0...15), each at most 257 x 255 = 65535.
    static let countMask: UInt64 = 0x7FFF << 48
    static let spilledFlag: UInt64 = 1 << 63
    static let spillCount: UInt64 = 257

    /// A spilled cell's earlier points, with room for any number.
    struct Spill {
        var count: UInt64 = 0, red: UInt64 = 0, green: UInt64 = 0, blue: UInt64 = 0
    }

    // The grid: cells of `1 << shift` pixels square, `columns x rows` of them. Left as it is after
    // a draw; `fresh` until emptied for the next.
    private var grid: UnsafeMutablePointer<UInt64>
    private var capacity = 0  // cells
    private var fresh = true
    private var spills: [Int: Spill] = [:]
    private var left = 0, top = 0, width = 0, height = 0, shift = 0, columns = 0, rows = 0

    // Bands of `1 << bandShift` rows of cells, at most `bandCells` cells (so at most 256 bands, and
    // a cell within a band fits the key's 15 bits); no bands (points added one by one) when a single
    // row of cells is wider than that.
    private var banded = false
    private var bandShift = 0, bands = 0
    private var bandStarts: [Int] = []
    /// One chunk's points: band << 23 | cell within the band << 8 | colour index; then sorted by band, less the band.
    private var keys: UnsafeMutablePointer<UInt32>
    private var sorted: UnsafeMutablePointer<UInt32>
    private var keyCapacity = 0
    static let bandCells = 1 << 15
    /// Points sorted at a time (4 MiB of keys); internal so that the tests can make it small.
    var chunkPoints = 1 << 20
    /// Chunks of at least this many points are keyed and sorted on two threads (internal, for the tests).
    var parallelPoints = 1 << 16

    // The histogram of counts over the non-empty cells, and what the tone map needs of it.
    private var histogram: [UInt32] = []
    private var tallied = false
    private var filled = 0
    private var densest: UInt64 = 0, sparsest = UInt64.max
    private var opacity: [UInt64] = []  // 0...256, by count
    private var scale: [UInt64] = []  // opacity x 2^32 / count, by count

    /// Counts of at most this many get their own histogram bin; higher ones share the last.
    static let histogramBins = 1 << 16

    public init(classColours: [Color] = Palette.classes, unlabelled: Color = Palette.color(forClass: 0), minimumOpacity: Double = 0.3) {
        self.classColours = classColours
        self.unlabelled = unlabelled
        self.minimumOpacity = minimumOpacity
        grid = UnsafeMutablePointer<UInt64>.allocate(capacity: 0)
        keys = UnsafeMutablePointer<UInt32>.allocate(capacity: 0)
        sorted = UnsafeMutablePointer<UInt32>.allocate(capacity: 0)
        makeTable()
    }

    deinit {
        grid.deallocate()
        keys.deallocate()
        sorted.deallocate()
    }

    private func makeTable() {
        func level(_ component: Double) -> UInt64 { component > 0 ? UInt64((min(component, 1) * 255).rounded()) : 0 }  // NaN reads as 0
        increments = (classColours.prefix(Self.mostClassColours) + [unlabelled]).map {
            1 << 48 | level($0.red) << 32 | level($0.green) << 16 | level($0.blue)
        }
    }

    /// Counts the points inside `clip` (in pixels after `transform`) and blends the density image over
    /// the clip's opaque pixels (`0xAARRGGBB`, `stride` pixels a row), leaving empty pixels as they are.
    ///
    /// Point i has class `classes[i]`; points past the end of `classes`, or all when it is nil, are
    /// unlabelled. Points with a NaN or infinite coordinate, and points outside the clip, are skipped.
    /// The clip is taken in whole pixels (columns `Int(clip.x)..<Int(clip.maxX)`, as `DotRasterizer`
    /// does) and must lie within the pixels.
    @discardableResult
    public func draw(x: [Float], y: [Float], classes: [Int]?, transform: Transform = .identity, clip: Rect,
                     into pixels: UnsafeMutablePointer<UInt32>, stride: Int) -> Summary {
        begin(clip: clip)
        var summary = x.withUnsafeBufferPointer { x in
            y.withUnsafeBufferPointer { y in accumulate(x: x, y: y, classes: classes, transform: transform) }
        }
        composite(into: pixels, stride: stride, summary: &summary)
        return summary
    }

    /// As the `Float` version, for coordinates in `Double`.
    @discardableResult
    public func draw(x: [Double], y: [Double], classes: [Int]?, transform: Transform = .identity, clip: Rect,
                     into pixels: UnsafeMutablePointer<UInt32>, stride: Int) -> Summary {
        begin(clip: clip)
        var summary = x.withUnsafeBufferPointer { x in
            y.withUnsafeBufferPointer { y in accumulate(x: x, y: y, classes: classes, transform: transform) }
        }
        composite(into: pixels, stride: stride, summary: &summary)
        return summary
    }

    /// The expected fraction of `clip`'s pixels that `pointCount` dots of `dotRadius` pixels cover when
    /// spread evenly: `1 - exp(-N pi r^2 / area)`. Clustered points cover less, but overlap more.
    public static func expectedCoverage(pointCount: Int, dotRadius: Double, clip: Rect) -> Double {
        let area = clip.width * clip.height
        guard pointCount > 0, dotRadius > 0, area > 0, area.isFinite else { return pointCount > 0 && !(area > 0) ? 1 : 0 }
        let covered = Double(pointCount) * Double.pi * min(dotRadius * dotRadius, area) / area  // mean dots over a pixel
        // exp(-covered) without libm: (1 - covered/2^k)^(2^k), within 1e-6 of it.
        var keep = max(1 - covered / 1_048_576, 0)
        for _ in 0..<20 { keep *= keep }
        return min(max(1 - keep, 0), 1)
    }

    /// The suggested choice between dots and density: density from 50,000 points, or when dots would
    /// cover more than half the clip and there is a point per ten pixels of it. Below that density a
    /// density image is mostly pixels of one point each, at the tone map's faintest (10,000 points in
    /// a comparison film's 420-pixel panel), where dots still read.
    public static func prefersDensity(pointCount: Int, dotRadius: Double, clip: Rect) -> Bool {
        guard pointCount < 50_000 else { return true }
        let area = clip.width * clip.height
        return expectedCoverage(pointCount: pointCount, dotRadius: dotRadius, clip: clip) > 0.5
            && !(Double(pointCount) < area / 10)
    }

    // MARK: The three steps (internal, so the tests can look between them)

    /// Sets the grid over `clip`, all cells empty.
    func begin(clip: Rect) {
        // As DotRasterizer: whole pixels, NaN an empty clip, at most a million pixels from the origin.
        func pixel(_ v: Double) -> Int { v.isNaN ? 0 : Int(min(max(v, -1e6), 1e6)) }
        fresh = true
        tallied = false
        spills.removeAll(keepingCapacity: true)
        left = pixel(clip.x)
        top = pixel(clip.y)
        width = max(pixel(clip.maxX) - left, 0)
        height = max(pixel(clip.maxY) - top, 0)
        shift = 0
        while ((width + (1 << shift) - 1) >> shift) * ((height + (1 << shift) - 1) >> shift) > Self.maximumBins { shift += 1 }
        columns = (width + (1 << shift) - 1) >> shift
        rows = (height + (1 << shift) - 1) >> shift
        let cells = columns * rows
        if cells > capacity {
            grid.deallocate()
            grid = UnsafeMutablePointer<UInt64>.allocate(capacity: cells)
            capacity = cells
        }
        banded = cells > 0 && columns <= Self.bandCells
        bandShift = 0
        while banded && columns << (bandShift + 1) <= Self.bandCells { bandShift += 1 }
        bands = banded ? (rows + (1 << bandShift) - 1) >> bandShift : 0
    }

    /// The number of points in cell `index`, spilled ones included.
    private func count(ofCell index: Int, _ value: UInt64) -> UInt64 {
        let narrow = (value & Self.countMask) >> 48
        return value & Self.spilledFlag == 0 ? narrow : narrow + (spills[index]?.count ?? 0)
    }

    /// The count in the cell holding pixel (column, row) of the frame; nil outside the clip.
    func count(column: Int, row: Int) -> Int? {
        let c = column - left, r = row - top
        guard c >= 0, c < width, r >= 0, r < height else { return nil }
        let index = (r >> shift) * columns + (c >> shift)
        return fresh ? 0 : Int(count(ofCell: index, grid[index]))
    }

    /// Adds the points to the grid, a chunk of at most `chunkPoints` at a time. (Inlined into each
    /// `draw`, so that it is compiled for Float and for Double: as a generic function it runs 3
    /// times slower.)
    @inline(__always)
    func accumulate<T: BinaryFloatingPoint>(x: UnsafeBufferPointer<T>, y: UnsafeBufferPointer<T>, classes: [Int]?,
                                            transform: Transform) -> Summary {
        tallied = false
        var summary = Summary()
        let n = min(x.count, y.count)
        let chunk = max(chunkPoints, 1)
        if banded && keyCapacity < min(chunk, n) {
            keys.deallocate()
            sorted.deallocate()
            keyCapacity = min(chunk, n)
            keys = UnsafeMutablePointer<UInt32>.allocate(capacity: keyCapacity)
            sorted = UnsafeMutablePointer<UInt32>.allocate(capacity: keyCapacity)
        }
        (classes ?? []).withUnsafeBufferPointer { classes in
            increments.withUnsafeBufferPointer { increments in
                let points = Points(x: x, y: y, classes: classes, transform: transform, rasterizer: self)
                var start = 0
                while start < n {
                    let end = min(start + chunk, n)
                    if banded {
                        addBanded(points, start..<end, increments: increments, summary: &summary, last: end == n)
                    } else {
                        addDirectly(points, start..<end, increments: increments, summary: &summary)
                    }
                    start = end
                }
            }
        }
        if fresh {
            // No chunk at all (no points): the grid is emptied all the same.
            grid.update(repeating: 0, count: columns * rows)
            fresh = false
        }
        summary.drawn = n - summary.outside - summary.nonFinite
        return summary
    }

    /// The points and where each lands: the one place that maps coordinates to cells.
    private struct Points<T: BinaryFloatingPoint> {
        let x, y: UnsafeBufferPointer<T>
        let classes: UnsafeBufferPointer<Int>
        let sx, ox, sy, oy, x0, y0, x1, y1: Double
        let shift, classCount: Int

        init(x: UnsafeBufferPointer<T>, y: UnsafeBufferPointer<T>, classes: UnsafeBufferPointer<Int>, transform: Transform,
             rasterizer r: DensityRasterizer) {
            (self.x, self.y, self.classes) = (x, y, classes)
            (sx, ox, sy, oy) = (transform.scaleX, transform.offsetX, transform.scaleY, transform.offsetY)
            (x0, y0, x1, y1) = (Double(r.left), Double(r.top), Double(r.left + r.width), Double(r.top + r.height))
            (shift, classCount) = (r.shift, r.increments.count - 1)
        }

        /// Point i's cell (column, row), or nil outside the clip (NaN included: it fails every comparison).
        @inline(__always) func cell(_ i: Int) -> (column: Int, row: Int)? {
            let px = Double(x[i]) * sx + ox, py = Double(y[i]) * sy + oy
            guard px >= x0, px < x1, py >= y0, py < y1 else { return nil }
            return (Int(px - x0) &>> shift, Int(py - y0) &>> shift)  // both >= 0: truncation is floor
        }

        /// Books a point that has no cell.
        func miss(_ i: Int, _ summary: inout Summary) {
            let px = Double(x[i]) * sx + ox, py = Double(y[i]) * sy + oy
            if px.isFinite && py.isFinite { summary.outside += 1 } else { summary.nonFinite += 1 }
        }

        /// Point i's index into the increments; the last one for no class.
        @inline(__always) func colour(_ i: Int) -> Int {
            guard i < classes.count else { return classCount }
            let label = classes[i]
            if label >= 0 && label < classCount { return label }
            return classCount == 0 ? 0 : ((label % classCount) + classCount) % classCount
        }
    }

    /// Adds `increment` to cell `index`, spilling the cell at its 257th point.
    @inline(__always) private func add(_ increment: UInt64, toCell index: Int) {
        let value = grid[index] &+ increment
        if value & Self.countMask >= Self.spillCount << 48 {
            spill(value, index)
        } else {
            grid[index] = value
        }
    }

    private func spill(_ value: UInt64, _ index: Int) {
        spills[index, default: Spill()].count += (value & Self.countMask) >> 48
        spills[index]!.red += value >> 32 & 0xFFFF
        spills[index]!.green += value >> 16 & 0xFFFF
        spills[index]!.blue += value & 0xFFFF
        grid[index] = Self.spilledFlag
    }

    @inline(__always) private func addDirectly<T>(_ points: Points<T>, _ range: Range<Int>, increments: UnsafeBufferPointer<UInt64>,
                                                  summary: inout Summary) {
        if fresh {
            grid.update(repeating: 0, count: columns * rows)
            fresh = false
        }
        for i in range {
            guard let (column, row) = points.cell(i) else {
                points.miss(i, &summary)
                continue
            }
            add(increments[points.colour(i)], toCell: row * columns + column)
        }
    }

    /// Computes each point's key and counts the points per band, sorts the keys by band, then adds
    /// each band's points, emptying the band first on the first chunk. On the last chunk, each
    /// band's cells are tallied for the tone map while still in cache. A large chunk's keys are
    /// computed and sorted by two threads, each over half of its points: every band then holds
    /// the first half's points before the second's, and the sums come out the same.
    @inline(__always) private func addBanded<T>(_ points: Points<T>, _ range: Range<Int>, increments: UnsafeBufferPointer<UInt64>,
                                                summary: inout Summary, last: Bool) {
        let (bandShift, columns, keys, sorted, bands) = (bandShift, columns, keys, sorted, bands)
        let mask = (1 << bandShift) - 1
        let parts = range.count >= parallelPoints ? 2 : 1
        let partSize = (range.count + parts - 1) / parts
        // Per part: its points per band (at band + 1), its keys written, its misses.
        var counts = [Int](repeating: 0, count: parts * (bands + 1))
        var written = [Int](repeating: 0, count: parts)
        var misses = [Summary](repeating: Summary(), count: parts)
        counts.withUnsafeMutableBufferPointer { counts in
            written.withUnsafeMutableBufferPointer { written in
                misses.withUnsafeMutableBufferPointer { misses in
                    let shared = UncheckedSendable((points, keys, counts.baseAddress!, written.baseAddress!, misses.baseAddress!))
                    DispatchQueue.concurrentPerform(iterations: parts) { part in
                        let (points, keys, allCounts, written, misses) = shared.value
                        let counts = allCounts + part * (bands + 1)
                        let first = range.lowerBound + part * partSize, end = min(range.upperBound, first + partSize)
                        let base = part * partSize  // this part's keys start here
                        var m = base
                        for i in first..<end {
                            guard let (column, row) = points.cell(i) else {
                                points.miss(i, &misses[part])
                                continue
                            }
                            let band = row &>> bandShift
                            // Band < 256, cell within it < 2^15, colour < 256: 32 bits.
                            keys[m] = UInt32(truncatingIfNeeded: band &<< 23 | ((row & mask) &* columns &+ column) &<< 8 | points.colour(i))
                            counts[band &+ 1] &+= 1
                            m &+= 1
                        }
                        written[part] = m - base
                    }
                }
            }
        }
        for miss in misses {
            summary.outside += miss.outside
            summary.nonFinite += miss.nonFinite
        }
        // Where each band starts, and where each part's share of it starts.
        bandStarts = [Int](repeating: 0, count: bands + 1)
        var cursors = [Int](repeating: 0, count: parts * bands)
        for band in 0..<bands {
            var start = bandStarts[band]
            for part in 0..<parts {
                cursors[part * bands + band] = start
                start += counts[part * (bands + 1) + band + 1]
            }
            bandStarts[band + 1] = start
        }
        let keyCounts = written
        cursors.withUnsafeMutableBufferPointer { cursors in
            let shared = UncheckedSendable((keys, sorted, cursors.baseAddress!))
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let (keys, sorted, cursors) = shared.value
                let cursor = cursors + part * bands
                for j in part * partSize..<part * partSize + keyCounts[part] {
                    let key = keys[j]
                    let band = Int(key &>> 23)
                    sorted[cursor[band]] = key & 0x7F_FFFF
                    cursor[band] &+= 1
                }
            }
        }
        if last { resetTally() }
        for band in 0..<bands {
            let first = (band << bandShift) * columns, end = min((band + 1) << bandShift, rows) * columns
            if fresh { (grid + first).update(repeating: 0, count: end - first) }
            for e in bandStarts[band]..<bandStarts[band + 1] {
                let entry = sorted[e]
                add(increments[Int(entry & 0xFF)], toCell: first &+ Int(entry &>> 8))
            }
            if last { tally(from: first, to: end) }
        }
        fresh = false
        tallied = last
    }

    private func resetTally() {
        if histogram.isEmpty { histogram = [UInt32](repeating: 0, count: Self.histogramBins + 1) }
        if filled > 0 {
            let bins = UInt64(Self.histogramBins)
            for bin in Int(min(sparsest, bins))...Int(min(densest, bins)) { histogram[bin] = 0 }
        }
        (filled, densest, sparsest) = (0, 0, .max)
    }

    /// Adds cells `from..<to` to the histogram.
    private func tally(from: Int, to: Int) {
        let bins = UInt64(Self.histogramBins)
        var (filled, densest, sparsest) = (filled, densest, sparsest)
        let grid = grid
        histogram.withUnsafeMutableBufferPointer { histogram in
            var cell = from
            while cell < to {
                // Empty stretches, most of a scatter, four cells at a time.
                if cell + 4 <= to && grid[cell] | grid[cell + 1] | grid[cell + 2] | grid[cell + 3] == 0 {
                    cell += 4
                    continue
                }
                let value = grid[cell]
                cell += 1
                guard value != 0 else { continue }
                let count = count(ofCell: cell - 1, value)
                filled &+= 1
                densest = max(densest, count)
                sparsest = min(sparsest, count)
                histogram[Int(min(count, bins))] &+= 1
            }
        }
        (self.filled, self.densest, self.sparsest) = (filled, densest, sparsest)
    }

    /// Blends the grid over the pixels; fills in the summary's pixel counts.
    func composite(into pixels: UnsafeMutablePointer<UInt32>, stride: Int, summary: inout Summary) {
        if fresh {
            grid.update(repeating: 0, count: columns * rows)
            fresh = false
        }
        if !tallied {
            resetTally()
            tally(from: 0, to: columns * rows)
        }
        tallied = false
        summary.filledPixels = filled
        summary.densestPixel = Int(densest)
        guard filled > 0 else { return }

        // For each count from the sparsest to the densest (or the last bin): its opacity 0...256 from
        // the cumulative histogram, and that over the count in 32-bit fixed point. With one count
        // everywhere, every pixel is opaque (as datashader).
        let bins = Self.histogramBins
        let high = Int(min(densest, UInt64(bins))), low = Int(min(sparsest, UInt64(bins)))
        let floor = min(max(minimumOpacity.isNaN ? 0 : minimumOpacity, 0), 1)
        if opacity.count < high + 1 {
            opacity = [UInt64](repeating: 0, count: high + 1)
            scale = [UInt64](repeating: 0, count: high + 1)
        }
        let below = Double(histogram[low])  // the sparsest pixels start the ramp
        let span = Double(filled) - below
        var cumulative = 0.0
        for count in low...high {
            cumulative += Double(histogram[count])
            let rank = span > 0 ? (cumulative - below) / span : 1
            opacity[count] = UInt64(((floor + (1 - floor) * rank) * 256).rounded())
            scale[count] = UInt64((Double(opacity[count]) * 4_294_967_296 / Double(count)).rounded())
        }

        // Each channel: (sum x scale + background x (256 - opacity) x 2^32) / 2^40, which is
        // (mean x opacity + background x (256 - opacity)) / 256 rounded to nearest, without a
        // division: exact, the fixed point's error (below 2^-17 up to 65,536 points in a pixel, 2^-13
        // up to a million) being less than the 2^-10 added to the half. No term reaches 2^49.
        let bias: UInt64 = 1 << 39 | 1 << 30
        let (grid, shift, columns) = (grid, shift, columns)
        opacity.withUnsafeBufferPointer { opacity in
            scale.withUnsafeBufferPointer { scale in
                for r in 0..<height {
                    let row = pixels + (top + r) * stride + left
                    let cellRow = (r &>> shift) &* columns
                    var c = 0
                    while c < width {
                        let index = cellRow &+ c &>> shift
                        // Empty stretches, most of a scatter, four cells at a time.
                        if shift == 0 && c + 4 <= width && grid[index] | grid[index + 1] | grid[index + 2] | grid[index + 3] == 0 {
                            c += 4
                            continue
                        }
                        defer { c += 1 }
                        let value = grid[index]
                        guard value != 0 else { continue }
                        var count = (value & Self.countMask) >> 48
                        var red = value >> 32 & 0xFFFF, green = value >> 16 & 0xFFFF, blue = value & 0xFFFF
                        if value & Self.spilledFlag != 0, let spill = spills[index] {
                            count += spill.count
                            red += spill.red
                            green += spill.green
                            blue += spill.blue
                        }
                        let a: UInt64, s: UInt64
                        if count <= UInt64(bins) {
                            (a, s) = (opacity[Int(count)], scale[Int(count)])
                        } else {
                            a = opacity[bins]
                            s = ((a << 32) + count / 2) / count
                        }
                        let keep = (256 - a) << 32
                        let p = UInt64(row[c])
                        let r = (red &* s &+ (p >> 16 & 0xFF) &* keep &+ bias) >> 40
                        let g = (green &* s &+ (p >> 8 & 0xFF) &* keep &+ bias) >> 40
                        let b = (blue &* s &+ (p & 0xFF) &* keep &+ bias) >> 40
                        row[c] = UInt32(truncatingIfNeeded: 0xFF00_0000 | r << 16 | g << 8 | b)
                    }
                }
            }
        }
    }
}

