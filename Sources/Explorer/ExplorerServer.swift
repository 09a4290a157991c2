import Embedlapse
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle

/// `embedlapse serve`: a local web explorer of a run that may still be growing.
///
/// Two services in one group: the HTTP server (Hummingbird, HTTP/1.1) and the run follower that
/// analyses each new checkpoint once. The server listens before the first checkpoint is analysed,
/// so the page answers at once. Ctrl-C or SIGTERM shuts down gracefully: the follower stops and
/// ends the pages' event streams first, then the server closes its connections.
public struct ExplorerServer: Sendable {
    public var runPath: String
    public var host = "127.0.0.1"
    public var port = 8737
    /// OpenBLAS and search threads for large checkpoints; one leaves a core to the browser.
    public var maxBLASThreads = 1
    /// Called once, with the URL, when the server listens.
    public var onListening: @Sendable (String) -> Void = { _ in }
    /// One-line warnings (skipped checkpoints, unreadable logs, a run that stopped being readable).
    public var warn: @Sendable (String) -> Void = { _ in }
    /// What the follower is waiting for.
    public var inform: @Sendable (String) -> Void = { _ in }

    public init(runPath: String) { self.runPath = runPath }

    /// Whether `host` is the loopback interface (the only one served without a warning).
    public static func isLoopback(host: String) -> Bool {
        ["127.0.0.1", "localhost", "::1"].contains(host.lowercased())
    }

    /// Serves until Ctrl-C or SIGTERM.
    public func run() async throws {
        let store = ExplorerStore(runName: runPath)
        var watcher = RunWatcher(path: runPath)
        watcher.warn = warn
        watcher.inform = inform
        // Requests are small: a request line and a few headers.
        var http = HTTP1Channel.Configuration(idleTimeout: .seconds(300))
        http.httpDecoder = .init(maxHeaderFieldSize: 8 * 1024, maxHeaderListSize: 16 * 1024, maxHeaderFieldCount: 64)
        let quiet = Logger(label: "embedlapse.explorer", factory: { _ in SwiftLogNoOpLogHandler() })
        let onListening = onListening
        let app = Application(
            responder: ExplorerResponder(store: store, loopbackOnly: Self.isLoopback(host: host)),
            server: .http1(configuration: http),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let address = channel.localAddress
                let bound = address?.ipAddress ?? "127.0.0.1"
                let shown = bound.contains(":") ? "[\(bound)]" : bound
                onListening("http://\(shown):\(address?.port ?? 0)/")
            },
            logger: quiet)
        let follower = RunFollower(watcher: watcher, store: store, maxBLASThreads: maxBLASThreads, warn: warn)
        // Shut down in reverse order: the follower (ending the event streams), then the server.
        var group = ServiceGroupConfiguration(services: [app, follower], gracefulShutdownSignals: [.sigint, .sigterm],
                                              logger: quiet)
        group.maximumGracefulShutdownDuration = .seconds(10)
        try await ServiceGroup(configuration: group).run()
    }
}
