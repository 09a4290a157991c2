import ArgumentParser
import CMalloc
import FileOutput
import Foundation
import Pipeline
import RunFormat

@main
struct EmbedlapseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embedlapse",
        abstract: "Time-lapse videos of a model's embedding space while it is fine-tuned.",
        discussion: """
            Each checkpoint's evaluation-set embeddings are projected to 2-D (PCA), rotated onto \
            the neighbouring frame (Procrustes), scored for outliers (k-nearest-neighbour distance, \
            as cleanlab's OutOfDistribution) and drawn with the loss curve and the most atypical samples.
            """,
        version: embedlapseVersion,
        subcommands: [Demo.self, Render.self, Watch.self, Compare.self, Serve.self, Export.self, Analyse.self, Inspect.self])

    static func main() async {
        // Each checkpoint allocates and frees tens of megabytes. glibc raises its mmap threshold
        // after the first large free, so later blocks come from the heap and are kept: peak RSS
        // of a 10,000 x 768 render went from 273 to 312 MB. A fixed threshold returns them.
        mallopt(M_MMAP_THRESHOLD, 1 << 20)
        // Whoever reads our stderr may be gone (a training that crashed took the pipe with it): a
        // message must then be lost, not kill the watch before it finalises the film.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // ArgumentParser's own message quotes what was typed: escape it like every other line,
            // and keep a usage error to two lines (the problem, and where the help is).
            let code = exitCode(for: error)
            if code == .success {
                print(terminalSafeLines(fullMessage(for: error)))
            } else if code == .validationFailure {
                note("Error: " + message(for: error))
                note("See 'embedlapse \(CommandLine.arguments.dropFirst().first.map { $0.hasPrefix("-") ? "" : $0 + " " } ?? "")--help'.")
            } else {
                let text = fullMessage(for: error)
                if !text.isEmpty { writeToStandardError(terminalSafeLines(text) + "\n") }
            }
            Foundation.exit(code.rawValue)
        }
    }
}

/// The release, the same as the Python helper's `embedlapse.__version__` (a test holds them equal).
let embedlapseVersion = "0.2.0"

/// Prints `embedlapse: message` on one line and exits non-zero.
func fail(_ message: String, code: Int32 = 1) -> Never {
    writeToStandardError("embedlapse: \(terminalSafe(message))\n")
    exit(code)
}

func note(_ message: String) {
    writeToStandardError("\(terminalSafe(message))\n")
}

/// Writes `text` to stderr; if stderr is closed or broken, the text is dropped (never a trap).
func writeToStandardError(_ text: String) {
    _ = writeAll(text.utf8, to: STDERR_FILENO)
}

/// A one-line message with every control character escaped, newlines included: names from files
/// and flags reach the terminal only as text, and cannot forge a second line.
func terminalSafe(_ message: String) -> String {
    Printable.escaped(message)
}

/// Text of several lines (a report, the help) with each line escaped.
func terminalSafeLines(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { Printable.escaped($0) }.joined(separator: "\n")
}
