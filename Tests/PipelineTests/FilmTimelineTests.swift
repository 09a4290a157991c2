import Compositor
import LinearAlgebra
import RunFormat
import Testing
@testable import Pipeline

/// Issue 11: tweening. Frame counts, keyframes independent of N, paths that stay between their
/// keyframes, a live film one checkpoint behind, and fades that never pop.
@Suite struct FilmTimelineTests {
    /// Keyframes of points that wander: each coordinate a random walk, so paths turn.
    static func keyframes(_ count: Int, n: Int = 40, seed: UInt64 = 3) -> [FilmTimeline.Keyframe] {
        var state = seed
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        var x = (0..<n).map { _ in next() }, y = (0..<n).map { _ in next() }
        return (0..<count).map { k in
            if k > 0 {
                x = x.map { $0 + 0.4 * next() }
                y = y.map { $0 + 0.4 * next() }
            }
            let board = Leaderboard(kind: .outliers, entries: (0..<3).map { .init(index: (k + $0 * 7) % n, value: Float($0) / 10) })
            return FilmTimeline.Keyframe(index: k, step: k * 25, epoch: Double(k) / 2,
                                         losses: LossHistory(training: (0...k * 25).map { .init(step: $0, loss: 1 / Double($0 + 1)) }),
                                         testAccuracy: nil, points: PlanarPoints(x: x, y: y), leaderboard: board)
        }
    }

    /// A frame as the pipeline draws it: its content made right after the call that asked for it.
    struct Made {
        let frame: TimelineFrame
        let content: FrameContent
        var filmIndex: Int? { frame.filmIndex }
        var showsLatest: Bool { frame.showsLatest }
        var keyframeStep: Int? { frame.keyframeStep }
    }

    static func film(_ keyframes: [FilmTimeline.Keyframe], tween: Int, trails: Int = 0, live: Bool = false,
                     latest: Bool = false) -> (arrivals: [[Made]], end: [Made]) {
        var timeline = FilmTimeline(tween: tween, trails: trails, live: live, latestOnly: latest)
        let arrivals = keyframes.map { keyframe in
            let frames = timeline.add(keyframe)
            return frames.map { Made(frame: $0, content: timeline.content(of: $0)) }
        }
        let end = timeline.finish()
        return (arrivals, end.map { Made(frame: $0, content: timeline.content(of: $0)) })
    }

    static func filmFrames(_ result: (arrivals: [[Made]], end: [Made])) -> [Made] {
        (result.arrivals.flatMap { $0 } + result.end).filter { $0.filmIndex != nil }
    }

    @Test(arguments: [1, 2, 3, 10], [1, 2, 5, 30])
    func frameCountIsOneKeyframePerCheckpointAndNMinusOneBetween(tween: Int, checkpoints: Int) {
        for live in [false, true] {
            let frames = Self.filmFrames(Self.film(Self.keyframes(checkpoints), tween: tween, trails: 2, live: live))
            #expect(frames.count == (checkpoints - 1) * tween + 1, "live \(live)")
            #expect(frames.map(\.filmIndex!) == Array(0..<frames.count), "in order, none missing")
            #expect(frames.compactMap(\.keyframeStep) == (0..<checkpoints).map { $0 * 25 })
        }
    }

    @Test(arguments: [false, true])
    func keyframesAreTheSameWhateverTheTween(live: Bool) {
        let keyframes = Self.keyframes(9)
        let plain = Self.filmFrames(Self.film(keyframes, tween: 1, trails: 3, live: live))
        for tween in [2, 7] {
            let tweened = Self.filmFrames(Self.film(keyframes, tween: tween, trails: 3, live: live))
            for k in 0..<keyframes.count {
                let a = tweened[k * tween].content, b = plain[k].content
                #expect(a.points == b.points && a.step == b.step && a.stepPosition == b.stepPosition && a.leaderboard == b.leaderboard)
                #expect(a.incoming == nil && b.incoming == nil && a.losses == b.losses && a.trails == b.trails)
                #expect(a.trailOpacities == b.trailOpacities, "tween \(tween) keyframe \(k)")
            }
        }
    }

    @Test func pathsStayNearTheLineBetweenTheirKeyframesAndMoveSmoothly() {
        let keyframes = Self.keyframes(12)
        let tween = 8
        let frames = Self.filmFrames(Self.film(keyframes, tween: tween))
        for (f, frame) in frames.enumerated() {
            let k = f / tween
            guard k + 1 < keyframes.count else { continue }
            let a = keyframes[k].points, b = keyframes[k + 1].points
            let p = frame.content.points
            for i in 0..<a.count {
                // Within 0.6 of the step from the segment between the two keyframes.
                let step = ((b.x[i] - a.x[i]) * (b.x[i] - a.x[i]) + (b.y[i] - a.y[i]) * (b.y[i] - a.y[i])).squareRoot()
                let low = (min(a.x[i], b.x[i]) - 0.6 * step, min(a.y[i], b.y[i]) - 0.6 * step)
                let high = (max(a.x[i], b.x[i]) + 0.6 * step, max(a.y[i], b.y[i]) + 0.6 * step)
                #expect(p.x[i] >= low.0 - 1e-6 && p.x[i] <= high.0 + 1e-6 && p.y[i] >= low.1 - 1e-6 && p.y[i] <= high.1 + 1e-6)
            }
            if f % tween == 0 { #expect(p == a, "a checkpoint's frame shows its keyframe exactly") }
        }
        // Smooth: no frame-to-frame step is much larger than the typical step along the same path
        // (a jump would be a whole keyframe interval in one frame).
        for i in 0..<keyframes[0].points.count {
            let steps = (1..<frames.count).map { f in
                abs(frames[f].content.points.x[i] - frames[f - 1].content.points.x[i])
            }
            let interval = (1..<keyframes.count).map { abs(keyframes[$0].points.x[i] - keyframes[$0 - 1].points.x[i]) }.max()!
            #expect(steps.max()! <= 0.6 * interval + 1e-6, "point \(i)")
        }
    }

    @Test func stepAndCursorMoveOnBetweenCheckpoints() {
        let frames = Self.filmFrames(Self.film(Self.keyframes(4), tween: 5))
        let positions = frames.map(\.content.stepPosition)
        #expect(positions == positions.sorted() && Set(positions).count == positions.count, "strictly increasing")
        #expect(frames[2].content.step == 10 && frames[2].content.losses.training.last?.step == 10)
        #expect(frames.allSatisfy { $0.content.blend >= 0 && $0.content.blend <= 1 })
        // The next board fades in over the segment: none at its start, all of it by its end.
        #expect(frames[1].content.blend == 0 && frames[4].content.blend == 1 && frames[2].content.blend > 0)
    }

    @Test func liveFilmRunsOneCheckpointBehindAndLatestShowsTheNewest() {
        let keyframes = Self.keyframes(5)
        let result = Self.film(keyframes, tween: 4, live: true, latest: true)
        for (k, frames) in result.arrivals.enumerated() {
            // At once: the newest checkpoint as --latest only.
            #expect(frames.first?.filmIndex == nil && frames.first?.showsLatest == true && frames.first?.content.step == k * 25)
            // The film: the segment that the newest checkpoint ends.
            let film = frames.filter { $0.filmIndex != nil }
            #expect(film.count == (k == 0 ? 0 : 4))
            #expect(film.allSatisfy { !$0.showsLatest }, "--latest never goes back to an older checkpoint")
            if k > 0 { #expect(film.first?.keyframeStep == (k - 1) * 25) }
        }
        #expect(result.end.count == 1 && result.end[0].keyframeStep == 4 * 25)
    }

    @Test func trailsFadeContinuouslyAcrossKeyframes() {
        let trails = 3, tween = 6
        let frames = Self.filmFrames(Self.film(Self.keyframes(8), tween: tween, trails: trails))
        // The oldest segment's opacity just before a keyframe approaches 0, and at the keyframe it is gone.
        for f in stride(from: tween * (trails + 1), to: frames.count - 1, by: tween) {
            let before = frames[f - 1].content, at = frames[f].content
            #expect(before.trails.count == trails + 1 && at.trails.count == trails)
            #expect(before.trailOpacities[0] < 0.45 / Double(trails) / Double(tween) + 1e-9)
            #expect(abs(before.trailOpacities[1] - at.trailOpacities[0]) < 0.45 / Double(trails) / Double(tween) + 1e-9)
        }
    }

    @Test func pointsPassThroughKeyframesWithoutStoppingOrLooping() {
        // 0: straight on; 1: a right-angle turn; 2: a full reversal; 3: a NaN before; 4: a short
        // step between long ones.
        let previous = PlanarPoints(x: [0, 0, 0, .nan, 0], y: [0, 0, 0, 0, 0])
        let current = PlanarPoints(x: [1, 1, 1, 1, 10], y: [0, 0, 0, 0, 0])
        let next = PlanarPoints(x: [2, 1, 0, 2, 10.1], y: [0, 1, 0, 0, 0])
        let v = MotionPath.velocities(previous: previous, current: current, next: next)
        #expect(v.x[0] == 1 && v.y[0] == 0, "straight on at the same speed")
        #expect(v.x[1] > 0 && v.y[1] > 0, "a turn is rounded, not stopped at")
        #expect(abs((v.x[1] * v.x[1] + v.y[1] * v.y[1]).squareRoot() - 1) < 1e-6, "at the speed of its steps")
        #expect(v.x[2] == 0 && v.y[2] == 0, "a reversal comes to rest")
        #expect(v.x[3] == 0 && v.y[3] == 0)
        #expect(abs(v.x[4]) <= 0.2 + 1e-6, "never longer than twice the shorter step")
        for t in stride(from: 0.0, through: 1.0, by: 0.05) {
            let p = MotionPath.interpolate(from: current, velocity: v, to: next, velocity: nil, t: t)
            for i in [0, 1, 2, 4] {
                // Within 0.6 of the step from the straight line between the two keyframes.
                let ax = current.x[i], ay = current.y[i], bx = next.x[i], by = next.y[i]
                let step = ((bx - ax) * (bx - ax) + (by - ay) * (by - ay)).squareRoot()
                let cross = abs((bx - ax) * (p.y[i] - ay) - (by - ay) * (p.x[i] - ax)) / max(step, 1e-9)
                #expect(cross <= 0.6 * step + 1e-5)
            }
        }
        let start = MotionPath.interpolate(from: current, velocity: v, to: next, velocity: v, t: 0)
        let end = MotionPath.interpolate(from: current, velocity: v, to: next, velocity: v, t: 1)
        #expect(start == current && end.x.enumerated().allSatisfy { $0.element == next.x[$0.offset] })
    }

    @Test func farPointsNeitherOverflowNorVanish() {
        let big: Float = 3e38
        let v = MotionPath.velocities(previous: PlanarPoints(x: [-big, big], y: [0, 0]), current: PlanarPoints(x: [0, 0], y: [0, 0]),
                                      next: PlanarPoints(x: [big, -big], y: [0, 0]))
        #expect(v.x.allSatisfy { $0.isFinite })
        for t in [0.25, 0.5, 0.75] {
            let p = MotionPath.interpolate(from: PlanarPoints(x: [0, 0], y: [0, 0]), velocity: v, to: PlanarPoints(x: [big, -big], y: [0, 0]),
                                           velocity: v, t: t)
            #expect(p.x[0].isFinite && p.x[0] >= 0 && p.x[0] <= big && p.x[1] <= 0 && p.x[1] >= -big)
        }
    }
}
