import Foundation
import RunFormat

/// `embedlapse inspect`: what a run holds and every problem that would stop a render.
public struct RunInspection {
    public let text: String
    public let problems: [String]

    public init(path: String) {
        let scan = RunDirectory.scan(path: path)
        var problems = scan.problems.map(\.description)
        var lines = ["run: \(path)"]
        if let run = scan.run {
            let steps = run.checkpoints.map(\.step)
            let dtypes = Set(run.checkpoints.map { $0.element.description }).sorted().joined(separator: ", ")
            lines.append("checkpoints: \(steps.count) (steps \(steps.first!) to \(steps.last!))")
            lines.append("embeddings: N = \(run.sampleCount) samples, D = \(run.dimension), \(dtypes)")
            if let labels = run.labels {
                let classes = Set(labels).count
                lines.append("labels: \(labels.count), \(classes) classes" + (run.classNames.map { ": " + $0.joined(separator: ", ") } ?? ""))
            } else {
                lines.append("labels: none (one colour)")
            }
            if let t = run.thumbnails {
                lines.append("images: \(t.count) of \(t.width)x\(t.height)" + (t.channels == 1 ? " grey" : t.channels == 3 ? " RGB" : " RGBA"))
            } else {
                lines.append("images: none (blank thumbnails)")
            }
            let finite = run.losses.training.map(\.loss).filter(\.isFinite)
            if let low = finite.min(), let high = finite.max() {
                lines.append("loss: \(run.losses.training.count) points from \(run.losses.source), steps \(run.losses.training.first!.step) to \(run.losses.training.last!.step), range \(low) to \(high)"
                             + (run.losses.evaluation.isEmpty ? "" : "; eval_loss: \(run.losses.evaluation.count) points"))
            } else {
                lines.append("loss: none logged")
            }
        }
        // Values are read only here, one checkpoint at a time: NaN and Inf hide inside files.
        for checkpoint in scan.checkpoints {
            do { _ = try checkpoint.loadEmbeddings() } catch { problems.append(error.description) }
        }
        lines += scan.warnings.map { "warning: \($0)" }
        lines.append(problems.isEmpty ? "problems: none" : "problems: \(problems.count)")
        lines += problems.map { "  - \($0)" }
        self.text = lines.joined(separator: "\n")
        self.problems = problems
    }
}
