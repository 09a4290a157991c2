import AsyncAlgorithms
import Foundation
import LinearAlgebra
import RunFormat

/// Follows a run directory that another process (a training) is writing, and emits each new
/// checkpoint once the run scanner finds it complete (the writer contract of docs/run-layout.md:
/// a completion marker, or a whole file left unchanged for `settle`).
///
/// The watch waits for the folder and its first checkpoint, then films every checkpoint in step
/// order. It ends when the run contains `DONE` (after every checkpoint written before it), after
/// `idleTimeout` without a new checkpoint, or on a stop request; and with a `WatchError` when the
/// run folder is deleted, a new run replaces it (its `run.json` id changes), or, with
/// `stopWithParent`, the process that started the watch exits.
public struct RunWatcher: Sendable {
    public let path: String
    /// How often the run directory is looked at: one listing and a stat per pending checkpoint.
    public var pollInterval: Duration = .milliseconds(20)
    /// Stop after this long without a new checkpoint; nil waits for `DONE` or a stop request.
    public var idleTimeout: Duration?
    /// How long a file without a completion marker must stay unchanged to count as complete.
    public var settle: Duration = .seconds(2)
    /// End the watch when the parent process exits (a training that started it and crashed).
    public var stopWithParent = false
    /// Receives warnings (skipped checkpoints, unreadable loss logs) as one-line messages.
    public var warn: @Sendable (String) -> Void = { _ in }
    /// Receives what the watch is waiting for.
    public var inform: @Sendable (String) -> Void = { _ in }

    public init(path: String) { self.path = path }

    /// Waits for the run folder, its first complete checkpoint, and readable labels, names and
    /// images when those files exist. Returns nil if the run ends, times out or is stopped first.
    public func waitForStart(stop: StopFlag) async throws -> WatchedRun? {
        var scanner = RunScanner(path: path, mode: .live(settle: settle))
        let parent = getppid()
        let clock = ContinuousClock()
        let started = clock.now
        var toldWaiting = false
        while !stop.isRaised {
            try Task.checkCancellation()
            try checkParent(parent)
            let before = scanner
            let snapshot = scanner.scan()
            for warning in snapshot.warnings { warn(warning) }
            if let problem = snapshot.problems.first { throw problem }
            if !snapshot.exists, !toldWaiting {
                inform("waiting for \(path) to appear")
                toldWaiting = true
            }
            if let first = snapshot.ready.first {
                let annotations = SampleAnnotations.read(runPath: path, sampleCount: first.sampleCount)
                if let problem = annotations.problems.first {
                    // An annotation file may still be being written: give it until the run ends.
                    if snapshot.isDone || timedOut(since: started, clock: clock) { throw problem }
                    scanner = before  // hand the same checkpoints out again next time
                } else {
                    return WatchedRun(watcher: self, scanner: scanner, pending: snapshot.ready, annotations: annotations,
                                      runID: snapshot.runID, parent: parent)
                }
            } else if snapshot.isDone || (!snapshot.isSettling && timedOut(since: started, clock: clock)) {
                if snapshot.isSettling { try await Task.sleep(for: pollInterval); continue }
                if let waiting = snapshot.waiting { throw waiting }
                if !snapshot.exists { throw WatchError.noRun(path) }
                return nil
            }
            try await Task.sleep(for: pollInterval)
        }
        return nil
    }

    fileprivate func timedOut(since start: ContinuousClock.Instant, clock: ContinuousClock) -> Bool {
        guard let idleTimeout else { return false }
        return clock.now - start >= idleTimeout
    }

    fileprivate func checkParent(_ parent: pid_t) throws(WatchError) {
        guard stopWithParent, getppid() != parent else { return }
        throw WatchError.parentExited(parent)
    }
}

/// Why a watch ended early; the film made so far is still finalised.
public enum WatchError: Error, CustomStringConvertible {
    case noRun(String)
    case runDeleted(String)
    case runReplaced(String, old: String?, new: String?)
    case parentExited(pid_t)
    case incompleteAtDone(RunFormatError)

    public var description: String {
        switch self {
        case .noRun(let path): return "\(path): no such run directory (waited for it until the idle timeout)"
        case .runDeleted(let path): return "\(path): the run directory was deleted while it was watched"
        case .runReplaced(let path, let old, let new):
            return "\(path): a new run started in this folder (run.json's run_id changed from \(old ?? "none") to \(new ?? "none")): "
                + "the film holds the previous run; watch again for the new one"
        case .parentExited(let pid): return "the process that started this watch (pid \(pid)) exited without marking the run DONE"
        case .incompleteAtDone(let error): return "\(error) (the run is marked \(RunScanner.doneMarker))"
        }
    }
}

/// A watched run after its first checkpoint: what the film needs up front, and the source of its events.
public struct WatchedRun: CheckpointSource {
    let watcher: RunWatcher
    let scanner: RunScanner
    let pending: [CheckpointFile]
    public let annotations: SampleAnnotations
    let runID: String?
    let parent: pid_t

    public var sampleCount: Int { pending[0].sampleCount }
    public var dimension: Int { pending[0].dimension }

    public func emit(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async {
        let clock = ContinuousClock()
        var lastEmission = clock.now
        var doneSince: ContinuousClock.Instant?
        var scanner = scanner
        var pending = pending
        var index = 0
        // The system short of descriptors or memory is waited out: said once, and once more when it passes.
        var short = false
        let shortOf = { (error: RunFormatError?) in
            if let error, !short { watcher.warn("\(error); looking again shortly") }
            if error == nil, short { watcher.inform("\(watcher.path): following the run again") }
            short = error != nil
        }
        do {
            while !stop.isRaised {
                try Task.checkCancellation()
                for checkpoint in pending {
                    if stop.isRaised { break }
                    guard let embeddings = try Self.loadUnlessChanging(checkpoint, shortOf: shortOf) else {
                        // Rewritten between the scan and the read, or the system short of descriptors: not ready yet.
                        for later in pending.drop(while: { $0.step < checkpoint.step }) { scanner.reconsider(later) }
                        break
                    }
                    await channel.send(try CheckpointEvent(file: checkpoint, index: index, runLosses: scanner.losses.history,
                                                           embeddings: embeddings))
                    index += 1
                    lastEmission = clock.now
                }
                pending = []
                if stop.isRaised { break }
                try watcher.checkParent(parent)

                let snapshot = scanner.scan()
                for warning in snapshot.warnings { watcher.warn(warning) }
                shortOf(snapshot.waiting?.kind == .exhausted ? snapshot.waiting : nil)
                guard snapshot.exists else { throw WatchError.runDeleted(watcher.path) }
                if let problem = snapshot.problems.first { throw problem }
                if snapshot.runID != runID { throw WatchError.runReplaced(watcher.path, old: runID, new: snapshot.runID) }
                pending = snapshot.ready
                if !pending.isEmpty { continue }
                if snapshot.isDone {
                    guard let waiting = snapshot.waiting else { break }
                    if snapshot.isSettling { try await Task.sleep(for: watcher.pollInterval); continue }
                    // A file may still be settling; one that stays incomplete past that is an error.
                    let since = doneSince ?? clock.now
                    doneSince = since
                    if clock.now - since > watcher.settle + .seconds(1) { throw WatchError.incompleteAtDone(waiting) }
                }
                if !snapshot.isSettling, watcher.timedOut(since: lastEmission, clock: clock) {
                    if let waiting = snapshot.waiting { watcher.warn("\(waiting.path): still incomplete when the idle timeout ran out (\(waiting.problem))") }
                    break
                }
                try await Task.sleep(for: watcher.pollInterval)
            }
            channel.finish()
        } catch is CancellationError {
            channel.finish()
        } catch {
            channel.fail(error)
        }
    }

    /// The checkpoint's embeddings, or nil when its file changed while it was read or the system
    /// ran short of descriptors or memory to read it (said once): either way, it is read again later.
    private static func loadUnlessChanging(_ checkpoint: CheckpointFile, shortOf: (RunFormatError?) -> Void) throws(RunFormatError) -> Matrix? {
        do {
            return try checkpoint.loadEmbeddings()
        } catch {
            if error.kind == .exhausted { shortOf(error) }
            if error.kind == .changing || error.kind == .exhausted { return nil }
            throw error
        }
    }
}
