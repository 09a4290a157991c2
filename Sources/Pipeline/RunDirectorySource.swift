import AsyncAlgorithms
import LinearAlgebra
import Projection
import RunFormat

/// Reads a saved run's checkpoints in step order and emits them one at a time.
///
/// Sends through an `AsyncThrowingChannel`, which suspends until the pipeline takes each
/// event: only the checkpoint being read and the one being analysed are in memory. A large
/// checkpoint is read only once the one before it is done with, so there is one at a time.
public struct RunDirectorySource: CheckpointSource {
    public let run: RunDirectory
    /// Leave each checkpoint's embeddings in its file for the analyser, which reads them only if
    /// its analysis cache has no entry for the file.
    public let deferReading: Bool

    public init(run: RunDirectory, deferReading: Bool = false) {
        self.run = run
        self.deferReading = deferReading
    }

    /// From this size of embeddings file a second checkpoint in memory costs more than reading it
    /// ahead saves (reading is a few percent of analysing at any size).
    static let readAheadLimit = 64 << 20

    /// Emits every checkpoint unless `stop` is raised, then finishes the channel (or fails it).
    public func emit(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async {
        do {
            weak var previous: EventLifetime?
            for (index, checkpoint) in run.checkpoints.enumerated() {
                if !deferReading && checkpoint.embeddings.identity.size >= Self.readAheadLimit {
                    while previous != nil && !stop.isRaised && !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                }
                if stop.isRaised || Task.isCancelled { break }
                let lifetime = EventLifetime()
                previous = lifetime
                await channel.send(try CheckpointEvent(file: checkpoint, index: index, runLosses: run.losses,
                                                       deferReading: deferReading, lifetime: lifetime))
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
            throw PipelineError(last.embeddingsPath, error)
        }
    }
}
