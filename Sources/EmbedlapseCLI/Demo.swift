import ArgumentParser
import Pipeline
import Foundation
import RunFormat
import Training

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a network on Fashion-MNIST and film its embeddings as it learns (the built-in demo).",
        discussion: """
            Transfer learning in miniature: a small network (an MLP, 784-256-128) is pretrained on \
            five Fashion-MNIST classes, its head is replaced, and it is fine-tuned on all ten. Every \
            --checkpoint-every steps the 128-d embeddings of the test images are rendered while \
            training goes on; the video grows as it trains. Needs Debian's dataset-fashion-mnist.

            Examples:
              embedlapse demo -o demo.mp4
              embedlapse demo -o demo.mp4 -o demo.gif --freeze-backbone
              embedlapse demo -o demo.mp4 --save-run runs/demo     # and keep the run to re-render
              embedlapse demo --compare -o compare.mp4             # frozen backbone against full fine-tuning

            With --compare the network is fine-tuned twice from the same pretraining, data and seed, \
            once with the backbone frozen and once whole; both runs are then filmed side by side \
            (see embedlapse compare). --save-run DIR keeps them as DIR/frozen and DIR/full.
            """)

    @OptionGroup var film: FilmOptions

    @Option(help: "Also write the run directory (the layout `render` and `watch` read).")
    var saveRun: String?

    @Flag(help: "Keep the pretrained layers fixed; train a new dense layer (the embedding) and head.")
    var freezeBackbone = false

    @Flag(help: "Train twice, backbone frozen and whole, and film the two runs side by side.")
    var compare = false

    @Option(help: "Fine-tuning steps between checkpoints.")
    var checkpointEvery = 40

    @Option(help: "Fine-tuning steps (mini-batches of 128).")
    var steps = 1200

    @Option(help: "Pretraining steps on the first five classes.")
    var pretrainSteps = 600

    @Option(help: "Test images embedded at each checkpoint (the first N of the test set).")
    var evalSize = 10_000

    @Option(help: "Directory with the Fashion-MNIST IDX files.")
    var data = "/usr/share/datasets/fashion-mnist"

    func validate() throws {
        if compare {
            if freezeBackbone { throw ValidationError("--compare trains with the backbone frozen and whole: leave out --freeze-backbone") }
            if film.summaryFrame { throw ValidationError("--summary-frame maps one run's training dynamics: not with --compare") }
            guard film.writesAnything else { throw ValidationError("nothing to write: give -o compare.mp4, -o compare.gif, --frames-dir, --dump-data or --latest") }
        } else {
            try film.checkOneRun()
        }
        guard film.writesAnything || saveRun != nil else {
            throw ValidationError("nothing to write: give -o demo.mp4, -o demo.gif, --frames-dir, --dump-data, --latest or --save-run")
        }
        guard (1...100_000).contains(steps) else { throw ValidationError("--steps \(steps): must be from 1 to 100000") }
        guard (1...100_000).contains(pretrainSteps) else { throw ValidationError("--pretrain-steps \(pretrainSteps): must be from 1 to 100000") }
        guard (1...steps).contains(checkpointEvery) else { throw ValidationError("--checkpoint-every \(checkpointEvery): must be from 1 to --steps (\(steps))") }
        guard (3...10_000).contains(evalSize) else { throw ValidationError("--eval-size \(evalSize): must be from 3 to 10000") }
    }

    func run() async throws {
        if compare { return try await runComparison() }
        // The saved run is protected as any run is: no output may take a name it holds.
        if film.writesAnything { film.validateOutputs(film.renderOptions, readingRuns: saveRun.map { [$0] } ?? []) }
        if let saveRun {
            do { try TrainerSource.checkSaveFolder(saveRun) } catch { fail(error.description) }
        }
        let clock = ContinuousClock()
        let start = clock.now
        let datasets: (train: IDXDataset, test: IDXDataset)
        do { datasets = try TrainerSource.loadFashionMNIST(directory: data) } catch { fail("\(error)") }
        let source = TrainerSource(train: datasets.train, test: datasets.test, recipe: recipe(frozen: freezeBackbone),
                                   saveRun: saveRun)
        let rendering = film.writesAnything

        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let progress = ProgressLine(total: source.checkpointCount)
        var frames = 0
        do {
            if rendering {
                frames = try await RenderPipeline.train(source, options: film.renderOptions, stop: stop,
                                                        progress: { progress.update($0) }).frames
            } else {
                try await TrainerSource.drain(source, stop: stop)
            }
        } catch {
            progress.end()
            fail("\(error)")
        }
        progress.end()
        let elapsed = clock.now - start
        if let report = source.report.withLock({ $0 }) {
            note(String(format: "fine-tuned %d steps in %.1f s, test accuracy %.1f%%", steps, report.trainingSeconds, 100 * report.accuracy))
        }
        let written = [film.written, saveRun ?? ""].filter { !$0.isEmpty }.joined(separator: ", ")
        note(String(format: "%@wrote %@%@ in %.1f s", stop.isRaised ? "interrupted: " : "",
                    rendering ? "\(frames) frames to " : "", written,
                    Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
        if stop.isRaised { throw ExitCode(130) }
    }

    /// The training the flags describe, the backbone frozen or not.
    private func recipe(frozen: Bool) -> TransferRecipe {
        var recipe = TransferRecipe()
        recipe.freezeBackbone = frozen
        recipe.checkpointEvery = checkpointEvery
        recipe.fineTuneSteps = steps
        recipe.pretrainSteps = pretrainSteps
        recipe.evalSize = evalSize
        recipe.seed = film.layout.seed
        return recipe
    }

    /// `--compare`: the recipe trained frozen and whole (no film while training: each training has
    /// both cores), then the two runs filmed side by side.
    private func runComparison() async throws {
        film.validateOutputs(film.renderOptions, readingRuns: [])
        let folders: [String]
        var temporary: String?
        if let saveRun {
            folders = ["frozen", "full"].map { (saveRun as NSString).appendingPathComponent($0) }
            do {
                try TrainerSource.checkSaveFolder(saveRun)
                for folder in folders { try TrainerSource.checkSaveFolder(folder) }
            } catch { fail(error.description) }
        } else {
            let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("embedlapse-demo-\(getpid())")
            temporary = base
            folders = ["frozen", "full"].map { (base as NSString).appendingPathComponent($0) }
        }
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        let datasets: (train: IDXDataset, test: IDXDataset)
        do { datasets = try TrainerSource.loadFashionMNIST(directory: data) } catch { fail("\(error)") }

        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let clock = ContinuousClock()
        var runs: [RunDirectory] = []
        for (frozen, folder) in zip([true, false], folders) {
            let source = TrainerSource(train: datasets.train, test: datasets.test, recipe: recipe(frozen: frozen), saveRun: folder)
            let start = clock.now
            do { try await TrainerSource.drain(source, stop: stop) } catch { fail("\(error)") }
            if stop.isRaised {
                note("interrupted: nothing filmed")
                throw ExitCode(130)
            }
            let seconds = Double((clock.now - start).components.seconds) + Double((clock.now - start).components.attoseconds) / 1e18
            if let report = source.report.withLock({ $0 }) {
                note(String(format: "%@: fine-tuned %d steps in %.1f s (%.1f s with pretraining), test accuracy %.1f%%",
                            frozen ? "frozen backbone" : "full fine-tuning", steps, report.trainingSeconds, seconds, 100 * report.accuracy))
            }
            do { runs.append(try RunDirectory(path: folder)) } catch { fail(error.description) }
        }
        let progress = ProgressLine(total: Set(runs.flatMap { $0.checkpoints.map(\.step) }).count)
        let summary: RenderSummary
        do {
            summary = try await ComparePipeline.compare(runs, names: ["frozen backbone", "full fine-tuning"],
                                                        options: film.renderOptions, stop: stop,
                                                        progress: { progress.update($0) })
        } catch {
            progress.end()
            fail("\(error)")
        }
        progress.end()
        let written = [film.written, saveRun ?? ""].filter { !$0.isEmpty }.joined(separator: ", ")
        note("\(summary.interrupted ? "interrupted: " : "")wrote \(summary.frames) frames to \(written)")
        if summary.interrupted { throw ExitCode(130) }
    }
}
