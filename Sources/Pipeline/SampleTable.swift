import Foundation
import LinearAlgebra

/// One row per sample per checkpoint, as CSV: what `embedlapse export` writes and the explorer's
/// `/api/export.csv` serves (pandas and Spotlight read it as it is).
///
///     step,index,label,class_name,x,y,outlier_score,label_agreement,label_margin,projection
///
/// `x`, `y` are the film's display coordinates (`aligned-<step>.npy` of `--dump-data`), made by the
/// `projection` the last column names with its parameters (`pca`, `umap n_neighbors=15 min_dist=0.1
/// seed=0`, `tsne perplexity=30 seed=0`). Numbers are
/// written in the shortest form that reads back as the same float32; the label columns are empty
/// without labels, and a non-finite number is an empty field.
public struct SampleTable: Sendable {
    public static let header = "step,index,label,class_name,x,y,outlier_score,label_agreement,label_margin,projection\n"

    /// A checkpoint's columns: the per-sample numbers the table shows.
    public struct Checkpoint: Sendable {
        public let step: Int
        public private(set) var display: PlanarPoints
        public let outlierScores: [Float]
        public let labelAgreement: [Float]?
        public let labelMargin: [Float]?
        /// The projection behind `display`, as a CSV field.
        public let projection: String

        public init(_ c: AnalysedCheckpoint) {
            step = c.step
            display = c.alignment.display
            projection = c.projection.field
            outlierScores = c.outliers.scores
            labelAgreement = c.labelQuality?.agreement
            labelMargin = c.labelQuality?.margin
        }

        /// The same columns with other coordinates (a comparison's right run, rotated onto the left).
        public func placed(at display: PlanarPoints) -> Checkpoint {
            var copy = self
            copy.display = display
            return copy
        }
    }

    private let labels: [Int]?
    /// Each class's name as a CSV field (quoted when it must be).
    private let classFields: [String]

    public init(labels: [Int]?, classNames: [String]) {
        self.labels = labels
        classFields = classNames.map(Self.field)
    }

    /// The rows of one checkpoint, UTF-8.
    public func rows(_ c: Checkpoint) -> [UInt8] {
        var text = ""
        text.reserveCapacity(c.display.count * (72 + c.projection.utf8.count))
        for i in 0..<c.display.count {
            text += "\(c.step),\(i),"
            if let labels {
                let label = labels[i]
                text += "\(label),"
                if label >= 0, label < classFields.count { text += classFields[label] }
            } else {
                text += ","
            }
            text += ","
            Self.append(c.display.x[i], to: &text)
            text += ","
            Self.append(c.display.y[i], to: &text)
            text += ","
            Self.append(c.outlierScores[i], to: &text)
            text += ","
            if let agreement = c.labelAgreement { Self.append(agreement[i], to: &text) }
            text += ","
            if let margin = c.labelMargin { Self.append(margin[i], to: &text) }
            text += ","
            text += c.projection
            text += "\n"
        }
        return Array(text.utf8)
    }

    private static func append(_ value: Float, to text: inout String) {
        if value.isFinite { text += value.description }
    }

    /// A CSV field (RFC 4180): quoted, inner quotes doubled, when it holds a comma, quote or line break.
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
