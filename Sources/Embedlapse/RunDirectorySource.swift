import AsyncAlgorithms
import LinearAlgebra
import Projection
import RunFormat

/// Reads a saved run's checkpoints in step order and emits them one at a time.
///
/// Sends through an `AsyncThrowingChannel`, which suspends until the pipeline takes each
/// event: only the checkpoint being read and the one being analysed are in memory.
public struct RunDirectorySource: CheckpointSource {
    public let run: RunDirectory

    public init(run: RunDirectory) { self.run = run }

    /// Emits every checkpoint unless `stop` is raised, then finishes the channel (or fails it).
    public func emit(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async {
        do {
            for (index, checkpoint) in run.checkpoints.enumerated() {
                if stop.isRaised || Task.isCancelled { break }
                let embeddings = try checkpoint.loadEmbeddings()
                let losses = run.losses.upTo(step: checkpoint.step)
                let epoch = checkpoint.epoch ?? run.losses.epoch(atStep: checkpoint.step)
                await channel.send(CheckpointEvent(index: index, step: checkpoint.step, epoch: epoch,
                                                   embeddings: embeddings, losses: losses, origin: checkpoint.embeddingsPath,
                                                   file: checkpoint))
            }
            channel.finish()
        } catch {
            channel.fail(error)
        }
    }

    /// The final checkpoint's PCA scores: the target of `--align last`.
    public func finalProjection() throws -> PlanarPoints {
        let last = run.checkpoints[run.checkpoints.count - 1]
        let embeddings = try last.loadEmbeddings()
        do {
            return try PrincipalComponents(fitting: embeddings).scores
        } catch {
            throw PipelineError("\(last.embeddingsPath): \(error)")
        }
    }
}
