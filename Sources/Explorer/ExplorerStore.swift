import Compositor
import Pipeline
import Foundation
import Projection
import RunFormat
import Synchronization

/// What the explorer serves, computed once per checkpoint and kept: the run's fixed facts, and
/// per checkpoint the encoded answers of its API (the aligned points as little-endian float32
/// bytes, the scores as JSON). Requests only read it; the run follower only appends to it.
///
/// Pages that listen for new checkpoints (`/api/events`) subscribe here: each gets a stream of
/// steps that starts with every step already analysed, so a page that subscribes after reading
/// `/api/run` misses none. A subscriber's stream is unbounded, but it holds only step numbers.
public final class ExplorerStore: Sendable {
    /// The run's facts, known from its first checkpoint on.
    public struct RunFacts: Sendable {
        public let sampleCount: Int
        public let dimension: Int
        public let labels: [Int]?
        public let classNames: [String]
        public let thumbnails: Thumbnails?
        /// The export table's writer (labels and class names as CSV fields).
        let table: SampleTable

        public init(sampleCount: Int, dimension: Int, annotations: SampleAnnotations) {
            self.init(sampleCount: sampleCount, dimension: dimension, labels: annotations.labels,
                      classNames: FilmSetting.classNames(labels: annotations.labels, classNames: annotations.classNames),
                      thumbnails: annotations.thumbnails)
        }

        /// The facts of a film's run.
        public init(_ setting: FilmSetting) {
            self.init(sampleCount: setting.sampleCount, dimension: setting.dimension, labels: setting.labels,
                      classNames: setting.classNames, thumbnails: setting.thumbnails)
        }

        init(sampleCount: Int, dimension: Int, labels: [Int]?, classNames: [String], thumbnails: Thumbnails?) {
            self.sampleCount = sampleCount
            self.dimension = dimension
            self.labels = labels
            self.classNames = classNames
            self.thumbnails = thumbnails
            table = SampleTable(labels: labels, classNames: classNames)
        }
    }

    /// One analysed checkpoint: the encoded answers of its API, and the per-sample numbers that
    /// `/api/samples/<index>` and the export gather across checkpoints.
    public struct Checkpoint: Sendable {
        public let step: Int
        /// `N * 2` float32, x and y interleaved, little-endian: the film's display coordinates.
        public let points: [UInt8]
        /// `/api/checkpoints/<step>/scores` as UTF-8 JSON.
        public let scores: [UInt8]
        /// Coordinates, outlier scores, label agreement and margin: the export table's columns.
        public let columns: SampleTable.Checkpoint
        /// The running kNN-AUM up to this checkpoint; nil without labels.
        public let knnAUM: [Float]?
        /// Each sample's `neighbourCount` nearest samples, nearest first (empty when not kept).
        public let neighbours: [Int32]
        public let neighbourCount: Int
        /// The losses logged up to this checkpoint.
        public let losses: LossHistory

        /// The checkpoint with its points rotated by `fit` (onto another run's), as the film's right panel.
        func rotated(by fit: ProcrustesFit) -> Checkpoint {
            let display = fit.rotate(columns.display)
            return Checkpoint(step: step, points: APIDocuments.littleEndianFloat32(display.interleaved), scores: scores,
                              columns: columns.placed(at: display), knnAUM: knnAUM, neighbours: neighbours,
                              neighbourCount: neighbourCount, losses: losses)
        }
    }

    private struct State {
        var facts: RunFacts?
        var steps: [Int] = []
        var checkpoints: [Int: Checkpoint] = [:]
        var isDone = false
        var problem: String?
        var subscribers: [Int: AsyncStream<Int>.Continuation] = [:]
        var nextSubscriber = 0
        var closed = false
    }

    private let state = Mutex(State())
    /// The run directory as it was given (shown on the page, never opened through the API).
    public let runName: String
    /// What the page calls the run beside another (`--names`; by default the folder's name).
    public let name: String
    /// How the picture is made.
    public let projection: ProjectionMethod

    public init(runName: String, name: String? = nil, projection: ProjectionMethod = .pca) {
        self.runName = runName
        self.projection = projection
        self.name = name ?? runName.split(separator: "/").last.map(String.init) ?? runName
    }

    public var facts: RunFacts? { state.withLock { $0.facts } }
    public var steps: [Int] { state.withLock { $0.steps } }
    public var isDone: Bool { state.withLock { $0.isDone } }
    public var problem: String? { state.withLock { $0.problem } }

    public func checkpoint(step: Int) -> Checkpoint? { state.withLock { $0.checkpoints[step] } }

    /// Every analysed checkpoint, in step order.
    public var checkpoints: [Checkpoint] { state.withLock { state in state.steps.compactMap { state.checkpoints[$0] } } }

    /// The newest analysed checkpoint.
    public var newest: Checkpoint? { state.withLock { state in state.steps.last.flatMap { state.checkpoints[$0] } } }

    public func start(_ facts: RunFacts) { state.withLock { $0.facts = facts } }

    /// The checkpoint shown at `step` beside another run: the latest at or before it, or the first
    /// one when the run starts later.
    func shown(at step: Int) -> Checkpoint? {
        state.withLock { state in
            let shownStep = state.steps.last { $0 <= step } ?? state.steps.first
            return shownStep.flatMap { state.checkpoints[$0] }
        }
    }

    /// Fills the store from a film's analysis (`watch --serve`): the film and the page share it.
    public var tap: AnalysisTap {
        AnalysisTap(start: { self.start(RunFacts($0)) }, analysed: { self.add(APIDocuments.checkpoint($0)) })
    }

    /// Keeps an analysed checkpoint and tells every subscriber its step.
    public func add(_ checkpoint: Checkpoint) {
        state.withLock { state in
            guard state.checkpoints[checkpoint.step] == nil, checkpoint.step > (state.steps.last ?? Int.min) else { return }
            state.checkpoints[checkpoint.step] = checkpoint
            state.steps.append(checkpoint.step)
            for subscriber in state.subscribers.values { subscriber.yield(checkpoint.step) }
        }
    }

    public func markDone() { state.withLock { $0.isDone = true } }

    public func report(_ problem: String) { state.withLock { $0.problem = $0.problem ?? problem } }

    /// Steps analysed so far, then each new one, until `close()` or until the caller stops listening.
    func subscribe() -> AsyncStream<Int> {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let id: Int? = state.withLock { state in
            for step in state.steps { continuation.yield(step) }
            guard !state.closed else { return nil }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Ends every subscriber's stream (the server is shutting down), and refuses new ones.
    func close() {
        let subscribers = state.withLock { state in
            state.closed = true
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
