import ArgumentParser
import Embedlapse
import Foundation
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
            """)

    @OptionGroup var film: FilmOptions

    @Option(help: "Also write the run directory (the layout `render` and `watch` read).")
    var saveRun: String?

    @Flag(help: "Keep the pretrained layers fixed; train a new dense layer (the embedding) and head.")
    var freezeBackbone = false

    @Option(help: "Fine-tuning steps between checkpoints.")
    var checkpointEvery = 40

    @Option(help: "Fine-tuning steps (mini-batches of 128).")
    var steps = 1200

    @Option(help: "Pretraining steps on the first five classes.")
    var pretrainSteps = 600

    @Option(help: "Test images embedded at each checkpoint (the first N of the test set).")
    var evalSize = 10_000

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "Directory with the Fashion-MNIST IDX files.")
    var data = "/usr/share/datasets/fashion-mnist"

    func validate() throws {
        guard film.writesAnything || saveRun != nil else {
            throw ValidationError("nothing to write: give -o demo.mp4, -o demo.gif, --frames-dir, --dump-data, --latest or --save-run")
        }
        guard (1...100_000).contains(steps) else { throw ValidationError("--steps \(steps): must be from 1 to 100000") }
        guard (1...100_000).contains(pretrainSteps) else { throw ValidationError("--pretrain-steps \(pretrainSteps): must be from 1 to 100000") }
        guard (1...steps).contains(checkpointEvery) else { throw ValidationError("--checkpoint-every \(checkpointEvery): must be from 1 to --steps (\(steps))") }
        guard (3...10_000).contains(evalSize) else { throw ValidationError("--eval-size \(evalSize): must be from 3 to 10000") }
    }

    func run() async throws {
        if film.writesAnything { film.validateOutputs(film.renderOptions) }
        if let saveRun {
            do { try TrainerSource.checkSaveFolder(saveRun) } catch { fail(error.description) }
        }
        let clock = ContinuousClock()
        let start = clock.now
        let datasets: (train: IDXDataset, test: IDXDataset)
        do { datasets = try TrainerSource.loadFashionMNIST(directory: data) } catch { fail("\(error)") }
        var recipe = TransferRecipe()
        recipe.freezeBackbone = freezeBackbone
        recipe.checkpointEvery = checkpointEvery
        recipe.fineTuneSteps = steps
        recipe.pretrainSteps = pretrainSteps
        recipe.evalSize = evalSize
        recipe.seed = seed
        let source = TrainerSource(train: datasets.train, test: datasets.test, recipe: recipe, saveRun: saveRun)
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
}
