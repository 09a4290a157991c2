import AsyncAlgorithms
import CheckpointCache
import Compositor
import FileOutput
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
                             projection: ProjectionMethod = .pca,
                             stop: StopFlag, warn: @escaping @Sendable (String) -> Void = { _ in },
                             progress: (@Sendable (Int) -> Void)? = nil) async throws -> Int? {
        let plan = try OutputPlan(table: path)
        plan.removeLeftoverTemporaries()
        let file = try TableFile(path: path)
        do {
            let source = RunDirectorySource(run: run, deferReading: cache != nil)
            let finalScores = alignment == .last ? try source.finalProjection() : nil
            let table = SampleTable(labels: run.labels, classNames: FilmSetting.classNames(labels: run.labels, classNames: run.classNames))
            let analysis = AnalysisStage(CheckpointAnalyser(aligner: Aligner(target: alignment, finalScores: finalScores),
                                                            labels: run.labels, topCount: 0, timings: StageTimings(),
                                                            maxBLASThreads: ProcessInfo.processInfo.activeProcessorCount,
                                                            cache: cache, projection: projection, warn: warn))
            let events = AsyncThrowingChannel<CheckpointEvent, any Error>()
            let written = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await source.emit(into: events, stop: stop) }
                try file.append(Array(SampleTable.header.utf8))
                var count = 0
                for try await event in events {
                    let rows = try await analysis.analyse(event) { table.rows(SampleTable.Checkpoint($0)) }
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

/// The table, written in pieces into a `WholeFile` and put in place by `finish()`.
final class TableFile {
    let path: String
    private let file: WholeFile

    init(path: String) throws(PipelineError) {
        self.path = path
        do { file = try WholeFile(path: path) } catch { throw PipelineError(error) }
    }

    func append(_ bytes: [UInt8]) throws(PipelineError) {
        do { try file.append(bytes) } catch { throw PipelineError(error) }
    }

    func finish() throws(PipelineError) {
        do { try file.commit() } catch { throw PipelineError(error) }
    }

    func abandon() { file.abandon() }
}
