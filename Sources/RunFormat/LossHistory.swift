#if canImport(Glibc)
import Glibc
#endif
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
        var text = try InputFile.text(path)
        if growing, !text.hasSuffix("\n"), let lastBreak = text.lastIndex(of: "\n") {
            text = String(text[...lastBreak])
        }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }  // a byte-order mark from a spreadsheet
        var lines = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        guard !lines.isEmpty else { throw RunFormatError(path, "empty file: expected a header with 'step' and 'loss'") }
        let header = lines.removeFirst().map { $0.trimmingCharacters(in: .whitespaces) }
        guard let stepColumn = header.firstIndex(of: "step"), let lossColumn = header.firstIndex(of: "loss") else {
            throw RunFormatError(path, "header must name 'step' and 'loss' columns, got '\(Printable.clipped(header.joined(separator: ",")))'")
        }
        let epochColumn = header.firstIndex(of: "epoch")
        var byStep: [Int: Double] = [:]
        var epochs: [Int: Double] = [:]
        for (number, fields) in lines.enumerated() where !(fields.count == 1 && fields[0].isEmpty) {
            let field = { (column: Int) -> String? in
                column < fields.count ? fields[column].trimmingCharacters(in: .whitespaces) : nil
            }
            guard let stepText = field(stepColumn), let lossText = field(lossColumn), let loss = Double(lossText) else {
                throw RunFormatError(path, "line \(number + 2): expected numbers in 'step' and 'loss', got '\(Printable.clipped(fields.joined(separator: ",")))'")
            }
            guard let step = Self.step(Double(stepText)) else {
                throw RunFormatError(path, "line \(number + 2): step '\(Printable.clipped(stepText))' is not a whole number from 0 to 2^53")
            }
            byStep[step] = loss
            if let column = epochColumn, let text = field(column), let epoch = Double(text), epoch.isFinite { epochs[step] = epoch }
        }
        return LossHistory(training: byStep.keys.sorted().map { Point(step: $0, loss: byStep[$0]!) },
                           epochs: epochs, source: "losses.csv")
    }

    /// A logged step as an `Int`: a whole number from 0 to 2^53 (exact in a Double), else nil.
    static func step(_ value: Double?) -> Int? {
        guard let value, value >= 0, value <= Double(RunScanner.maximumStep) else { return nil }
        return Int(exactly: value)
    }
}

/// A checkpoint's HuggingFace `trainer_state.json`: its epoch and its log of losses.
public struct TrainerState: Sendable {
    public var epoch: Double?
    public var training: [Int: Double] = [:]
    public var evaluation: [Int: Double] = [:]
    public var epochs: [Int: Double] = [:]
    /// Log entries left out, with why.
    public var skipped: [String] = []

    /// Entries with `loss` and `step` are training points, `eval_loss` entries evaluation points.
    public init(path: String) throws(RunFormatError) {
        guard let state = try JSONFile.read(path) as? [String: Any] else {
            throw RunFormatError(path, "expected a JSON object")
        }
        epoch = Self.number(state["epoch"]).flatMap { $0.isFinite ? $0 : nil }
        guard let history = state["log_history"] else { return }
        guard let entries = history as? [Any] else {
            skipped.append("\(path): log_history is not a list, its losses are left out")
            return
        }
        var leftOut = 0
        for case let entry in entries {
            guard let entry = entry as? [String: Any], let value = Self.number(entry["step"]) else {
                leftOut += 1
                continue
            }
            guard let step = LossHistory.step(value) else {
                leftOut += 1
                continue
            }
            if let loss = Self.number(entry["loss"]) { training[step] = loss }
            if let loss = Self.number(entry["eval_loss"]) { evaluation[step] = loss }
            if let epoch = Self.number(entry["epoch"]), epoch.isFinite { epochs[step] = epoch }
        }
        if leftOut > 0 {
            skipped.append("\(path): \(leftOut) log_history entries without a whole-number step from 0 to 2^53 left out")
        }
    }

    /// A JSON number (not a boolean) as a Double.
    static func number(_ value: Any?) -> Double? {
        // JSON's true and false are NSNumbers too (of C type char); `is Bool` would also match 0 and 1.
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        return number.doubleValue
    }
}

/// The losses of a run, gathered as its checkpoints are scanned: each checkpoint's
/// `trainer_state.json`, overridden for the training loss by `losses.csv` when the run has one.
public struct LossLog: Sendable {
    private var training: [Int: Double] = [:]
    private var evaluation: [Int: Double] = [:]
    private var epochs: [Int: Double] = [:]
    private var csv: LossHistory?
    /// The version of `losses.csv` last read: a watch polls often, and reads it again only when it changed.
    private var csvIdentity: FileIdentity?

    public init() {}

    /// Reads `directory/trainer_state.json` if there is one (a later checkpoint wins on a repeated
    /// step); returns its epoch. Entries it leaves out are added to `warnings`.
    mutating func absorb(trainerStateIn directory: String, warnings: inout [String]) throws(RunFormatError) -> Double? {
        let path = (directory as NSString).appendingPathComponent("trainer_state.json")
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        let state = try TrainerState(path: path)
        training.merge(state.training) { $1 }
        evaluation.merge(state.evaluation) { $1 }
        epochs.merge(state.epochs) { $1 }
        warnings += state.skipped
        return state.epoch
    }

    /// Reads the run's `losses.csv`, if it has one; on failure the last readable version is kept.
    mutating func readCSV(in runPath: String, growing: Bool) throws(RunFormatError) {
        let path = (runPath as NSString).appendingPathComponent("losses.csv")
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        let identity = FileIdentity(info)
        guard identity != csvIdentity else { return }
        csvIdentity = identity  // also when unreadable: that version is reported once, not at every poll
        csv = try LossHistory.read(csv: path, growing: growing)
    }

    /// Everything logged so far.
    public var history: LossHistory {
        let merged = LossHistory(training: training.keys.sorted().map { .init(step: $0, loss: training[$0]!) },
                                 evaluation: evaluation.keys.sorted().map { .init(step: $0, loss: evaluation[$0]!) },
                                 epochs: epochs, source: training.isEmpty ? "none" : "trainer_state.json")
        guard let csv else { return merged }
        return LossHistory(training: csv.training, evaluation: merged.evaluation,
                           epochs: csv.epochs.isEmpty ? merged.epochs : csv.epochs, source: csv.source)
    }
}
