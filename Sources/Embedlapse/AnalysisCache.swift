#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinearAlgebra
import Projection
import RunFormat

/// The expensive, per-checkpoint part of the analysis kept on disk, so that a run is analysed once
/// (`embedlapse analyse`, in shards across processes or machines if need be) and filmed many times.
///
/// One folder per checkpoint, `checkpoint-<step>/`, documented in docs/cache.md:
/// - `pca.npy`: float32 `(N, 2)`, the first two principal-component scores, before any alignment;
/// - `outlier_scores.npy`, `average_distances.npy`: float32 `(N,)`, the kNN outlier scores (as
///   cleanlab's `OutOfDistribution`) and each sample's mean distance to its k nearest neighbours;
/// - `neighbours.npy`: int32 `(N, k)`, each sample's k nearest samples, nearest first;
/// - `meta.json`: the format version, the step, the embeddings file it was computed from (size,
///   modification time, shape, dtype) and the search's parameters. Written last.
///
/// An entry counts only for the very file it was computed from and for this format version;
/// otherwise it is recomputed and replaced, never used. Each entry is written into a hidden folder
/// and renamed into place, so a reader sees a whole entry or none. Every value depends on its
/// checkpoint alone (the exact PCA route, the exact neighbour search), so shards analysed apart
/// agree bit for bit with one process on the same kind of machine with as many threads (OpenBLAS
/// sums in another order on another number of threads). The sequential part (alignment
/// over time, movers, label dynamics) is left to the film: it is cheap.
public struct AnalysisCache: Sendable {
    /// Bumped whenever the files or their meaning change: older entries are then recomputed.
    public static let version = 1
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// `RUN/.embedlapse/analysis`: inside the run, so that it travels with it.
    public static func defaultDirectory(forRun run: String) -> String {
        URL(fileURLWithPath: run).appendingPathComponent(".embedlapse/analysis").path
    }

    /// The run's own cache if `analyse` (or a film told `--cache` so) has made it; films read and
    /// fill it then, and never create it unasked.
    public static func existing(forRun run: String) -> AnalysisCache? {
        let own = defaultDirectory(forRun: run)
        return FileManager.default.fileExists(atPath: own) ? AnalysisCache(directory: own) : nil
    }

    /// One checkpoint's cached analysis.
    public struct Entry: Sendable {
        public let step: Int
        /// Principal-component scores before alignment.
        public let pca: PlanarPoints
        public let outliers: OutlierScores
    }

    public enum Lookup: Sendable {
        case hit(Entry)
        case missing
        /// There is an entry, but it cannot be used: why, in a few words.
        case unusable(String)
    }

    /// The cached analysis of `file`, if there is a whole, current one.
    /// An entry of another search (exact against approximate), or one certified for a shorter
    /// leaderboard than `certify`, does not count.
    public func lookup(_ file: CheckpointFile, search: OutlierScores.Search, certify: Int) -> Lookup {
        let folder = entryPath(step: file.step)
        guard FileManager.default.fileExists(atPath: folder) else { return .missing }
        guard let data = FileManager.default.contents(atPath: folder + "/meta.json"),
              let meta = try? JSONDecoder().decode(Meta.self, from: data) else { return .unusable("no readable meta.json") }
        guard meta.version == Self.version else { return .unusable("format version \(meta.version), this is \(Self.version)") }
        guard meta.step == file.step, meta.source == Meta.Source(file) else {
            return .unusable("computed from another version of \(file.embeddingsPath)")
        }
        let approximate = OutlierScores.isApproximate(search, samples: file.sampleCount, dimension: file.dimension)
        guard (meta.certificate != nil) == approximate else {
            return .unusable("computed with the \(approximate ? "exact" : "approximate") search")
        }
        if let certificate = meta.certificate, certificate.certifiedTop < min(certify, file.sampleCount) {
            return .unusable("certified for the top \(certificate.certifiedTop) only")
        }
        do {
            let n = file.sampleCount, k = meta.neighbours
            let pca = try Self.values(folder, "pca.npy", shape: [n, 2]) { try $0.float32Values() }
            let scores = try Self.values(folder, "outlier_scores.npy", shape: [n]) { try $0.float32Values() }
            let distances = try Self.values(folder, "average_distances.npy", shape: [n]) { try $0.float32Values() }
            let neighbours = try Self.values(folder, "neighbours.npy", shape: [n, k]) { try $0.int32Values() }
            guard neighbours.allSatisfy({ $0 >= 0 && Int($0) < n }), let metric = OutlierScores.Metric(rawValue: meta.metric) else {
                return .unusable("neighbours.npy or meta.json holds values out of range")
            }
            let outliers = OutlierScores(scores: scores, averageDistances: distances, scalingFactor: meta.scalingFactor,
                                         neighbours: k, metric: metric, neighbourIndices: neighbours, exactPairs: meta.exactPairs,
                                         certificate: meta.certificate)
            let planar = PlanarPoints(x: stride(from: 0, to: 2 * n, by: 2).map { pca[$0] }, y: stride(from: 1, to: 2 * n, by: 2).map { pca[$0] })
            return .hit(Entry(step: file.step, pca: planar, outliers: outliers))
        } catch {
            return .unusable("\(error)")
        }
    }

    /// Analyses one checkpoint file on its own.
    public static func analyse(_ file: CheckpointFile, threads: Int, search: OutlierScores.Search,
                               certify: Int) throws(PipelineError) -> Entry {
        let embeddings: Matrix
        do { embeddings = try file.loadEmbeddings() } catch { throw PipelineError(error.description) }
        do {
            return try analyse(embeddings, step: file.step, threads: threads, search: search, certify: certify)
        } catch {
            throw PipelineError("\(file.embeddingsPath): \(error)")
        }
    }

    /// Analyses one checkpoint on its own: the exact PCA route and an unseeded exact neighbour
    /// search (seeds could order equally distant neighbours otherwise).
    static func analyse(_ embeddings: Matrix, step: Int, threads most: Int, search: OutlierScores.Search,
                        certify: Int) throws -> Entry {
        // As a film would: then a film that fills the cache writes what `analyse` writes.
        let threads = CheckpointAnalyser.threads(for: embeddings, upTo: most)
        BLAS.setThreadCount(threads)
        // A fresh IncrementalPCA takes the exact route: the result owes nothing to other checkpoints.
        var pca = IncrementalPCA()
        pca.threads = threads
        let projection = try pca.fit(embeddings)
        let outliers = try OutlierScores(embeddings: embeddings, search: search, threads: threads, certify: certify)
        return Entry(step: step, pca: projection.scores, outliers: outliers)
    }

    /// Writes `entry`, the analysis of `file`, in place of any entry of its step.
    public func store(_ entry: Entry, for file: CheckpointFile) throws(PipelineError) {
        let n = file.sampleCount, k = entry.outliers.neighbours
        let final = entryPath(step: entry.step)
        let partial = "\(directory)/.checkpoint-\(entry.step).\(getpid()).partial"
        do {
            try Self.makeDirectories(directory)
            try? FileManager.default.removeItem(atPath: partial)
            try Self.makeDirectories(partial)
            let meta = Meta(version: Self.version, step: entry.step, source: Meta.Source(file), samples: n,
                            dimension: file.dimension, neighbours: k, metric: entry.outliers.metric.rawValue,
                            scalingFactor: entry.outliers.scalingFactor, exactPairs: entry.outliers.exactPairs,
                            certificate: entry.outliers.certificate)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try AtomicFile.write(NPYWriter.encode(float32: entry.pca.interleaved, shape: [n, 2]), to: partial + "/pca.npy")
            try AtomicFile.write(NPYWriter.encode(float32: entry.outliers.scores, shape: [n]), to: partial + "/outlier_scores.npy")
            try AtomicFile.write(NPYWriter.encode(float32: entry.outliers.averageDistances, shape: [n]),
                                 to: partial + "/average_distances.npy")
            try AtomicFile.write(NPYWriter.encode(int32: entry.outliers.neighbourIndices, shape: [n, k]), to: partial + "/neighbours.npy")
            try AtomicFile.write(Array(try encoder.encode(meta)) + [0x0A], to: partial + "/meta.json")
            try Self.moveIntoPlace(partial, final)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw PipelineError("cannot write the analysis cache \(directory): \(Self.plain(error))")
        }
    }

    func entryPath(step: Int) -> String { "\(directory)/checkpoint-\(step)" }

    /// Renames `partial` to `final`; an entry already there (stale, or just written by another
    /// shard) is set aside first and then removed.
    private static func moveIntoPlace(_ partial: String, _ final: String) throws {
        if rename(partial, final) == 0 { return }
        guard errno == ENOTEMPTY || errno == EEXIST else { throw PipelineError(String(cString: strerror(errno))) }
        let aside = partial + ".replaced"
        guard rename(final, aside) == 0, rename(partial, final) == 0 else { throw PipelineError(String(cString: strerror(errno))) }
        try? FileManager.default.removeItem(atPath: aside)
    }

    /// `mkdir -p`, failing in plain words (`strerror`, where Foundation would say "error 512").
    private static func makeDirectories(_ path: String) throws(PipelineError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            var status = stat()
            if stat(prefix, &status) == 0 {
                guard status.st_mode & S_IFMT == S_IFDIR else { throw PipelineError("\(prefix) is not a folder") }
                continue
            }
            guard mkdir(prefix, 0o755) == 0 || errno == EEXIST else {
                throw PipelineError("\(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func values<T>(_ folder: String, _ name: String, shape: [Int],
                                  _ read: (NPYArray) throws -> [T]) throws -> [T] {
        let array = try NPYArray(path: folder + "/" + name)
        guard array.shape == shape else {
            throw RunFormatError(array.path, "shape \(array.shapeText), expected \(shape)")
        }
        return try read(array)
    }

    private static func plain(_ error: any Error) -> String {
        if let error = error as? RunFormatError { return error.description }
        if let error = error as? PipelineError { return error.description }
        return (error as NSError).localizedDescription
    }

    /// `meta.json`.
    struct Meta: Codable, Equatable {
        var format = "embedlapse analysis cache"
        var version: Int
        var step: Int
        var source: Source
        var samples: Int
        var dimension: Int
        var neighbours: Int
        var metric: String
        var scalingFactor: Double
        var exactPairs: Int
        /// Only for an approximate search: what it proved and its measured error.
        var certificate: OutlierScores.Certificate?

        /// The embeddings file as it was analysed.
        struct Source: Codable, Equatable {
            var size: Int
            var modifiedNanoseconds: Int64
            var shape: [Int]
            var dtype: String

            init(_ file: CheckpointFile) {
                size = file.embeddings.identity.size
                modifiedNanoseconds = file.embeddings.identity.modified
                shape = file.shape
                dtype = file.element.description
            }

            enum CodingKeys: String, CodingKey {
                case size, shape, dtype
                case modifiedNanoseconds = "modified_ns"
            }
        }

        enum CodingKeys: String, CodingKey {
            case format, version, step, source, samples, dimension, neighbours, metric
            case scalingFactor = "scaling_factor", exactPairs = "exact_pairs", certificate
        }
    }
}
