#if canImport(Glibc)
import Glibc
#endif

/// A file or folder that cannot be written: `PATH: problem`, in plain words.
public struct FileOutputError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String
    /// The system's error number, when the system refused.
    public let code: Int32?

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
        code = nil
    }

    /// "cannot write: disk full", "cannot write: Permission denied", ...
    public init(_ path: String, writing code: Int32) {
        self.path = path
        problem = code == ENOSPC ? systemWords(code) : "cannot write: \(systemWords(code))"
        self.code = code
    }

    public var description: String { "\(path): \(problem)" }
}

public enum Folders {
    /// `mkdir -p` (mode 0777 less the umask), failing in plain words.
    public static func make(_ path: String) throws(FileOutputError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST {
                throw FileOutputError(path, "cannot make the folder \(prefix): \(systemWords(errno))")
            }
            prefix += "/"
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw FileOutputError(path, "cannot make this folder: a file of that name is in the way")
        }
        guard access(path, W_OK | X_OK) == 0 else { throw FileOutputError(path, "cannot write: the folder is not writable") }
    }
}

/// Writes all of `bytes` to `descriptor` (at `offset`, if given, else where it stands), retrying
/// interrupted and partial writes: 0, or the failure's errno.
public func writeAll(_ bytes: some Collection<UInt8>, to descriptor: Int32, at offset: off_t? = nil) -> Int32 {
    // Arrays and UTF-8 views are written where they lie; only a scattered collection is copied.
    if let written = bytes.withContiguousStorageIfAvailable({ writeAll(UnsafeRawBufferPointer($0), to: descriptor, at: offset) }) {
        return written
    }
    return Array(bytes).withUnsafeBytes { writeAll($0, to: descriptor, at: offset) }
}

private func writeAll(_ raw: UnsafeRawBufferPointer, to descriptor: Int32, at offset: off_t?) -> Int32 {
    var written = 0
    while written < raw.count {
        let start = raw.baseAddress! + written, remaining = raw.count - written
        let count = offset.map { pwrite(descriptor, start, remaining, $0 + off_t(written)) } ?? write(descriptor, start, remaining)
        if count < 0 {
            if errno == EINTR { continue }
            return errno
        }
        if count == 0 { return EIO }
        written += count
    }
    return 0
}

/// A system error in plain words: "disk full" for ENOSPC, the system's own otherwise.
public func systemWords(_ code: Int32) -> String {
    code == ENOSPC ? "disk full" : String(cString: strerror(code))
}

public enum Paths {
    /// Absolute, with the longest part that exists resolved through symbolic links and the rest
    /// taken literally: two spellings of one place resolve alike.
    public static func resolve(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : currentDirectory() + "/" + path
        var existing = absolute.split(separator: "/").map(String.init)
        var rest: [String] = []
        while true {
            if let real = realpath("/" + existing.joined(separator: "/"), nil) {
                defer { free(real) }
                var parts = String(cString: real).split(separator: "/").map(String.init)
                for part in rest where part != "." {
                    if part == ".." { _ = parts.popLast() } else { parts.append(part) }
                }
                return "/" + parts.joined(separator: "/")
            }
            guard let last = existing.popLast() else { return absolute }
            rest.insert(last, at: 0)
        }
    }

    /// A file's path with its folder resolved (`resolve`) and its own name kept as given: a file
    /// output replaces a link of its name, it does not follow it.
    public static func resolve(file path: String) -> String {
        let folder = resolve(folder(of: path))
        return (folder == "/" ? "" : folder) + "/" + name(of: path)
    }

    /// The folder a path lies in, as given: "." for a bare name.
    public static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    public static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Whether `path` is `folder` or lies inside it; both resolved.
    public static func isWithin(_ path: String, _ folder: String) -> Bool {
        path == folder || path.hasPrefix(folder == "/" ? "/" : folder + "/")
    }

    private static func currentDirectory() -> String {
        guard let path = getcwd(nil, 0) else { return "." }
        defer { free(path) }
        return String(cString: path)
    }
}
