import Foundation
import Synchronization

/// Per-stage, per-checkpoint wall times, for `--timings FILE` and the benchmark.
public final class StageTimings: Sendable {
    private let samples = Mutex<[String: [Double]]>([:])
    private let clock = ContinuousClock()

    public init() {}

    /// Runs `body` and adds its duration to `stage`.
    public func measure<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
        let start = clock.now
        defer {
            let elapsed = (clock.now - start).components
            let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
            samples.withLock { $0[stage, default: []].append(seconds) }
        }
        return try body()
    }

    public var snapshot: [String: [Double]] { samples.withLock { $0 } }

    /// `{"stage": [milliseconds per checkpoint, ...], ...}`.
    /// Replaces the file whole (written, then renamed); its folder was checked with the other outputs.
    public func write(to path: String) throws {
        let milliseconds = snapshot.mapValues { $0.map { ($0 * 1e6).rounded() / 1e3 } }
        guard let data = try? JSONSerialization.data(withJSONObject: milliseconds, options: [.prettyPrinted, .sortedKeys]) else {
            throw PipelineError("\(path): cannot write the timings: a time is not a number")
        }
        try OutputFile.write(Array(data), to: path)
    }
}
