#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Writes a file under a temporary name beside it, then renames it into place,
/// so a reader never sees half a file and a failure leaves nothing behind.
public enum AtomicFile {
    /// Created with mode 0666 less the process umask (0644 by default), as any other tool's files.
    public static func write(_ bytes: [UInt8], to path: String) throws(RunFormatError) {
        let temporary = temporaryPath(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw RunFormatError(path, "cannot write: \(plainSystemMessage())") }
        var written = 0
        let failure: String? = bytes.withUnsafeBytes { buffer in
            while written < buffer.count {
                let result = Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { return plainSystemMessage() }
                written += result
            }
            return nil
        }
        let closed = close(fd) == 0 ? nil : plainSystemMessage()
        if let problem = failure ?? closed {
            unlink(temporary)
            throw RunFormatError(path, "cannot write: \(problem)")
        }
        guard rename(temporary, path) == 0 else {
            let message = plainSystemMessage()
            unlink(temporary)
            throw RunFormatError(path, "cannot write: \(message)")
        }
    }

    public static func write(_ text: String, to path: String) throws(RunFormatError) {
        try write(Array(text.utf8), to: path)
    }

    /// A hidden name in the same directory, so the final rename stays on one file system.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).partial").path
    }

    /// `errno` in plain words: "disk full" rather than the system's "No space left on device".
    static func plainSystemMessage() -> String {
        errno == ENOSPC ? "disk full" : String(cString: strerror(errno))
    }
}
