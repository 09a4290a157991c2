import Embedlapse
import Hummingbird
import Synchronization

/// Answers the explorer's requests: the bundled page and the run's data, read-only, from memory.
///
/// Routing is `ExplorerRoute.match` on the raw target (never decoded, never a file path). Only
/// GET is answered; other methods, unknown paths and unknown steps are 404. A request with a body
/// is refused (413): no route takes one. Without a `--host` beyond loopback, the Host header must
/// name a loopback host, so that a web page whose domain was rebound to 127.0.0.1 cannot read the
/// run. No CORS header is ever sent.
struct ExplorerResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    /// The run, or the two runs of a comparison (left, right).
    let stores: [ExplorerStore]
    /// Only Host headers naming 127.0.0.1, localhost or [::1] are answered.
    let loopbackOnly: Bool

    func respond(to request: Request, context: Context) async throws -> Response {
        if request.headers[.contentLength].map({ $0 != "0" }) ?? false || request.headers[.transferEncoding] != nil {
            return Self.plain(.contentTooLarge, "a request body is not accepted here\n")
        }
        guard request.method == .get, let (run, route) = ExplorerRoute.match(target: request.head.path ?? ""),
              stores.indices.contains(run) else {
            return Self.notFound
        }
        let store = stores[run]
        if loopbackOnly, !Self.isLoopback(authority: request.head.authority) {
            return Self.plain(.forbidden, "this server answers only requests addressed to 127.0.0.1 or localhost\n")
        }
        switch route {
        case .page:
            return Self.asset("index.html") ?? Self.notFound
        case .asset(let name):
            return Self.asset(name) ?? Self.notFound
        case .runs:
            return Self.bytes(APIDocuments.runs(stores), type: "application/json")
        case .run:
            return Self.bytes(APIDocuments.run(store), type: "application/json")
        case .points(let step):
            guard let checkpoint = store.checkpoint(step: step) else { return Self.notFound }
            return Self.bytes(checkpoint.points, type: "application/octet-stream")
        case .scores(let step):
            guard let checkpoint = store.checkpoint(step: step) else { return Self.notFound }
            return Self.bytes(checkpoint.scores, type: "application/json")
        case .events:
            return events(store)
        case .loss:
            return Self.bytes(APIDocuments.loss(store), type: "application/json")
        case .sample(let index):
            guard let document = APIDocuments.sample(index, store: store) else { return Self.notFound }
            return Self.bytes(document, type: "application/json")
        case .sampleImage(let index):
            guard let png = APIDocuments.image(index, store: store) else { return Self.notFound }
            var response = Self.bytes(png, type: "image/png")
            // A sample's image never changes while the server runs.
            response.headers[.cacheControl] = "private, max-age=3600"
            return response
        case .table:
            return table(store)
        }
    }

    /// The export table, one checkpoint's rows at a time (a large run's table is hundreds of MB).
    private func table(_ store: ExplorerStore) -> Response {
        guard let facts = store.facts else { return Self.notFound }
        let checkpoints = store.checkpoints
        let body = AsyncStream<ByteBuffer> { continuation in
            continuation.yield(ByteBuffer(string: SampleTable.header))
            let task = Task {
                for checkpoint in checkpoints {
                    if Task.isCancelled { break }
                    continuation.yield(ByteBuffer(bytes: facts.table.rows(checkpoint.columns)))
                    await Task.yield()
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        var headers = Self.commonHeaders
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"embedlapse-table.csv\""
        return Response(status: .ok, headers: headers, body: ResponseBody(asyncSequence: body))
    }

    /// `text/event-stream`: a `checkpoint` event, its data the step, for every step analysed so
    /// far and then for each new one; the stream ends when the server shuts down. A comment line
    /// every `keepAlive` keeps the connection from counting as idle between checkpoints.
    private func events(_ store: ExplorerStore) -> Response {
        let steps = store.subscribe()
        let body = AsyncStream<ByteBuffer> { continuation in
            let task = Task {
                continuation.yield(ByteBuffer(string: "retry: 1000\n\n"))
                for await step in steps { continuation.yield(ByteBuffer(string: "event: checkpoint\ndata: \(step)\n\n")) }
                continuation.finish()
            }
            let ping = Task {
                while (try? await Task.sleep(for: Self.keepAlive)) != nil { continuation.yield(ByteBuffer(string: ": keep-alive\n\n")) }
            }
            continuation.onTermination = { _ in
                task.cancel()
                ping.cancel()
            }
        }
        var headers = Self.commonHeaders
        headers[.contentType] = "text/event-stream"
        return Response(status: .ok, headers: headers, body: ResponseBody(asyncSequence: body))
    }

    /// Well under the connections' idle timeout (`ExplorerServer`).
    static let keepAlive = Duration.seconds(30)

    static let commonHeaders: HTTPFields = [
        .cacheControl: "no-store",
        .xContentTypeOptions: "nosniff",
        HTTPFields.Element.Name("Referrer-Policy")!: "no-referrer",
    ]

    /// The page may load only its own scripts, styles and data: no CDN, no inline script.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let notFound = plain(.notFound, "not found\n")

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        bytes(Array(text.utf8), type: "text/plain; charset=utf-8", status: status)
    }

    static func bytes(_ bytes: [UInt8], type: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = commonHeaders
        headers[.contentType] = type
        headers[.contentLength] = String(bytes.count)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func asset(_ name: String) -> Response? {
        guard let text = ExplorerAssets.files[name] else { return nil }
        let type: String
        switch name.split(separator: ".").last {
        case "html": type = "text/html; charset=utf-8"
        case "js": type = "text/javascript; charset=utf-8"
        case "css": type = "text/css; charset=utf-8"
        case "svg": type = "image/svg+xml"
        default: type = "application/octet-stream"
        }
        var response = bytes(Array(text.utf8), type: type)
        if name.hasSuffix(".html") { response.headers[.contentSecurityPolicy] = contentSecurityPolicy }
        return response
    }

    /// Whether an authority (`host[:port]`) names the loopback interface. A request without one
    /// (HTTP/1.0) is let through: a browser always sends it.
    static func isLoopback(authority: String?) -> Bool {
        guard let authority else { return true }
        let host: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return false }
            host = authority[authority.index(after: authority.startIndex)..<close]
        } else {
            host = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        switch host.lowercased() {
        case "127.0.0.1", "localhost", "::1": return true
        default: return false
        }
    }
}
