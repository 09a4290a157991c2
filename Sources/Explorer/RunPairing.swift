import Pipeline
import Projection
import Synchronization

/// Where a run follower puts what it analyses: the run's store, or one side of a comparison.
protocol AnalysisSink: Sendable {
    /// The store the page reads, where problems are reported.
    var store: ExplorerStore { get }
    /// The run's facts, from its first checkpoint; throws when the run cannot be served beside the other.
    func start(_ facts: ExplorerStore.RunFacts) throws
    func add(_ checkpoint: ExplorerStore.Checkpoint)
    /// The run is complete (`DONE`).
    func finish()
}

extension ExplorerStore: AnalysisSink {
    var store: ExplorerStore { self }
    func finish() { markDone() }
}

/// Two runs are not one evaluation set; `serve` stops with this line.
public struct EvaluationSetMismatch: Error, CustomStringConvertible {
    public let description: String
}

/// `serve RUN_A RUN_B`: two runs followed side by side, as `compare` films them.
///
/// Each run is analysed on its own (its own PCA and alignment over time). The right run's
/// checkpoints are rotated onto the left run's points of the same moment (Procrustes, reflections
/// allowed), as the film's right panel is: its first checkpoint onto the left run's first, each
/// later one at step `s` onto the left run's latest checkpoint at or before `s`. A right checkpoint
/// is published once that target is settled (the left run has reached `s`, or is done), so its
/// points never change after the page has read them; the right run can lag the left, never lead it.
final class RunPairing: Sendable {
    let left: ExplorerStore
    let right: ExplorerStore

    private struct State {
        var facts: [ExplorerStore.RunFacts?] = [nil, nil]
        /// Right checkpoints analysed and waiting for the left run to reach them.
        var pending: [ExplorerStore.Checkpoint] = []
        var published = 0
        var leftDone = false
        var rightDone = false
    }

    private let state = Mutex(State())

    init(left: ExplorerStore, right: ExplorerStore) {
        self.left = left
        self.right = right
    }

    var sides: [any AnalysisSink] { [Side(pairing: self, run: 0), Side(pairing: self, run: 1)] }

    private struct Side: AnalysisSink {
        let pairing: RunPairing
        let run: Int

        var store: ExplorerStore { run == 0 ? pairing.left : pairing.right }
        func start(_ facts: ExplorerStore.RunFacts) throws { try pairing.start(facts, run: run) }
        func add(_ checkpoint: ExplorerStore.Checkpoint) { pairing.add(checkpoint, run: run) }
        func finish() { pairing.finish(run: run) }
    }

    private func start(_ facts: ExplorerStore.RunFacts, run: Int) throws {
        let problem: String? = state.withLock { state in
            state.facts[run] = facts
            guard let a = state.facts[0], let b = state.facts[1] else { return nil }
            return EvaluationSet.mismatch(left.runName, a.sampleCount, a.labels, right.runName, b.sampleCount, b.labels)
        }
        if let problem { throw EvaluationSetMismatch(description: problem) }
        (run == 0 ? left : right).start(facts)
    }

    private func add(_ checkpoint: ExplorerStore.Checkpoint, run: Int) {
        state.withLock { state in
            if run == 0 { left.add(checkpoint) } else { state.pending.append(checkpoint) }
            publish(&state)
        }
    }

    private func finish(run: Int) {
        state.withLock { state in
            if run == 0 {
                state.leftDone = true
                left.markDone()
            } else {
                state.rightDone = true
            }
            publish(&state)
        }
    }

    /// Publishes the right checkpoints whose target is settled, in order.
    private func publish(_ state: inout State) {
        while let next = state.pending.first {
            let isFirst = state.published == 0
            let reached = isFirst ? !left.steps.isEmpty : (left.steps.last ?? .min) >= next.step
            guard reached || state.leftDone else { break }
            let target = isFirst ? left.checkpoints.first : left.shown(at: next.step)
            // Degenerate points (all in one place) have no rotation: they are shown as they are.
            let fit = target.flatMap { try? ProcrustesFit(target: $0.columns.display, source: next.columns.display) }
            right.add(fit.map(next.rotated) ?? next)
            state.pending.removeFirst()
            state.published += 1
        }
        if state.rightDone && state.pending.isEmpty { right.markDone() }
    }
}
