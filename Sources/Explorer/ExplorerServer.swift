#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Pipeline
import Projection
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle

/// `embedlapse serve`: a local web explorer of a run that may still be growing, or of two runs
/// side by side (`RunPairing`).
///
/// Services in one group: the HTTP server (Hummingbird, HTTP/1.1) and a run follower per run that
/// analyses each new checkpoint once. The server listens before the first checkpoint is analysed,
/// so the page answers at once. Ctrl-C or SIGTERM shuts down gracefully: the follower stops and
/// ends the pages' event streams first, then the server closes its connections.
public struct ExplorerServer: Sendable {
    /// One run, or the two of a comparison (left, right).
    public var runPaths: [String]
    /// The runs' names on the page; by default their folders' names.
    public var names: [String]?
    public var host = "127.0.0.1"
    public var port = 8737
    /// OpenBLAS and search threads for large checkpoints; one leaves a core to the browser.
    public var maxBLASThreads = 1
    /// How the picture is made (`--projection`).
    public var projection: ProjectionMethod = .pca
    /// Called once, with the URL, when the server listens.
    public var onListening: @Sendable (String) -> Void = { _ in }
    /// One-line warnings (skipped checkpoints, unreadable logs, a run that stopped being readable).
    public var warn: @Sendable (String) -> Void = { _ in }
    /// What the follower is waiting for.
    public var inform: @Sendable (String) -> Void = { _ in }

    public init(runPaths: [String]) {
        precondition((1...2).contains(runPaths.count))
        self.runPaths = runPaths
    }

    /// Whether `host` is the loopback interface (the only one served without a warning).
    public static func isLoopback(host: String) -> Bool {
        ["127.0.0.1", "localhost", "::1"].contains(host.lowercased())
    }

    /// Follows the runs and serves them until Ctrl-C or SIGTERM.
    public func run() async throws {
        let stores = runPaths.indices.map { ExplorerStore(runName: runPaths[$0], name: names?[$0], projection: projection) }
        let sinks: [any AnalysisSink] = stores.count == 2 ? RunPairing(left: stores[0], right: stores[1]).sides : stores
        // The page answers before any analysis starts: the followers wait until the server listens.
        let listening = sinks.map { _ in AsyncStream<Void>.makeStream() }
        let followers = zip(sinks, listening).map { sink, listening in
            var watcher = RunWatcher(path: sink.store.runName)
            watcher.warn = warn
            watcher.inform = inform
            return RunFollower(watcher: watcher, sink: sink, maxBLASThreads: maxBLASThreads, projection: projection, warn: warn,
                               serverListening: listening.stream)
        }
        // Shut down in reverse order: the followers (ending the event streams), then the server.
        var group = ServiceGroupConfiguration(services: [application(stores, listening: listening.map(\.continuation))] + followers,
                                              gracefulShutdownSignals: [.sigint, .sigterm], logger: Self.quiet)
        group.maximumGracefulShutdownDuration = .seconds(10)
        try await ServiceGroup(configuration: group).run()
    }

    /// Serves `store`, which another stage fills (`watch --serve` feeds it the film's analysis),
    /// until `stop` is raised; signals are the caller's.
    public func serve(_ store: ExplorerStore, until stop: StopFlag) async throws {
        var configuration = ServiceGroupConfiguration(services: [application([store])], logger: Self.quiet)
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                while !stop.isRaised && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(100)) }
                store.close()  // ends the pages' event streams, so their connections can close
                await group.triggerGracefulShutdown()
            }
            // The server ends first only on a failure (the port taken); then the stop waiter is cancelled.
            try await tasks.next()
            tasks.cancelAll()
            try await tasks.waitForAll()
        }
    }

    private static let quiet = Logger(label: "embedlapse.explorer", factory: { _ in SwiftLogNoOpLogHandler() })

    private func application(_ stores: [ExplorerStore], listening: [AsyncStream<Void>.Continuation] = []) -> some Service {
        // Requests are small: a request line and a few headers.
        var http = HTTP1Channel.Configuration(idleTimeout: .seconds(300))
        http.httpDecoder = .init(maxHeaderFieldSize: 8 * 1024, maxHeaderListSize: 16 * 1024, maxHeaderFieldCount: 64)
        let onListening = onListening
        return Application(
            responder: ExplorerResponder(stores: stores, loopbackOnly: Self.isLoopback(host: host)),
            server: GatedHTTP1Channel.builder(configuration: http),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(Self.connectionLimit(), logger: Self.quiet)),
            onServerRunning: { channel in
                let address = channel.localAddress
                let bound = address?.ipAddress ?? "127.0.0.1"
                let shown = bound.contains(":") ? "[\(bound)]" : bound
                onListening("http://\(shown):\(address?.port ?? 0)/")
                for follower in listening {
                    follower.yield()
                    follower.finish()
                }
            },
            logger: Self.quiet)
    }

    /// Connections open at once, from the process's descriptor limit (`RLIMIT_NOFILE`): a quarter
    /// of it, at least 256, stays for the run's files, so that clients can never take the
    /// descriptors the run follower needs; 16 to 1,024. Further clients wait in the listen backlog
    /// until a connection closes.
    static func connectionLimit() -> Int {
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)  // Glibc imports the constant as an enum case
        #else
        let resource = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return 256 }
        let descriptors = Int(clamping: limit.rlim_cur)  // RLIM_INFINITY is the largest value
        let reserve = max(256, descriptors / 4)
        return min(1024, max(16, descriptors - reserve))
    }
}
