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
    /// The point of the PCA plane at the middle of the view: the coordinate-wise median,
    /// which one far outlier cannot drag the way it drags the mean.
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
/// blob-like frames to a dot. Each frame is instead centred on its coordinate-wise median and
/// divided by a robust radius (the 99th percentile of distances from that centre), so one far
/// outlier can neither pan nor re-zoom the film, and the view bounds stay fixed for the whole
/// run, known before the first frame (which live rendering needs).
public struct Aligner: Sendable {
    public let target: AlignmentTarget
    private var previous: PlanarPoints?
    private let finalScores: PlanarPoints?

    /// - Parameter finalScores: the last checkpoint's PCA scores; required for `.last`.
    public init(target: AlignmentTarget, finalScores: PlanarPoints? = nil) {
        precondition(target != .last || finalScores != nil, "--align last needs the final checkpoint")
        self.target = target
        self.finalScores = finalScores
    }

    public mutating func align(_ scores: PlanarPoints) throws -> AlignedFrame {
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
        let centre = (x: Self.median(scores.x), y: Self.median(scores.y))
        let shifted = PlanarPoints(x: scores.x.map { Float(Double($0) - centre.x) }, y: scores.y.map { Float(Double($0) - centre.y) })
        let scale = Self.robustRadius(shifted)
        var display = fit.rotate(shifted)
        let inverse = Float(1 / scale)
        for i in 0..<display.count {
            display.x[i] *= inverse
            display.y[i] *= inverse
        }
        previous = display
        return AlignedFrame(display: display, centre: centre, fit: fit, frobeniusNorm: sumSquares.squareRoot(), displayScale: scale)
    }

    static func median(_ values: [Float]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? Double(sorted[mid]) : (Double(sorted[mid - 1]) + Double(sorted[mid])) / 2
    }

    static func centred(_ p: PlanarPoints) -> PlanarPoints {
        let n = Double(max(p.count, 1))
        let mx = Float(p.x.reduce(0.0) { $0 + Double($1) } / n)
        let my = Float(p.y.reduce(0.0) { $0 + Double($1) } / n)
        return PlanarPoints(x: p.x.map { $0 - mx }, y: p.y.map { $0 - my })
    }

    /// The 99th percentile of distances from the origin (linear interpolation, as numpy's),
    /// falling back to the largest distance, then to 1, when the points have no spread.
    static func robustRadius(_ p: PlanarPoints) -> Double {
        guard p.count > 0 else { return 1 }
        var radii = [Double](repeating: 0, count: p.count)
        for i in 0..<p.count {
            let x = Double(p.x[i]), y = Double(p.y[i])
            radii[i] = (x * x + y * y).squareRoot()
        }
        radii.sort()
        let position: Double = 0.99 * Double(radii.count - 1)
        let lower = Int(position), upper = min(lower + 1, radii.count - 1)
        let fraction: Double = position - Double(lower)
        let q: Double = radii[lower] + (radii[upper] - radii[lower]) * fraction
        if q > 0 { return q }
        return radii.last! > 0 ? radii.last! : 1
    }
}
