import LinearAlgebra
import Testing
@testable import Projection

/// A deterministic point cloud with distinct spreads along x and y.
func cloud(_ n: Int, seed: UInt64 = 1) -> PlanarPoints {
    var generator = SplitMix(seed: seed)
    let x = (0..<n).map { _ in Float(generator.normal() * 3) }
    let y = (0..<n).map { _ in Float(generator.normal()) }
    return PlanarPoints(x: x, y: y)
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func normal() -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &self), v = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ProcrustesTests {
    @Test(arguments: [0.3, 2.0, -1.2], [false, true])
    func recoversAKnownRotationAndReflection(angle: Double, reflect: Bool) throws {
        let target = cloud(200)
        // source = target rotated (and maybe mirrored), scaled and shifted: the fit must undo all of it.
        let c = cos(angle), s = sin(angle)
        var source = target
        for i in 0..<target.count {
            let x = Double(target.x[i]) * (reflect ? -1 : 1), y = Double(target.y[i])
            source.x[i] = Float(2.5 * (c * x - s * y) + 7)
            source.y[i] = Float(2.5 * (s * x + c * y) - 3)
        }
        let fit = try ProcrustesFit(target: target, source: source)
        #expect(fit.disparity < 1e-10)
        #expect(abs(fit.scale - 1) < 1e-6)
        let r = fit.rotation
        #expect(abs(r[0] * r[0] + r[1] * r[1] - 1) < 1e-12 && abs(r[0] * r[2] + r[1] * r[3]) < 1e-12)
        #expect((r[0] * r[3] - r[1] * r[2] < 0) == reflect, "a mirrored source needs a reflection")
    }

    @Test func rejectsPointsWithoutSpread() {
        let flat = PlanarPoints(x: [1, 1, 1], y: [2, 2, 2])
        #expect(throws: ProjectionError.degenerate) { try ProcrustesFit(target: cloud(3), source: flat) }
    }
}

@Suite struct AlignerTests {
    @Test func oneFarOutlierDoesNotRezoomTheFrame() throws {
        let base = cloud(500)
        var withOutlier = base
        withOutlier.x[0] = 10_000
        var plain = Aligner(target: .none), outlying = Aligner(target: .none)
        let a = try plain.align(base), b = try outlying.align(withOutlier)
        #expect(abs(a.displayScale - b.displayScale) / a.displayScale < 0.05)
    }

    @Test func previousAlignmentUndoesAFlipBetweenFrames() throws {
        let first = cloud(300)
        let flipped = PlanarPoints(x: first.x.map { -$0 }, y: first.y)
        var aligner = Aligner(target: .previous)
        let a = try aligner.align(first), b = try aligner.align(flipped)
        for i in 0..<first.count {
            #expect(abs(a.display.x[i] - b.display.x[i]) < 1e-5 && abs(a.display.y[i] - b.display.y[i]) < 1e-5)
        }
    }

    @Test func displayCoordinatesHaveUnitRobustRadius() throws {
        var aligner = Aligner(target: .previous)
        let frame = try aligner.align(cloud(1000))
        let radii = (0..<1000).map { (frame.display.x[$0] * frame.display.x[$0] + frame.display.y[$0] * frame.display.y[$0]).squareRoot() }
        let inside = radii.filter { $0 <= 1.0001 }.count
        #expect((985...995).contains(inside), "about 99% of points within radius 1, got \(inside)")
    }
}
