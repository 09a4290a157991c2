import ArgumentParser
import Explorer
import FileOutput
import Foundation
import Projection

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explore a run in the browser, live: a local web page that follows the run as it grows; or two runs side by side.",
        discussion: """
            Each checkpoint is analysed once, as the film analyses it (PCA, Procrustes alignment, \
            outlier scores, label agreement), and kept in memory; the page draws the scatter, scrubs \
            and plays through the checkpoints, and shows each new checkpoint without a reload. The \
            run may still be written (checkpoints count once complete, as for watch) or not exist \
            yet. Once listening, prints one line to standard output: serving RUN at URL.

            The server binds to 127.0.0.1 unless --host says otherwise (then the run is visible to \
            the network, and a warning says so). It is read-only and serves only its own page and the \
            run's analysis, never a file by its URL. Ctrl-C or SIGTERM stops it cleanly, with exit \
            status 0.

            With two runs on one evaluation set (as for compare), the page shows them side by side \
            with one scrubber, and hovering or pinning a sample does so in both panels. Each run is \
            analysed on its own; the right run's points are rotated onto the left run's at each of \
            its checkpoints, as compare's film does, so a right checkpoint appears once the left run \
            has reached its step (or is done). Two runs whose evaluation sets differ stop the server \
            with a one-line error.

            Examples:
              embedlapse serve runs/live
              embedlapse serve runs/live --port 0
              embedlapse serve runs/frozen runs/full --names frozen,full
            """)

    @Argument(help: ArgumentHelp("The run directory (it may still be written, or not exist yet); two to compare them.",
                                 valueName: "run"))
    var runs: [String]

    @Option(help: ArgumentHelp("With two runs, their names on the page, comma-separated (default: their folders' names).",
                               valueName: "A,B"))
    var names: String?

    @OptionGroup var server: ServerOptions

    @OptionGroup var layout: ProjectionOptions

    func validate() throws {
        guard (1...2).contains(runs.count) else {
            throw ValidationError("serve takes one run, or two to compare; got \(runs.count)")
        }
        if let names {
            guard runs.count == 2 else { throw ValidationError("--names names the two runs of a comparison") }
            _ = try Compare.names(names)
        }
    }

    func run() async throws {
        var explorer = server.explorer(for: runs, projection: layout.method)
        if runs.count == 2 { explorer.names = try names.map(Compare.names) ?? Compare.defaultNames(runs) }
        do {
            try await explorer.run()
        } catch let mismatch as EvaluationSetMismatch {
            fail(mismatch.description)
        } catch {
            fail("cannot serve on \(server.host):\(server.port): \(error)")
        }
    }
}

/// Where the explorer listens: `serve`'s options, and `watch --serve`'s.
struct ServerOptions: ParsableArguments {
    @Option(help: "The address to listen on; anything but 127.0.0.1 or localhost exposes the run to the network.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port, 0 to 65535; 0 lets the system pick a free one.")
    var port = 8737

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535, got \(port)") }
        guard !host.isEmpty, host.utf8.count <= 253,
              host.unicodeScalars.allSatisfy({ $0.isASCII && $0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-:".unicodeScalars.contains($0) })
        else { throw ValidationError("--host must be an IP address or a host name, got \(host)") }
    }

    /// The explorer of `runs`, which prints `serving RUN at URL` once listening (with a warning first
    /// when the host is not loopback) and its notes on stderr.
    func explorer(for runs: [String], projection: ProjectionMethod) -> ExplorerServer {
        var server = ExplorerServer(runPaths: runs)
        server.host = host
        server.port = port
        server.projection = projection
        server.warn = { note("warning: \($0)") }
        server.inform = { note($0) }
        let host = self.host
        server.onListening = { url in
            if !ExplorerServer.isLoopback(host: host) {
                note("warning: listening on \(host): the run is visible to anyone on the network who can reach this machine")
            }
            // Straight to the descriptor, unbuffered: whoever reads the pipe gets the line at once.
            writeToStandardOutput("serving \(runs.map(terminalSafe).joined(separator: " and ")) at \(url)\n")
        }
        return server
    }
}

/// Writes `text` to stdout unbuffered; if stdout is closed or broken, the text is dropped.
func writeToStandardOutput(_ text: String) {
    _ = writeAll(text.utf8, to: STDOUT_FILENO)
}
