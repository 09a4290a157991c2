#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinearAlgebra

/// One `checkpoint-<step>` folder with embeddings, its header already validated.
///
/// Only the header is kept: the values are read when the checkpoint is loaded, from the same
/// version of the file (a file rewritten in between is reported, never misread).
public struct CheckpointFile: Sendable {
    public let step: Int
    public let directory: String
    public let embeddings: NPYArray
    /// `epoch` from the folder's `trainer_state.json`, if it has one.
    public let epoch: Double?

    public init(step: Int, directory: String, embeddings: NPYArray, epoch: Double?) {
        self.step = step
        self.directory = directory
        self.embeddings = embeddings
        self.epoch = epoch
    }

    public var embeddingsPath: String { embeddings.path }
    public var element: NPYElement { embeddings.element }
    public var shape: [Int] { embeddings.shape }
    public var sampleCount: Int { shape[0] }
    public var dimension: Int { shape[1] }

    /// Reads the embeddings as float32 and checks they can be projected (`EmbeddingValues`).
    public func loadEmbeddings() throws(RunFormatError) -> Matrix {
        let matrix = try embeddings.floatMatrix()
        try EmbeddingValues.validate(matrix, path: embeddingsPath)
        return matrix
    }
}

/// The one check of embedding values, shared by `render`, `watch` and `inspect`.
public enum EmbeddingValues {
    /// Beyond this magnitude squared distances overflow float32 in the outlier search.
    public static let largestMagnitude: Float = 1e15
    /// Below this nothing can be projected: zeros, or subnormal numbers whose squares vanish.
    public static let smallestScale: Float = 1e-15

    /// Every value finite and at most `largestMagnitude`; some value at least `smallestScale`;
    /// and the rows not all equal (a spread above float32 noise).
    public static func validate(_ matrix: Matrix, path: String) throws(RunFormatError) {
        guard let (low, high) = columnRanges(matrix) else {
            try findBadValue(matrix, path: path)
            return
        }
        let largest = zip(low, high).map { max(-$0, $1) }.max() ?? 0
        guard largest >= smallestScale else {
            throw RunFormatError(path, "every value is below \(smallestScale) in magnitude (zeros or subnormal numbers): nothing to project")
        }
        let spread = zip(low, high).map { $1 - $0 }.max() ?? 0
        guard spread > largest * 4 * .ulpOfOne else {  // differences below float32 rounding are no spread
            throw RunFormatError(path, "all \(matrix.rows) rows are identical: nothing to project")
        }
    }

    /// Each column's smallest and largest value, when every value is finite and within
    /// `largestMagnitude`; nil otherwise. One pass that the compiler vectorises across the columns:
    /// it reads every value of every checkpoint (a million rows of 768 are three gigabytes).
    static func columnRanges(_ matrix: Matrix) -> (low: [Float], high: [Float])? {
        let n = matrix.rows, d = matrix.columns
        var low = [Float](repeating: .infinity, count: d), high = [Float](repeating: -.infinity, count: d)
        // v * 0 is NaN exactly for NaN and infinite values: each column's sum of them says whether it had one.
        var probe = [Float](repeating: 0, count: d)
        matrix.storage.withUnsafeBufferPointer { values in
            low.withUnsafeMutableBufferPointer { low in
                high.withUnsafeMutableBufferPointer { high in
                    probe.withUnsafeMutableBufferPointer { probe in
                        for i in 0..<n {
                            let row = values.baseAddress! + i * d
                            for j in 0..<d {
                                let v = row[j]
                                low[j] = v < low[j] ? v : low[j]
                                high[j] = v > high[j] ? v : high[j]
                                probe[j] += v * 0
                            }
                        }
                    }
                }
            }
        }
        guard probe.allSatisfy({ $0 == 0 }), low.allSatisfy({ $0 >= -largestMagnitude }), high.allSatisfy({ $0 <= largestMagnitude })
        else { return nil }
        return (low, high)
    }

    /// Throws for the first value that is not finite or beyond `largestMagnitude`, row by row.
    private static func findBadValue(_ matrix: Matrix, path: String) throws(RunFormatError) {
        for i in 0..<matrix.rows {
            for value in matrix.row(i) {
                guard value.isFinite else {
                    throw RunFormatError(path, "row \(i) holds \(value.isNaN ? "NaN" : "Inf"): embeddings must be finite")
                }
                guard abs(value) <= largestMagnitude else {
                    throw RunFormatError(path, "row \(i) holds \(value): embeddings must lie within ±\(largestMagnitude)")
                }
            }
        }
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

/// A saved run, validated up front: every checkpoint's `.npy` header is read, so shape
/// problems show before any frame is drawn.
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

    private init(path: String, checkpoints: [CheckpointFile], annotations: SampleAnnotations, losses: LossHistory, warnings: [String]) {
        self.path = path
        self.checkpoints = checkpoints
        self.labels = annotations.labels
        self.classNames = annotations.classNames
        self.thumbnails = annotations.thumbnails
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

    /// Reads the whole layout (headers only for embeddings) through the run scanner and collects every problem found.
    public static func scan(path: String) -> Scan {
        var scanner = RunScanner(path: path, mode: .finished)
        let snapshot = scanner.scan()
        guard snapshot.exists else {
            return Scan(run: nil, checkpoints: [], problems: [RunFormatError(path, "no such run directory")], warnings: [])
        }
        var problems = snapshot.problems
        let annotations = SampleAnnotations.read(runPath: path, sampleCount: scanner.shape?.sampleCount)
        problems += annotations.problems
        guard problems.isEmpty else {
            return Scan(run: nil, checkpoints: snapshot.ready, problems: problems, warnings: snapshot.warnings)
        }
        let run = RunDirectory(path: path, checkpoints: snapshot.ready, annotations: annotations,
                               losses: scanner.losses.history, warnings: snapshot.warnings)
        return Scan(run: run, checkpoints: snapshot.ready, problems: [], warnings: snapshot.warnings)
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
        if entryExists(labelsPath) {
            labels = attempt { () throws(RunFormatError) in
                let values = try NPYArray(path: labelsPath).integers()
                if let n, values.count != n {
                    throw RunFormatError(labelsPath, "has \(values.count) labels but the checkpoints embed \(n) samples")
                }
                guard values.allSatisfy({ $0 >= 0 && $0 < 100_000 }) else {
                    throw RunFormatError(labelsPath, "labels must be class indices from 0 to 99999 (got \(values.min()!) to \(values.max()!))")
                }
                return values
            }
        }

        let namesPath = (path as NSString).appendingPathComponent("class_names.json")
        var classNames: [String]?
        if entryExists(namesPath) {
            classNames = attempt { () throws(RunFormatError) in
                guard let list = try JSONFile.read(namesPath) as? [Any] else {
                    throw RunFormatError(namesPath, "expected a JSON list of class names")
                }
                let names = try list.enumerated().map { (i, name) throws(RunFormatError) -> String in
                    guard let name = name as? String else {
                        throw RunFormatError(namesPath, "entry \(i) is not a string: expected a JSON list of class names")
                    }
                    return name
                }
                if let top = labels?.max(), top >= names.count {
                    throw RunFormatError(namesPath, "names \(names.count) classes but labels.npy uses class \(top)")
                }
                return names
            }
        }

        let imagesPath = (path as NSString).appendingPathComponent("images.npy")
        var thumbnails: Thumbnails?
        if entryExists(imagesPath) {
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

/// Whether a directory entry exists, of any kind (`lstat`): a FIFO or a dangling link is then
/// reported by the reader, never silently taken as absent.
func entryExists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}
