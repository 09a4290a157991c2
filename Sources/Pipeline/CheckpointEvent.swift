import CheckpointCache
import Compositor
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
    /// The `N x D` embeddings of the evaluation set, or nil where a source left them in `file`:
    /// with an analysis cache they are read only when the cache has no entry for the file.
    private let loaded: Matrix?
    /// The file they were read from, when they were (the analysis cache is keyed by it).
    public let file: CheckpointFile?
    /// Lives as long as the event: a source may wait for it to go before reading another.
    let lifetime: EventLifetime?

    public init(index: Int, step: Int, epoch: Double?, embeddings: Matrix, losses: LossHistory, origin: String,
                testAccuracy: Double? = nil, file: CheckpointFile? = nil) {
        self.init(record: CheckpointRecord(index: index, step: step, epoch: epoch, losses: losses, origin: origin,
                                           testAccuracy: testAccuracy),
                  embeddings: embeddings, file: file, lifetime: nil)
    }

    /// A checkpoint file's event, the one way a file becomes one: its embeddings (given, read
    /// here, or with `deferReading` left in the file), its epoch from the file or else the run's
    /// loss log, and the losses up to its step.
    init(file: CheckpointFile, index: Int, runLosses: LossHistory, embeddings: Matrix? = nil, deferReading: Bool = false,
         lifetime: EventLifetime? = nil) throws(RunFormatError) {
        let record = CheckpointRecord(index: index, step: file.step, epoch: file.epoch ?? runLosses.epoch(atStep: file.step),
                                      losses: runLosses.upTo(step: file.step), origin: file.embeddingsPath, testAccuracy: nil)
        var matrix = embeddings
        if matrix == nil && !deferReading { matrix = try file.loadEmbeddings() }
        self.init(record: record, embeddings: matrix, file: file, lifetime: lifetime)
    }

    private init(record: CheckpointRecord, embeddings: Matrix?, file: CheckpointFile?, lifetime: EventLifetime?) {
        self.record = record
        self.loaded = embeddings
        self.file = file
        self.lifetime = lifetime
    }

    /// N: the evaluation set's size (from the file's header when the values are not read yet).
    public var sampleCount: Int { loaded?.rows ?? file?.sampleCount ?? 0 }
    /// D: the embedding's width.
    public var dimension: Int { loaded?.columns ?? file?.dimension ?? 0 }

    /// The embeddings, read and validated from the file if the source left them there.
    public func embeddings() throws(RunFormatError) -> Matrix {
        if let loaded { return loaded }
        guard let file else { preconditionFailure("an event has its embeddings or their file") }
        return try file.loadEmbeddings()
    }

    public subscript<T>(dynamicMember field: KeyPath<CheckpointRecord, T>) -> T { record[keyPath: field] }
}

/// An object owned by one `CheckpointEvent` and its copies: once it is gone, so are the
/// event's embeddings (unless a stage copied the matrix out).
final class EventLifetime: Sendable {}

/// A checkpoint after the numeric stages: what the compositor draws and `--dump-data` writes.
/// The embeddings are not kept: drawing needs only their projection.
@dynamicMemberLookup
public struct AnalysedCheckpoint: Sendable {
    public let record: CheckpointRecord
    /// PCA scores before alignment.
    public let pca: PlanarPoints
    /// The picture before alignment: the PCA scores, or the UMAP or t-SNE layout (`ProjectionMethod`).
    public let layout: PlanarPoints
    /// How the picture was made.
    public let projection: ProjectionMethod
    /// How much of the embedding space the picture keeps.
    public let faithfulness: Faithfulness?
    /// How the PCA was computed (exact, or warm-started from the previous checkpoint) and in how many iterations.
    public let pcaMethod: IncrementalPCA.Method
    public let pcaIterations: Int
    public let alignment: AlignedFrame
    public let outliers: OutlierScores
    /// The most atypical samples, most atypical first.
    public let top: [RankedSample]
    /// kNN label agreement and margin on the outlier scorer's graph; nil without labels.
    public let labelQuality: LabelQuality?
    /// How far each sample moved since the previous checkpoint relative to its neighbours (all 0
    /// at the first checkpoint).
    public let movers: MoverScores
    /// The label-quality dynamics up to and including this checkpoint; nil without labels. At the
    /// last checkpoint, the run's final dynamics (the summary frame's map).
    public let dynamics: TrainingDynamics?

    public subscript<T>(dynamicMember field: KeyPath<CheckpointRecord, T>) -> T { record[keyPath: field] }

    /// The `count` samples a leaderboard of `kind` lists, first place first; ties go to the lower index.
    /// - `.outliers`: lowest outlier score first (as `top`).
    /// - `.labelIssues`: lowest running kNN-AUM (`dynamics.knnAUM`) first; empty without labels.
    /// - `.movers`: highest `movers.values` first; samples that did not move (value 0, as at the
    ///   first checkpoint) are not listed.
    /// - `.disagreement`: empty; it ranks two runs' checkpoints together (`compare`).
    public func ranking(_ kind: LeaderboardKind, count: Int) -> [RankedSample] {
        guard count > 0 else { return [] }
        switch kind {
        case .outliers:
            return outliers.mostAtypical(count)
        case .labelIssues:
            guard let scores = dynamics?.knnAUM else { return [] }
            return Self.lowest(scores, count: count)
        case .disagreement:
            return []
        case .movers:
            let negated = movers.values.map { -$0 }
            return Self.lowest(negated, count: count).filter { $0.value < 0 }
                .map { RankedSample(index: $0.index, value: -$0.value) }
        }
    }

    /// The `count` smallest values, ties to the lower index; NaN (never produced) last. A single
    /// pass keeping the best few in order, as a leaderboard is short and may be asked every frame.
    static func lowest(_ values: [Float], count: Int) -> [RankedSample] {
        func before(_ a: Int, _ b: Int) -> Bool {
            let x = values[a], y = values[b]
            if x.isNaN != y.isNaN { return y.isNaN }
            return x < y || (x == y || (x.isNaN && y.isNaN)) && a < b
        }
        let order: [Int]
        if count > 64 {
            order = Array(values.indices.sorted(by: before).prefix(count))
        } else {
            var best: [Int] = []
            best.reserveCapacity(count + 1)
            for i in values.indices {
                if best.count == count {
                    guard let last = best.last, before(i, last) else { continue }
                    best.removeLast()
                }
                var slot = best.count
                while slot > 0 && before(i, best[slot - 1]) { slot -= 1 }
                best.insert(i, at: slot)
            }
            order = best
        }
        return order.map { RankedSample(index: $0, value: values[$0]) }
    }
}

/// The numeric stages in order: PCA, Procrustes alignment, outlier scores, label quality, movers.
/// Public so that the explorer (`embedlapse serve`) analyses checkpoints with the film's own stages.
public struct CheckpointAnalyser: Sendable {
    private var aligner: Aligner
    private var pca = IncrementalPCA()
    /// Last checkpoint's neighbours: the embeddings move little between checkpoints, so they
    /// are good first guesses for the next exact search.
    private var previousNeighbours: [Int32]?
    /// The previous checkpoint's display coordinates and kNN-majority labels, for the movers.
    private var previousDisplay: PlanarPoints?
    private var previousMajority: [Int]?
    /// The label-quality history; nil without labels.
    private var dynamics: TrainingDynamicsAccumulator?
    /// Each sample's class, when the run has labels: the label-quality scores need them.
    let labels: [Int]?
    let topCount: Int
    let timings: StageTimings
    let maxBLASThreads: Int
    /// Where each checkpoint's PCA and outlier scores are read from, or computed into; nil: none.
    let cache: AnalysisCache?
    /// The neighbour search; an approximate one certifies the first `topCount` outliers.
    let search: OutlierSearch
    /// How the picture is made; a layout other than PCA follows the previous checkpoint's.
    let projection: ProjectionMethod
    private var previousLayout: PlanarPoints?
    /// Called once if the cache cannot be written (the film goes on without it).
    let warn: @Sendable (String) -> Void
    private var cacheWriteFailed = false
    private var unusableEntries = 0
    private var warnedUnproved = false

    /// - Parameters:
    ///   - labels: one class per sample, or nil; the label-quality scores and dynamics need them.
    ///   - topCount: how many of the most atypical samples `AnalysedCheckpoint.top` lists.
    ///   - maxBLASThreads: OpenBLAS and search threads for large checkpoints (small ones use one).
    ///   - cache: with one, each checkpoint read from a file gets its PCA and outlier scores from the
    ///     cache, or computes them as `embedlapse analyse` would (the exact PCA route, an unseeded
    ///     search) and stores them there.
    public init(aligner: Aligner, labels: [Int]?, topCount: Int, timings: StageTimings, maxBLASThreads: Int,
                cache: AnalysisCache? = nil, search: OutlierSearch = .auto, projection: ProjectionMethod = .pca,
                warn: @escaping @Sendable (String) -> Void = { _ in }) {
        self.cache = cache
        self.projection = projection
        self.search = search
        self.warn = warn
        self.aligner = aligner
        self.labels = labels
        dynamics = labels.map(TrainingDynamicsAccumulator.init(labels:))
        self.topCount = topCount
        self.timings = timings
        self.maxBLASThreads = maxBLASThreads
    }

    /// Analyses the next checkpoint of the run; checkpoints must come in step order (alignment,
    /// neighbour seeds, movers and dynamics carry over from the one before).
    public mutating func analyse(_ event: CheckpointEvent) throws(PipelineError) -> AnalysedCheckpoint {
        let threads = BLAS.threads(forElements: event.sampleCount * event.dimension, upTo: maxBLASThreads)
        BLAS.setThreadCount(threads)
        pca.threads = threads
        // Read (or taken from the event) when first needed: a cache hit needs no embeddings.
        var embeddings: Matrix?
        func matrix() throws(RunFormatError) -> Matrix {
            if let embeddings { return embeddings }
            let read = try event.embeddings()
            embeddings = read
            return read
        }
        do {
            let scores: PlanarPoints, outliers: OutlierScores, method: IncrementalPCA.Method
            var totalVariance: Double?
            if let cache, let file = event.file {
                let entry = try cached(event, file: file, cache: cache, threads: threads, embeddings: matrix)
                (scores, outliers, method) = (entry.pca, entry.outliers, .exact)
                totalVariance = entry.totalVariance
            } else {
                let x = try matrix()
                scores = try timings.measure("pca") { try pca.fit(x) }.scores
                method = pca.lastMethod
                outliers = try timings.measure("outliers") {
                    try OutlierScores(embeddings: x, search: search.search(forSamples: x.rows),
                                      threads: threads, seeds: previousNeighbours, certify: topCount,
                                      graphNeighbours: projection.graphNeighbours(samples: x.rows))
                }
                previousNeighbours = outliers.graph.indices.isEmpty ? nil : outliers.graph.indices
            }
            let layout = timings.measure("layout") {
                projection.layout(graph: outliers.graph, metric: outliers.metric, pca: scores, previous: previousLayout,
                                  threads: threads)
            }
            previousLayout = layout
            let faithfulness: Faithfulness?
            switch projection {
            case .pca:
                faithfulness = try totalVariance.map { Faithfulness.explainedVariance(of: scores, totalVariance: $0) }
                    ?? Faithfulness.explainedVariance(of: scores, totalVariance: Faithfulness.totalVariance(of: matrix()))
            case .umap, .tsne:
                faithfulness = try timings.measure("faithfulness") {
                    try Trustworthiness(embeddings: matrix(), layout: layout, graph: outliers.graph, metric: outliers.metric,
                                        threads: threads)
                        .map(Faithfulness.trustworthiness)
                }
            }
            if let certificate = outliers.certificate, certificate.certifiedTop < min(topCount, event.sampleCount),
               !warnedUnproved {
                warn("step \(event.step): the approximate search proved only the top \(certificate.certifiedTop) of \(topCount) outliers (bounds tie at the line); --search exact lists them all exactly")
                warnedUnproved = true
            }
            let alignment = try timings.measure("alignment") { try aligner.align(layout) }
            let (quality, movers, running) = try timings.measure("labels") {
                try labelScores(event, outliers: outliers, display: alignment.display, threads: threads, embeddings: matrix)
            }
            return AnalysedCheckpoint(record: event.record, pca: scores, layout: layout, projection: projection,
                                      faithfulness: faithfulness, pcaMethod: method,
                                      pcaIterations: method == .exact ? 0 : pca.lastIterations, alignment: alignment, outliers: outliers,
                                      top: outliers.mostAtypical(topCount), labelQuality: quality, movers: movers,
                                      dynamics: running)
        } catch {
            throw PipelineError(event.origin, error)
        }
    }
}

extension CheckpointAnalyser {
    /// The checkpoint's cache entry, computed and stored when there is no usable one.
    fileprivate mutating func cached(_ event: CheckpointEvent, file: CheckpointFile, cache: AnalysisCache, threads: Int,
                                     embeddings: () throws(RunFormatError) -> Matrix) throws -> AnalysisCache.Entry {
        let search = search.search(forSamples: event.sampleCount)
        let listed = projection.graphNeighbours(samples: event.sampleCount)
        switch timings.measure("cache", { cache.lookup(file, search: search, certify: topCount, graphNeighbours: listed) }) {
        case .hit(let entry): return entry
        case .missing: break
        case .unusable(let why):
            // A line each for the first few; a cache of a copied run would otherwise say so per checkpoint.
            unusableEntries += 1
            if unusableEntries <= 3 { warn("recomputing step \(event.step) of the analysis cache: \(why)") }
            if unusableEntries == 4 { warn("recomputing more entries of the analysis cache \(cache.directory) that cannot be used") }
        }
        let x = try embeddings()
        let entry = try timings.measure("outliers") {
            try AnalysisCache.analyse(x, step: event.step, threads: threads, search: search, certify: topCount,
                                      graphNeighbours: listed)
        }
        do {
            try cache.store(entry, for: file)
        } catch {
            if !cacheWriteFailed { warn("\(error); going on without storing the analysis") }
            cacheWriteFailed = true
        }
        return entry
    }

    /// Label quality, movers and the running dynamics of one checkpoint, on the outlier scorer's
    /// neighbour graph. Labels that are not one per sample count as no labels.
    fileprivate mutating func labelScores(_ event: CheckpointEvent, outliers: OutlierScores, display: PlanarPoints, threads: Int,
                                          embeddings: () throws(RunFormatError) -> Matrix)
        throws -> (LabelQuality?, MoverScores, TrainingDynamics?) {
        let n = event.sampleCount
        var quality: LabelQuality?
        if let labels, labels.count == n {
            quality = try LabelQuality(outliers: outliers, labels: labels, threads: threads, embeddings: embeddings)
        }
        if let quality, dynamics != nil {
            guard dynamics?.add(step: event.step, quality: quality, outlierScores: outliers.scores) == true else {
                throw PipelineError("the checkpoint has \(n) samples, unlike the ones before it")
            }
        }
        var movers = MoverScores(zeros: n)
        if let previousDisplay {
            guard let moved = MoverScores(previous: previousDisplay, current: display,
                                          neighbourIndices: outliers.neighbourIndices, k: outliers.neighbours,
                                          previousMajority: previousMajority, majority: quality?.majorityLabels)
            else { throw PipelineError("the checkpoint has \(n) samples, unlike the ones before it") }
            movers = moved
        }
        previousDisplay = display
        previousMajority = quality?.majorityLabels
        return (quality, movers, quality == nil ? nil : dynamics?.dynamics)
    }
}
