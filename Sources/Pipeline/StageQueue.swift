import AsyncAlgorithms
import Dispatch

/// A serial queue of its own for one blocking, CPU-heavy stage (analysis, or drawing and encoding).
///
/// Swift's cooperative pool has one thread per core, two here: a stage computing for hundreds of
/// milliseconds on it would leave the watcher's polling, cancellation and the channels without a
/// thread. The heavy stages run their jobs here instead, and the task that awaits a job suspends,
/// handing its pool thread back.
struct StageQueue: Sendable {
    private let queue: DispatchQueue

    init(_ name: String, qos: DispatchQoS = .userInitiated) { queue = DispatchQueue(label: "embedlapse.\(name)", qos: qos) }

    func run<T: Sendable>(_ job: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result(catching: job)) }
        }
    }
}

/// State that only one stage's jobs touch, one job at a time (each is awaited before the next is
/// queued), so it crosses into the stage's queue without locks.
final class StageState<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// The analysis stage of every consumer (films, compare, the table export, the explorer's
/// follower): one analyser, fed a run's checkpoints in step order, on a serial queue of its own.
public final class AnalysisStage: Sendable {
    private let queue: StageQueue
    private let analyser: StageState<CheckpointAnalyser>

    /// - Parameter background: below the pool's other work (the explorer, which keeps answering
    ///   requests while it analyses), rather than the film's priority.
    public init(_ analyser: CheckpointAnalyser, background: Bool = false) {
        queue = StageQueue("analysis", qos: background ? .utility : .userInitiated)
        self.analyser = StageState(analyser)
    }

    /// Analyses the run's next checkpoint and hands the result to `then` on the same queue (the
    /// table's rows, the explorer's documents: heavy work kept off the cooperative pool).
    public func analyse<T: Sendable>(_ event: CheckpointEvent,
                                     then: @escaping @Sendable (AnalysedCheckpoint) throws -> T) async throws -> T {
        try await queue.run { [analyser] in try then(try analyser.value.analyse(event)) }
    }

    public func analyse(_ event: CheckpointEvent) async throws -> AnalysedCheckpoint {
        try await analyse(event) { $0 }
    }

    /// Analyses every event of `events` into `analysed` in order, then finishes it, or fails it
    /// with the first error.
    func run(_ events: AsyncThrowingChannel<CheckpointEvent, any Error>,
             into analysed: AsyncThrowingChannel<AnalysedCheckpoint, any Error>) async {
        do {
            for try await event in events { await analysed.send(try await analyse(event)) }
            analysed.finish()
        } catch {
            analysed.fail(error)
        }
    }
}
