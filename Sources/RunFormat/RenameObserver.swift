#if canImport(Glibc)
import Foundation
import Glibc

/// Sees entries renamed into watched folders (inotify's `IN_MOVED_TO`). A file renamed into place
/// was written whole under another name first, so a watch can take it at once instead of waiting
/// for it to settle. Only renames after a folder is watched are seen; anything else still goes by
/// the settle rule.
final class RenameObserver: @unchecked Sendable {  // one scanner's, used by one scan at a time
    private let descriptor: Int32
    private var folders: [Int32: String] = [:]
    private var watches: [String: Int32] = [:]

    init?() {
        descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { return nil }
    }

    deinit { close(descriptor) }

    func watch(_ folder: String) {
        guard watches[folder] == nil else { return }
        let watch = inotify_add_watch(descriptor, folder, UInt32(IN_MOVED_TO | IN_ONLYDIR))
        guard watch >= 0 else { return }  // out of watches, or gone: the settle rule covers it
        watches[folder] = watch
        folders[watch] = folder
    }

    func unwatch(_ folder: String) {
        guard let watch = watches.removeValue(forKey: folder) else { return }
        folders[watch] = nil
        inotify_rm_watch(descriptor, watch)
    }

    /// The paths renamed into watched folders since the last call.
    func renamedPaths() -> Set<String> {
        var paths = Set<String>()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }  // EAGAIN: nothing more for now
            buffer.withUnsafeBytes { bytes in
                let header = MemoryLayout<inotify_event>.size
                var offset = 0
                while offset + header <= count {
                    let watch = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = bytes[(offset + header)..<min(offset + header + length, count)].prefix { $0 != 0 }
                    if mask & UInt32(IN_MOVED_TO) != 0, let folder = folders[watch], !nameBytes.isEmpty {
                        paths.insert((folder as NSString).appendingPathComponent(String(decoding: nameBytes, as: UTF8.self)))
                    }
                    offset += header + length
                }
            }
        }
        return paths
    }
}
#else
/// Without inotify every file goes by the settle rule.
final class RenameObserver: Sendable {
    init?() { return nil }
    func watch(_ folder: String) {}
    func unwatch(_ folder: String) {}
    func renamedPaths() -> Set<String> { [] }
}
#endif
