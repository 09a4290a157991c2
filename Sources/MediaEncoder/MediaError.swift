internal import CFFmpeg

/// An FFmpeg failure: what was being done, and FFmpeg's own message (`av_strerror`).
public struct MediaError: Error, CustomStringConvertible {
    public let description: String

    public init(_ message: String) { description = message }

    init(_ operation: String, code: Int32) {
        var buffer = [CChar](repeating: 0, count: 256)
        av_strerror(code, &buffer, buffer.count)
        description = "\(operation): \(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))"
    }
}

/// Throws `MediaError` when an FFmpeg call returns a negative status; returns the status otherwise.
@discardableResult
func check(_ status: Int32, _ operation: @autoclosure () -> String) throws(MediaError) -> Int32 {
    guard status >= 0 else { throw MediaError(operation(), code: status) }
    return status
}
