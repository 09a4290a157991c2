#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The named temporaries of files being written, `.NAME.PID.partial` beside `NAME`: one registry,
/// so that an abort (a second Ctrl-C) removes every one, and one name pattern, so that a later run
/// recognises and removes those of a writer that was killed.
public enum Temporaries {
    private static let tracked = Mutex(Set<String>())

    /// A hidden name beside `path`, on the same file system, so the final rename stays atomic.
    public static func name(for path: String) -> String {
        let folder = Paths.folder(of: path)
        let file = Paths.name(of: path)
        let hidden = ".\(file).\(getpid()).partial"
        return path.contains("/") ? (folder == "/" ? "/" : folder + "/") + hidden : hidden
    }

    public static func track(_ temporary: String) { tracked.withLock { _ = $0.insert(temporary) } }
    public static func untrack(_ temporary: String) { tracked.withLock { _ = $0.remove(temporary) } }

    /// Removes every temporary still being written (an abort). Plain files only.
    public static func removeAll() {
        tracked.withLock { for path in $0 { unlink(path) } }
    }

    /// The file name and writer's PID in a temporary's name (`.NAME.PID.partial`), or nil.
    public static func parse(_ name: String) -> (file: String, pid: pid_t)? {
        let suffix = ".partial"
        guard name.hasPrefix("."), name.hasSuffix(suffix), name.count > suffix.count + 1 else { return nil }
        let middle = name.dropFirst().dropLast(suffix.count)
        guard let dot = middle.lastIndex(of: ".") else { return nil }
        let digits = middle[middle.index(after: dot)...]
        guard (1...10).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let pid = pid_t(digits), pid > 0 else { return nil }
        return (String(middle[..<dot]), pid)
    }

    /// Removes, in `folder`, each plain-file temporary of a file that `isOurs` whose writer is gone
    /// and that carries Embedlapse's mark (`Authorship`): a file of that shape someone else made stays.
    public static func removeLeftovers(in folder: String, of isOurs: (String) -> Bool) {
        for name in names(in: folder) {
            guard let (file, pid) = parse(name), isOurs(file), !isRunning(pid) else { continue }
            let path = folder.hasSuffix("/") ? folder + name : folder + "/" + name
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Authorship.wrote(path) { unlink(path) }
        }
    }

    /// The names in `folder` (none if it cannot be read), without "." and "..".
    public static func names(in folder: String) -> [String] {
        guard let directory = opendir(folder) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func isRunning(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }
}
