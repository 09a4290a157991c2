import CFileSystem
#if canImport(Glibc)
import Glibc
#endif

/// A file output that appears whole or not at all, in place of any file of its name.
///
/// Written into an unnamed file in the target's folder (Linux `O_TMPFILE`: a crash, even
/// `kill -9`, leaves nothing behind) and linked into place by `commit()`. Where the file system has
/// no unnamed files, it is written under a named temporary, `.NAME.PID.partial`, which an abort
/// removes (`Temporaries`) and which a later run removes once its writer is gone.
///
///     let file = try WholeFile(path: "table.csv")
///     try file.append(header)
///     try file.commit()
///
/// Every file committed carries the `user.embedlapse` extended attribute where the file system
/// keeps them: the proof, read by `Authorship`, that Embedlapse wrote it and may replace it.
public final class WholeFile {
    public let path: String
    /// Where the contents are being written: `/proc/self/fd/N` for an unnamed file, which another
    /// library (FFmpeg) may open and write through; the named temporary otherwise.
    public let writingPath: String
    private var descriptor: Int32
    /// The fallback's named temporary; nil for an unnamed file.
    private let named: String?
    private var done = false

    /// Where the file is created and put in place: through its pinned folder (`PinnedFolders`).
    private let routed: String

    public init(path: String) throws(FileOutputError) {
        self.path = path
        routed = PinnedFolders.route(path)
        let folder = Paths.folder(of: routed)
        // Unnamed files are reached (linked, and opened by FFmpeg) through /proc: without it, named.
        let unnamed = Self.hasProc ? open(folder, Self.unnamedFileFlags | O_WRONLY | O_CLOEXEC, 0o666) : -1
        if unnamed >= 0 {
            descriptor = unnamed
            named = nil
            writingPath = "/proc/self/fd/\(unnamed)"
            return
        }
        guard !Self.hasProc || [EOPNOTSUPP, EISDIR, EINVAL].contains(errno) else { throw FileOutputError(path, writing: errno) }
        let temporary = Temporaries.name(for: routed)
        Temporaries.track(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            let code = errno
            Temporaries.untrack(temporary)
            throw FileOutputError(path, writing: code)
        }
        // Marked at once: a later run removes a leftover temporary only if Embedlapse's mark says it wrote it.
        Authorship.mark(descriptor: fd)
        descriptor = fd
        named = temporary
        writingPath = temporary
    }

    deinit { abandon() }

    /// Writes all of `bytes` after what was written before, retrying interrupted writes.
    public func append(_ bytes: [UInt8]) throws(FileOutputError) {
        let failure = writeAll(bytes, to: descriptor)
        guard failure == 0 else { throw FileOutputError(path, writing: failure) }
    }

    /// Puts the file in place of `path`, whole; on failure nothing is left and `path` is as it was.
    public func commit() throws(FileOutputError) {
        precondition(!done, "a WholeFile is committed or abandoned once")
        done = true
        Authorship.mark(descriptor: descriptor)
        var failure: Int32 = 0
        if let named {
            if close(descriptor) != 0 { failure = errno }
            descriptor = -1
            if failure == 0 && rename(named, routed) != 0 { failure = errno }
            if failure != 0 { unlink(named) }
            Temporaries.untrack(named)
        } else {
            // A link cannot replace a file: link under a temporary name, then rename over `path`.
            // Only a crash in the microseconds between the two leaves that name behind.
            let temporary = Temporaries.name(for: routed)
            Temporaries.track(temporary)
            // The link is the same file as the unnamed one, mark included: a crash before the rename
            // leaves a temporary that a later run recognises as Embedlapse's.
            if !link(descriptor, as: temporary) { failure = errno }
            if failure == 0 && rename(temporary, routed) != 0 {
                failure = errno
                unlink(temporary)
            }
            Temporaries.untrack(temporary)
            if close(descriptor) != 0 && failure == 0 { failure = errno }
            descriptor = -1
        }
        if failure != 0 { throw FileOutputError(path, writing: failure) }
    }

    /// Drops what was written: nothing appears, `path` stays as it was.
    public func abandon() {
        guard !done else { return }
        done = true
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        if let named {
            unlink(named)
            Temporaries.untrack(named)
        }
    }

    /// Writes `bytes` as `path`, whole or not at all.
    public static func write(_ bytes: [UInt8], to path: String) throws(FileOutputError) {
        let file = try WholeFile(path: path)
        try file.append(bytes)
        try file.commit()
    }

    public static func write(_ text: String, to path: String) throws(FileOutputError) {
        try write(Array(text.utf8), to: path)
    }

    /// `O_TMPFILE`, `__O_TMPFILE | O_DIRECTORY`: a macro of macros that glibc defines only under _GNU_SOURCE.
    private static let unnamedFileFlags: Int32 = 0o20000000 | O_DIRECTORY
    private static let hasProc = access("/proc/self/fd", F_OK) == 0

    /// `AT_EMPTY_PATH`, Linux's, likewise.
    private static let emptyPath: Int32 = 0x1000

    /// Gives the unnamed file a name: through /proc, or else `AT_EMPTY_PATH` (which needs privilege).
    private func link(_ descriptor: Int32, as name: String) -> Bool {
        if linkat(AT_FDCWD, "/proc/self/fd/\(descriptor)", AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0 { return true }
        let viaProc = errno
        if linkat(descriptor, "", AT_FDCWD, name, Self.emptyPath) == 0 { return true }
        errno = viaProc
        return false
    }
}

/// Which files Embedlapse wrote: those it committed carry the extended attribute `user.embedlapse`.
/// A file system without user attributes keeps no mark, and its files count as not Embedlapse's.
public enum Authorship {
    static let attribute = "user.embedlapse"

    static func mark(descriptor: Int32) {
        _ = fsetxattr(descriptor, attribute, "output", 6, 0)
    }

    /// Marks a file written by another library in place (a live video).
    public static func mark(path: String) {
        _ = lsetxattr(path, attribute, "output", 6, 0)
    }

    /// Whether the file at `path` (not followed if a link) carries Embedlapse's mark.
    public static func wrote(_ path: String) -> Bool {
        var value = [UInt8](repeating: 0, count: 8)
        return lgetxattr(path, attribute, &value, value.count) == 6 && value.prefix(6) == Array("output".utf8)[...]
    }
}
