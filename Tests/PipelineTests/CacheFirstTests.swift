import CheckpointCache
import Foundation
import LinearAlgebra
import Projection
import RunFormat
import Testing
@testable import Pipeline

/// The analysis cache is consulted before a checkpoint's embeddings are read: a hit needs no
/// embeddings, so a cached run renders with its matrices never loaded.
@Suite struct CacheFirstTests {
    /// A run of two labelled checkpoints of `n x d` values in a new temporary folder.
    func makeRun(n: Int = 80, d: Int = 12) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cache-first-\(UUID().uuidString)").path
        var seed: UInt64 = 7
        func next() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(seed >> 40) / Float(1 << 24) - 0.5
        }
        let labels = (0..<n).map { $0 % 3 }
        let writer = try RunWriter(path: path, annotations: SampleAnnotations(labels: labels, classNames: ["a", "b", "c"]))
        for step in [10, 20] {
            let values = (0..<(n * d)).map { i in next() + (i % d == labels[i / d] ? 2 : 0) }
            try writer.record(step: step, epoch: Double(step) / 10, embeddings: Matrix(rows: n, columns: d, storage: values),
                              testLoss: 1, testAccuracy: 0.5, losses: LossHistory(training: [.init(step: step, loss: 1)]))
        }
        try writer.finish()
        return path
    }

    func analyser(labels: [Int]?, cache: AnalysisCache) -> CheckpointAnalyser {
        CheckpointAnalyser(aligner: Aligner(target: .previous), labels: labels, topCount: 5, timings: StageTimings(),
                           maxBLASThreads: 1, cache: cache)
    }

    @Test func aCacheHitReadsNoEmbeddings() throws {
        let path = try makeRun()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try RunDirectory(path: path)
        let cache = try AnalysisCache(opening: path + "/cache")
        var filling = analyser(labels: run.labels, cache: cache)
        let first = try run.checkpoints.enumerated().map { index, file in
            try filling.analyse(CheckpointEvent(file: file, index: index, runLosses: run.losses, deferReading: true))
        }
        // The embeddings move away; the scanned files' identities still match the cache entries.
        for file in run.checkpoints { try FileManager.default.removeItem(atPath: file.embeddingsPath) }
        var reading = analyser(labels: run.labels, cache: cache)
        let again = try run.checkpoints.enumerated().map { index, file in
            try reading.analyse(CheckpointEvent(file: file, index: index, runLosses: run.losses, deferReading: true))
        }
        for (a, b) in zip(first, again) {
            #expect(a.outliers.scores == b.outliers.scores)
            #expect(a.labelQuality?.agreement == b.labelQuality?.agreement)
            #expect(a.alignment.display == b.alignment.display)
        }
        // Without a cache the analyser does read them, and says which file is missing.
        var uncached = CheckpointAnalyser(aligner: Aligner(target: .previous), labels: run.labels, topCount: 5,
                                          timings: StageTimings(), maxBLASThreads: 1)
        #expect(throws: PipelineError.self) {
            try uncached.analyse(CheckpointEvent(file: run.checkpoints[0], index: 0, runLosses: run.losses, deferReading: true))
        }
    }

    @Test func aMissReadsTheEmbeddingsOnce() throws {
        let path = try makeRun()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try RunDirectory(path: path)
        let cache = try AnalysisCache(opening: path + "/cache")
        var deferred = analyser(labels: run.labels, cache: cache)
        let event = try CheckpointEvent(file: run.checkpoints[0], index: 0, runLosses: run.losses, deferReading: true)
        #expect(event.sampleCount == 80 && event.dimension == 12)
        let analysed = try deferred.analyse(event)
        var eager = CheckpointAnalyser(aligner: Aligner(target: .previous), labels: run.labels, topCount: 5,
                                       timings: StageTimings(), maxBLASThreads: 1)
        let reference = try eager.analyse(CheckpointEvent(file: run.checkpoints[0], index: 0, runLosses: run.losses))
        #expect(analysed.outliers.scores == reference.outliers.scores)
        #expect(analysed.labelQuality?.margin == reference.labelQuality?.margin)
    }
}
