import LinearAlgebra
import Projection
import RunFormat

/// What every stage knows of one checkpoint: where it sits in the run and what was logged up to
/// it. Each stage passes it on and adds its own results beside it (`CheckpointEvent` the
/// embeddings, `AnalysedCheckpoint` the projection and scores), read through as their own fields.
public struct CheckpointRecord: Sendable {
    /// 0-based position in the run.
    public let index: Int
    public let step: Int
    public let epoch: Double?
    /// The losses logged up to this checkpoint's step.
    public let losses: LossHistory
    /// Where the embeddings came from, for error messages (a file path, or a description).
    public let origin: String
    /// Accuracy on the evaluation set, when the source knows it.
    public let testAccuracy: Double?
}

/// One checkpoint of a training, as every source emits it: the record and its embeddings.
@dynamicMemberLookup
public struct CheckpointEvent: Sendable {
    public let record: CheckpointRecord
    /// The `N x D` embeddings of the evaluation set at this checkpoint.
    public let embeddings: Matrix

    public init(index: Int, step: Int, epoch: Double?, embeddings: Matrix, losses: LossHistory, origin: String,
                testAccuracy: Double? = nil) {
        record = CheckpointRecord(index: index, step: step, epoch: epoch, losses: losses, origin: origin, testAccuracy: testAccuracy)
        self.embeddings = embeddings
    }

    public subscript<T>(dynamicMember field: KeyPath<CheckpointRecord, T>) -> T { record[keyPath: field] }
}

/// A checkpoint after the numeric stages: what the compositor draws and `--dump-data` writes.
/// The embeddings are not kept: drawing needs only their projection.
@dynamicMemberLookup
public struct AnalysedCheckpoint: Sendable {
    public let record: CheckpointRecord
    /// PCA scores before alignment.
    public let pca: PlanarPoints
    /// How the PCA was computed (exact, or warm-started from the previous checkpoint) and in how many iterations.
    public let pcaMethod: IncrementalPCA.Method
    public let pcaIterations: Int
    public let alignment: AlignedFrame
    public let outliers: OutlierScores
    /// The most atypical samples, most atypical first.
    public let top: [OutlierScores.Ranked]

    public subscript<T>(dynamicMember field: KeyPath<CheckpointRecord, T>) -> T { record[keyPath: field] }
}

/// The numeric stages in order: PCA, Procrustes alignment, outlier scores.
struct CheckpointAnalyser: Sendable {
    private var aligner: Aligner
    private var pca = IncrementalPCA()
    /// Last checkpoint's neighbours: the embeddings move little between checkpoints, so they
    /// are good first guesses for the next exact search.
    private var previousNeighbours: [Int32]?
    let topCount: Int
    let timings: StageTimings
    let maxBLASThreads: Int

    init(aligner: Aligner, topCount: Int, timings: StageTimings, maxBLASThreads: Int) {
        self.aligner = aligner
        self.topCount = topCount
        self.timings = timings
        self.maxBLASThreads = maxBLASThreads
    }

    mutating func analyse(_ event: CheckpointEvent) throws(PipelineError) -> AnalysedCheckpoint {
        // Small problems run faster on one OpenBLAS thread than on two that fight the encoder's.
        let size = event.embeddings.rows * event.embeddings.columns
        let threads = size >= 1 << 20 ? maxBLASThreads : 1
        BLAS.setThreadCount(threads)
        pca.threads = threads
        do {
            let projection = try timings.measure("pca") { try pca.fit(event.embeddings) }
            let alignment = try timings.measure("alignment") { try aligner.align(projection.scores) }
            let outliers = try timings.measure("outliers") {
                try OutlierScores(embeddings: event.embeddings, threads: threads, seeds: previousNeighbours)
            }
            previousNeighbours = outliers.neighbourIndices.isEmpty ? nil : outliers.neighbourIndices
            return AnalysedCheckpoint(record: event.record, pca: projection.scores, pcaMethod: pca.lastMethod,
                                      pcaIterations: pca.lastIterations, alignment: alignment, outliers: outliers,
                                      top: outliers.mostAtypical(topCount))
        } catch {
            throw PipelineError("\(event.origin): \(error)")
        }
    }
}

/// A failure anywhere in the pipeline, as the one line the user sees.
public struct PipelineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
