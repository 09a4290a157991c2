#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file (`mmap`), unmapped when released.
///
/// Large embedding files are read without a copy of their bytes; only the pages touched are loaded.
public final class MappedFile: @unchecked Sendable {  // immutable after init: the mapping is never written
    public let path: String
    public let count: Int
    private let base: UnsafeRawPointer?

    public init(path: String) throws(RunFormatError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RunFormatError(path, Self.systemMessage()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw RunFormatError(path, Self.systemMessage()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw RunFormatError(path, "not a regular file") }
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else { throw RunFormatError(path, Self.systemMessage()) }
        base = UnsafeRawPointer(mapped)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Reads `buffer.count` bytes from `offset` with `pread`, bypassing the mapping.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(RunFormatError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RunFormatError(path, Self.systemMessage()) }
        defer { close(fd) }
        var done = 0
        while done < buffer.count {
            let got = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw RunFormatError(path, got == 0 ? "truncated while being read" : Self.systemMessage()) }
            done += got
        }
    }

    /// Calls `body` with the file's bytes; the pointer is valid only inside the closure.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    static func systemMessage() -> String {
        String(cString: strerror(errno))
    }
}

/// A problem with one input file: names the file and says what is wrong with it.
public struct RunFormatError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}
