import FileOutput
import Foundation
import LinearAlgebra

/// Writes a training as a run directory while it goes (`demo --save-run DIR`), in the layout the
/// reader reads (docs/run-layout.md), every file whole, with `DONE` at the end: `embedlapse watch`
/// can follow it and `render` replay it.
public final class RunWriter {
    let path: String
    private var evaluation: [LossHistory.Point] = []
    private var accuracy: [(step: Int, value: Double)] = []

    public init(path: String, annotations: SampleAnnotations) throws {
        // The folder was new or empty when the command began (`checkFolder`); since then only the
        // film's own outputs may have appeared in it (`demo --save-run D -o D/film.mp4`).
        try Self.checkNoRun(path)
        try Folders.make(path)
        self.path = path
        // A new identity for every run written: a watcher of this folder notices a rerun.
        let metadata: [String: Any] = ["format": 1, "run_id": UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
                                       "writer": "embedlapse demo"]
        try WholeFile.write(try Self.json(metadata), to: file(RunScanner.metadataFile))
        let n = annotations.labels?.count ?? 0
        try WholeFile.write(NPYWriter.encode(int64: annotations.labels ?? [], shape: [n]), to: file("labels.npy"))
        if let names = annotations.classNames { try WholeFile.write(try Self.json(names), to: file("class_names.json")) }
        if let t = annotations.thumbnails {
            try WholeFile.write(NPYWriter.encode(uint8: t.pixels, shape: [t.count, t.height, t.width]), to: file("images.npy"))
        }
    }

    private func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// A run is saved into a new or empty folder: saved beside an earlier run's files, the two
    /// would be read back as one.
    public static func checkFolder(_ path: String) throws(FileOutputError) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path), !entries.isEmpty else { return }
        throw FileOutputError(path, "not empty (\(entries.count == 1 ? "it holds" : "\(entries.count) entries, such as") \(entries.sorted()[0])): save the run into a new or empty folder")
    }

    /// Nothing in `path` that a run reader would take as part of the run.
    static func checkNoRun(_ path: String) throws(FileOutputError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        if let name = names.sorted().first(where: { RunInputs.readNames.contains($0) || RunInputs.isCheckpointFolder($0) }) {
            throw FileOutputError(path, "holds \(name), which a run reads: save the run into a new or empty folder")
        }
    }

    /// One checkpoint: its trainer state (losses and evaluation so far), its embeddings, then the
    /// completion marker, and the loss log.
    public func record(step: Int, epoch: Double, embeddings e: Matrix, testLoss: Double, testAccuracy: Double,
                       losses: LossHistory) throws {
        evaluation.append(.init(step: step, loss: testLoss))
        accuracy.append((step, testAccuracy))
        let directory = file("checkpoint-\(step)")
        try Folders.make(directory)
        // The trainer state first: a watcher reads it once the embeddings are complete.
        var log: [[String: Any]] = losses.training.map { ["step": $0.step, "loss": $0.loss, "epoch": losses.epochs[$0.step] ?? 0] }
        for (point, acc) in zip(evaluation, accuracy) {
            log.append(["step": point.step, "eval_loss": point.loss, "eval_accuracy": acc.value, "epoch": epoch])
        }
        log.sort { ($0["step"] as! Int) < ($1["step"] as! Int) }
        let state: [String: Any] = ["global_step": step, "epoch": epoch, "log_history": log]
        try WholeFile.write(try Self.json(state), to: (directory as NSString).appendingPathComponent("trainer_state.json"))
        try WholeFile.write(NPYWriter.encode(float32: e.storage, shape: [e.rows, e.columns]),
                            to: (directory as NSString).appendingPathComponent(RunScanner.embeddingsFile))
        // Complete: a watcher takes it at once, without waiting for the file to settle.
        try WholeFile.write("", to: (directory as NSString).appendingPathComponent(RunScanner.embeddingsFile + RunScanner.completionSuffix))
        let csv = "step,loss,epoch\n" + losses.training.map { "\($0.step),\($0.loss),\(losses.epochs[$0.step] ?? 0)\n" }.joined()
        try WholeFile.write(csv, to: file("losses.csv"))
    }

    public func finish() throws {
        try WholeFile.write("", to: file(RunScanner.doneMarker))
    }

    private static func json(_ object: Any) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) + [0x0A]
    }
}
