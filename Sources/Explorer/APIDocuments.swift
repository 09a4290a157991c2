import Compositor
import Embedlapse
import Foundation
import Projection

/// The JSON documents of the explorer's API, and the binary points, built from an analysed checkpoint.
enum APIDocuments {
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

        enum CodingKeys: String, CodingKey {
            case run, ready, steps, done, problem, labels
            case sampleCount = "sample_count", dimension, classNames = "class_names", viewHalfExtent = "view_half_extent"
        }
    }

    /// One place on a leaderboard.
    struct Entry: Encodable {
        let index: Int
        let value: Float?
    }

    /// `GET /api/checkpoints/<step>/scores`.
    struct Scores: Encodable {
        let step: Int
        let index: Int
        /// The most atypical samples (lowest kNN outlier score, as cleanlab's), most atypical first.
        let outliers: [Entry]
        /// The lowest running kNN-AUM so far (likely label issues); empty without labels.
        let labelIssues: [Entry]
        /// The biggest movers since the previous checkpoint; empty at the first.
        let movers: [Entry]
        /// Each sample's share of its k nearest neighbours that carry its label; nil without labels.
        let labelAgreement: [Float?]?
        /// The mean of `labelAgreement`; nil without labels.
        let meanLabelAgreement: Double?
        /// Neighbours per sample in the outlier score and the label agreement.
        let k: Int

        enum CodingKeys: String, CodingKey {
            case step, index, outliers, movers, k
            case labelIssues = "label_issues", labelAgreement = "label_agreement", meanLabelAgreement = "mean_label_agreement"
        }
    }

    static func run(_ store: ExplorerStore) -> [UInt8] {
        let facts = store.facts
        let document = Run(run: store.runName, ready: facts != nil, sampleCount: facts?.sampleCount ?? 0,
                           dimension: facts?.dimension ?? 0, classNames: facts?.classNames ?? [], labels: facts?.labels,
                           steps: store.steps, done: store.isDone, problem: store.problem,
                           viewHalfExtent: FrameCompositor.viewHalfExtent)
        return encode(document)
    }

    static func checkpoint(_ c: AnalysedCheckpoint) -> ExplorerStore.Checkpoint {
        func entries(_ ranked: [RankedSample]) -> [Entry] {
            ranked.map { Entry(index: $0.index, value: $0.value.isFinite ? $0.value : nil) }
        }
        let agreement = c.labelQuality?.agreement
        let mean = agreement.map { values in values.reduce(0.0) { $0 + Double($1) } / Double(max(values.count, 1)) }
        let scores = Scores(step: c.step, index: c.index,
                            outliers: entries(c.ranking(.outliers, count: leaderboardLength)),
                            labelIssues: entries(c.ranking(.labelIssues, count: leaderboardLength)),
                            movers: entries(c.ranking(.movers, count: leaderboardLength)),
                            labelAgreement: agreement?.map { $0.isFinite ? $0 : nil }, meanLabelAgreement: mean,
                            k: c.outliers.neighbours)
        return ExplorerStore.Checkpoint(step: c.step, points: littleEndianFloat32(c.alignment.display.interleaved),
                                        scores: encode(scores))
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
