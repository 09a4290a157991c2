import Canvas
import Compositor
import FileOutput
import Foundation
import Projection
import RunFormat

/// `--dump-data DIR`: per checkpoint the PCA scores, display coordinates, outlier scores and
/// top outliers, plus one `alignment.json`; the numbers behind each frame, for users and tests.
/// With labels, also per checkpoint `label_agreement-<step>.npy` and `label_margin-<step>.npy`
/// (float32, N), and at the end `dynamics.csv` (`TrainingDynamics.csv()`).
final class DataDump: FilmDump {
    let directory: String
    /// Staged offline, so that a render that fails leaves the folder as it was (`StagedFolder`).
    private let folder: StagedFolder
    private var alignment: [[String: Any]] = []
    private let target: AlignmentTarget
    /// Another projection than PCA also writes its layout before alignment (`layout-<step>.npy`).
    private let projection: ProjectionMethod
    /// The label-quality dynamics up to the last checkpoint recorded (the whole run's after the
    /// last); nil without labels. What `dynamics.csv` holds.
    private(set) var dynamics: TrainingDynamics?

    init(directory: String, target: AlignmentTarget, projection: ProjectionMethod = .pca, staged: Bool) throws {
        do { folder = try StagedFolder(directory: directory, staged: staged) } catch { throw PipelineError(error) }
        self.directory = directory
        self.target = target
        self.projection = projection
    }

    private func write(_ bytes: [UInt8], _ name: String) throws {
        do { try folder.write(bytes, named: name) } catch { throw PipelineError(error) }
    }

    private func write(_ text: String, _ name: String) throws { try write(Array(text.utf8), name) }

    func record(_ c: AnalysedCheckpoint) throws {
        let n = c.pca.count
        try write(NPYWriter.encode(float32: c.pca.interleaved, shape: [n, 2]), "pca-\(c.step).npy")
        try write(NPYWriter.encode(float32: c.alignment.display.interleaved, shape: [n, 2]), "aligned-\(c.step).npy")
        try write(NPYWriter.encode(float32: c.outliers.scores, shape: [n]), "outlier-scores-\(c.step).npy")
        var top: [String: Any] = [
            "step": c.step,
            "indices": c.top.map(\.index),
            "scores": c.top.map { Double($0.value) },
            "k": c.outliers.neighbours,
            "metric": c.outliers.metric.rawValue,
            "scaling_factor": c.outliers.scalingFactor,
            "search": c.outliers.certificate == nil ? "exact" : "approximate",
        ]
        if let certificate = c.outliers.certificate {
            top["certificate"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(certificate))
        }
        try write(try Self.json(top), "outliers-\(c.step).json")
        if let quality = c.labelQuality {
            try write(NPYWriter.encode(float32: quality.agreement, shape: [n]), "label_agreement-\(c.step).npy")
            try write(NPYWriter.encode(float32: quality.margin, shape: [n]), "label_margin-\(c.step).npy")
        }
        if let running = c.dynamics { dynamics = running }
        if projection != .pca {
            try write(NPYWriter.encode(float32: c.layout.interleaved, shape: [n, 2]), "layout-\(c.step).npy")
        }
        let a = c.alignment
        var faithfulness: [String: Any] = [:]
        switch c.faithfulness {
        case .explainedVariance(let fraction)?: faithfulness = ["explained_variance_ratio": fraction]
        case .trustworthiness(let measure)?:
            faithfulness = ["trustworthiness": measure.value, "n_neighbors": Trustworthiness.neighbours,
                            "samples": measure.evaluated, "sampled": measure.sampled]
        case nil: break
        }
        alignment.append([
            "faithfulness": faithfulness,
            "step": c.step,
            "reference": c.index == 0 && target == .previous ? "self" : target.rawValue,
            "rotation": [[a.fit.rotation[0], a.fit.rotation[1]], [a.fit.rotation[2], a.fit.rotation[3]]],
            "scale": a.fit.scale,
            "disparity": a.fit.disparity,
            "frobenius_norm": a.frobeniusNorm,
            "display_scale": a.displayScale,
            "centre": [a.centre.x, a.centre.y],
            "pca_method": c.pcaMethod.rawValue,
            "pca_iterations": c.pcaIterations,
        ])
    }

    /// `labels-<step>.json`: the text labels a checkpoint's frame drew inside the scatter, in frame
    /// pixels (x, y the top-left corner, y down), so the layout can be checked without reading pixels.
    func recordLabels(_ labels: [DrawnLabel], step: Int) throws {
        let list: [[String: Any]] = labels.map { ["text": $0.text, "x": $0.rect.x, "y": $0.rect.y, "width": $0.rect.width, "height": $0.rect.height] }
        try write(try Self.json(list), "labels-\(step).json")
    }

    /// Whether `name` is one of the files this dump, or a comparison's (`ComparisonDump`), writes
    /// (a leftover temporary of one is removed).
    static func writes(fileNamed name: String) -> Bool {
        let perCheckpoint = [("pca-", ".npy"), ("layout-", ".npy"), ("aligned-", ".npy"), ("outlier-scores-", ".npy"), ("outliers-", ".json"),
                             ("label_agreement-", ".npy"), ("label_margin-", ".npy"), ("labels-", ".json"),
                             ("comparison-", ".csv")]
        return name == "alignment.json" || name == "dynamics.csv" || name == "comparison.json" || perCheckpoint.contains { name.hasPrefix($0.0) && name.hasSuffix($0.1) }
    }

    /// Writes `alignment.json` for every checkpoint recorded so far, and `dynamics.csv` with labels.
    func finish() throws {
        if let dynamics { try write(dynamics.csv(), "dynamics.csv") }
        let document: [String: Any] = [
            "align": target.rawValue,
            "projection": projection.name,
            "projection_parameters": projection.description,
            "display": "aligned = (layout - centre) @ rotation.T / display_scale, layout being pca-<step>.npy, or layout-<step>.npy for another projection than PCA; scipy.spatial.procrustes' second matrix = (aligned * display_scale + (centre - mean(pca)) @ rotation.T) * scale / frobenius_norm",
            "checkpoints": alignment,
        ]
        try write(try Self.json(document), "alignment.json")
        do { try folder.publish() } catch { throw PipelineError(error) }
    }

    /// Leaves the folder as it was (offline); what a live dump wrote stays.
    func abandon() { folder.abandon() }

    static func json(_ object: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
