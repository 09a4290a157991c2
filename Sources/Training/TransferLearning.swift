import LinearAlgebra

/// The built-in demo's recipe: pretrain a small network on some classes, replace its head,
/// fine-tune on all of them. The embedding is the layer before the head.
public struct TransferRecipe: Sendable {
    /// Widths of the backbone's hidden layers; the last one is the embedding when not frozen.
    public var hiddenLayers = [256, 128]
    /// Pretraining sees only the first `pretrainClasses` classes.
    public var pretrainClasses = 5
    public var pretrainSteps = 600
    public var fineTuneSteps = 1200
    public var batchSize = 128
    public var pretrainLearningRate: Float = 1e-3
    public var fineTuneLearningRate: Float = 5e-4
    /// Keep the pretrained layers fixed and train a new dense layer (the embedding) and head.
    public var freezeBackbone = false
    public var checkpointEvery = 40
    /// How many test images (from the start of the test set) are embedded at each checkpoint.
    public var evalSize = 10_000
    /// Training-loss points are the mean over this many steps.
    public var loggingSteps = 10
    public var seed: UInt64 = 0

    public init() {}
}

/// What the trainer reports at each checkpoint.
public struct TrainingCheckpoint: Sendable {
    public let step: Int
    public let epoch: Double
    /// `evalSize x embeddingWidth` embeddings of the evaluation images.
    public let embeddings: Matrix
    /// Mean training loss per `loggingSteps` steps, up to this step.
    public let lossLog: [(step: Int, loss: Double)]
    public let testLoss: Double
    public let testAccuracy: Double
}

/// A multilayer perceptron trained with mini-batch Adam through OpenBLAS GEMMs.
///
/// An MLP rather than a convolutional net: on two cores it reaches over 85% on Fashion-MNIST in
/// seconds, which leaves the cores to rendering and keeps the demo under two minutes; and its
/// pre-head features, pretrained on five classes, visibly reorganise when five new ones arrive.
public final class TransferLearningTrainer {
    public let recipe: TransferRecipe
    public let evalLabels: [Int]
    public let evalImages: [UInt8]
    public let imageHeight: Int
    public let imageWidth: Int
    public let classCount: Int
    private let trainInputs: [Float]
    private let trainLabels: [Int]
    private let evalInputs: [Float]
    private let pixelsPerImage: Int
    private var generator: SplitMix
    private var backbone: [DenseLayer]
    private var adapter: DenseLayer?
    private var head: DenseLayer

    public var embeddingWidth: Int { adapter?.outputs ?? backbone.last!.outputs }
    public var stepsPerEpoch: Double { Double(trainLabels.count) / Double(recipe.batchSize) }

    public init(train: IDXDataset, test: IDXDataset, recipe: TransferRecipe) {
        self.recipe = recipe
        pixelsPerImage = train.height * train.width
        imageHeight = test.height
        imageWidth = test.width
        classCount = (train.labels.max() ?? 0) + 1
        // The usual Fashion-MNIST normalisation: mean 0.286, standard deviation 0.353 of [0, 1] pixels.
        func normalise(_ pixels: ArraySlice<UInt8>) -> [Float] { pixels.map { (Float($0) / 255 - 0.286) / 0.353 } }
        trainInputs = normalise(train.pixels[...])
        trainLabels = train.labels
        let evalCount = min(recipe.evalSize, test.count)
        evalInputs = normalise(test.pixels[0 ..< evalCount * pixelsPerImage])
        evalImages = Array(test.pixels[0 ..< evalCount * pixelsPerImage])
        evalLabels = Array(test.labels[0..<evalCount])
        generator = SplitMix(seed: recipe.seed)
        let widths = [pixelsPerImage] + recipe.hiddenLayers
        backbone = []
        for i in 0..<recipe.hiddenLayers.count {
            backbone.append(DenseLayer(inputs: widths[i], outputs: widths[i + 1], relu: true, generator: &generator))
        }
        head = DenseLayer(inputs: widths.last!, outputs: recipe.pretrainClasses, relu: false, generator: &generator)
    }

    private var layers: [DenseLayer] { backbone + (adapter.map { [$0] } ?? []) + [head] }

    /// Trains the backbone and a small head on the first `pretrainClasses` classes.
    public func pretrain() {
        let subset = trainLabels.indices.filter { trainLabels[$0] < recipe.pretrainClasses }
        var batches = BatchSampler(indices: subset, batchSize: recipe.batchSize)
        for step in 1...max(recipe.pretrainSteps, 1) {
            _ = trainStep(batches.next(using: &generator), classes: recipe.pretrainClasses, step: step,
                          learningRate: recipe.pretrainLearningRate)
        }
    }

    /// Replaces the head (and, frozen, adds a new dense layer) and fine-tunes on every class,
    /// calling `checkpoint` at step 0 and every `checkpointEvery` steps.
    public func fineTune(checkpoint: (TrainingCheckpoint) async throws -> Void) async throws {
        let width = backbone.last!.outputs
        if recipe.freezeBackbone {
            for layer in backbone { layer.frozen = true }
            adapter = DenseLayer(inputs: width, outputs: width, relu: true, generator: &generator)
        }
        head = DenseLayer(inputs: embeddingWidth, outputs: classCount, relu: false, generator: &generator)
        var batches = BatchSampler(indices: Array(trainLabels.indices), batchSize: recipe.batchSize)
        var log: [(step: Int, loss: Double)] = []
        var running: [Double] = []
        try await checkpoint(evaluate(step: 0, log: log))
        for step in 1...max(recipe.fineTuneSteps, 1) {
            running.append(Double(trainStep(batches.next(using: &generator), classes: classCount, step: step,
                                            learningRate: recipe.fineTuneLearningRate)))
            if step % recipe.loggingSteps == 0 {
                log.append((step, running.reduce(0, +) / Double(running.count)))
                running.removeAll()
            }
            if step % recipe.checkpointEvery == 0 || step == recipe.fineTuneSteps {
                try await checkpoint(evaluate(step: step, log: log))
            }
        }
    }

    private func batch(_ indices: [Int]) -> [Float] {
        var x = [Float](repeating: 0, count: indices.count * pixelsPerImage)
        for (row, index) in indices.enumerated() {
            let source = index * pixelsPerImage
            for p in 0..<pixelsPerImage { x[row * pixelsPerImage + p] = trainInputs[source + p] }
        }
        return x
    }

    private func trainStep(_ indices: [Int], classes: Int, step: Int, learningRate: Float) -> Float {
        var activations = batch(indices)
        for layer in layers { activations = layer.forward(activations, rows: indices.count) }
        let (loss, gradient) = softmaxCrossEntropy(activations, labels: indices.map { trainLabels[$0] }, classes: classes)
        var g = gradient
        let stack = layers
        for (position, layer) in stack.enumerated().reversed() {
            // Gradients below the lowest trainable layer are never used.
            let needed = stack[..<position].contains { !$0.frozen }
            g = layer.backward(g, step: step, learningRate: learningRate, needsInputGradient: needed)
            if !needed { break }
        }
        return loss
    }

    /// Embeds the evaluation images and measures test loss and accuracy.
    private func evaluate(step: Int, log: [(step: Int, loss: Double)]) -> TrainingCheckpoint {
        let rows = evalLabels.count
        var embedding = [Float]()
        var logitsAll = [Float]()
        let chunk = 2_000
        var start = 0
        while start < rows {
            let count = min(chunk, rows - start)
            var a = Array(evalInputs[start * pixelsPerImage ..< (start + count) * pixelsPerImage])
            for layer in backbone + (adapter.map { [$0] } ?? []) { a = layer.forward(a, rows: count, keep: false) }
            embedding += a
            logitsAll += head.forward(a, rows: count, keep: false)
            start += count
        }
        let (loss, _) = softmaxCrossEntropy(logitsAll, labels: evalLabels, classes: classCount)
        var correct = 0
        for r in 0..<rows {
            let row = logitsAll[r * classCount ..< (r + 1) * classCount]
            if row.indices.max(by: { row[$0] < row[$1] })! - r * classCount == evalLabels[r] { correct += 1 }
        }
        return TrainingCheckpoint(step: step, epoch: Double(step) / stepsPerEpoch,
                                  embeddings: Matrix(rows: rows, columns: embeddingWidth, storage: embedding),
                                  lossLog: log, testLoss: Double(loss), testAccuracy: Double(correct) / Double(rows))
    }
}

/// Shuffled mini-batches: each epoch visits every index once, in a new random order.
struct BatchSampler {
    let indices: [Int]
    let batchSize: Int
    private var order: [Int] = []
    private var position = 0

    init(indices: [Int], batchSize: Int) {
        self.indices = indices
        self.batchSize = batchSize
    }

    mutating func next(using generator: inout SplitMix) -> [Int] {
        if position + batchSize > order.count {
            order = indices.shuffled(using: &generator)
            position = 0
        }
        defer { position += batchSize }
        return Array(order[position ..< min(position + batchSize, order.count)])
    }
}
