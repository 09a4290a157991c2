import Foundation
import Testing
@testable import Training

/// Debian's dataset-fashion-mnist, which `make test` installs.
let fashionMNIST = "/usr/share/datasets/fashion-mnist"

@Suite(.serialized) struct TrainerTests {
    static let data: (train: IDXDataset, test: IDXDataset) = {
        (try! IDXDataset(directory: fashionMNIST, prefix: "train"), try! IDXDataset(directory: fashionMNIST, prefix: "t10k"))
    }()

    @Test func readsFashionMNIST() {
        let (train, test) = Self.data
        #expect(train.count == 60_000 && test.count == 10_000 && train.height == 28 && train.width == 28)
        #expect(train.pixels.count == 60_000 * 784)
        for label in 0..<10 { #expect(test.labels.filter { $0 == label }.count == 1_000) }
    }

    @Test func aMissingDatasetNamesTheFileAndThePackage() {
        #expect {
            try IDXDataset(directory: "/nonexistent", prefix: "train")
        } throws: { error in
            let text = (error as? IDXDataset.LoadError)?.description ?? ""
            return text.contains("/nonexistent/train-images-idx3-ubyte.gz") && text.contains("dataset-fashion-mnist")
        }
    }

    func recipe(frozen: Bool = false) -> TransferRecipe {
        var recipe = TransferRecipe()
        recipe.pretrainSteps = 60
        recipe.fineTuneSteps = 90
        recipe.checkpointEvery = 30
        recipe.evalSize = 1_000
        recipe.freezeBackbone = frozen
        recipe.seed = 7
        return recipe
    }

    func fineTune(_ recipe: TransferRecipe) async throws -> [TrainingCheckpoint] {
        let trainer = TransferLearningTrainer(train: Self.data.train, test: Self.data.test, recipe: recipe)
        trainer.pretrain()
        var checkpoints: [TrainingCheckpoint] = []
        try await trainer.fineTune { checkpoints.append($0) }
        return checkpoints
    }

    @Test func fineTuningLowersTheLossAndBeatsChance() async throws {
        let checkpoints = try await fineTune(recipe())
        #expect(checkpoints.map(\.step) == [0, 30, 60, 90])
        let log = checkpoints.last!.lossLog
        #expect(log.count == 9 && log.last!.loss < log.first!.loss * 0.8, "loss \(log.first!.loss) -> \(log.last!.loss)")
        #expect(checkpoints.first!.testAccuracy < 0.5, "a fresh ten-class head starts near chance")
        #expect(checkpoints.last!.testAccuracy > 0.6, "accuracy \(checkpoints.last!.testAccuracy)")
        #expect(checkpoints.last!.testLoss < checkpoints.first!.testLoss)
        let e = checkpoints.last!.embeddings
        #expect(e.rows == 1_000 && e.columns == 128 && e.storage.allSatisfy(\.isFinite))
    }

    @Test func aFrozenBackboneStillLearnsThroughItsNewLayer() async throws {
        let checkpoints = try await fineTune(recipe(frozen: true))
        #expect(checkpoints.last!.testAccuracy > 0.5)
        #expect(checkpoints.last!.embeddings.columns == 128)
    }

    @Test func theSameSeedGivesTheSameTraining() async throws {
        let a = try await fineTune(recipe()), b = try await fineTune(recipe())
        #expect(a.last!.embeddings == b.last!.embeddings)
        #expect(a.last!.lossLog.map(\.loss) == b.last!.lossLog.map(\.loss))
    }
}
