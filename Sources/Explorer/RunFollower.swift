#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AsyncAlgorithms
import CheckpointCache
import Dispatch
import Pipeline
import Projection
import RunFormat
import ServiceLifecycle

/// Follows the run as it grows (the run scanner's live mode, through `RunWatcher`, as `watch`
/// does) and analyses each complete checkpoint once with the film's own stages (PCA, Procrustes
/// onto the previous frame, outlier scores, label quality, movers), keeping the results in the
/// store, reading and filling the run's analysis cache when `analyse` has made one. After the
/// run is marked `DONE` it keeps what it has until the server stops.
///
/// A failure of the system rather than of the run (out of file descriptors, out of memory: see
/// `transientCause`) never ends the following: the follower says the cause once, looks again every
/// `retryInterval` from where it was (the checkpoints already analysed are not analysed twice), and
/// says when it follows again. Any other error ends the following; what was analysed stays served.
///
/// A service of the explorer's group: on graceful shutdown (Ctrl-C, SIGTERM) it stops following,
/// and ends the pages' event streams so that the HTTP server can close their connections.
struct RunFollower: Service {
    let watcher: RunWatcher
    let sink: any AnalysisSink
    /// OpenBLAS and search threads for large checkpoints: one leaves the other core to the browser.
    let maxBLASThreads: Int
    let projection: ProjectionMethod
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

    /// How long the follower waits before looking at the run again after a transient failure.
    static let retryInterval = Duration.seconds(1)

    /// Follows the run until it is done or `stop` is raised, starting over after transient failures.
    private func follow(stop: StopFlag) async throws {
        var progress = Progress()
        var outage: String?
        while !stop.isRaised {
            do {
                try await followOnce(stop: stop, progress: &progress) {
                    if outage != nil {
                        watcher.inform("\(watcher.path): following the run again")
                        outage = nil
                    }
                }
                return
            } catch let error where !(error is CancellationError) {
                guard let cause = Self.transientCause(of: error, runPath: watcher.path) else { throw error }
                if outage == nil {
                    warn("\(cause); looking again every \(Self.retryInterval.components.seconds) s, the \(progress.count) checkpoints analysed so far stay served")
                }
                outage = cause
                try await Task.sleep(for: Self.retryInterval)
            }
        }
    }

    /// What the follower has done so far: kept across starts after transient failures.
    private struct Progress {
        /// The analyser, with the frame the next checkpoint is aligned onto.
        var analyser: AnalysisStage?
        /// The run's shape as first seen: a run that comes back with another is not the same run.
        var shape: (sampleCount: Int, dimension: Int)?
        var lastStep: Int?
        var count = 0
    }

    /// One pass: waits for the run, then analyses each checkpoint after `progress.lastStep`.
    /// `resumed` is called once the run has been read again.
    private func followOnce(stop: StopFlag, progress: inout Progress, resumed: () -> Void) async throws {
        guard let run = try await watcher.waitForStart(stop: stop) else { return }
        resumed()
        if let shape = progress.shape {
            guard shape == (run.sampleCount, run.dimension) else {
                throw RunChanged(path: watcher.path, before: shape, after: (run.sampleCount, run.dimension))
            }
        } else {
            try sink.start(ExplorerStore.RunFacts(sampleCount: run.sampleCount, dimension: run.dimension, annotations: run.annotations))
            progress.shape = (run.sampleCount, run.dimension)
        }
        // In the background: the explorer keeps answering requests while it analyses.
        let analyser = progress.analyser ?? AnalysisStage(CheckpointAnalyser(
            aligner: Aligner(target: .previous), labels: run.annotations.labels, topCount: APIDocuments.leaderboardLength,
            timings: StageTimings(), maxBLASThreads: maxBLASThreads, cache: AnalysisCache.existing(forRun: watcher.path),
            projection: projection, warn: warn),
            background: true)
        progress.analyser = analyser
        let events = AsyncThrowingChannel<CheckpointEvent, any Error>()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await run.emit(into: events, stop: stop) }
            for try await event in events {
                // Read again after a transient failure: analysed before it.
                if let last = progress.lastStep, event.step <= last { continue }
                let checkpoint = try await analyser.analyse(event, then: APIDocuments.checkpoint)
                sink.add(checkpoint)
                progress.lastStep = event.step
                progress.count += 1
            }
            try await group.waitForAll()
        }
        if !stop.isRaised { sink.finish() }
    }

    /// The errors that the system ran short of something to read the run with (descriptors,
    /// memory), not that the run is wrong: with its cause, or nil.
    static func transientCause(of error: any Error, runPath: String) -> String? {
        guard let error = error as? RunFormatError, error.kind == .exhausted else { return nil }
        return error.description
    }
}

/// The run came back from a transient failure with another shape: another run now lives in its folder.
struct RunChanged: Error, CustomStringConvertible {
    let path: String
    let before: (sampleCount: Int, dimension: Int)
    let after: (sampleCount: Int, dimension: Int)

    var description: String {
        "\(path): the run is now \(after.sampleCount) x \(after.dimension), it was \(before.sampleCount) x \(before.dimension): "
            + "another run replaced it while it could not be read"
    }
}
