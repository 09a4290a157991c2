import LinearAlgebra

/// Which frame each checkpoint's projection is rotated onto.
public enum AlignmentTarget: String, Sendable, CaseIterable {
    /// Each frame onto the previous aligned frame (the first stays as it is). Works live.
    case previous
    /// Every frame onto the final checkpoint's projection. Needs the whole run up front.
    case last
    /// No rotation: the raw PCA axes (sign-stabilised by the PCA sign rule only).
    case none
}

/// One checkpoint's projection ready to draw, and how it was obtained.
public struct AlignedFrame: Sendable {
    /// Display coordinates: `(scores - centre) * rotation^T / displayScale`.
    public let display: PlanarPoints
    /// The point of the PCA plane at the middle of the view: on each screen axis, halfway between
    /// the 1st and 99th percentiles, so the cloud sits in the middle and one far outlier cannot drag it.
    public let centre: (x: Double, y: Double)
    /// The Procrustes fit onto the target (identity for `.none`).
    public let fit: ProcrustesFit
    /// The Frobenius norm of the centred PCA scores (scipy's standardisation divisor).
    public let frobeniusNorm: Double
    /// The 99th percentile of the points' distances from `centre`: one unit on screen.
    public let displayScale: Double
}

/// Rotates each checkpoint's PCA scores onto its target so the film neither flips nor jumps.
///
/// Rotation (and reflection) follows scipy's Procrustes, but the film does not use scipy's
/// scale: scipy shrinks a frame by how well it matches its target, which collapses the early,
/// blob-like frames to a dot. Each frame is instead centred on its robust mid-range (halfway
/// between the 1st and 99th percentiles along each screen axis) and divided by a robust radius
/// (the 99th percentile of distances from that centre), so one far outlier can neither pan nor
/// re-zoom the film, and the view bounds stay fixed for the whole run, known before the first
/// frame (which live rendering needs).
public struct Aligner: Sendable {
    public let target: AlignmentTarget
    private var previous: PlanarPoints?
    private let finalScores: PlanarPoints?

    /// - Parameter finalScores: the last checkpoint's PCA scores; required for `.last`.
    public init(target: AlignmentTarget, finalScores: PlanarPoints? = nil) {
        precondition(target != .last || finalScores != nil, "aligning onto the last checkpoint needs its scores")
        self.target = target
        self.finalScores = finalScores
    }

    /// - Throws: `AlignmentError` when the scores are not finite or have no spread to show.
    public mutating func align(_ scores: PlanarPoints) throws -> AlignedFrame {
        guard scores.x.allSatisfy(\.isFinite) && scores.y.allSatisfy(\.isFinite) else { throw AlignmentError.nonFinite }
        let centred = Self.centred(scores)
        let fit: ProcrustesFit
        switch target {
        case .none: fit = .identity
        case .last: fit = try ProcrustesFit(target: finalScores!, source: centred)
        case .previous: fit = try ProcrustesFit(target: previous ?? centred, source: centred)
        }
        var sumSquares = 0.0
        for i in 0..<centred.count {
            sumSquares += Double(centred.x[i]) * Double(centred.x[i]) + Double(centred.y[i]) * Double(centred.y[i])
        }
        let rotated = fit.rotate(centred)
        let middle = (x: Self.midRange(rotated.x), y: Self.midRange(rotated.y))
        // Centred and scaled in double precision: float32 would lose tiny spreads and overflow on huge ones.
        var distances = [Double](repeating: 0, count: rotated.count)
        for i in 0..<rotated.count {
            let x = Double(rotated.x[i]) - middle.x, y = Double(rotated.y[i]) - middle.y
            distances[i] = (x * x + y * y).squareRoot()
        }
        let scale = Self.robustRadius(distances)
        guard scale.isFinite else { throw AlignmentError.nonFinite }
        // Below float32's normal range, 1 / scale overflows it: nothing sensible can be drawn.
        guard scale >= Double(Float.leastNormalMagnitude) else { throw AlignmentError.noSpread }
        var display = rotated
        for i in 0..<display.count {
            display.x[i] = Self.float((Double(rotated.x[i]) - middle.x) / scale)
            display.y[i] = Self.float((Double(rotated.y[i]) - middle.y) / scale)
        }
        guard display.x.allSatisfy(\.isFinite) && display.y.allSatisfy(\.isFinite) else { throw AlignmentError.nonFinite }
        previous = display
        // The screen middle back in PCA coordinates: mean + middle * R (R is orthogonal).
        let r = fit.rotation
        let mean = Self.mean(scores)
        let centre = (x: mean.x + middle.x * r[0] + middle.y * r[2], y: mean.y + middle.x * r[1] + middle.y * r[3])
        return AlignedFrame(display: display, centre: centre, fit: fit, frobeniusNorm: sumSquares.squareRoot(), displayScale: scale)
    }

    /// Halfway between the 1st and 99th percentiles.
    static func midRange(_ values: [Float]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return (percentile(sorted, 0.01) + percentile(sorted, 0.99)) / 2
    }

    /// numpy's default (linear) percentile of sorted values.
    static func percentile<T: BinaryFloatingPoint>(_ sorted: [T], _ q: Double) -> Double {
        let position = q * Double(sorted.count - 1)
        let lower = Int(position), upper = min(lower + 1, sorted.count - 1)
        let fraction = position - Double(lower)
        return Double(sorted[lower]) + (Double(sorted[upper]) - Double(sorted[lower])) * fraction
    }

    static func mean(_ p: PlanarPoints) -> (x: Double, y: Double) {
        let n = Double(max(p.count, 1))
        return (p.x.reduce(0.0) { $0 + Double($1) } / n, p.y.reduce(0.0) { $0 + Double($1) } / n)
    }

    static func centred(_ p: PlanarPoints) -> PlanarPoints {
        let m = mean(p)
        return PlanarPoints(x: p.x.map { Float(Double($0) - m.x) }, y: p.y.map { Float(Double($0) - m.y) })
    }

    /// The 99th percentile of `distances` (linear interpolation, as numpy's), falling back to the
    /// largest when 99% coincide; 0 when all do.
    static func robustRadius(_ distances: [Double]) -> Double {
        let radii = distances.sorted()
        guard let largest = radii.last else { return 0 }
        let q = percentile(radii, 0.99)
        return q > 0 ? q : largest
    }

    /// `value` in float32, far points clamped to its largest finite values (they sit on the view's
    /// border either way); NaN stays NaN.
    static func float(_ value: Double) -> Float {
        Float(min(max(value, -Double(Float.greatestFiniteMagnitude)), Double(Float.greatestFiniteMagnitude)))
    }
}

/// Why a checkpoint's projection cannot be drawn.
public enum AlignmentError: Error, Equatable, CustomStringConvertible {
    /// The points' robust radius is zero or too small for float32 display coordinates.
    case noSpread
    /// A PCA score (or a coordinate computed from it) is NaN or infinite.
    case nonFinite

    public var description: String {
        switch self {
        case .noSpread: return "the embeddings have no spread to project (all rows equal or values too small)"
        case .nonFinite: return "the projection has NaN or infinite coordinates (non-finite or overflowing embeddings)"
        }
    }
}
