import AsyncAlgorithms
import Foundation
import LinearAlgebra
import RunFormat
import Synchronization
import Training

/// Fashion-MNIST's class names, in label order.
public let fashionMNISTClassNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

/// The built-in training loop as a checkpoint source: pretrains, fine-tunes, and emits each
/// checkpoint while training goes on.
///
/// Between the trainer and the pipeline sits a buffer of `bufferCapacity` checkpoints: rendering
/// runs beside training, and the trainer waits only when that many checkpoints are queued, so
/// it is never slowed by a frame being drawn and never drops a checkpoint.
public final class TrainerSource: CheckpointSource {
    public let train: IDXDataset
    public let test: IDXDataset
    public let recipe: TransferRecipe
    /// Also write the run directory (the offline layout) here.
    public let saveRun: String?
    public let bufferCapacity: Int
    /// Seconds from the start of fine-tuning to its last checkpoint, and the final test accuracy.
    public let report = Mutex<(trainingSeconds: Double, accuracy: Double)?>(nil)

    public init(train: IDXDataset, test: IDXDataset, recipe: TransferRecipe, saveRun: String?, bufferCapacity: Int = 32) {
        self.train = train
        self.test = test
        self.recipe = recipe
        self.saveRun = saveRun
        self.bufferCapacity = bufferCapacity
    }

    /// Loads Fashion-MNIST from Debian's `dataset-fashion-mnist` location (or `directory`).
    public static func loadFashionMNIST(directory: String = "/usr/share/datasets/fashion-mnist") throws -> (train: IDXDataset, test: IDXDataset) {
        let train: IDXDataset, test: IDXDataset
        do {
            (train, test) = (try IDXDataset(directory: directory, prefix: "train"), try IDXDataset(directory: directory, prefix: "t10k"))
        } catch {
            throw PipelineError(error.description)
        }
        // The network's input and head are fixed by the training set: the test set must match it.
        let testPath = "\(directory)/t10k-images-idx3-ubyte.gz"
        guard test.height == train.height, test.width == train.width else {
            throw PipelineError("\(testPath): images of \(test.width)x\(test.height) but the training images are \(train.width)x\(train.height)")
        }
        guard test.count >= 3 else { throw PipelineError("\(testPath): \(test.count) images: need at least 3 to film") }
        for (prefix, set) in [("train", train), ("t10k", test)] where !set.labels.allSatisfy({ (0..<10).contains($0) }) {
            throw PipelineError("\(directory)/\(prefix)-labels-idx1-ubyte.gz: labels must be the ten Fashion-MNIST classes, 0 to 9")
        }
        guard train.labels.contains(where: { $0 < TransferRecipe().pretrainClasses }) else {
            throw PipelineError("\(directory)/train-labels-idx1-ubyte.gz: no image of the first five classes to pretrain on")
        }
        return (train, test)
    }

    /// Checks a `saveRun` folder before any work: new or empty.
    public static func checkSaveFolder(_ path: String) throws(PipelineError) {
        do { try RunWriter.checkFolder(path) } catch { throw PipelineError(error) }
    }

    public var evalCount: Int { min(recipe.evalSize, test.count) }

    /// Checkpoints the fine-tuning will emit: step 0, every `checkpointEvery` steps, and the last step.
    public var checkpointCount: Int {
        1 + recipe.fineTuneSteps / recipe.checkpointEvery + (recipe.fineTuneSteps % recipe.checkpointEvery == 0 ? 0 : 1)
    }

    public var annotations: SampleAnnotations {
        let n = evalCount, size = test.height * test.width
        return SampleAnnotations(labels: Array(test.labels[0..<n]), classNames: fashionMNISTClassNames,
                                 thumbnails: Thumbnails(count: n, height: test.height, width: test.width, channels: 1,
                                                        pixels: Array(test.pixels[0 ..< n * size])))
    }

    public func emit(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async {
        let produced = AsyncThrowingChannel<CheckpointEvent, any Error>()
        let trainer = Task { await produce(into: produced, stop: stop) }
        // If the pipeline gives up (an output failed), stop the trainer too: otherwise it would
        // wait for ever on a full buffer that nobody reads.
        await withTaskCancellationHandler {
            do {
                for try await event in produced.buffer(policy: .bounded(bufferCapacity)) {
                    await channel.send(event)
                }
                channel.finish()
            } catch {
                channel.fail(error)
            }
        } onCancel: {
            trainer.cancel()
        }
        await trainer.value
    }

    private func produce(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async {
        do {
            let writer = try saveRun.map { try RunWriter(path: $0, annotations: annotations) }
            let trainer = TransferLearningTrainer(train: train, test: test, recipe: recipe)
            trainer.pretrain()
            let clock = ContinuousClock()
            let start = clock.now
            var index = 0
            var lastAccuracy = 0.0
            var evaluation: [LossHistory.Point] = []
            do {
                try await trainer.fineTune { checkpoint in
                    if stop.isRaised || Task.isCancelled { throw StopTraining() }
                    let losses = LossHistory(training: checkpoint.lossLog.map { .init(step: $0.step, loss: $0.loss) },
                                             epochs: Dictionary(checkpoint.lossLog.map { ($0.step, Double($0.step) / trainer.stepsPerEpoch) },
                                                                uniquingKeysWith: { a, _ in a }),
                                             source: "built-in trainer")
                    evaluation.append(.init(step: checkpoint.step, loss: checkpoint.testLoss))
                    var history = losses
                    history.evaluation = evaluation
                    try writer?.record(step: checkpoint.step, epoch: checkpoint.epoch, embeddings: checkpoint.embeddings,
                                       testLoss: checkpoint.testLoss, testAccuracy: checkpoint.testAccuracy, losses: losses)
                    lastAccuracy = checkpoint.testAccuracy
                    await channel.send(CheckpointEvent(index: index, step: checkpoint.step, epoch: checkpoint.epoch,
                                                       embeddings: checkpoint.embeddings, losses: history,
                                                       origin: "built-in trainer, step \(checkpoint.step)",
                                                       testAccuracy: checkpoint.testAccuracy))
                    index += 1
                }
            } catch is StopTraining {}
            let elapsed = (clock.now - start).components
            report.withLock { $0 = (Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18, lastAccuracy) }
            try writer?.finish()
            channel.finish()
        } catch {
            channel.fail(error)
        }
    }

    private struct StopTraining: Error {}

    /// Runs the training with no rendering (`demo --save-run` alone): events are taken and dropped.
    public static func drain(_ source: TrainerSource, stop: StopFlag) async throws {
        let channel = AsyncThrowingChannel<CheckpointEvent, any Error>()
        async let producing: Void = source.emit(into: channel, stop: stop)
        for try await _ in channel {}
        await producing
    }
}
