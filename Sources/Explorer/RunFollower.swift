import AsyncAlgorithms
import Dispatch
import Embedlapse
import Projection
import RunFormat
import ServiceLifecycle

/// Follows the run as it grows (the run scanner's live mode, through `RunWatcher`, as `watch`
/// does) and analyses each complete checkpoint once with the film's own stages (PCA, Procrustes
/// onto the previous frame, outlier scores, label quality, movers), keeping the results in the
/// store, reading and filling the run's analysis cache when `analyse` has made one. After the
/// run is marked `DONE` it keeps what it has until the server stops.
///
/// A service of the explorer's group: on graceful shutdown (Ctrl-C, SIGTERM) it stops following,
/// and ends the pages' event streams so that the HTTP server can close their connections.
struct RunFollower: Service {
    let watcher: RunWatcher
    let sink: any AnalysisSink
    /// OpenBLAS and search threads for large checkpoints: one leaves the other core to the browser.
    let maxBLASThreads: Int
    let warn: @Sendable (String) -> Void
    /// Yields once the server listens: analysis starts only then, so the first page loads at once.
    let serverListening: AsyncStream<Void>

    func run() async throws {
        let stop = StopFlag()
        let store = sink.store
        let fatal: (any Error)? = await withGracefulShutdownHandler {
            for await _ in serverListening { break }
            do {
                try await follow(stop: stop)
            } catch is CancellationError {
            } catch let mismatch as EvaluationSetMismatch {
                store.report(mismatch.description)
                return mismatch
            } catch {
                store.report("\(error)")
                warn("\(error); serving the checkpoints analysed so far")
            }
            // Nothing more will come: wait for the server to stop, keeping the event streams open.
            try? await gracefulShutdown()
            return nil
        } onGracefulShutdown: {
            stop.raise()
            store.close()
        }
        // Two runs that are not one evaluation set stop the server.
        if let fatal { throw fatal }
    }

    private func follow(stop: StopFlag) async throws {
        guard let run = try await watcher.waitForStart(stop: stop) else { return }
        let labels = run.annotations.labels
        try sink.start(ExplorerStore.RunFacts(sampleCount: run.sampleCount, dimension: run.dimension, annotations: run.annotations))
        let events = AsyncThrowingChannel<CheckpointEvent, any Error>()
        let analyser = AnalysisQueue(CheckpointAnalyser(aligner: Aligner(target: .previous), labels: labels,
                                                        topCount: APIDocuments.leaderboardLength, timings: StageTimings(),
                                                        maxBLASThreads: maxBLASThreads,
                                                        cache: AnalysisCache.existing(forRun: watcher.path), warn: warn))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await run.emit(into: events, stop: stop) }
            for try await event in events {
                let checkpoint = try await analyser.analyse(event)
                sink.add(checkpoint)
            }
            try await group.waitForAll()
        }
        if !stop.isRaised { sink.finish() }
    }
}

/// The analyser and a serial queue of its own: each checkpoint's analysis (hundreds of
/// milliseconds on large runs) runs off Swift's cooperative pool, which keeps answering requests.
final class AnalysisQueue: @unchecked Sendable {
    // Safe: `analyser` is touched only on `queue`, one job at a time.
    private var analyser: CheckpointAnalyser
    private let queue = DispatchQueue(label: "embedlapse.explorer.analysis", qos: .utility)

    init(_ analyser: CheckpointAnalyser) { self.analyser = analyser }

    func analyse(_ event: CheckpointEvent) async throws -> ExplorerStore.Checkpoint {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                continuation.resume(with: Result { APIDocuments.checkpoint(try analyser.analyse(event)) })
            }
        }
    }
}
