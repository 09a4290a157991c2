import Foundation
import LinearAlgebra

/// One `checkpoint-<step>` folder with embeddings, its header already validated.
///
/// Only the header is kept: the file is mapped again when loaded and unmapped right after, so a
/// long run never holds more than one checkpoint's pages.
public struct CheckpointFile: Sendable {
    public let step: Int
    public let directory: String
    public let embeddingsPath: String
    public let element: NPYElement
    public let shape: [Int]
    /// `epoch` from the folder's `trainer_state.json`, if it has one.
    public let epoch: Double?

    public init(step: Int, directory: String, embeddings: NPYArray, epoch: Double?) {
        self.step = step
        self.directory = directory
        self.embeddingsPath = embeddings.path
        self.element = embeddings.element
        self.shape = embeddings.shape
        self.epoch = epoch
    }

    public var sampleCount: Int { shape[0] }
    public var dimension: Int { shape[1] }

    /// Reads the embeddings as float32 and checks every value is finite.
    public func loadEmbeddings() throws(RunFormatError) -> Matrix {
        let array = try NPYArray(path: embeddingsPath)
        guard array.shape == shape, array.element == element else {
            throw RunFormatError(embeddingsPath, "changed while being rendered: now \(array.element) \(array.shapeText)")
        }
        let matrix = try array.floatMatrix()
        for i in 0..<matrix.rows {
            for value in matrix.row(i) where !value.isFinite {
                throw RunFormatError(embeddingsPath, "row \(i) holds \(value.isNaN ? "NaN" : "Inf"): embeddings must be finite")
            }
        }
        return matrix
    }
}

/// Thumbnails of the evaluation samples: `count` images of `height x width x channels` bytes.
public struct Thumbnails: Sendable {
    public let count: Int
    public let height: Int
    public let width: Int
    /// 1 (grey), 3 (RGB) or 4 (RGBA).
    public let channels: Int
    public let pixels: [UInt8]

    public init(count: Int, height: Int, width: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == count * height * width * channels)
        self.count = count
        self.height = height
        self.width = width
        self.channels = channels
        self.pixels = pixels
    }

    /// The bytes of image `index`.
    public func image(_ index: Int) -> ArraySlice<UInt8> {
        let size = height * width * channels
        return pixels[index * size ..< (index + 1) * size]
    }
}

/// A run directory as written by a training (see docs/run-layout.md), validated up front:
/// every checkpoint's `.npy` header is read, so shape problems show before any frame is drawn.
public struct RunDirectory: Sendable {
    public let path: String
    /// Checkpoints with embeddings, by increasing integer step.
    public let checkpoints: [CheckpointFile]
    public let labels: [Int]?
    public let classNames: [String]?
    public let thumbnails: Thumbnails?
    public let losses: LossHistory
    /// Things that were skipped, such as checkpoint folders without embeddings.
    public let warnings: [String]

    public var sampleCount: Int { checkpoints.first?.sampleCount ?? 0 }
    public var dimension: Int { checkpoints.first?.dimension ?? 0 }

    /// Opens a run, throwing its first problem.
    public init(path: String) throws(RunFormatError) {
        let scan = Self.scan(path: path)
        if let problem = scan.problems.first { throw problem }
        self = scan.run!
    }

    private init(path: String, checkpoints: [CheckpointFile], labels: [Int]?, classNames: [String]?,
                 thumbnails: Thumbnails?, losses: LossHistory, warnings: [String]) {
        self.path = path
        self.checkpoints = checkpoints
        self.labels = labels
        self.classNames = classNames
        self.thumbnails = thumbnails
        self.losses = losses
        self.warnings = warnings
    }

    /// Every problem of a run, each file checked on its own; `run` is set only when there are none.
    public struct Scan: Sendable {
        public let run: RunDirectory?
        /// The checkpoints whose headers are sound, also when other files have problems.
        public let checkpoints: [CheckpointFile]
        public let problems: [RunFormatError]
        public let warnings: [String]
    }

    /// Reads the whole layout (headers only for embeddings) and collects every problem found.
    public static func scan(path: String) -> Scan {
        var problems: [RunFormatError] = []
        var warnings: [String] = []
        func attempt<T>(_ body: () throws(RunFormatError) -> T) -> T? {
            do { return try body() } catch { problems.append(error); return nil }
        }

        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return Scan(run: nil, checkpoints: [], problems: [RunFormatError(path, "no such run directory")], warnings: [])
        }
        guard isDirectory.boolValue else {
            return Scan(run: nil, checkpoints: [], problems: [RunFormatError(path, "not a directory: expected a run directory")], warnings: [])
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            return Scan(run: nil, checkpoints: [], problems: [RunFormatError(path, "unreadable directory: \(error.localizedDescription)")], warnings: [])
        }

        var found: [(step: Int, directory: String)] = []
        for name in names where name.hasPrefix("checkpoint-") {
            guard let step = Int(name.dropFirst("checkpoint-".count)), step >= 0 else { continue }
            let directory = (path as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("embeddings.npy")) {
                found.append((step, directory))
            } else {
                warnings.append("\(directory): no embeddings.npy, skipped")
            }
        }
        found.sort { $0.step < $1.step }
        if found.isEmpty {
            problems.append(RunFormatError(path, "no checkpoint-<step>/embeddings.npy found: not a run directory, or an empty run"))
        }

        var checkpoints: [CheckpointFile] = []
        var states: [[[String: Any]]] = []
        var shape: (n: Int, d: Int, path: String)?
        for (step, directory) in found {
            let statePath = (directory as NSString).appendingPathComponent("trainer_state.json")
            var epoch: Double?
            if FileManager.default.fileExists(atPath: statePath), let state = attempt({ () throws(RunFormatError) in try readJSONObject(statePath) }) {
                epoch = (state["epoch"] as? NSNumber)?.doubleValue
                states.append(state["log_history"] as? [[String: Any]] ?? [])
            }
            guard let array = attempt({ () throws(RunFormatError) in
                try checkedEmbeddings((directory as NSString).appendingPathComponent("embeddings.npy"), like: shape)
            }) else { continue }
            if shape == nil { shape = (array.shape[0], array.shape[1], array.path) }
            checkpoints.append(CheckpointFile(step: step, directory: directory, embeddings: array, epoch: epoch))
        }
        let n = shape?.n

        let csvPath = (path as NSString).appendingPathComponent("losses.csv")
        var losses = LossHistory.merge(trainerStates: states)
        if FileManager.default.fileExists(atPath: csvPath), let csv = attempt({ () throws(RunFormatError) in try LossHistory.read(csv: csvPath) }) {
            losses = LossHistory(training: csv.training, evaluation: losses.evaluation,
                                 epochs: csv.epochs.isEmpty ? losses.epochs : csv.epochs, source: csv.source)
        }

        let annotations = SampleAnnotations.read(runPath: path, sampleCount: n)
        problems += annotations.problems

        guard problems.isEmpty else { return Scan(run: nil, checkpoints: checkpoints, problems: problems, warnings: warnings) }
        let run = RunDirectory(path: path, checkpoints: checkpoints, labels: annotations.labels, classNames: annotations.classNames,
                               thumbnails: annotations.thumbnails, losses: losses, warnings: warnings)
        return Scan(run: run, checkpoints: checkpoints, problems: [], warnings: warnings)
    }

    /// Opens one checkpoint's embeddings and checks dtype and shape against the first checkpoint's.
    public static func checkedEmbeddings(_ path: String, like first: (n: Int, d: Int, path: String)?) throws(RunFormatError) -> NPYArray {
        let array = try NPYArray(path: path)
        guard array.shape.count == 2 else {
            throw RunFormatError(path, "expected a 2-D array (N, D), got shape \(array.shapeText)")
        }
        guard case .float = array.element else {
            throw RunFormatError(path, "expected float16, float32 or float64 embeddings, got \(array.element)")
        }
        if let first {
            guard array.shape[0] == first.n else {
                throw RunFormatError(path, "has \(array.shape[0]) rows but \(first.path) has \(first.n): every checkpoint must embed the same evaluation set")
            }
            guard array.shape[1] == first.d else {
                throw RunFormatError(path, "has dimension \(array.shape[1]) but \(first.path) has \(first.d): D must not change during a run")
            }
        } else {
            guard array.shape[0] >= 3 else { throw RunFormatError(path, "only \(array.shape[0]) rows: need at least 3 samples") }
            guard array.shape[1] >= 2 else { throw RunFormatError(path, "dimension \(array.shape[1]): need at least 2 features to project to 2-D") }
        }
        return array
    }

    public static func readJSON(_ path: String) throws(RunFormatError) -> Any {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RunFormatError(path, "unreadable: \(error.localizedDescription)")
        }
        do { return try JSONSerialization.jsonObject(with: data) } catch {
            throw RunFormatError(path, "invalid JSON")
        }
    }

    public static func readJSONObject(_ path: String) throws(RunFormatError) -> [String: Any] {
        guard let object = try readJSON(path) as? [String: Any] else {
            throw RunFormatError(path, "expected a JSON object")
        }
        return object
    }
}

/// The per-sample files of a run: labels, class names and thumbnail images, each optional.
public struct SampleAnnotations: Sendable {
    public var labels: [Int]?
    public var classNames: [String]?
    public var thumbnails: Thumbnails?
    /// Problems found; the fields whose files had problems are nil.
    public var problems: [RunFormatError] = []

    public init(labels: [Int]? = nil, classNames: [String]? = nil, thumbnails: Thumbnails? = nil, problems: [RunFormatError] = []) {
        self.labels = labels
        self.classNames = classNames
        self.thumbnails = thumbnails
        self.problems = problems
    }

    /// Reads whichever of `labels.npy`, `class_names.json` and `images.npy` exist, checking them
    /// against `sampleCount` when it is known.
    public static func read(runPath path: String, sampleCount n: Int?) -> SampleAnnotations {
        var problems: [RunFormatError] = []
        func attempt<T>(_ body: () throws(RunFormatError) -> T) -> T? {
            do { return try body() } catch { problems.append(error); return nil }
        }
        let labelsPath = (path as NSString).appendingPathComponent("labels.npy")
        var labels: [Int]?
        if FileManager.default.fileExists(atPath: labelsPath) {
            labels = attempt { () throws(RunFormatError) in
                let values = try NPYArray(path: labelsPath).integers()
                if let n, values.count != n {
                    throw RunFormatError(labelsPath, "has \(values.count) labels but the checkpoints embed \(n) samples")
                }
                guard values.allSatisfy({ $0 >= 0 && $0 < 100_000 }) else {
                    throw RunFormatError(labelsPath, "labels must be class indices from 0 (got \(values.min()!) to \(values.max()!))")
                }
                return values
            }
        }

        let namesPath = (path as NSString).appendingPathComponent("class_names.json")
        var classNames: [String]?
        if FileManager.default.fileExists(atPath: namesPath) {
            classNames = attempt { () throws(RunFormatError) in
                guard let list = try RunDirectory.readJSON(namesPath) as? [Any] else {
                    throw RunFormatError(namesPath, "expected a JSON list of class names")
                }
                let names = list.map { ($0 as? String) ?? "\($0)" }
                if let top = labels?.max(), top >= names.count {
                    throw RunFormatError(namesPath, "names \(names.count) classes but labels.npy uses class \(top)")
                }
                return names
            }
        }

        let imagesPath = (path as NSString).appendingPathComponent("images.npy")
        var thumbnails: Thumbnails?
        if FileManager.default.fileExists(atPath: imagesPath) {
            thumbnails = attempt { () throws(RunFormatError) in
                let array = try NPYArray(path: imagesPath)
                let s = array.shape
                guard array.element == .unsigned(bytes: 1), s.count == 3 || (s.count == 4 && (s[3] == 3 || s[3] == 4)) else {
                    throw RunFormatError(imagesPath, "expected uint8 images of shape (N, H, W), (N, H, W, 3) or (N, H, W, 4), got \(array.element) \(array.shapeText)")
                }
                if let n, s[0] != n { throw RunFormatError(imagesPath, "has \(s[0]) images but the checkpoints embed \(n) samples") }
                guard s[1] > 0, s[2] > 0, s[1] <= 4096, s[2] <= 4096 else {
                    throw RunFormatError(imagesPath, "images of size \(s[1]) x \(s[2]): expected 1 to 4096 pixels a side")
                }
                return Thumbnails(count: s[0], height: s[1], width: s[2], channels: s.count == 4 ? s[3] : 1, pixels: try array.bytes())
            }
        }

        return SampleAnnotations(labels: labels, classNames: classNames, thumbnails: thumbnails, problems: problems)
    }
}
