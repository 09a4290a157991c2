import Compositor
import Foundation
import LinearAlgebra
import MediaEncoder
import Pipeline
import Projection
import RunFormat

/// The JSON documents of the explorer's API, and the binary points, built from an analysed checkpoint.
public enum APIDocuments {
    /// How many samples each leaderboard of `/api/checkpoints/<step>/scores` lists.
    static let leaderboardLength = 32

    /// `GET /api/run`.
    struct Run: Encodable {
        let run: String
        /// False until the first checkpoint is analysed; the counts are then 0 and the lists empty.
        let ready: Bool
        let sampleCount: Int
        let dimension: Int
        let classNames: [String]
        let labels: [Int]?
        let steps: [Int]
        let done: Bool
        let problem: String?
        /// The scatter shows display coordinates in [-h, h] on both axes, as the film does.
        let viewHalfExtent: Double
        /// The size of `/api/samples/<index>/image.png`; nil when the run has no images.
        let thumbnail: Size?
        /// How the picture is made: `PCA`, or `UMAP (n_neighbors 15, min_dist 0.1, seed 0)`.
        let projection: String
        /// The same as the export table's `projection` column: `pca`, `umap n_neighbors=15 ...`.
        let projectionField: String
        /// The leaderboards the scores documents hold, in the order of the page's tabs.
        let boards = LeaderboardKind.explorerBoards.map(\.explorerBoard)

        struct Size: Encodable {
            let width: Int
            let height: Int
        }

        enum CodingKeys: String, CodingKey {
            case run, ready, steps, done, problem, labels, thumbnail, boards, projection
            case projectionField = "projection_field"
            case sampleCount = "sample_count", dimension, classNames = "class_names", viewHalfExtent = "view_half_extent"
        }

        /// Every key, absent values as null (the page and scripts test `=== null`).
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(run, forKey: .run)
            try container.encode(ready, forKey: .ready)
            try container.encode(sampleCount, forKey: .sampleCount)
            try container.encode(dimension, forKey: .dimension)
            try container.encode(classNames, forKey: .classNames)
            try container.encode(labels, forKey: .labels)
            try container.encode(steps, forKey: .steps)
            try container.encode(done, forKey: .done)
            try container.encode(problem, forKey: .problem)
            try container.encode(viewHalfExtent, forKey: .viewHalfExtent)
            try container.encode(thumbnail, forKey: .thumbnail)
            try container.encode(projection, forKey: .projection)
            try container.encode(projectionField, forKey: .projectionField)
            try container.encode(boards, forKey: .boards)
        }
    }

    /// One leaderboard as the page shows it: its key in the scores document and its words.
    struct Board: Encodable {
        let key: String
        let tab: String
        /// The values' column heading.
        let value: String
        let hint: String
        /// What an empty board says (a run without labels says so itself).
        let empty: String
        let needsLabels: Bool

        enum CodingKeys: String, CodingKey { case key, tab, value, hint, empty, needsLabels = "needs_labels" }
    }

    /// `GET /api/runs`: the runs served, in order; run `r`'s API is under `/api/runs/<r>/`.
    struct Runs: Encodable {
        let runs: [Named]
        /// How the right run's points relate to the left's; nil for one run.
        let alignment: String?

        struct Named: Encodable {
            let name: String
            let run: String
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(runs, forKey: .runs)
            try container.encode(alignment, forKey: .alignment)
        }

        enum CodingKeys: String, CodingKey { case runs, alignment }
    }

    /// `GET /api/loss`: `[step, loss]` pairs logged up to the newest analysed checkpoint.
    struct Loss: Encodable {
        let training: [[Double]]
        let evaluation: [[Double]]
    }

    /// `GET /api/samples/<index>`: one sample over every analysed checkpoint, one entry per step.
    struct Sample: Encodable {
        let index: Int
        let label: Int?
        let className: String?
        let steps: [Int]
        let x: [Float?]
        let y: [Float?]
        let outlierScore: [Float?]
        let labelAgreement: [Float?]
        let labelMargin: [Float?]
        let knnAUM: [Float?]
        /// The sample's nearest samples at each step, nearest first.
        let neighbours: [[Int]]

        enum CodingKeys: String, CodingKey {
            case index, label, steps, x, y, neighbours
            case className = "class_name", outlierScore = "outlier_score", labelAgreement = "label_agreement"
            case labelMargin = "label_margin", knnAUM = "knn_aum"
        }

        /// Every key, `label` and `class_name` null without labels.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(label, forKey: .label)
            try container.encode(className, forKey: .className)
            try container.encode(steps, forKey: .steps)
            try container.encode(x, forKey: .x)
            try container.encode(y, forKey: .y)
            try container.encode(outlierScore, forKey: .outlierScore)
            try container.encode(labelAgreement, forKey: .labelAgreement)
            try container.encode(labelMargin, forKey: .labelMargin)
            try container.encode(knnAUM, forKey: .knnAUM)
            try container.encode(neighbours, forKey: .neighbours)
        }
    }

    /// One place on a leaderboard (a `RankedSample`) as JSON, where a value that is not finite is null.
    struct Entry: Encodable {
        let index: Int
        let value: Float?
    }

    /// `GET /api/checkpoints/<step>/scores`.
    struct Scores: Encodable {
        let step: Int
        let index: Int
        /// Each board's places, first place first, under its key (`LeaderboardKind.apiKey`): the
        /// most atypical samples, the lowest running kNN-AUM (empty without labels), the biggest
        /// movers (empty at the first checkpoint).
        let boards: [(key: String, entries: [Entry])]
        /// Each sample's share of its k nearest neighbours that carry its label; nil without labels.
        let labelAgreement: [Float?]?
        /// The mean of `labelAgreement`; nil without labels.
        let meanLabelAgreement: Double?
        /// Neighbours per sample in the outlier score and the label agreement.
        let k: Int
        /// How much of the embedding space this checkpoint's picture keeps, in words and as a number
        /// (PCA's explained-variance ratio, or UMAP's trustworthiness at 10 neighbours).
        let faithfulness: String?
        let faithfulnessValue: Double?

        struct Key: CodingKey {
            let stringValue: String
            init(_ name: String) { stringValue = name }
            init?(stringValue: String) { self.init(stringValue) }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }

        /// Every key, the label ones null without labels.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(step, forKey: Key("step"))
            try container.encode(index, forKey: Key("index"))
            for board in boards { try container.encode(board.entries, forKey: Key(board.key)) }
            try container.encode(labelAgreement, forKey: Key("label_agreement"))
            try container.encode(meanLabelAgreement, forKey: Key("mean_label_agreement"))
            try container.encode(k, forKey: Key("k"))
            try container.encode(faithfulness, forKey: Key("faithfulness"))
            try container.encode(faithfulnessValue, forKey: Key("faithfulness_value"))
        }
    }

    static func runs(_ stores: [ExplorerStore]) -> [UInt8] {
        encode(Runs(runs: stores.map { Runs.Named(name: $0.name, run: $0.runName) },
                    alignment: stores.count == 2 ? "the right run rotated onto the left run (Procrustes) at each of its checkpoints" : nil))
    }

    static func run(_ store: ExplorerStore) -> [UInt8] {
        let facts = store.facts
        let document = Run(run: store.runName, ready: facts != nil, sampleCount: facts?.sampleCount ?? 0,
                           dimension: facts?.dimension ?? 0, classNames: facts?.classNames ?? [], labels: facts?.labels,
                           steps: store.steps, done: store.isDone, problem: store.problem,
                           viewHalfExtent: FrameCompositor.viewHalfExtent,
                           thumbnail: facts?.thumbnails.map { Run.Size(width: $0.width, height: $0.height) },
                           projection: store.projection.description, projectionField: store.projection.field)
        return encode(document)
    }

    static func loss(_ store: ExplorerStore) -> [UInt8] {
        let losses = store.newest?.losses ?? LossHistory()
        func pairs(_ points: [LossHistory.Point]) -> [[Double]] {
            points.filter { $0.loss.isFinite }.map { [Double($0.step), $0.loss] }
        }
        return encode(Loss(training: pairs(losses.training), evaluation: pairs(losses.evaluation)))
    }

    /// Nil when `index` is not a sample of the run.
    static func sample(_ index: Int, store: ExplorerStore) -> [UInt8]? {
        guard let facts = store.facts, index < facts.sampleCount else { return nil }
        let checkpoints = store.checkpoints
        func finite(_ value: Float) -> Float? { value.isFinite ? value : nil }
        func column(_ values: (ExplorerStore.Checkpoint) -> [Float]?) -> [Float?] {
            checkpoints.map { values($0).flatMap { finite($0[index]) } }
        }
        let label = facts.labels?[index]
        let document = Sample(
            index: index, label: label,
            className: label.flatMap { $0 >= 0 && $0 < facts.classNames.count ? facts.classNames[$0] : nil },
            steps: checkpoints.map(\.step),
            x: column { $0.columns.display.x }, y: column { $0.columns.display.y },
            outlierScore: column { $0.columns.outlierScores }, labelAgreement: column { $0.columns.labelAgreement },
            labelMargin: column { $0.columns.labelMargin }, knnAUM: column { $0.knnAUM },
            neighbours: checkpoints.map { c in
                let k = c.neighbourCount
                guard c.neighbours.count >= (index + 1) * k else { return [] }
                return c.neighbours[index * k ..< (index + 1) * k].map(Int.init)
            })
        return encode(document)
    }

    /// The sample's image as PNG; nil without images or for an index beyond them.
    static func image(_ index: Int, store: ExplorerStore) -> [UInt8]? {
        guard let thumbnails = store.facts?.thumbnails, index < thumbnails.count else { return nil }
        let (w, h, channels) = (thumbnails.width, thumbnails.height, thumbnails.channels)
        var bgra = [UInt8](repeating: 255, count: w * h * 4)
        let image = thumbnails.image(index)
        var source = image.startIndex
        for pixel in 0..<(w * h) {
            let (r, g, b, a): (UInt8, UInt8, UInt8, UInt8)
            switch channels {
            case 1: (r, g, b, a) = (image[source], image[source], image[source], 255)
            case 3: (r, g, b, a) = (image[source], image[source + 1], image[source + 2], 255)
            default: (r, g, b, a) = (image[source], image[source + 1], image[source + 2], image[source + 3])
            }
            source += channels
            // Premultiplied, as Cairo's: the encoder straightens it.
            bgra[4 * pixel] = UInt8(Int(b) * Int(a) / 255)
            bgra[4 * pixel + 1] = UInt8(Int(g) * Int(a) / 255)
            bgra[4 * pixel + 2] = UInt8(Int(r) * Int(a) / 255)
            bgra[4 * pixel + 3] = a
        }
        return try? bgra.withUnsafeBufferPointer { try PNGEncoder.encode(bgra: $0.baseAddress!, width: w, height: h, bytesPerRow: 4 * w) }
    }

    public static func checkpoint(_ c: AnalysedCheckpoint) -> ExplorerStore.Checkpoint {
        func entries(_ ranked: [RankedSample]) -> [Entry] {
            ranked.map { Entry(index: $0.index, value: $0.value.isFinite ? $0.value : nil) }
        }
        let agreement = c.labelQuality?.agreement
        let mean = agreement.map { values in values.reduce(0.0) { $0 + Double($1) } / Double(max(values.count, 1)) }
        let scores = Scores(step: c.step, index: c.index,
                            boards: LeaderboardKind.explorerBoards.map { ($0.apiKey, entries(c.ranking($0, count: leaderboardLength))) },
                            labelAgreement: agreement?.map { $0.isFinite ? $0 : nil }, meanLabelAgreement: mean,
                            k: c.outliers.neighbours, faithfulness: c.faithfulness?.phrase,
                            faithfulnessValue: c.faithfulness?.value)
        return ExplorerStore.Checkpoint(step: c.step, points: littleEndianFloat32(c.alignment.display.interleaved),
                                        scores: encode(scores), columns: SampleTable.Checkpoint(c),
                                        knnAUM: c.dynamics?.knnAUM, neighbours: c.outliers.neighbourIndices,
                                        neighbourCount: c.outliers.neighbours, losses: c.losses)
    }

    /// Float32 values as little-endian bytes, whatever the machine's byte order.
    static func littleEndianFloat32(_ values: [Float]) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(values.count * 4)
        for value in values {
            let bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every number in these documents is finite (non-finite ones are sent as null).
        return (try? Array(encoder.encode(value))) ?? Array("{}".utf8)
    }
}
