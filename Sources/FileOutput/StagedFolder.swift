#if canImport(Glibc)
import Glibc
#endif

/// The files of a folder output (PNG frames, the data dump) written into a hidden staging folder
/// inside it, `.embedlapse-staging.PID.partial`, and moved into place together by `publish()`: a
/// render that fails or is killed leaves the folder's visible files as they were. Unstaged (a live
/// film, whose folder grows as it plays), files go straight into place.
public final class StagedFolder {
    public let directory: String
    /// nil: unstaged.
    private let staging: String?
    private var staged: [String] = []
    private var closed = false

    static let stagingName = "embedlapse-staging"

    public init(directory: String, staged: Bool) throws(FileOutputError) {
        try Folders.make(directory)
        try PinnedFolders.pinMade(directory)
        self.directory = directory
        guard staged else {
            staging = nil
            return
        }
        let staging = Temporaries.name(for: directory + "/" + Self.stagingName)
        guard mkdir(PinnedFolders.route(staging), 0o777) == 0 else { throw FileOutputError(directory, writing: errno) }
        try PinnedFolders.hold(staging, at: PinnedFolders.route(staging))
        self.staging = staging
    }

    deinit { abandon() }

    /// Writes `bytes` as the file `name` of the folder (staged until `publish()`).
    public func write(_ bytes: [UInt8], named name: String) throws(FileOutputError) {
        guard let staging else { return try WholeFile.write(bytes, to: directory + "/" + name) }  // routed by WholeFile
        try WholeFile.write(bytes, to: staging + "/" + name)
        staged.append(name)
    }

    /// Moves every staged file into place, replacing files of the same names.
    public func publish() throws(FileOutputError) {
        guard let staging, !closed else { return }
        for name in staged {
            guard rename(PinnedFolders.route(staging + "/" + name), PinnedFolders.route(directory + "/" + name)) == 0 else {
                throw FileOutputError(directory + "/" + name, writing: errno)
            }
        }
        staged = []
        closed = true
        rmdir(PinnedFolders.route(staging))
        PinnedFolders.unpin(staging)
    }

    /// Removes what was staged; the folder's visible files stay as they were.
    public func abandon() {
        guard let staging, !closed else { return }
        closed = true
        for name in staged { unlink(PinnedFolders.route(staging + "/" + name)) }
        Temporaries.removeLeftovers(in: PinnedFolders.route(staging)) { _ in true }
        rmdir(PinnedFolders.route(staging))
        PinnedFolders.unpin(staging)
    }

    /// Removes the staging folders that killed writers left in `directory`: their files whose
    /// names `isOurs` and that carry Embedlapse's mark, then each folder if nothing else is in it.
    public static func removeLeftovers(in directory: String, of isOurs: (String) -> Bool) {
        for name in Temporaries.names(in: directory) {
            guard let (file, pid) = Temporaries.parse(name), file == stagingName, !Temporaries.isRunning(pid) else { continue }
            let folder = directory + "/" + name
            for inside in Temporaries.names(in: folder) where isOurs(inside) && Authorship.wrote(folder + "/" + inside) {
                unlink(folder + "/" + inside)
            }
            Temporaries.removeLeftovers(in: folder, of: isOurs)
            rmdir(folder)
        }
    }
}
