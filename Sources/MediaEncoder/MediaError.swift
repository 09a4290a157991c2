internal import CFFmpeg
#if canImport(Glibc)
import Glibc
#endif

/// An encoding or file failure: what was being done, and the library's or system's own words
/// (`av_strerror`, `strerror`).
public struct MediaError: Error, CustomStringConvertible {
    public let description: String
    /// The system error (`errno`) behind the failure, when there is one: `ENOSPC` when the disk is full.
    public let systemError: Int32?

    public init(_ message: String) {
        description = message
        systemError = nil
    }

    /// An FFmpeg status; FFmpeg reports a system error `e` as `AVERROR(e)`, that is `-e`.
    init(_ operation: String, code: Int32) {
        var buffer = [CChar](repeating: 0, count: 256)
        av_strerror(code, &buffer, buffer.count)
        description = "\(operation): \(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))"
        systemError = code < 0 && code > -4096 ? -code : nil
    }

    /// A failed system call's `errno`.
    init(_ operation: String, errno code: Int32) {
        description = "\(operation): \(String(cString: strerror(code)))"
        systemError = code
    }
}

/// Throws `MediaError` when an FFmpeg call returns a negative status; returns the status otherwise.
@discardableResult
func check(_ status: Int32, _ operation: @autoclosure () -> String) throws(MediaError) -> Int32 {
    guard status >= 0 else { throw MediaError(operation(), code: status) }
    return status
}
