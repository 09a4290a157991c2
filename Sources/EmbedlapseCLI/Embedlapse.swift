import ArgumentParser
import CMalloc
import Embedlapse
import Foundation
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
        subcommands: [Demo.self, Render.self, Watch.self, Inspect.self])

    static func main() async {
        // Each checkpoint allocates and frees tens of megabytes. glibc raises its mmap threshold
        // after the first large free, so later blocks come from the heap and are kept: peak RSS
        // of a 10,000 x 768 render went from 273 to 312 MB. A fixed threshold returns them.
        mallopt(M_MMAP_THRESHOLD, 1 << 20)
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
                if !text.isEmpty { FileHandle.standardError.write(Data((terminalSafeLines(text) + "\n").utf8)) }
            }
            Foundation.exit(code.rawValue)
        }
    }
}

/// Prints `embedlapse: message` on one line and exits non-zero.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("embedlapse: \(terminalSafe(message))\n".utf8))
    exit(code)
}

func note(_ message: String) {
    FileHandle.standardError.write(Data("\(terminalSafe(message))\n".utf8))
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
