import Foundation

/// The training-loss curve of a run, and the evaluation loss where the run logged one.
public struct LossHistory: Sendable, Equatable {
    public struct Point: Sendable, Equatable {
        public let step: Int
        public let loss: Double
        public init(step: Int, loss: Double) {
            self.step = step
            self.loss = loss
        }
    }

    /// Training loss by increasing step.
    public var training: [Point]
    /// Evaluation loss by increasing step (HuggingFace `eval_loss`), possibly empty.
    public var evaluation: [Point]
    /// Epoch at a logged step, where the logs said (HuggingFace `epoch`, or a `losses.csv` column).
    public var epochs: [Int: Double]
    /// Where the training loss came from: `losses.csv`, `trainer_state.json` or `none`.
    public var source: String

    public init(training: [Point] = [], evaluation: [Point] = [], epochs: [Int: Double] = [:], source: String = "none") {
        self.training = training
        self.evaluation = evaluation
        self.epochs = epochs
        self.source = source
    }

    /// The part of the history logged at or before `step`.
    public func upTo(step: Int) -> LossHistory {
        LossHistory(training: training.filter { $0.step <= step },
                    evaluation: evaluation.filter { $0.step <= step },
                    epochs: epochs, source: source)
    }

    /// The epoch of the last logged point at or before `step`, if any was logged.
    public func epoch(atStep step: Int) -> Double? {
        epochs.filter { $0.key <= step }.max { $0.key < $1.key }?.value
    }

    /// Reads `losses.csv`: a header with `step` and `loss` columns (others ignored, `epoch` kept).
    /// - Parameter growing: the file may be being appended to: ignore a last line without its newline.
    public static func read(csv path: String, growing: Bool = false) throws(RunFormatError) -> LossHistory {
        var text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw RunFormatError(path, "unreadable: \(error.localizedDescription)")
        }
        if growing, !text.hasSuffix("\n"), let lastBreak = text.lastIndex(of: "\n") {
            text = String(text[...lastBreak])
        }
        var lines = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        guard !lines.isEmpty else { throw RunFormatError(path, "empty file: expected a header with 'step' and 'loss'") }
        let header = lines.removeFirst().map { $0.trimmingCharacters(in: .whitespaces) }
        guard let stepColumn = header.firstIndex(of: "step"), let lossColumn = header.firstIndex(of: "loss") else {
            throw RunFormatError(path, "header must name 'step' and 'loss' columns, got '\(header.joined(separator: ","))'")
        }
        let epochColumn = header.firstIndex(of: "epoch")
        var byStep: [Int: Double] = [:]
        var epochs: [Int: Double] = [:]
        for (number, fields) in lines.enumerated() where !(fields.count == 1 && fields[0].isEmpty) {
            let field = { (column: Int) -> String? in
                column < fields.count ? fields[column].trimmingCharacters(in: .whitespaces) : nil
            }
            guard let stepText = field(stepColumn), let stepValue = Double(stepText), stepValue.isFinite,
                  let lossText = field(lossColumn), let loss = Double(lossText) else {
                throw RunFormatError(path, "line \(number + 2): expected numbers in 'step' and 'loss', got '\(fields.joined(separator: ","))'")
            }
            let step = Int(stepValue)
            byStep[step] = loss
            if let column = epochColumn, let text = field(column), let epoch = Double(text) { epochs[step] = epoch }
        }
        return LossHistory(training: byStep.keys.sorted().map { Point(step: $0, loss: byStep[$0]!) },
                           epochs: epochs, source: "losses.csv")
    }

    /// Merges HuggingFace `trainer_state.json` logs: entries with `loss` and `step` are training
    /// points, `eval_loss` entries evaluation points; a later file wins on a repeated step.
    public static func merge(trainerStates: [[[String: Any]]]) -> LossHistory {
        var training: [Int: Double] = [:], evaluation: [Int: Double] = [:], epochs: [Int: Double] = [:]
        for log in trainerStates {
            for entry in log {
                guard let step = (entry["step"] as? NSNumber)?.intValue else { continue }
                if let loss = (entry["loss"] as? NSNumber)?.doubleValue { training[step] = loss }
                if let loss = (entry["eval_loss"] as? NSNumber)?.doubleValue { evaluation[step] = loss }
                if let epoch = (entry["epoch"] as? NSNumber)?.doubleValue { epochs[step] = epoch }
            }
        }
        return LossHistory(training: training.keys.sorted().map { Point(step: $0, loss: training[$0]!) },
                           evaluation: evaluation.keys.sorted().map { Point(step: $0, loss: evaluation[$0]!) },
                           epochs: epochs, source: training.isEmpty ? "none" : "trainer_state.json")
    }
}
