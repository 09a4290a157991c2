import AsyncAlgorithms
import Synchronization

/// Anything that produces checkpoint events: a saved run, a watched run, a training loop.
public protocol CheckpointSource: Sendable {
    /// Sends events in order, waiting while the pipeline is busy (no event is ever dropped),
    /// and finishes the channel when done or when `stop` is raised; fails it on error.
    func emit(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async
}

/// Raised on Ctrl-C or SIGTERM: sources stop emitting, and the outputs are finalised.
public final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    public init() {}

    public var isRaised: Bool { raised.load(ordering: .acquiring) }

    public func raise() { raised.store(true, ordering: .releasing) }
}
