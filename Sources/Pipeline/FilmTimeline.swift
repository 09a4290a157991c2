import Dispatch
import Compositor
import LinearAlgebra
import RunFormat

/// One frame the timeline asks to be drawn, and where it goes. Its content is made when it is
/// drawn (`FilmTimeline.content(of:)`), one frame at a time: a segment's frames are never all in memory.
struct TimelineFrame {
    /// The keyframe the frame starts from, and how far it is (0..<1) on the way to the next.
    let keyframe: Int
    let t: Double
    /// Position in the film (videos, `--frames-dir`); nil for a frame shown only as `--latest`.
    let filmIndex: Int?
    /// Whether this frame is a checkpoint's own (a keyframe) and the newest one yet: `--latest` shows it.
    let showsLatest: Bool
    /// The checkpoint's step when this is a keyframe of the film (its label layout is dumped).
    let keyframeStep: Int?
}

/// Turns analysed checkpoints into the film's frames: each checkpoint's own frame (a keyframe),
/// and with `--tween N`, N - 1 frames between it and the next, where points travel along a smooth
/// path, the loss cursor and step move on, and the next leaderboard and its rings fade in.
///
/// Frames between two checkpoints reuse their projections and scores; nothing is recomputed. A
/// keyframe is the same whatever N is, so frame k*N of a tweened film is frame k of the untweened one.
///
/// A path's shape at a checkpoint needs the checkpoint after it. Offline, frames wait for it, and
/// the motion is a monotone cubic through the keyframes. Live, the film runs one checkpoint behind
/// (the newest checkpoint is the end of the segment being drawn) and each point comes to rest at
/// each checkpoint, since where it goes next is not known yet.
struct FilmTimeline {
    struct Keyframe {
        let index: Int
        let step: Int
        let epoch: Double?
        let losses: LossHistory
        let testAccuracy: Double?
        let points: PlanarPoints
        let leaderboard: Leaderboard
        var faithfulness: String? = nil
        /// The path's velocity at this keyframe, in display units per checkpoint; nil until known.
        var velocity: PlanarPoints?
    }

    let tween: Int
    let trails: Int
    let live: Bool
    /// Whether a frame shown only as `--latest` is wanted (live, tweened, with `--latest`).
    let latestOnly: Bool
    /// Keyframes still needed: the segment being built and the trails behind it.
    private var window: [Keyframe] = []
    /// The next keyframe whose own frame and following segment are still to be drawn.
    private var nextToDraw = 0
    private var framesMade = 0

    init(tween: Int, trails: Int, live: Bool, latestOnly: Bool) {
        self.tween = max(tween, 1)
        self.trails = max(trails, 0)
        self.live = live
        self.latestOnly = latestOnly
    }

    /// The frames a new checkpoint makes ready, in film order.
    mutating func add(_ keyframe: Keyframe) -> [TimelineFrame] {
        window.append(keyframe)
        var frames: [TimelineFrame] = []
        if tween == 1 {
            frames = keyframeOnly(keyframe.index, latest: true)
        } else if live {
            if latestOnly { frames.append(TimelineFrame(keyframe: keyframe.index, t: 0, filmIndex: nil, showsLatest: true, keyframeStep: nil)) }
            // The newest checkpoint ends the segment from the one before: its velocity is not known, so zero.
            setVelocity(of: keyframe.index, knowingNext: false)
            if keyframe.index > 0 { frames += segment(from: keyframe.index - 1, latest: false) }
        } else {
            // Offline: the velocity at the previous keyframe is known now that this one is here.
            if keyframe.index > 0 { setVelocity(of: keyframe.index - 1, knowingNext: true) }
            if keyframe.index > 1 { frames += segment(from: keyframe.index - 2, latest: true) }
        }
        trimWindow()
        return frames
    }

    /// The frames still owed when the run ends: the last segment and the last keyframe.
    mutating func finish() -> [TimelineFrame] {
        guard let last = window.last else { return [] }
        var frames: [TimelineFrame] = []
        if tween > 1 {
            if !live {
                setVelocity(of: last.index, knowingNext: false)
                if last.index > 0 && nextToDraw == last.index - 1 { frames += segment(from: last.index - 1, latest: true) }
            }
            if nextToDraw == last.index { frames += keyframeOnly(last.index, latest: true) }
        }
        return frames
    }

    private mutating func keyframeOnly(_ index: Int, latest: Bool) -> [TimelineFrame] {
        defer { nextToDraw = index + 1 }
        return [film(index, t: 0, latest: latest, keyframeStep: self[index].step)]
    }

    /// Keyframe `index` and the frames between it and the next.
    private mutating func segment(from index: Int, latest: Bool) -> [TimelineFrame] {
        var frames = [film(index, t: 0, latest: latest, keyframeStep: self[index].step)]
        for j in 1..<tween { frames.append(film(index, t: Double(j) / Double(tween), latest: false, keyframeStep: nil)) }
        nextToDraw = index + 1
        return frames
    }

    private mutating func film(_ index: Int, t: Double, latest: Bool, keyframeStep: Int?) -> TimelineFrame {
        defer { framesMade += 1 }
        return TimelineFrame(keyframe: index, t: t, filmIndex: framesMade, showsLatest: latest, keyframeStep: keyframeStep)
    }

    /// What `frame` shows. Valid for the frames of the last `add` or `finish` until the next call:
    /// the window still holds every keyframe they need.
    func content(of frame: TimelineFrame) -> FrameContent {
        content(at: frame.keyframe, t: frame.t)
    }

    private subscript(index: Int) -> Keyframe {
        get { window[index - window[0].index] }
        set { window[index - window[0].index] = newValue }
    }

    private func has(_ index: Int) -> Bool { !window.isEmpty && index >= window[0].index && index <= window.last!.index }

    /// Keeps the keyframes a later frame can still need: the previous one (for a velocity) and the trails.
    private mutating func trimWindow() {
        let keep = max(trails + 1, 2) + (live ? 0 : 1)
        if window.count > keep + 1 { window.removeFirst(window.count - keep - 1) }
    }

    private mutating func setVelocity(of index: Int, knowingNext: Bool) {
        guard has(index), self[index].velocity == nil else { return }
        let previous = has(index - 1) ? self[index - 1].points : nil
        let next = knowingNext && has(index + 1) ? self[index + 1].points : nil
        self[index].velocity = MotionPath.velocities(previous: previous, current: self[index].points, next: next)
    }

    /// The frame at `t` (0..<1) of the way from keyframe `index` to the next.
    private func content(at index: Int, t: Double) -> FrameContent {
        let from = self[index]
        let trailKeyframes = (max(index - trails, window[0].index)..<index).map { self[$0] }
        guard t > 0, has(index + 1) else {
            var frame = FrameContent(step: from.step, epoch: from.epoch, checkpointIndex: from.index, points: from.points,
                                leaderboard: from.leaderboard, losses: from.losses, testAccuracy: from.testAccuracy,
                                trails: trailKeyframes.map(\.points),
                                trailOpacities: trailKeyframes.map { Self.trailOpacity(age: Double(index - $0.index), trails: trails) })
            frame.faithfulness = from.faithfulness
            return frame
        }
        let to = self[index + 1]
        let points = MotionPath.interpolate(from: from.points, velocity: from.velocity, to: to.points, velocity: to.velocity, t: t)
        let stepPosition = Double(from.step) + t * Double(to.step - from.step)
        let step = Int(stepPosition.rounded(.down))
        var epoch = from.epoch
        if let a = from.epoch, let b = to.epoch { epoch = a + t * (b - a) }
        // The fade of leaderboard and rings takes the middle of the segment, so each board reads whole for most of it.
        let blend = MotionPath.smoothstep((t - 0.2) / 0.6)
        // Trails also run through the keyframe just passed; the oldest segment fades out on the way to the next.
        let trailed = trails > 0 ? trailKeyframes + [from] : []
        var frame = FrameContent(step: step, stepPosition: stepPosition, epoch: epoch, checkpointIndex: from.index, points: points,
                            leaderboard: from.leaderboard, incoming: to.leaderboard, blend: blend,
                            losses: to.losses.upTo(step: step), testAccuracy: from.testAccuracy,
                            trails: trailed.map(\.points),
                            trailOpacities: trailed.map { Self.trailOpacity(age: Double(index - $0.index) + t, trails: trails) })
        frame.faithfulness = t < 0.5 ? from.faithfulness : to.faithfulness
        return frame
    }

    /// The opacity of the trail segment that starts at a keyframe `age` checkpoints ago: the newest
    /// strongest, none at `trails + 1`, continuous in time so trails never pop.
    static func trailOpacity(age: Double, trails: Int) -> Double {
        0.45 * min(max(1 - (age - 1) / Double(max(trails, 1)), 0), 1)
    }
}

/// Positions between keyframes: a cubic Hermite curve through each point's keyframe positions, so a
/// point passes through a checkpoint without slowing down, as the eye expects of something in motion.
///
/// The velocity at a keyframe points from the previous position to the next (Catmull-Rom's
/// direction) with the mean length of the two steps beside it: a point keeps its speed through a
/// turn. Catmull-Rom's own length (half the sum of the two steps as vectors) shrinks wherever the
/// steps change direction, which embeddings do at nearly every checkpoint: measured on
/// samples/cnn-fmnist at `--tween 10`, points still slowed to 52% of their mid-segment speed at each
/// checkpoint with it, 36% with monotone per-coordinate tangents, and 77% with this one. The length
/// is capped at twice the shorter step, so a short step between long ones makes no loop and a point
/// strays from the straight line between two keyframes by at most 0.6 of that step. Where the path
/// reverses exactly, the point comes to rest.
enum MotionPath {
    /// Each point's velocity at a keyframe, in display units per checkpoint: zero where a neighbour
    /// is unknown (the ends of the film, the newest checkpoint live) or not finite.
    static func velocities(previous: PlanarPoints?, current: PlanarPoints, next: PlanarPoints?) -> PlanarPoints {
        let n = current.count
        var vx = [Float](repeating: 0, count: n), vy = [Float](repeating: 0, count: n)
        guard let previous, let next, previous.count == n, next.count == n else { return PlanarPoints(x: vx, y: vy) }
        for i in 0..<n {
            // In Double: the steps of points far beyond the view can overflow a Float product.
            let bx = Double(current.x[i]) - Double(previous.x[i]), by = Double(current.y[i]) - Double(previous.y[i])
            let ax = Double(next.x[i]) - Double(current.x[i]), ay = Double(next.y[i]) - Double(current.y[i])
            let dx = bx + ax, dy = by + ay
            let across = (dx * dx + dy * dy).squareRoot()
            let before = (bx * bx + by * by).squareRoot(), after = (ax * ax + ay * ay).squareRoot()
            let speed = min((before + after) / 2, 2 * min(before, after))
            guard across.isFinite, speed.isFinite, across > 0 else { continue }
            let x = Float(dx / across * speed), y = Float(dy / across * speed)
            guard x.isFinite, y.isFinite else { continue }
            vx[i] = x
            vy[i] = y
        }
        return PlanarPoints(x: vx, y: vy)
    }

    /// The points at `t` (0...1) of the way from `from` to `to`, missing velocities read as zero;
    /// exactly `from` at 0 and `to` at 1.
    static func interpolate(from: PlanarPoints, velocity v0: PlanarPoints?, to: PlanarPoints, velocity v1: PlanarPoints?,
                            t: Double) -> PlanarPoints {
        guard from.count == to.count else { return from }
        let t = Float(min(max(t, 0), 1)), t2 = t * t, t3 = t2 * t
        let h00 = 2 * t3 - 3 * t2 + 1, h10 = t3 - 2 * t2 + t, h01 = -2 * t3 + 3 * t2, h11 = t3 - t2
        let n = from.count
        let (v0, v1) = (v0?.count == n ? v0 : nil, v1?.count == n ? v1 : nil)
        let zeros = v0 == nil || v1 == nil ? [Float](repeating: 0, count: n) : []
        // Branch-free, so that it runs eight points at a time: a film at a million points makes
        // every in-between frame from two million coordinates (x and y on two threads there).
        @Sendable func along(_ p0: [Float], _ m0: [Float], _ p1: [Float], _ m1: [Float], into out: UnsafeMutablePointer<Float>) {
            p0.withUnsafeBufferPointer { p0 in
                p1.withUnsafeBufferPointer { p1 in
                    m0.withUnsafeBufferPointer { m0 in
                        m1.withUnsafeBufferPointer { m1 in
                            for i in 0..<n {
                                let a = p0[i], b = p1[i]
                                let value = h00 * a + h10 * m0[i] + h01 * b + h11 * m1[i]
                                // magnitude < infinity: finite (NaN compares false).
                                let finite = a.magnitude < .infinity && b.magnitude < .infinity && value.magnitude < .infinity
                                out[i] = finite ? value : (t < 0.5 ? a : b)
                            }
                        }
                    }
                }
            }
        }
        var y: [Float] = []
        let x = [Float](unsafeUninitializedCapacity: n) { xs, xCount in
            y = [Float](unsafeUninitializedCapacity: n) { ys, yCount in
                let outputs = UncheckedSendable((xs.baseAddress, ys.baseAddress))
                let split = n >= 1 << 16
                DispatchQueue.concurrentPerform(iterations: split ? 2 : 1) { part in
                    guard let xs = outputs.value.0, let ys = outputs.value.1 else { return }
                    if part == 0 { along(from.x, v0?.x ?? zeros, to.x, v1?.x ?? zeros, into: xs) }
                    if part == 1 || !split { along(from.y, v0?.y ?? zeros, to.y, v1?.y ?? zeros, into: ys) }
                }
                yCount = n
            }
            xCount = n
        }
        return PlanarPoints(x: x, y: y)
    }

    /// 0 below 0, 1 above 1, and a smooth S between.
    static func smoothstep(_ t: Double) -> Double {
        let t = min(max(t, 0), 1)
        return t * t * (3 - 2 * t)
    }
}

