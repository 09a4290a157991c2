import Dispatch

/// A serial queue of its own for one blocking, CPU-heavy stage (analysis, or drawing and encoding).
///
/// Swift's cooperative pool has one thread per core, two here: a stage computing for hundreds of
/// milliseconds on it would leave the watcher's polling, cancellation and the channels without a
/// thread. The heavy stages run their jobs here instead, and the task that awaits a job suspends,
/// handing its pool thread back.
struct StageQueue: Sendable {
    private let queue: DispatchQueue

    init(_ name: String) { queue = DispatchQueue(label: "embedlapse.\(name)", qos: .userInitiated) }

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
