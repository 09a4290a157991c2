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

/// Issue 10: every checkpoint gives finite display coordinates or a clear error, never NaN or infinity.
@Suite struct AlignerRobustnessTests {
    static let targets: [AlignmentTarget] = [.none, .previous]

    func expectFiniteOrRefused(_ scores: PlanarPoints, _ what: String) {
        for target in Self.targets {
            var aligner = Aligner(target: target)
            do {
                let frame = try aligner.align(scores)
                #expect(frame.display.x.allSatisfy(\.isFinite) && frame.display.y.allSatisfy(\.isFinite), "\(what), \(target)")
                #expect(frame.displayScale.isFinite && frame.displayScale > 0, "\(what), \(target)")
            } catch {
                #expect(error is AlignmentError || error is ProjectionError, "\(what), \(target): \(error)")
            }
        }
    }

    @Test func refusesFramesWithoutSpread() throws {
        let subnormal = PlanarPoints(x: (0..<200).map { Float.leastNonzeroMagnitude * Float($0 % 7) },
                                     y: (0..<200).map { Float.leastNonzeroMagnitude * Float($0 % 5) })
        for target in Self.targets {
            var aligner = Aligner(target: target)
            #expect(throws: AlignmentError.noSpread) { try aligner.align(subnormal) }
        }
        var aligner = Aligner(target: .none)
        let error = #expect(throws: AlignmentError.noSpread) { try aligner.align(PlanarPoints(x: [2, 2, 2], y: [1, 1, 1])) }
        #expect(error?.description == "the embeddings have no spread to project (all rows equal or values too small)")
        #expect(throws: AlignmentError.nonFinite) { try aligner.align(PlanarPoints(x: [0, 1, .nan], y: [0, 1, 2])) }
    }

    /// All-subnormal float32 embeddings, through PCA: the case that made the rasterizer trap.
    @Test func subnormalEmbeddingsAreRefusedNotDrawnAsNaN() throws {
        var g = SplitMix(seed: 5)
        let x = Matrix(rows: 300, columns: 16, storage: (0..<300 * 16).map { _ in Float.leastNonzeroMagnitude * Float(g.next() % 1000) })
        let pca = try PrincipalComponents(fitting: x)
        expectFiniteOrRefused(pca.scores, "subnormal embeddings")
    }

    @Test func everyFloatGivesFiniteCoordinatesOrAClearError() {
        let base = cloud(300)
        let scalings: [Float] = [0, .leastNonzeroMagnitude, 1e-40, .leastNormalMagnitude, 1e-30, 1, 1e30, 1e37]
        for scaling in scalings {
            expectFiniteOrRefused(PlanarPoints(x: base.x.map { $0 * scaling }, y: base.y.map { $0 * scaling }), "cloud x \(scaling)")
            // Most points together, a few far away: a tiny robust radius and a huge largest one.
            var spiked = PlanarPoints(x: base.x.map { $0 * scaling }, y: base.y.map { $0 * scaling })
            for i in 0..<2 { spiked.x[i] = .greatestFiniteMagnitude / 4; spiked.y[i] = -.greatestFiniteMagnitude / 4 }
            expectFiniteOrRefused(spiked, "cloud x \(scaling) with far points")
        }
        for special: Float in [.nan, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude] {
            var points = base
            points.x[3] = special
            expectFiniteOrRefused(points, "one coordinate \(special)")
        }
    }

    @Test func aTinyButNormalSpreadStillAligns() throws {
        let tiny = PlanarPoints(x: cloud(1000).x.map { $0 * 1e-30 }, y: cloud(1000).y.map { $0 * 1e-30 })
        var aligner = Aligner(target: .previous)
        let frame = try aligner.align(tiny)
        let inside = (0..<1000).filter { (frame.display.x[$0] * frame.display.x[$0] + frame.display.y[$0] * frame.display.y[$0]).squareRoot() <= 1.0001 }
        #expect((985...995).contains(inside.count), "about 99% of points within radius 1, got \(inside.count)")
    }
}
