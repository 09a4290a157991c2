import ArgumentParser
import Pipeline
import Foundation
import RunFormat

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a run directory and list every problem found in it.",
        discussion: """
            Reads every file of the run (headers, labels, losses, and each checkpoint's values) \
            and exits non-zero if anything would stop a render.

            Example:
              embedlapse inspect runs/vit-cifar10
            """)

    @Argument(help: "The run directory.")
    var run: String

    func run() async throws {
        let report = RunInspection(path: run)
        print(terminalSafeLines(report.text))
        if !report.problems.isEmpty { throw ExitCode(1) }
    }
}
