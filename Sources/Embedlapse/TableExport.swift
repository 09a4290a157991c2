import AsyncAlgorithms
import Compositor
import Foundation
import Projection
import RunFormat

/// `embedlapse export`: a saved run analysed as the film analyses it (the same stages, so the
/// coordinates are `--dump-data`'s), written as a `SampleTable` CSV, one checkpoint at a time.
///
/// The table is written under a temporary name and renamed into place at the end: a failure or a
/// Ctrl-C leaves no file, and an earlier table of that name untouched.
public enum TableExport {
    /// Returns the number of checkpoints written, or nil when `stop` was raised (nothing written).
    public static func write(run: RunDirectory, to path: String, alignment: AlignmentTarget, cache: AnalysisCache? = nil,
                             stop: StopFlag, warn: @escaping @Sendable (String) -> Void = { _ in },
                             progress: (@Sendable (Int) -> Void)? = nil) async throws -> Int? {
        let plan = try OutputPlan(table: path)
        plan.removeLeftoverTemporaries()
        let file = try TableFile(path: path)
        do {
            let source = RunDirectorySource(run: run)
            let finalScores = alignment == .last ? try source.finalProjection() : nil
            let table = SampleTable(labels: run.labels, classNames: FilmSetting.classNames(labels: run.labels, classNames: run.classNames))
            let analyser = StageState(CheckpointAnalyser(aligner: Aligner(target: alignment, finalScores: finalScores),
                                                         labels: run.labels, topCount: 0, timings: StageTimings(),
                                                         maxBLASThreads: ProcessInfo.processInfo.activeProcessorCount,
                                                         cache: cache, warn: warn))
            let analysis = StageQueue("analysis")
            let events = AsyncThrowingChannel<CheckpointEvent, any Error>()
            let written = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await source.emit(into: events, stop: stop) }
                try file.append(Array(SampleTable.header.utf8))
                var count = 0
                for try await event in events {
                    let rows = try await analysis.run { table.rows(SampleTable.Checkpoint(try analyser.value.analyse(event))) }
                    try file.append(rows)
                    count += 1
                    progress?(count)
                }
                return count
            }
            guard !stop.isRaised else {
                file.abandon()
                return nil
            }
            try file.finish()
            return written
        } catch {
            file.abandon()
            throw error
        }
    }
}

/// A file written in pieces under its temporary name (tracked, so that an abort removes it) and
/// renamed into place by `finish()`.
final class TableFile {
    let path: String
    private let temporary: String
    private var descriptor: Int32

    init(path: String) throws(PipelineError) {
        self.path = path
        temporary = AtomicFile.temporaryPath(for: path)
        UnfinishedOutputs.track(temporary)
        descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            UnfinishedOutputs.untrack(temporary)
            throw PipelineError("\(path): cannot write: \(systemWords(errno))")
        }
    }

    func append(_ bytes: [UInt8]) throws(PipelineError) {
        let failure = OutputFile.writeAll(bytes, to: descriptor)
        guard failure == 0 else { throw PipelineError("\(path): cannot write: \(systemWords(failure))") }
    }

    func finish() throws(PipelineError) {
        let closed = close(descriptor) == 0
        descriptor = -1
        let failure = !closed ? errno : rename(temporary, path) != 0 ? errno : 0
        defer { UnfinishedOutputs.untrack(temporary) }
        guard failure == 0 else {
            unlink(temporary)
            throw PipelineError("\(path): cannot write: \(systemWords(failure))")
        }
    }

    func abandon() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(temporary)
        UnfinishedOutputs.untrack(temporary)
    }
}
