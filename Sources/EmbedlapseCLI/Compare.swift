import ArgumentParser
import Pipeline
import Foundation
import RunFormat

struct Compare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Film two saved runs on one evaluation set side by side: frozen backbone against full fine-tuning, or any two.",
        discussion: """
            Each run is analysed as its own film would be; the right run's points are then rotated \
            onto the left run's (Procrustes on the same samples), so both panels share one fixed \
            view. The film's steps are the union of both runs' steps: a panel shows its run's latest \
            checkpoint at or before each, marked when it is an older one or the run has finished. \
            The loss chart shows both runs on one axis. --leaderboard ranks each run's own samples, \
            or with disagreement the samples whose outlier rank and label agreement differ most \
            between the runs. Both runs must hold the same evaluation set: as many samples, and the \
            same labels where both have labels.

            Examples:
              embedlapse compare runs/frozen runs/full -o cmp.mp4 --names frozen,full
              embedlapse compare runs/lr-4 runs/lr-3 -o cmp.mp4 --leaderboard disagreement
              embedlapse compare runs/a runs/b --frames-dir frames/ --dump-data numbers/
            """)

    @Argument(help: "The run on the left.")
    var runA: String

    @Argument(help: "The run on the right.")
    var runB: String

    @Option(help: ArgumentHelp("The runs' names in the film, comma-separated (default: their folders' names).", valueName: "A,B"))
    var names: String?

    @OptionGroup var film: FilmOptions

    func validate() throws {
        guard film.writesAnything else {
            throw ValidationError("nothing to write: give -o OUT.mp4, -o OUT.gif, --frames-dir DIR, --dump-data DIR or --latest PNG")
        }
        if film.summaryFrame { throw ValidationError("--summary-frame maps one run's training dynamics: render each run for it") }
        if let names { _ = try Self.names(names) }
    }

    /// Two non-empty names from `A,B`.
    static func names(_ text: String) throws -> [String] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 40 }) else {
            throw ValidationError("--names takes two names of 1 to 40 characters, comma-separated, as frozen,full; got \(text)")
        }
        return parts
    }

    /// Each run's folder name; the whole paths when the folders share a name.
    static func defaultNames(_ paths: [String]) -> [String] {
        let folders = paths.map { URL(fileURLWithPath: $0).standardizedFileURL.lastPathComponent }
        return folders[0] == folders[1] ? paths : folders
    }

    func run() async throws {
        film.validateOutputs(film.renderOptions, readingRuns: [runA, runB])
        var runs: [RunDirectory] = []
        for path in [runA, runB] {
            do { runs.append(try RunDirectory(path: path)) } catch { fail(error.description) }
        }
        for warning in runs.flatMap(\.warnings) { note("warning: \(warning)") }
        if film.leaderboard == .labelIssues && runs.allSatisfy({ $0.labels == nil }) {
            fail("\(runA), \(runB): --leaderboard label-issues needs labels (labels.npy), and neither run has them")
        }
        let names = try self.names.map(Self.names) ?? Self.defaultNames([runA, runB])

        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let total = Set(runs.flatMap { $0.checkpoints.map(\.step) }).count
        let progress = ProgressLine(total: total)
        let summary: RenderSummary
        do {
            var options = film.renderOptions
            options.warn = { note("warning: \($0)") }
            summary = try await ComparePipeline.compare(runs, names: names, options: options, stop: stop,
                                                        progress: { progress.update($0) })
        } catch {
            progress.end()
            fail("\(error)")
        }
        progress.end()
        note("\(summary.interrupted ? "interrupted: " : "")wrote \(summary.frames) frames to \(film.written)")
        if summary.interrupted { throw ExitCode(130) }
    }
}
