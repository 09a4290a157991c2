import AsyncAlgorithms
import Foundation
import LinearAlgebra
import RunFormat

/// Follows a run directory that another process (a training) is writing, and emits each new
/// checkpoint as soon as its embeddings are complete.
///
/// A file is complete when its `.npy` header parses and the file holds all the data the header
/// announces; until then it is waited for, never read. This covers both writers that write under
/// a temporary name and rename, and writers that write the final file in place (numpy's `np.save`
/// writes the header, then the data). Checkpoints are emitted in step order; one that turns up
/// after a later step was emitted is skipped with a warning (a video cannot go back in time).
///
/// The watch ends when the run contains a `DONE` file (after every checkpoint written before it),
/// after `idleTimeout` without a new checkpoint, or when `stop` is raised.
public struct RunWatcher: CheckpointSource {
    public let path: String
    /// How often the run directory is looked at: a stat per checkpoint and one listing.
    public var pollInterval: Duration = .milliseconds(20)
    /// Stop after this long without a new checkpoint; nil waits for `DONE` or a stop request.
    public var idleTimeout: Duration?
    /// Receives warnings (skipped checkpoints, unreadable loss logs) as one-line messages.
    public var warn: @Sendable (String) -> Void = { _ in }

    public static let doneMarker = "DONE"

    public init(path: String) { self.path = path }

    /// What the first complete checkpoint tells about the whole film.
    public struct Start: Sendable {
        public let sampleCount: Int
        public let dimension: Int
        public let annotations: SampleAnnotations
    }

    /// Waits for the first complete checkpoint (and readable labels, names and images, when those
    /// files exist). Returns nil if the run ends, times out or is stopped before one appears.
    public func waitForStart(stop: StopFlag) async throws -> Start? {
        guard FileManager.default.fileExists(atPath: path) else { throw PipelineError("\(path): no such run directory") }
        let clock = ContinuousClock()
        let started = clock.now
        while !stop.isRaised {
            let done = isDone
            // The first checkpoint with an embeddings file at all (folders without one are skipped, as in `emit`).
            let first = pendingCheckpoints(after: -1).first { FileManager.default.fileExists(atPath: $0.embeddings) }
            if let first, case .ready(let array) = Self.state(of: first.embeddings) {
                let annotations = SampleAnnotations.read(runPath: path, sampleCount: array.shape[0])
                if let problem = annotations.problems.first {
                    // An annotation file may still be being written: give it until the run ends.
                    if done || timedOut(since: started, clock: clock) { throw PipelineError(problem.description) }
                } else {
                    _ = try RunDirectory.checkedEmbeddings(array.path, like: nil)
                    return Start(sampleCount: array.shape[0], dimension: array.shape[1], annotations: annotations)
                }
            } else if done || timedOut(since: started, clock: clock) {
                if let first, case .incomplete(let problem) = Self.state(of: first.embeddings) {
                    throw PipelineError("\(first.embeddings): \(problem)")
                }
                return nil
            }
            try? await Task.sleep(for: pollInterval)
        }
        return nil
    }

    public func emit(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async {
        let clock = ContinuousClock()
        var lastEmission = clock.now
        var lastStep = -1
        var index = 0
        var shape: (n: Int, d: Int, path: String)?
        var losses = LiveLosses(runPath: path, warn: warn)
        var reportedLate = Set<String>()
        var emitted = Set<Int>()
        do {
            while !stop.isRaised && !Task.isCancelled {
                // Look for DONE first: every checkpoint written before it is then found by this scan.
                let done = isDone
                var waiting: (path: String, problem: String)?
                for checkpoint in pendingCheckpoints(after: lastStep) {
                    if stop.isRaised { break }
                    switch Self.state(of: checkpoint.embeddings) {
                    case .missing:
                        continue
                    case .incomplete(let problem):
                        waiting = (checkpoint.embeddings, problem)
                    case .ready(let array):
                        let checked = try RunDirectory.checkedEmbeddings(array.path, like: shape)
                        if shape == nil { shape = (checked.shape[0], checked.shape[1], checked.path) }
                        let file = CheckpointFile(step: checkpoint.step, directory: checkpoint.directory, embeddings: checked,
                                                  epoch: losses.absorb(checkpoint: checkpoint.directory))
                        let embeddings = try file.loadEmbeddings()
                        let history = losses.history(upTo: checkpoint.step)
                        await channel.send(CheckpointEvent(index: index, step: checkpoint.step,
                                                           epoch: file.epoch ?? history.epoch(atStep: checkpoint.step),
                                                           embeddings: embeddings, losses: history, origin: checked.path))
                        index += 1
                        emitted.insert(checkpoint.step)
                        lastStep = checkpoint.step
                        lastEmission = clock.now
                        continue
                    }
                    break  // keep step order: wait for this checkpoint before any later one
                }
                for late in lateCheckpoints(before: lastStep, emitted: emitted) where reportedLate.insert(late).inserted {
                    warn("\(late): arrived after a later checkpoint was rendered, skipped")
                }
                if done {
                    if let waiting { throw PipelineError("\(waiting.path): \(waiting.problem) (the run is marked \(Self.doneMarker))") }
                    break
                }
                if timedOut(since: lastEmission, clock: clock) {
                    if let waiting { warn("\(waiting.path): still incomplete when the idle timeout ran out (\(waiting.problem))") }
                    break
                }
                try? await Task.sleep(for: pollInterval)
            }
            channel.finish()
        } catch {
            channel.fail(error)
        }
    }

    // MARK: Scanning

    private var isDone: Bool {
        FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(Self.doneMarker))
    }

    private func timedOut(since start: ContinuousClock.Instant, clock: ContinuousClock) -> Bool {
        guard let idleTimeout else { return false }
        return clock.now - start >= idleTimeout
    }

    struct Candidate {
        let step: Int
        let directory: String
        var embeddings: String { (directory as NSString).appendingPathComponent("embeddings.npy") }
    }

    private func checkpointDirectories() -> [Candidate] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.compactMap { name -> Candidate? in
            guard name.hasPrefix("checkpoint-"), let step = Int(name.dropFirst("checkpoint-".count)), step >= 0 else { return nil }
            return Candidate(step: step, directory: (path as NSString).appendingPathComponent(name))
        }.sorted { $0.step < $1.step }
    }

    private func pendingCheckpoints(after step: Int) -> [Candidate] {
        checkpointDirectories().filter { $0.step > step }
    }

    /// Embeddings below the last emitted step: they appeared too late to be shown.
    private func lateCheckpoints(before step: Int, emitted: Set<Int>) -> [String] {
        checkpointDirectories().filter { $0.step < step && !emitted.contains($0.step) }
            .map(\.embeddings).filter { FileManager.default.fileExists(atPath: $0) }
    }

    enum FileState {
        case missing
        case incomplete(String)
        case ready(NPYArray)
    }

    static func state(of path: String) -> FileState {
        guard FileManager.default.fileExists(atPath: path) else { return .missing }
        do { return .ready(try NPYArray(path: path)) } catch { return .incomplete(error.problem) }
    }
}

/// The loss log of a run that is still growing: `losses.csv` when it exists, else the
/// `trainer_state.json` of every checkpoint seen so far.
struct LiveLosses {
    let runPath: String
    let warn: @Sendable (String) -> Void
    private var logs: [[[String: Any]]] = []
    private var lastGood = LossHistory()
    private var warned = false

    init(runPath: String, warn: @escaping @Sendable (String) -> Void) {
        self.runPath = runPath
        self.warn = warn
    }

    /// Reads a checkpoint's `trainer_state.json`, if any; returns its epoch.
    mutating func absorb(checkpoint directory: String) -> Double? {
        let statePath = (directory as NSString).appendingPathComponent("trainer_state.json")
        guard FileManager.default.fileExists(atPath: statePath) else { return nil }
        do {
            let state = try RunDirectory.readJSONObject(statePath)
            logs.append(state["log_history"] as? [[String: Any]] ?? [])
            return (state["epoch"] as? NSNumber)?.doubleValue
        } catch {
            warn("\(error.description); its losses are left out")
            return nil
        }
    }

    mutating func history(upTo step: Int) -> LossHistory {
        let merged = LossHistory.merge(trainerStates: logs)
        let csvPath = (runPath as NSString).appendingPathComponent("losses.csv")
        if FileManager.default.fileExists(atPath: csvPath) {
            do {
                let csv = try LossHistory.read(csv: csvPath, growing: true)
                lastGood = LossHistory(training: csv.training, evaluation: merged.evaluation,
                                       epochs: csv.epochs.isEmpty ? merged.epochs : csv.epochs, source: csv.source)
            } catch {
                if !warned { warn("\(error.description); showing the last readable losses") }
                warned = true
            }
        } else {
            lastGood = merged
        }
        return lastGood.upTo(step: step)
    }
}
