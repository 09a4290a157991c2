import ArgumentParser
import Embedlapse
import Foundation

@main
struct EmbedlapseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embedlapse",
        abstract: "Time-lapse videos of a model's embedding space while it is fine-tuned.",
        discussion: """
            Each checkpoint's evaluation-set embeddings are projected to 2-D (PCA), rotated onto \
            the neighbouring frame (Procrustes), scored for outliers (k-nearest-neighbour distance, \
            as cleanlab's OutOfDistribution) and drawn with the loss curve and the most atypical samples.
            """,
        subcommands: [Demo.self, Render.self, Watch.self, Inspect.self])
}

/// Prints `embedlapse: message` on one line and exits non-zero.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("embedlapse: \(message)\n".utf8))
    exit(code)
}

func note(_ message: String) {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
}
