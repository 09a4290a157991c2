#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The folders outputs go to, held open from the moment they were checked: every later write goes
/// through the folder that was checked (`/proc/self/fd/N/NAME`), even if its path is renamed or
/// replaced by a link meanwhile (a long `watch` gives hours for that). One registry for the process.
///
///     try PinnedFolders.pin("out", expecting: "/home/me/out")   // after the checks
///     WholeFile(path: "out/film.mp4")                            // written into that very folder
public enum PinnedFolders {
    private static let pinned = Mutex([String: Int32]())
    /// Folders checked before they existed (a new `--frames-dir`): their real path once made.
    private static let expected = Mutex([String: String]())

    /// Holds `path`, a folder that exists, open; it must be `resolved` (its real path when it was
    /// checked), or the output is refused: the place changed between the check and the write.
    public static func pin(_ path: String, expecting resolved: String) throws(FileOutputError) {
        let key = normalised(path)
        guard pinned.withLock({ $0[key] }) == nil else { return }
        let descriptor = open(path, Self.pathOnly | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileOutputError(path, "cannot use the folder: \(systemWords(errno))") }
        let now = realPath(of: descriptor)
        guard now == nil || now == resolved else {
            close(descriptor)
            throw FileOutputError(path, "the folder changed since it was checked (it is now \(now!), not \(resolved)): nothing written there")
        }
        let kept = pinned.withLock { table -> Bool in
            guard table[key] == nil else { return false }
            table[key] = descriptor
            return true
        }
        if !kept { close(descriptor) }
    }

    /// Notes the real path a folder not made yet must have once made (`pinMade`).
    public static func expect(_ path: String, resolved: String) {
        expected.withLock { $0[normalised(path)] = resolved }
    }

    /// Pins a folder just made: to the real path noted when it was checked, if one was.
    public static func pinMade(_ path: String) throws(FileOutputError) {
        if let resolved = expected.withLock({ $0[normalised(path)] }) { return try pin(path, expecting: resolved) }
        try hold(path, at: route(path))
    }

    /// Pins `path` to the folder at `place` (a routed path, not followed if a link).
    public static func hold(_ path: String, at place: String) throws(FileOutputError) {
        let key = normalised(path)
        guard pinned.withLock({ $0[key] }) == nil else { return }
        let descriptor = open(place, Self.pathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileOutputError(path, "cannot use the folder: \(systemWords(errno))") }
        if pinned.withLock({ table -> Bool in
            guard table[key] == nil else { return false }
            table[key] = descriptor
            return true
        }) == false { close(descriptor) }
    }

    /// Lets go of a folder (a staging folder, once published or abandoned).
    public static func unpin(_ path: String) {
        if let descriptor = pinned.withLock({ $0.removeValue(forKey: normalised(path)) }) { close(descriptor) }
    }

    /// `path` as it must be used: through its pinned folder, if its folder is pinned.
    public static func route(_ path: String) -> String {
        let folder = normalised(Paths.folder(of: path))
        guard let descriptor = pinned.withLock({ $0[folder] }) else { return path }
        return "/proc/self/fd/\(descriptor)/\(Paths.name(of: path))"
    }

    /// `O_PATH` (glibc defines it only under _GNU_SOURCE): a handle to the folder, not opened for reading.
    private static let pathOnly: Int32 = 0o10000000

    /// The same key for `a/b`, `a/b/` and `a//b`.
    private static func normalised(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        let joined = parts.joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    private static func realPath(of descriptor: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/fd/\(descriptor)", &buffer, buffer.count - 1)
        return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }
}
