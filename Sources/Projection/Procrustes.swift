import LinearAlgebra

/// An orthogonal Procrustes fit of one planar point set onto another, with the semantics of
/// `scipy.spatial.procrustes(target, source)`.
///
/// Both sets are centred and scaled to unit Frobenius norm; `rotation` is the orthogonal
/// matrix (reflections allowed) that best maps the standardised source onto the standardised
/// target, `scale` the sum of the singular values of `target^T source` (scipy's `s`), and
/// `disparity` the sum of squared differences after mapping. scipy's transformed source is
/// `standardised(source) * rotation^T * scale`.
public struct ProcrustesFit: Sendable, Equatable {
    /// Row-major 2 x 2 orthogonal matrix `R`; points map as `p * R^T`.
    public let rotation: [Double]
    public let scale: Double
    public let disparity: Double

    public static let identity = ProcrustesFit(rotation: [1, 0, 0, 1], scale: 1, disparity: 0)

    public init(rotation: [Double], scale: Double, disparity: Double) {
        self.rotation = rotation
        self.scale = scale
        self.disparity = disparity
    }

    public init(target: PlanarPoints, source: PlanarPoints) throws {
        precondition(target.count == source.count)
        let a = Standardised(target), b = Standardised(source)
        guard a.norm > 0, b.norm > 0 else { throw ProjectionError.degenerate }
        // M = A^T B, a 2 x 2 matrix; R = U V^T of its SVD.
        var m = [0.0, 0, 0, 0]
        for i in 0..<a.x.count {
            m[0] += a.x[i] * b.x[i]; m[1] += a.x[i] * b.y[i]
            m[2] += a.y[i] * b.x[i]; m[3] += a.y[i] * b.y[i]
        }
        let svd = try SVD2(m)
        let u = svd.u, vt = svd.vt
        let r = [u[0] * vt[0] + u[1] * vt[2], u[0] * vt[1] + u[1] * vt[3],
                 u[2] * vt[0] + u[3] * vt[2], u[2] * vt[1] + u[3] * vt[3]]
        let s = svd.singularValues[0] + svd.singularValues[1]
        var disparity = 0.0
        for i in 0..<a.x.count {
            let px = (b.x[i] * r[0] + b.y[i] * r[1]) * s
            let py = (b.x[i] * r[2] + b.y[i] * r[3]) * s
            disparity += (a.x[i] - px) * (a.x[i] - px) + (a.y[i] - py) * (a.y[i] - py)
        }
        self.init(rotation: r, scale: s, disparity: disparity)
    }

    /// Applies `p * R^T` to centred points.
    public func rotate(_ points: PlanarPoints) -> PlanarPoints {
        let r = rotation
        var out = points
        for i in 0..<points.count {
            let x = Double(points.x[i]), y = Double(points.y[i])
            out.x[i] = Float(x * r[0] + y * r[1])
            out.y[i] = Float(x * r[2] + y * r[3])
        }
        return out
    }
}

/// A point set centred at its mean and divided by its Frobenius norm, in double precision.
struct Standardised {
    var x: [Double]
    var y: [Double]
    let norm: Double

    init(_ points: PlanarPoints) {
        let n = Double(points.count)
        let mx = points.x.reduce(0.0) { $0 + Double($1) } / n
        let my = points.y.reduce(0.0) { $0 + Double($1) } / n
        x = points.x.map { Double($0) - mx }
        y = points.y.map { Double($0) - my }
        var sum = 0.0
        for i in 0..<x.count { sum += x[i] * x[i] + y[i] * y[i] }
        norm = sum.squareRoot()
        if norm > 0 {
            for i in 0..<x.count { x[i] /= norm; y[i] /= norm }
        }
    }
}
