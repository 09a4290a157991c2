#if canImport(Glibc)
import Glibc
#endif
import FileOutput

/// A run's inputs, which no output may replace: every file at the run folder's top level and all
/// that its `checkpoint-<step>` folders hold (a Trainer's weights, optimizer and scheduler state
/// among them), by path and by identity (a hard or symbolic link to one is the same file).
///
/// The one exception is a top-level file Embedlapse wrote itself (its `Authorship` mark), such as
/// an earlier film written into the run folder: that one may be replaced. Nothing may be written
/// into a checkpoint folder, nor under a name the run's reader takes as input.
///
///     let inputs = RunInputs(run: "runs/vit")
///     if let problem = inputs.conflict(file: "runs/vit/losses.csv") { ... }
public struct RunInputs: Sendable {
    /// The run folder as given, for messages.
    public let run: String
    /// Its real path.
    let root: String
    private let files: [FileKey: String]

    private struct FileKey: Hashable, Sendable {
        let device: UInt64
        let inode: UInt64
    }

    /// The names at a run's top level that its reader takes as input, present or not.
    public static let readNames: Set<String> = [RunScanner.metadataFile, RunScanner.doneMarker, "labels.npy", "class_names.json",
                                         "images.npy", "losses.csv", "trainer_state.json"]
    /// Bounds on the walk through checkpoint folders: a Trainer's hold a dozen files each.
    static let maximumDepth = 8, maximumFiles = 1_000_000

    public init(run: String) {
        self.run = run
        root = Paths.resolve(run)
        var files: [FileKey: String] = [:]
        var budget = Self.maximumFiles
        for name in Temporaries.names(in: root) {
            let path = root + "/" + name
            if Self.isCheckpointFolder(name) {
                Self.collect(path, depth: 0, into: &files, budget: &budget)
            } else if !Authorship.wrote(path) {
                Self.add(path, into: &files)
            }
        }
        self.files = files
    }

    /// Why a file output at `path` may not be written (replaced whole, or written in place), or nil.
    public func conflict(file path: String) -> String? {
        let resolved = Paths.resolve(file: path)
        if let problem = conflict(place: resolved, path: path) { return problem }
        if Paths.folder(of: resolved) == root, Self.readNames.contains(Paths.name(of: resolved)) {
            return "the run \(run) reads its \(Paths.name(of: resolved)): write the output elsewhere"
        }
        if resolved.hasPrefix(root == "/" ? "/" : root + "/"), exists(resolved), !Authorship.wrote(resolved) {
            return "would replace \(resolved.dropFirst(root.count + 1)) in the run \(run), a file Embedlapse did not write: write the output elsewhere"
        }
        for key in Self.keys(path) {
            if let input = files[key] { return "is the run's input \(input) (the same file): write the output elsewhere" }
        }
        return nil
    }

    /// Why a folder output (frames, data, the analysis cache) may not be at `path`, or nil. A new
    /// folder inside the run is fine; the run folder itself and its checkpoint folders are not, nor
    /// one inside the run where a file of a name the output writes (`writes`) is not Embedlapse's.
    public func conflict(folder path: String, writes: (String) -> Bool = { _ in false }) -> String? {
        let resolved = Paths.resolve(path)
        if resolved == root { return "is the run folder \(run) itself: give the output a folder of its own" }
        if let problem = conflict(place: resolved, path: path) { return problem }
        guard resolved.hasPrefix(root == "/" ? "/" : root + "/") else { return nil }
        for name in Temporaries.names(in: resolved).sorted() where writes(name) && !Authorship.wrote(resolved + "/" + name) {
            return "would replace \(name) in the run \(run), a file Embedlapse did not write: write the output elsewhere"
        }
        return nil
    }

    private func conflict(place resolved: String, path: String) -> String? {
        guard resolved.hasPrefix(root == "/" ? "/" : root + "/") else { return nil }
        let first = resolved.dropFirst(root.count + 1).prefix { $0 != "/" }
        guard Self.isCheckpointFolder(String(first)) else { return nil }
        return "lies in the run's checkpoint folder \(run == "." ? "" : run + "/")\(first), which Embedlapse never writes into: write the output elsewhere"
    }

    private func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    public static func isCheckpointFolder(_ name: String) -> Bool {
        name.hasPrefix("checkpoint-") && name.count > "checkpoint-".count
            && name.dropFirst("checkpoint-".count).allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// The identities of the file at `path`: itself, and what it points to if it is a link.
    private static func keys(_ path: String) -> [FileKey] {
        var info = stat(), target = stat()
        var keys: [FileKey] = []
        if lstat(path, &info) == 0 { keys.append(FileKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))) }
        if stat(path, &target) == 0 { keys.append(FileKey(device: UInt64(target.st_dev), inode: UInt64(target.st_ino))) }
        return keys
    }

    private static func add(_ path: String, into files: inout [FileKey: String]) {
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { return }
        for key in keys(path) { files[key] = path }
    }

    private static func collect(_ folder: String, depth: Int, into files: inout [FileKey: String], budget: inout Int) {
        for key in keys(folder) { files[key] = folder }
        var info = stat()
        guard depth < maximumDepth, lstat(folder, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return }
        for name in Temporaries.names(in: folder) {
            guard budget > 0 else { return }
            budget -= 1
            let path = folder + "/" + name
            var entry = stat()
            if lstat(path, &entry) == 0, entry.st_mode & S_IFMT == S_IFDIR {
                collect(path, depth: depth + 1, into: &files, budget: &budget)
            } else {
                add(path, into: &files)
            }
        }
    }
}
