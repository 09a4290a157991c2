import ArgumentParser
import Pipeline
import Foundation
import Projection
import RunFormat

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a saved run's analysis as a CSV table: one row per sample per checkpoint.",
        discussion: """
            Columns: step, index, label, class_name, x, y, outlier_score, label_agreement, \
            label_margin, projection. x and y are the film's aligned coordinates (as --dump-data \
            writes them), made by the projection the last column names with its parameters; \
            the label columns are empty when the run has no labels. The table is written whole or \
            not at all (Ctrl-C leaves no file). pandas reads it with pandas.read_csv.

            Examples:
              embedlapse export runs/vit-cifar10 -o table.csv
              embedlapse export runs/vit-cifar10 -o table.csv --align last
            """)

    @Argument(help: "The run directory.")
    var run: String

    @Option(name: .shortAndLong, help: "The CSV file to write.")
    var output: String

    @Option(help: "Procrustes target: previous (each frame onto the one before), last (onto the final checkpoint) or none.")
    var align: AlignmentTarget = .previous

    @OptionGroup var cache: CacheOptions

    @OptionGroup var layout: ProjectionOptions

    func validate() throws {
        try layout.check(alignment: align)
    }

    func run() async throws {
        do { try OutputPlan(table: output).check(against: [RunInputs(run: run)]) } catch { fail("-o \(error.description)") }
        let runDirectory: RunDirectory
        do { runDirectory = try RunDirectory(path: run) } catch { fail(error.description) }
        for warning in runDirectory.warnings { note("warning: \(warning)") }

        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let total = runDirectory.checkpoints.count
        let progress = ProgressLine(total: total)
        let written: Int?
        do {
            written = try await TableExport.write(run: runDirectory, to: output, alignment: align,
                                                  cache: cache.cache(forRun: run), projection: layout.method, stop: stop,
                                                  warn: { note("warning: \($0)") }, progress: { progress.update($0) })
        } catch {
            progress.end()
            fail("\(error)")
        }
        progress.end()
        guard let written else {
            note("interrupted: nothing written")
            throw ExitCode(130)
        }
        note("wrote \(written * runDirectory.sampleCount) rows (\(runDirectory.sampleCount) samples x \(written) checkpoints) to \(output); x and y: \(layout.method.description)")
    }
}
