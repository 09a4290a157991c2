import Foundation

/// Writes a file under a temporary name beside it, then renames it into place,
/// so a reader never sees half a file and a failure leaves nothing behind.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws(RunFormatError) {
        let temporary = temporaryPath(for: path)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw RunFormatError(path, "cannot write: \(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
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
}
