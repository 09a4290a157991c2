#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What identifies one version of a file: a writer that replaces, truncates or rewrites it
/// changes at least one of these.
public struct FileIdentity: Sendable, Equatable {
    public let device: UInt64
    public let inode: UInt64
    public let size: Int
    /// Modification time in nanoseconds since the epoch.
    public let modified: Int64
    /// Status-change time (ctime) in nanoseconds: no one can set it, so a copy, a `touch` or a
    /// rename gives the file another one, whatever its modification time says.
    public let statusChanged: Int64

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(info.st_mtim.tv_nsec)
        statusChanged = Int64(info.st_ctim.tv_sec) &* 1_000_000_000 &+ Int64(info.st_ctim.tv_nsec)
    }
}

/// One input file of a run, opened for reading into owned buffers.
///
/// Never memory-mapped: a file that another process truncates while it is mapped kills the
/// reader with SIGBUS. Only regular files are read: a FIFO, a device or a directory is refused
/// at once (opened with `O_NONBLOCK`, so even opening a FIFO cannot block).
public final class InputFile {
    public let path: String
    public let identity: FileIdentity
    private let descriptor: Int32

    public init(path: String) throws(RunFormatError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure(path) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let failure = Self.failure(path)
            close(fd)
            throw failure
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw RunFormatError(path, "not a regular file (\(Self.kind(of: info.st_mode))): expected a file", kind: .unreadable)
        }
        descriptor = fd
        identity = FileIdentity(info)
    }

    deinit { close(descriptor) }

    public var size: Int { identity.size }

    /// Reads exactly `buffer.count` bytes from `offset` (`pread`).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(RunFormatError) {
        var done = 0
        while done < buffer.count {
            let got = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw got == 0 ? RunFormatError(path, "changed while being read: the file is shorter than it was", kind: .changing)
                    : Self.failure(path)
            }
            done += got
        }
    }

    /// `count` bytes from `offset`.
    public func bytes(at offset: Int, count: Int) throws(RunFormatError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var failure: RunFormatError?
        out.withUnsafeMutableBytes { buffer in
            do throws(RunFormatError) { try read(into: buffer, at: offset) } catch { failure = error }
        }
        if let failure { throw failure }
        return out
    }

    /// The whole file, refused when larger than `limit` bytes.
    public func contents(limit: Int) throws(RunFormatError) -> [UInt8] {
        guard size <= limit else {
            throw RunFormatError(path, "too large: \(size) bytes, at most \(limit) expected for this file")
        }
        let out = try bytes(at: 0, count: size)
        try checkUnchanged()
        return out
    }

    /// Throws when the file was replaced, truncated, extended or rewritten since it was opened.
    public func checkUnchanged() throws(RunFormatError) {
        var now = stat()
        guard stat(path, &now) == 0, FileIdentity(now) == identity else {
            throw RunFormatError(path, "changed while being read: another process is writing it", kind: .changing)
        }
    }

    /// Reads a whole small file (JSON, CSV) as UTF-8 text; invalid UTF-8 is refused.
    public static func text(_ path: String, limit: Int = 256 << 20) throws(RunFormatError) -> String {
        let bytes = try InputFile(path: path).contents(limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw RunFormatError(path, "not valid UTF-8 text")
        }
        return text
    }

    static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a plain file"
        }
    }

    /// `errno`'s failure for `path`: `.exhausted` when the system ran short, else `.unreadable`.
    static func failure(_ path: String) -> RunFormatError {
        let kind: RunFormatError.Kind = exhaustionErrors.contains(errno) ? .exhausted : .unreadable
        return RunFormatError(path, systemMessage(), kind: kind)
    }

    /// Running short of descriptors (process, system), memory or buffers, or interrupted.
    public static let exhaustionErrors: [Int32] = [EMFILE, ENFILE, ENOMEM, ENOBUFS, EAGAIN, EINTR]

    static func systemMessage() -> String {
        switch errno {
        case ENOENT: return "no such file"
        case EACCES: return "permission denied"
        case EISDIR: return "not a regular file (a directory): expected a file"
        default: return String(cString: strerror(errno))
        }
    }
}

/// A problem with one input file: names the file and says what is wrong with it.
public struct RunFormatError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public let kind: Kind

    public enum Kind: Sendable, Equatable {
        /// The content is wrong.
        case invalid
        /// The file changed while it was read: a writer is at work (watch waits, render refuses).
        case changing
        /// Not a regular file, or not readable: waiting will not help.
        case unreadable
        /// The system ran short of something to read it with (descriptors, memory): the file may be
        /// fine, and a later look may succeed (a live run is looked at again).
        case exhausted
    }

    public init(_ path: String, _ problem: String, kind: Kind = .invalid) {
        self.path = path
        self.problem = problem
        self.kind = kind
    }

    public var description: String { "\(path): \(problem)" }
}
