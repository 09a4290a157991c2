import Foundation
import Projection
import RunFormat

/// `--dump-data DIR`: per checkpoint the PCA scores, display coordinates, outlier scores and
/// top outliers, plus one `alignment.json`; the numbers behind each frame, for users and tests.
final class DataDump {
    let directory: String
    private var alignment: [[String: Any]] = []
    private let target: AlignmentTarget

    init(directory: String, target: AlignmentTarget) throws {
        try OutputChecks.makeDirectory(directory)
        self.directory = directory
        self.target = target
    }

    private func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    func record(_ c: AnalysedCheckpoint) throws {
        let n = c.pca.count
        try AtomicFile.write(NPYWriter.encode(float32: c.pca.interleaved, shape: [n, 2]), to: path("pca-\(c.step).npy"))
        try AtomicFile.write(NPYWriter.encode(float32: c.alignment.display.interleaved, shape: [n, 2]), to: path("aligned-\(c.step).npy"))
        try AtomicFile.write(NPYWriter.encode(float32: c.outliers.scores, shape: [n]), to: path("outlier-scores-\(c.step).npy"))
        let top: [String: Any] = [
            "step": c.step,
            "indices": c.top.map(\.index),
            "scores": c.top.map { Double($0.score) },
            "k": c.outliers.neighbours,
            "metric": c.outliers.metric.rawValue,
            "scaling_factor": c.outliers.scalingFactor,
        ]
        try AtomicFile.write(try Self.json(top), to: path("outliers-\(c.step).json"))
        let a = c.alignment
        alignment.append([
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

    /// Writes `alignment.json` for every checkpoint recorded so far.
    func finish() throws {
        let document: [String: Any] = [
            "align": target.rawValue,
            "display": "aligned = (pca - centre) @ rotation.T / display_scale; scipy.spatial.procrustes' second matrix = (aligned * display_scale + (centre - mean(pca)) @ rotation.T) * scale / frobenius_norm",
            "checkpoints": alignment,
        ]
        try AtomicFile.write(try Self.json(document), to: path("alignment.json"))
    }

    static func json(_ object: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
