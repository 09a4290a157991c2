#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FileOutput
import Foundation

/// The one reader of a run's layout (docs/run-layout.md): which `checkpoint-<step>` folders
/// exist, in numeric step order, which of them are complete, the loss log, the run's identity
/// and whether it is marked done. Every command goes through it: `render` and `inspect` scan
/// a finished run once; `watch` scans a growing run again and again, and each scan hands out
/// only what is new and complete since the last one.
public struct RunScanner: Sendable {
    public let path: String
    public let mode: Mode

    public enum Mode: Sendable, Equatable {
        /// A saved run: every file is taken as written.
        case finished
        /// A run another process is writing. A checkpoint is complete when its marker
        /// `embeddings.npy.complete` exists, or else when its embeddings file has been whole and
        /// unchanged (size, modification time, inode) for `settle`: a writer may pre-size the
        /// file and fill it later (numpy's `open_memmap`), and must not be filmed half-filled.
        case live(settle: Duration)
    }

    public static let doneMarker = "DONE"
    public static let metadataFile = "run.json"
    public static let completionSuffix = ".complete"
    public static let embeddingsFile = "embeddings.npy"

    /// The largest step accepted: steps are drawn on a Double axis, where integers are exact up to 2^53.
    public static let maximumStep = 1 << 53

    /// Steps already handed out; a later scan never hands them out again.
    private var handedOut = Set<Int>()
    private var lastHandedOut = -1
    /// For the settle rule: each pending file's identity and when it was first seen so.
    private var sightings: [Int: (identity: FileIdentity, since: ContinuousClock.Instant)] = [:]
    private var reportedLate = Set<Int>()
    private var reportedSkips = Set<String>()
    private var lastRunID: String?
    /// Live: sees files and checkpoint folders renamed into place, which are whole at once.
    private let renames: RenameObserver?
    private var renamed = Set<String>()
    /// The first checkpoint's shape: every later checkpoint must match it.
    public private(set) var shape: EmbeddingShape?
    public private(set) var losses = LossLog()
    /// The clock the settle rule measures by: the monotonic clock, or a test's own.
    public var now: @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }

    public init(path: String, mode: Mode) {
        self.path = path
        self.mode = mode
        renames = mode == .finished ? nil : RenameObserver()
    }

    /// What one scan found.
    public struct Snapshot: Sendable {
        /// False when the run folder does not exist (yet, or any more).
        public var exists = true
        /// The run contains `DONE`: looked for before the listing, so every checkpoint written
        /// before it is in this snapshot.
        public var isDone = false
        /// `run_id` from `run.json`, when the writer recorded one.
        public var runID: String?
        /// New complete checkpoints, in step order, none at or below a step handed out before.
        public var ready: [CheckpointFile] = []
        /// The first checkpoint not yet complete, which holds back every later one.
        public var waiting: RunFormatError?
        /// The waiting checkpoint is whole and only settling: it will be ready within the settle
        /// interval unless it changes again, so a watch does not count it as idle time.
        public var isSettling = false
        /// Problems that stop the run: refuse it (render, inspect) or end the watch.
        public var problems: [RunFormatError] = []
        /// Things skipped: folders without embeddings, checkpoints that arrived too late.
        public var warnings: [String] = []
    }

    public mutating func scan() -> Snapshot {
        var snapshot = Snapshot()
        var info = stat()
        guard stat(path, &info) == 0 else {
            snapshot.exists = false
            if errno != ENOENT { snapshot.problems.append(RunFormatError(path, InputFile.systemMessage())) }
            return snapshot
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            snapshot.problems.append(RunFormatError(path, "not a directory: expected a run directory"))
            return snapshot
        }
        snapshot.isDone = exists(child(Self.doneMarker))
        if let renames {
            renames.watch(path)
            renamed.formUnion(renames.renamedPaths())
        }
        do {
            snapshot.runID = try readRunID()
            lastRunID = snapshot.runID
        } catch {
            // A saved run is refused; a watched one keeps the identity it had (the writer may be mid-write).
            if mode == .finished { snapshot.problems.append(error) } else {
                snapshot.runID = lastRunID
                if reportedSkips.insert(Self.metadataFile).inserted { snapshot.warnings.append("\(error); keeping the run's identity as it was") }
            }
        }

        let folders: [(step: Int, name: String)]
        do { folders = try checkpointFolders(&snapshot) } catch {
            // Live, a system short of descriptors or memory is waited out, like a file being written.
            if case .live = mode, error.kind == .exhausted { snapshot.waiting = error } else { snapshot.problems.append(error) }
            return snapshot
        }
        for folder in folders {
            let directory = child(folder.name)
            let embeddings = (directory as NSString).appendingPathComponent(Self.embeddingsFile)
            if handedOut.contains(folder.step) { continue }
            if folder.step < lastHandedOut {
                if reportedLate.insert(folder.step).inserted {
                    snapshot.warnings.append("\(embeddings): arrived after a later checkpoint was rendered, skipped")
                }
                continue
            }
            if snapshot.waiting != nil { continue }  // keep step order
            let array: NPYArray
            do {
                array = try NPYArray(path: embeddings)
            } catch {
                if case .live = mode, error.kind != .unreadable {
                    snapshot.waiting = error
                    continue
                }
                snapshot.problems.append(error)
                if mode == .finished { continue } else { break }
            }
            let isWhole = exists(embeddings + Self.completionSuffix) || renamed.contains(embeddings) || renamed.contains(directory)
            if case .live(let settle) = mode, !isWhole {
                let now = now()
                if let seen = sightings[folder.step], seen.identity == array.identity {
                    if now - seen.since < settle {
                        snapshot.waiting = RunFormatError(embeddings, "not yet marked complete, waiting for it to settle")
                        snapshot.isSettling = true
                        continue
                    }
                } else {
                    sightings[folder.step] = (array.identity, now)
                    if !Self.isOlder(array.identity, than: settle) {
                        snapshot.waiting = RunFormatError(embeddings, "not yet marked complete, waiting for it to settle")
                        snapshot.isSettling = true
                        continue
                    }
                }
            }
            do {
                let checked = try EmbeddingShape.check(array, against: shape)
                if shape == nil { shape = checked }
            } catch {
                snapshot.problems.append(error)
                if mode == .finished { continue } else { break }
            }
            var epoch: Double?
            do { epoch = try losses.absorb(trainerStateIn: directory, warnings: &snapshot.warnings) } catch {
                // A saved run is refused; a live one goes on without this log (its trainer may rewrite it).
                if mode == .finished { snapshot.problems.append(error) } else { snapshot.warnings.append("\(error); its losses are left out") }
            }
            snapshot.ready.append(CheckpointFile(step: folder.step, directory: directory, embeddings: array, epoch: epoch))
            handedOut.insert(folder.step)
            lastHandedOut = folder.step
            sightings[folder.step] = nil
            renames?.unwatch(directory)
            renamed.remove(embeddings)
            renamed.remove(directory)
        }
        if folders.isEmpty && mode == .finished {
            snapshot.problems.append(RunFormatError(path, "no checkpoint-<step>/embeddings.npy found: not a run directory, or an empty run"))
        }
        do { try losses.readCSV(in: path, growing: mode != .finished) } catch {
            if mode == .finished { snapshot.problems.append(error) } else { snapshot.warnings.append("\(error); showing the last readable losses") }
        }
        return snapshot
    }

    /// A file whose last change is older than `settle` by the wall clock: written before the watch began.
    private static func isOlder(_ identity: FileIdentity, than settle: Duration) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let nanoseconds = Int64(now.tv_sec) &* 1_000_000_000 &+ Int64(now.tv_nsec)
        let (seconds, attoseconds) = settle.components
        return nanoseconds - identity.modified >= seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// `checkpoint-<step>` folders holding an embeddings entry, by step; refuses two folders of one step.
    private mutating func checkpointFolders(_ snapshot: inout Snapshot) throws(RunFormatError) -> [(step: Int, name: String)] {
        guard let directory = opendir(path) else {
            let failure = InputFile.failure(path)
            throw RunFormatError(path, "cannot list the folder: \(failure.problem)", kind: failure.kind)
        }
        closedir(directory)
        let names = Temporaries.names(in: path)
        var byStep: [Int: String] = [:]
        for name in names.sorted() where name.hasPrefix("checkpoint-") {
            let digits = name.dropFirst("checkpoint-".count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isWholeNumber }) else { continue }
            let directory = child(name)
            guard let step = Int(digits), step <= Self.maximumStep else {
                if reportedSkips.insert(name).inserted {
                    snapshot.warnings.append("\(directory): step \(digits) is beyond \(Self.maximumStep), skipped")
                }
                continue
            }
            if step > lastHandedOut { renames?.watch(directory) }  // before its embeddings are renamed in
            guard exists((directory as NSString).appendingPathComponent(Self.embeddingsFile)) else {
                if mode == .finished, reportedSkips.insert(name).inserted {
                    snapshot.warnings.append("\(directory): no embeddings.npy, skipped")
                }
                continue
            }
            if let other = byStep[step] {
                throw RunFormatError(path, "\(other) and \(name) are both step \(step): remove one of them")
            }
            byStep[step] = name
        }
        return byStep.keys.sorted().map { ($0, byStep[$0]!) }
    }

    /// Takes back a checkpoint handed out by the last scan whose file then changed while it was
    /// read: a writer is still at work on it, and the next scans look at it again.
    public mutating func reconsider(_ checkpoint: CheckpointFile) {
        handedOut.remove(checkpoint.step)
        lastHandedOut = handedOut.max() ?? -1
    }

    private func readRunID() throws(RunFormatError) -> String? {
        let metadata = child(Self.metadataFile)
        guard exists(metadata) else { return nil }
        guard let object = try JSONFile.read(metadata) as? [String: Any] else {
            throw RunFormatError(metadata, "expected a JSON object")
        }
        return object["run_id"] as? String
    }

    private func child(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Whether a directory entry exists (of any kind; `lstat`, so a dangling link counts too).
    private func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }
}

/// `N x D` of a run's embeddings, and the file that set it.
public struct EmbeddingShape: Sendable, Equatable {
    public let sampleCount: Int
    public let dimension: Int
    public let path: String

    /// Checks one checkpoint's header: a 2-D float array of at least 3 x 2, the shape of the first checkpoint.
    public static func check(_ array: NPYArray, against first: EmbeddingShape?) throws(RunFormatError) -> EmbeddingShape {
        let path = array.path
        guard array.shape.count == 2 else {
            throw RunFormatError(path, "expected a 2-D array (N, D), got shape \(array.shapeText)")
        }
        guard case .float = array.element else {
            throw RunFormatError(path, "expected float16, float32 or float64 embeddings, got \(array.element)")
        }
        if let first {
            guard array.shape[0] == first.sampleCount else {
                throw RunFormatError(path, "has \(array.shape[0]) rows but \(first.path) has \(first.sampleCount): every checkpoint must embed the same evaluation set")
            }
            guard array.shape[1] == first.dimension else {
                throw RunFormatError(path, "has dimension \(array.shape[1]) but \(first.path) has \(first.dimension): D must not change during a run")
            }
            return first
        }
        guard array.shape[0] >= 3 else { throw RunFormatError(path, "only \(array.shape[0]) rows: need at least 3 samples") }
        guard array.shape[1] >= 2 else { throw RunFormatError(path, "dimension \(array.shape[1]): need at least 2 features to project to 2-D") }
        return EmbeddingShape(sampleCount: array.shape[0], dimension: array.shape[1], path: path)
    }
}

/// JSON input files (`run.json`, `class_names.json`, `trainer_state.json`), read safely.
public enum JSONFile {
    public static func read(_ path: String) throws(RunFormatError) -> Any {
        let text = try InputFile.text(path)
        do { return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) } catch {
            throw RunFormatError(path, "invalid JSON")
        }
    }
}
