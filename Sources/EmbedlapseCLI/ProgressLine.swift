import Foundation

/// `checkpoints 12/31  4.2 per s  ~5 s left`, redrawn in place on a terminal; silent otherwise.
final class ProgressLine: @unchecked Sendable {  // mutable state guarded by `lock`
    private let total: Int?
    private let enabled = isatty(STDERR_FILENO) == 1
    private let start = Date()
    private let lock = NSLock()
    private var shown = false

    init(total: Int?) { self.total = total }

    func update(_ done: Int) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let elapsed = Date().timeIntervalSince(start)
        let rate = Double(done) / max(elapsed, 1e-3)
        var line = "checkpoints \(done)" + (total.map { "/\($0)" } ?? "") + String(format: "  %.1f per s", rate)
        if let total, done < total { line += String(format: "  ~%.0f s left", Double(total - done) / max(rate, 1e-3)) }
        writeToStandardError("\r\u{1B}[K\(line)")
        shown = true
    }

    func end() {
        lock.lock()
        defer { lock.unlock() }
        if shown { writeToStandardError("\n") }
        shown = false
    }
}
