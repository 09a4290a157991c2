import ArgumentParser
import CheckpointCache
import Foundation
import Pipeline
import RunFormat

struct Analyse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyse",
        abstract: "Analyse a saved run's checkpoints once, into a cache: PCA, kNN outlier scores and neighbour lists.",
        discussion: """
            Each checkpoint's analysis (its principal-component scores, its kNN outlier scores and \
            its neighbour lists) is computed from that checkpoint alone and written into the cache, \
            one folder per checkpoint (docs/cache.md). Entries already there for the same embeddings \
            file and format version are kept; stale, partial or older-format ones are recomputed. \
            Shards over disjoint --checkpoints ranges may run at once, as separate processes or on \
            separate machines sharing the folder: together they write what one process would, bit \
            for bit on the same kind of machine with the same --threads (OpenBLAS sums in another \
            order on another number of threads). scripts/analyse-shards.sh runs them with xargs -P.

            --checkpoints FROM:TO selects checkpoints by position in step order, from 0: FROM \
            included, TO excluded, either one left out for the start or the end (0:10, 10:, :5). \
            --shard I/N takes the I-th of N near-equal consecutive ranges instead (1/4 to 4/4), as \
            a job array's tasks would. Ctrl-C stops after the checkpoint being analysed; every \
            entry written is whole.

            --projection umap or tsne (with its --neighbors or --perplexity) changes no number: it \
            makes the neighbour lists as long as those films need (14 or 90 a sample by default), so \
            that they read them instead of searching; --min-dist and --seed play no part here.

            Examples:
              embedlapse analyse runs/vit-cifar10
              embedlapse analyse runs/vit-cifar10 --checkpoints 0:15 --cache /scratch/vit-cache
              embedlapse analyse runs/vit-cifar10 --shard 2/4
              embedlapse analyse runs/vit-cifar10 --projection umap
            """)

    @Argument(help: "The run directory.")
    var run: String

    @Option(help: ArgumentHelp("The cache folder (default: RUN/.embedlapse/analysis).", valueName: "dir"))
    var cache: String?

    @Option(help: ArgumentHelp("The checkpoints to analyse, by position: FROM:TO, TO excluded (default: all).",
                               valueName: "from:to"))
    var checkpoints: CheckpointRange = CheckpointRange(from: nil, to: nil)

    @Option(help: ArgumentHelp("The I-th of N near-equal consecutive ranges of checkpoints, 1 to N.", valueName: "i/n"))
    var shard: Shard?

    @Option(help: "Cores to use (default: all of this machine's); the last bits of the numbers depend on it.")
    var threads: Int?

    @Option(help: OutlierSearch.help)
    var search: OutlierSearch = .auto

    @Option(help: "How many of the most atypical samples an approximate search proves exact, 1 to 32 (a film with a longer --top computes its own).")
    var top: Int = 8

    /// Only the neighbour lists' length comes from it: a UMAP or t-SNE film needs longer ones.
    @OptionGroup var layout: ProjectionOptions

    func validate() throws {
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be 1 to 1024, got \(threads)") }
        guard (1...32).contains(top) else { throw ValidationError("--top \(top): must be from 1 to 32") }
        if shard != nil && (checkpoints.from != nil || checkpoints.to != nil) {
            throw ValidationError("--shard and --checkpoints both choose the checkpoints: give one")
        }
    }

    func run() async throws {
        let runDirectory: RunDirectory
        do { runDirectory = try RunDirectory(path: run) } catch { fail(error.description) }
        for warning in runDirectory.warnings { note("warning: \(warning)") }
        if let folder = self.cache, let problem = RunInputs(run: run).conflict(folder: folder) {
            fail("--cache \(folder): \(problem)")
        }
        let cache: AnalysisCache
        do { cache = try AnalysisCache(opening: self.cache ?? AnalysisCache.defaultDirectory(forRun: run)) } catch {
            fail(self.cache == nil ? error.description : "--cache \(error)")
        }
        let range = shard.map { $0.range(of: runDirectory.checkpoints.count) } ?? checkpoints
        let selected = range.select(runDirectory.checkpoints)
        guard !selected.isEmpty else {
            note("no checkpoint in \(range) (\(run) has \(runDirectory.checkpoints.count)): nothing to do")
            return
        }
        let threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let stop = StopFlag()
        let signals = SignalTrap(stop: stop)
        defer { signals.restore() }
        let progress = ProgressLine(total: selected.count)
        var (analysed, kept) = (0, 0)
        var replaced: [String] = []
        for file in selected {
            if stop.isRaised { break }
            let method = search.search(forSamples: file.sampleCount)
            let listed = layout.method.graphNeighbours(samples: file.sampleCount)
            let lookup = cache.lookup(file, search: method, certify: top, graphNeighbours: listed)
            switch lookup {
            case .hit:
                kept += 1
            case .missing, .unusable:
                if case .unusable(let why) = lookup { replaced.append("step \(file.step): \(why)") }
                do {
                    try cache.store(try AnalysisCache.analyse(file, threads: threads, search: method, certify: top,
                                                              graphNeighbours: listed), for: file)
                } catch {
                    progress.end()
                    fail(error.description)
                }
                analysed += 1
            }
            progress.update(analysed + kept)
        }
        progress.end()
        for line in replaced.prefix(5) { note("recomputed \(line)") }
        if replaced.count > 5 { note("recomputed \(replaced.count - 5) more entries that could not be used") }
        let done = analysed + kept
        note("\(stop.isRaised ? "interrupted: " : "")analysed \(analysed) checkpoints, \(kept) already cached, "
             + "\(done) of \(selected.count) in \(cache.directory)")
        if stop.isRaised { throw ExitCode(130) }
    }
}

/// `FROM:TO`: checkpoints by position in step order, FROM included and TO excluded, either omitted.
struct CheckpointRange: ExpressibleByArgument, CustomStringConvertible {
    let from: Int?
    let to: Int?

    init(from: Int?, to: Int?) {
        self.from = from
        self.to = to
    }

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        func bound(_ text: Substring) -> Int?? {
            if text.isEmpty { return .some(nil) }
            guard text.count <= 9, text.allSatisfy(\.isASCII), let value = Int(text), value >= 0 else { return nil }
            return .some(value)
        }
        guard let from = bound(parts[0]), let to = bound(parts[1]) else { return nil }
        if let from, let to, from > to { return nil }
        self.init(from: from, to: to)
    }

    static var defaultCompletionKind: CompletionKind { .default }

    var description: String { "\(from.map(String.init) ?? ""):\(to.map(String.init) ?? "")" }

    func select<T>(_ all: [T]) -> ArraySlice<T> {
        let start = min(from ?? 0, all.count), end = min(to ?? all.count, all.count)
        return all[start..<max(start, end)]
    }
}

/// `I/N`: the I-th (from 1) of N near-equal consecutive ranges.
struct Shard: ExpressibleByArgument {
    let index: Int
    let count: Int

    init?(argument: String) {
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ (1...6).contains($0.count) && $0.allSatisfy(\.isASCII) }),
              let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, (1...count).contains(index) else { return nil }
        self.index = index
        self.count = count
    }

    /// Positions `(I - 1) C / N` to `I C / N` of `C` checkpoints: every checkpoint in exactly one shard.
    func range(of checkpoints: Int) -> CheckpointRange {
        CheckpointRange(from: (index - 1) * checkpoints / count, to: index * checkpoints / count)
    }
}

extension OutlierSearch: ExpressibleByArgument {
    static let help = ArgumentHelp(
        "The neighbour search behind the outlier scores: exact, approximate (cells searched, the leaderboard proved exact, the other scores a little low: docs/approximate.md) or auto (approximate from \(OutlierSearch.approximateFrom.formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US")))) samples).",
        valueName: "exact|approximate|auto")
}

/// The analysis cache of a command that analyses a saved run (render, export).
struct CacheOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The analysis cache to read each checkpoint's PCA and outlier scores from, and to fill (default: RUN/.embedlapse/analysis when embedlapse analyse has made it).",
                               valueName: "dir"))
    var cache: String?

    @Flag(help: "Analyse every checkpoint again, neither reading nor filling a cache.")
    var noCache = false

    func validate() throws {
        if noCache && cache != nil { throw ValidationError("--cache and --no-cache contradict each other: give one") }
    }

    /// The cache to use for `run`: `--cache`, refused in a line if it is not a cache's folder; or
    /// the run's own if `analyse` made it, left aside with a warning if it cannot be used; none
    /// with `--no-cache`.
    func cache(forRun run: String) -> AnalysisCache? {
        if noCache { return nil }
        if let cache {
            if let problem = RunInputs(run: run).conflict(folder: cache) { fail("--cache \(cache): \(problem)") }
            do { return try AnalysisCache(opening: cache) } catch { fail("--cache \(error)") }
        }
        switch AnalysisCache.own(forRun: run) {
        case .success(let own)?: return own
        case .failure(let problem)?:
            note("warning: \(problem); going on without it")
            return nil
        case nil: return nil
        }
    }
}
