#if canImport(Glibc)
import Glibc
#endif
import FileOutput
import Foundation
import LinearAlgebra
import Projection
import RunFormat

/// The expensive, per-checkpoint part of the analysis kept on disk, so that a run is analysed once
/// (`embedlapse analyse`, in shards across processes or machines if need be) and filmed many times.
///
/// A folder of its own, documented in docs/cache.md: a marker, `embedlapse-cache.json`, and one
/// folder per checkpoint, `analysis-<step>/` (a name no run uses):
/// - `pca.npy`: float32 `(N, 2)`, the first two principal-component scores, before any alignment;
/// - `outlier_scores.npy`, `average_distances.npy`: float32 `(N,)`, the kNN outlier scores (as
///   cleanlab's `OutOfDistribution`) and each sample's mean distance to its k nearest neighbours;
/// - `neighbours.npy`, `neighbour_distances.npy`: int32 and float32 `(N, k')`, each sample's k'
///   nearest samples and their distances, nearest first: k' is 10 (the scores' k), or the longer
///   lists a UMAP or t-SNE layout needs (`analyse --projection`);
/// - `meta.json`: the format version, the step, the embeddings file it was computed from (size,
///   modification and status-change times, inode, shape, dtype) and the search's parameters.
///
/// The cache writes only into a new or empty folder, or one its marker names: never among other
/// files, and it removes only its own entries' files. An entry counts only for the very file it was
/// computed from, for this format version and with every value in range; otherwise it is
/// recomputed and replaced, never used. Each entry is written into a hidden folder and renamed
/// into place, so a reader sees a whole entry or none. Every value depends on its checkpoint alone
/// (the exact PCA route, the exact neighbour search), so shards analysed apart agree bit for bit
/// with one process on the same kind of machine with as many threads (OpenBLAS sums in another
/// order on another number of threads). The sequential part (alignment over time, movers, label
/// dynamics) is left to the film: it is cheap.
public struct AnalysisCache: Sendable {
    /// Bumped whenever the files or their meaning change. Version 1 kept `checkpoint-<step>`
    /// folders and no marker.
    public static let version = 2
    static let format = "embedlapse analysis cache"
    static let markerName = "embedlapse-cache.json"
    /// Every file an entry holds: all that removing an entry may delete.
    static let entryFiles = ["pca.npy", "outlier_scores.npy", "average_distances.npy", "neighbours.npy",
                             "neighbour_distances.npy", "meta.json"]
    public let directory: String

    /// Opens the cache in `directory`: a folder that does not exist yet (made at the first entry),
    /// an empty one, or one that this format's marker names. Any other folder is refused before
    /// anything is written, with the reason in one line; leftovers of killed writers on this
    /// machine are removed.
    public init(opening directory: String) throws(CacheError) {
        self.directory = directory
        var info = stat()
        guard stat(directory, &info) == 0 else {
            guard errno == ENOENT else { throw CacheError("\(directory): cannot use as the analysis cache: \(systemWords(errno))") }
            return
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw CacheError("\(directory): cannot use as the analysis cache: not a folder")
        }
        let names = try Self.names(in: directory)
        if names.contains(Self.markerName) {
            let marker = directory + "/" + Self.markerName
            guard let data = FileManager.default.contents(atPath: marker),
                  let found = try? JSONDecoder().decode(Marker.self, from: data), found.format == Self.format else {
                throw CacheError("\(marker): not an Embedlapse analysis cache marker: choose another folder for the cache")
            }
            guard found.version == Self.version else {
                throw CacheError("\(directory): an analysis cache of format \(found.version), and this embedlapse reads format \(Self.version): delete that folder (rm -r \(directory)) or choose another")
            }
            removeLeftovers(names)
        } else if !names.isEmpty {
            if names.contains(where: { $0.hasPrefix("checkpoint-") })
                && FileManager.default.fileExists(atPath: "\(directory)/\(names.first { $0.hasPrefix("checkpoint-") }!)/meta.json") {
                throw CacheError("\(directory): an analysis cache of format 1, and this embedlapse reads format \(Self.version): delete that folder (rm -r \(directory)) and analyse again")
            }
            throw CacheError("\(directory): not an analysis cache (no \(Self.markerName)) and not empty: the cache writes only into a new or empty folder; choose another")
        }
    }

    /// `RUN/.embedlapse/analysis`: inside the run, so that it travels with it.
    public static func defaultDirectory(forRun run: String) -> String {
        URL(fileURLWithPath: run).appendingPathComponent(".embedlapse/analysis").path
    }

    /// The run's own cache if `analyse` (or a film told `--cache` so) has made it; films read and
    /// fill it then, and never create it unasked. nil when there is none, or why it cannot be used.
    public static func own(forRun run: String) -> Result<AnalysisCache, CacheError>? {
        let own = defaultDirectory(forRun: run)
        guard FileManager.default.fileExists(atPath: own) else { return nil }
        do { return .success(try AnalysisCache(opening: own)) } catch { return .failure(error) }
    }

    /// The run's own cache when there is a usable one.
    public static func existing(forRun run: String) -> AnalysisCache? {
        try? own(forRun: run)?.get()
    }

    /// One checkpoint's cached analysis.
    public struct Entry: Sendable {
        public let step: Int
        /// Principal-component scores before alignment.
        public let pca: PlanarPoints
        public let outliers: OutlierScores
        /// The embeddings' total variance: what the frame's "PCA keeps N% of the variance" divides by.
        public let totalVariance: Double
    }

    public enum Lookup: Sendable {
        case hit(Entry)
        case missing
        /// There is an entry, but it cannot be used: why, in a line that names the cache file.
        case unusable(String)
    }

    /// The cached analysis of `file`, if there is a whole, current one with every value in range.
    /// An entry of another search (exact against approximate), one certified for a shorter
    /// leaderboard than `certify`, or one listing fewer than `graphNeighbours` (at most N - 1)
    /// neighbours a sample, does not count.
    public func lookup(_ file: CheckpointFile, search: OutlierScores.Search, certify: Int, graphNeighbours: Int = 0) -> Lookup {
        let folder = entryPath(step: file.step)
        guard FileManager.default.fileExists(atPath: folder) else { return .missing }
        guard let data = FileManager.default.contents(atPath: folder + "/meta.json"),
              let meta = try? JSONDecoder().decode(Meta.self, from: data) else { return .unusable("\(folder)/meta.json: missing or unreadable") }
        guard meta.version == Self.version else { return .unusable("\(folder): format version \(meta.version), this is \(Self.version)") }
        guard meta.step == file.step, meta.source == Meta.Source(file) else {
            return .unusable("\(folder): computed from another file than \(file.embeddingsPath) as it is now")
        }
        let approximate = OutlierScores.isApproximate(search, samples: file.sampleCount, dimension: file.dimension)
        guard (meta.certificate != nil) == approximate else {
            return .unusable("\(folder): computed with the \(approximate ? "exact" : "approximate") search")
        }
        if let certificate = meta.certificate, certificate.certifiedTop < min(certify, file.sampleCount) {
            return .unusable("\(folder): certified for the top \(certificate.certifiedTop) only")
        }
        do {
            let n = file.sampleCount, k = meta.neighbours
            guard (0..<max(n, 1)).contains(k), meta.samples == n, let metric = OutlierScores.Metric(rawValue: meta.metric),
                  meta.scalingFactor.isFinite, meta.scalingFactor > 0, meta.exactPairs >= 0,
                  meta.pcaMeanSquares.count == 2 else {
                throw RunFormatError(folder + "/meta.json", "values out of range")
            }
            guard let totalVariance = meta.totalVariance, totalVariance.isFinite, totalVariance > 0,
                  meta.pcaMeanSquares.reduce(0, +) <= totalVariance * (1 + 1e-3) + 1e-12 else {
                throw RunFormatError(folder + "/meta.json", "no total variance, or one the PCA scores exceed (an entry of an earlier version is computed again)")
            }
            let pca = try Self.values(folder, "pca.npy", shape: [n, 2]) { try $0.float32Values() }
            let scores = try Self.values(folder, "outlier_scores.npy", shape: [n]) { try $0.float32Values() }
            let distances = try Self.values(folder, "average_distances.npy", shape: [n]) { try $0.float32Values() }
            let listed = meta.graphNeighbours ?? k
            let wanted = approximate ? k : max(k, min(graphNeighbours, n - 1))
            guard listed >= wanted else {
                throw RunFormatError(folder + "/meta.json", "lists \(listed) neighbours a sample, and the layout needs \(wanted)")
            }
            guard listed >= k, listed < max(n, 1) else { throw RunFormatError(folder + "/meta.json", "values out of range") }
            let neighbours = try Self.values(folder, "neighbours.npy", shape: [n, listed]) { try $0.int32Values() }
            let neighbourDistances = try Self.values(folder, "neighbour_distances.npy", shape: [n, listed]) { try $0.float32Values() }
            let planar = PlanarPoints(x: stride(from: 0, to: 2 * n, by: 2).map { pca[$0] }, y: stride(from: 1, to: 2 * n, by: 2).map { pca[$0] })
            try Self.checkScores(planar, meanSquares: meta.pcaMeanSquares, path: folder + "/pca.npy")
            try Self.checkOutliers(scores: scores, distances: distances, scalingFactor: meta.scalingFactor, metric: metric, folder: folder)
            try Self.checkNeighbours(neighbours, k: listed, path: folder + "/neighbours.npy")
            try Self.checkNeighbourDistances(neighbourDistances, k: k, listed: listed, averages: distances, metric: metric,
                                             path: folder + "/neighbour_distances.npy")
            let graph = NeighbourGraph(count: n, k: listed, indices: neighbours, distances: neighbourDistances)
            let outliers = OutlierScores(scores: scores, averageDistances: distances, scalingFactor: meta.scalingFactor,
                                         neighbours: k, metric: metric, graph: graph, exactPairs: meta.exactPairs,
                                         certificate: meta.certificate)
            return .hit(Entry(step: file.step, pca: planar, outliers: outliers, totalVariance: totalVariance))
        } catch {
            return .unusable("\(error)")
        }
    }

    /// Analyses one checkpoint file on its own.
    public static func analyse(_ file: CheckpointFile, threads: Int, search: OutlierScores.Search,
                               certify: Int, graphNeighbours: Int = 0) throws(CacheError) -> Entry {
        let embeddings: Matrix
        do { embeddings = try file.loadEmbeddings() } catch { throw CacheError(error.description) }
        do {
            return try analyse(embeddings, step: file.step, threads: threads, search: search, certify: certify,
                               graphNeighbours: graphNeighbours)
        } catch {
            throw CacheError("\(file.embeddingsPath): \(error)")
        }
    }

    /// Analyses one checkpoint on its own: the exact PCA route and an unseeded exact neighbour
    /// search (seeds could order equally distant neighbours otherwise).
    public static func analyse(_ embeddings: Matrix, step: Int, threads most: Int, search: OutlierScores.Search,
                        certify: Int, graphNeighbours: Int = 0) throws -> Entry {
        // As a film would: then a film that fills the cache writes what `analyse` writes.
        let threads = BLAS.threads(forElements: embeddings.rows * embeddings.columns, upTo: most)
        BLAS.setThreadCount(threads)
        // A fresh IncrementalPCA takes the exact route: the result owes nothing to other checkpoints.
        var pca = IncrementalPCA()
        pca.threads = threads
        let projection = try pca.fit(embeddings)
        let outliers = try OutlierScores(embeddings: embeddings, search: search, threads: threads, certify: certify,
                                         graphNeighbours: graphNeighbours)
        return Entry(step: step, pca: projection.scores, outliers: outliers,
                     totalVariance: Faithfulness.totalVariance(of: embeddings))
    }

    /// Writes `entry`, the analysis of `file`, in place of any entry of its step: into a hidden
    /// folder first, renamed into place whole. The marker is written before the first entry.
    public func store(_ entry: Entry, for file: CheckpointFile) throws(CacheError) {
        let n = file.sampleCount, k = entry.outliers.neighbours
        let final = entryPath(step: entry.step)
        let partial = "\(directory)/\(Self.hiddenName(step: entry.step, ending: Self.partialEnding))"
        do {
            try Folders.make(directory)
            let marker = directory + "/" + Self.markerName
            if !FileManager.default.fileExists(atPath: marker) {
                try WholeFile.write(Array(try Self.json(Marker(format: Self.format, version: Self.version))), to: marker)
            }
            Self.removeEntry(partial)
            try Folders.make(partial)
            let meta = Meta(version: Self.version, step: entry.step, source: Meta.Source(file), samples: n,
                            dimension: file.dimension, neighbours: k, metric: entry.outliers.metric.rawValue,
                            scalingFactor: entry.outliers.scalingFactor, exactPairs: entry.outliers.exactPairs,
                            pcaMeanSquares: Self.meanSquares(entry.pca), totalVariance: entry.totalVariance,
                            graphNeighbours: entry.outliers.graph.k, certificate: entry.outliers.certificate)
            try WholeFile.write(NPYWriter.encode(float32: entry.pca.interleaved, shape: [n, 2]), to: partial + "/pca.npy")
            try WholeFile.write(NPYWriter.encode(float32: entry.outliers.scores, shape: [n]), to: partial + "/outlier_scores.npy")
            try WholeFile.write(NPYWriter.encode(float32: entry.outliers.averageDistances, shape: [n]),
                                to: partial + "/average_distances.npy")
            let graph = entry.outliers.graph
            try WholeFile.write(NPYWriter.encode(int32: graph.indices, shape: [n, graph.k]), to: partial + "/neighbours.npy")
            try WholeFile.write(NPYWriter.encode(float32: graph.distances, shape: [n, graph.k]),
                                to: partial + "/neighbour_distances.npy")
            try WholeFile.write(Array(try Self.json(meta)), to: partial + "/meta.json")
            try moveIntoPlace(partial, final, step: entry.step)
        } catch {
            Self.removeEntry(partial)
            throw CacheError("cannot write the analysis cache \(directory): \(error)")
        }
    }

    func entryPath(step: Int) -> String { "\(directory)/analysis-\(step)" }

    /// Renames `partial` to `final`; an entry already there (stale, or just written by another
    /// shard) is set aside first and then removed.
    private func moveIntoPlace(_ partial: String, _ final: String, step: Int) throws {
        if rename(partial, final) == 0 { return }
        guard errno == ENOTEMPTY || errno == EEXIST else { throw FileOutputError(final, writing: errno) }
        // Only an entry of the cache's own files is replaced: one that holds anything else stays.
        let foreign = Temporaries.names(in: final).filter { !Self.entryFiles.contains($0) || !Authorship.wrote(final + "/" + $0) }
        if let first = foreign.first {
            throw FileOutputError(final, "holds \(first), which the cache did not write: move it away, and the entry is written again")
        }
        let aside = "\(directory)/\(Self.hiddenName(step: step, ending: Self.replacedEnding))"
        guard rename(final, aside) == 0, rename(partial, final) == 0 else { throw FileOutputError(final, writing: errno) }
        Self.removeEntry(aside)
    }

    /// Removes an entry folder's own files (those Embedlapse wrote), then the folder if nothing else is in it.
    static func removeEntry(_ folder: String) {
        for name in entryFiles where Authorship.wrote(folder + "/" + name) { unlink(folder + "/" + name) }
        Temporaries.removeLeftovers(in: folder) { entryFiles.contains($0) }
        rmdir(folder)
    }

    static let partialEnding = "partial", replacedEnding = "replaced"

    /// `.analysis-<step>.<host>.<pid>.partial` (or `.replaced`): whose it is, so that another run
    /// removes it only once its writer is gone, and never one of another machine sharing the folder.
    static func hiddenName(step: Int, ending: String) -> String {
        ".analysis-\(step).\(hostName).\(getpid()).\(ending)"
    }

    /// Removes hidden entries that writers on this machine left when they were killed.
    private func removeLeftovers(_ names: [String]) {
        for name in names where name.hasPrefix(".analysis-") {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count >= 5, let ending = parts.last, [Self.partialEnding, Self.replacedEnding].contains(String(ending)),
                  let pid = pid_t(parts[parts.count - 2]), pid > 0,
                  parts[2..<(parts.count - 2)].joined(separator: ".") == Self.hostName,
                  !Temporaries.isRunning(pid) else { continue }
            Self.removeEntry(directory + "/" + name)
        }
    }

    static let hostName: String = {
        var buffer = [UInt8](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "host" }
        let name = String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self).filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        return name.isEmpty ? "host" : name
    }()

    private static func names(in directory: String) throws(CacheError) -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw CacheError("\(directory): cannot read the analysis cache folder: \(systemWords(errno == 0 ? EACCES : errno))")
        }
    }

    private static func json<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return Array(try encoder.encode(value)) + [0x0A]
    }

    /// Each column's mean square, summed in index order: recomputed bit for bit from the same
    /// floats, so a changed value in `pca.npy` shows.
    static func meanSquares(_ points: PlanarPoints) -> [Double] {
        let n = Double(max(points.count, 1))
        return [points.x.reduce(0) { $0 + Double($1) * Double($1) } / n, points.y.reduce(0) { $0 + Double($1) * Double($1) } / n]
    }

    private static func checkScores(_ points: PlanarPoints, meanSquares expected: [Double], path: String) throws(RunFormatError) {
        if let bad = points.x.indices.first(where: { !points.x[$0].isFinite || !points.y[$0].isFinite }) {
            throw RunFormatError(path, "row \(bad) is not finite")
        }
        let found = meanSquares(points)
        for (a, b) in zip(found, expected) where !(abs(a - b) <= 1e-9 * max(abs(b), 1e-30)) {
            throw RunFormatError(path, "values changed since they were computed (mean square \(a), recorded \(b))")
        }
    }

    private static func checkOutliers(scores: [Float], distances: [Float], scalingFactor: Double, metric: OutlierScores.Metric,
                                      folder: String) throws(RunFormatError) {
        let largest: Float = metric == .cosine ? 2.001 : .greatestFiniteMagnitude
        if let bad = distances.firstIndex(where: { !($0 >= 0 && $0 <= largest) }) {
            throw RunFormatError(folder + "/average_distances.npy", "value \(distances[bad]) at sample \(bad) is out of range")
        }
        for (i, score) in scores.enumerated() {
            let expected = OutlierScores.score(averageDistance: distances[i], scalingFactor: scalingFactor)
            guard score.isFinite, abs(score - expected) <= 1e-6 else {
                throw RunFormatError(folder + "/outlier_scores.npy", "value \(score) at sample \(i) is out of range (its distance gives \(expected))")
            }
        }
    }

    private static func checkNeighbours(_ neighbours: [Int32], k: Int, path: String) throws(RunFormatError) {
        guard k > 0 else { return }
        let n = neighbours.count / k
        for row in 0..<n {
            let list = neighbours[(row * k)..<(row * k + k)]
            for (j, value) in zip(list.indices, list) {
                guard value >= 0, Int(value) < n, Int(value) != row, !list[list.startIndex..<j].contains(value) else {
                    throw RunFormatError(path, "sample \(row) has neighbour \(value): out of range, itself or listed twice")
                }
            }
        }
    }

    /// Each list's distances: in range, nearest first, and the first k of them averaging to the
    /// sample's recorded mean distance (as the search summed them).
    private static func checkNeighbourDistances(_ values: [Float], k: Int, listed: Int, averages: [Float],
                                                metric: OutlierScores.Metric, path: String) throws(RunFormatError) {
        let largest: Float = metric == .cosine ? 2 : .greatestFiniteMagnitude
        for row in 0..<averages.count {
            let list = values[(row * listed)..<(row * listed + listed)]
            var previous: Float = 0, sum: Float = 0
            for (slot, value) in list.enumerated() {
                guard value >= previous, value <= largest else {
                    throw RunFormatError(path, "sample \(row): distance \(value) is out of range or out of order")
                }
                previous = value
                if slot < k { sum += value }
            }
            guard sum / Float(k) == averages[row] else {
                throw RunFormatError(path, "sample \(row): the nearest \(k) distances do not average to its recorded mean distance")
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

    /// `embedlapse-cache.json`, at the cache's root.
    struct Marker: Codable {
        var format: String
        var version: Int
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
        /// Each principal-component column's mean square (`meanSquares`), to check `pca.npy` against.
        var pcaMeanSquares: [Double]
        /// The embeddings' total variance (`Faithfulness.totalVariance`); nil in entries written
        /// before it was recorded, which are computed again.
        var totalVariance: Double?
        /// Neighbours each sample's lists hold (`neighbours.npy`): at least `neighbours`.
        var graphNeighbours: Int?
        /// Only for an approximate search: what it proved and its measured error.
        var certificate: OutlierScores.Certificate?

        /// The embeddings file as it was analysed.
        struct Source: Codable, Equatable {
            var size: Int
            var modifiedNanoseconds: Int64
            /// A copy, a `touch` or a replacement changes these even where size and modification time agree.
            var inode: UInt64
            var statusChangedNanoseconds: Int64
            var shape: [Int]
            var dtype: String

            init(_ file: CheckpointFile) {
                size = file.embeddings.identity.size
                modifiedNanoseconds = file.embeddings.identity.modified
                inode = file.embeddings.identity.inode
                statusChangedNanoseconds = file.embeddings.identity.statusChanged
                shape = file.shape
                dtype = file.element.description
            }

            enum CodingKeys: String, CodingKey {
                case size, shape, dtype, inode
                case modifiedNanoseconds = "modified_ns", statusChangedNanoseconds = "changed_ns"
            }
        }

        enum CodingKeys: String, CodingKey {
            case format, version, step, source, samples, dimension, neighbours, metric
            case scalingFactor = "scaling_factor", exactPairs = "exact_pairs", pcaMeanSquares = "pca_mean_squares", totalVariance = "total_variance", graphNeighbours = "graph_neighbours", certificate
        }
    }
}

/// Why the cache cannot be used or written, in the one line the user sees.
public struct CacheError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
