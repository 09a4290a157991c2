import Pipeline
import Hummingbird
import Synchronization

/// Answers the explorer's requests: the bundled page and the run's data, read-only, from memory.
///
/// Requests come through `HTTPRequestGate`, which has refused what HTTP types cannot show (an
/// absolute-form target, a missing or repeated Host) and closes connections that asked for it.
/// The Host is checked first (`hostRefusal`): without a `--host` beyond loopback it must name a
/// loopback host, so that a web page whose domain was rebound to 127.0.0.1 cannot read the run;
/// a Host with userinfo is refused everywhere (403). A request with a body is refused (413): no
/// route takes one. Routing is `ExplorerRoute.match` on the raw target (never decoded, never a
/// file path). Only GET is answered; other methods, unknown paths and unknown steps are 404. No
/// CORS header is ever sent.
///
/// An event stream ends as soon as its client goes away, not at its next write (a keep-alive
/// comment, up to 30 s later): it runs under `RequestBody.consumeWithCancellationOnInboundClose`,
/// which watches the connection's inbound side while the response is written, so a closed
/// connection cancels the stream and its socket is closed at once. Event streams are capped
/// (`streams`). The export table is written one checkpoint at a time, each write waiting until
/// the socket takes it.
struct ExplorerResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    /// The run, or the two runs of a comparison (left, right).
    let stores: [ExplorerStore]
    /// Only Host headers naming 127.0.0.1, localhost or [::1] are answered.
    let loopbackOnly: Bool
    /// The event streams open now, across both runs of a comparison.
    let streams: StreamSlots

    init(stores: [ExplorerStore], loopbackOnly: Bool) {
        self.stores = stores
        self.loopbackOnly = loopbackOnly
        streams = StreamSlots(limit: Self.maxEventStreams)
    }

    /// Event streams open at once: a page holds one (two in a comparison), and each holds a
    /// connection, hence a file descriptor, for as long as it is open.
    static let maxEventStreams = 64

    func respond(to request: Request, context: Context) async throws -> Response {
        if let refusal = Self.hostRefusal(authority: request.head.authority, loopbackOnly: loopbackOnly) {
            return Self.plain(.forbidden, refusal)
        }
        if request.headers[.contentLength].map({ $0 != "0" }) ?? false || request.headers[.transferEncoding] != nil {
            return Self.plain(.contentTooLarge, "a request body is not accepted here\n")
        }
        guard request.method == .get, let (run, route) = ExplorerRoute.match(target: request.head.path ?? ""),
              stores.indices.contains(run) else {
            return Self.notFound
        }
        let store = stores[run]
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
            return events(store, request: request)
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
    /// Each write waits until the connection takes it (NIO's writability), so a client that reads
    /// slowly, or not at all, holds at most one checkpoint's rows on the server. A client that
    /// closes is noticed by the write: it stops reading with rows unread, so its side resets the
    /// connection, and the waiting write fails at once. (Not by its inbound side, unlike the event
    /// stream: a client may half-close after its request and still read the whole table.)
    private func table(_ store: ExplorerStore) -> Response {
        guard let facts = store.facts else { return Self.notFound }
        let checkpoints = store.checkpoints
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: SampleTable.header))
            for checkpoint in checkpoints {
                try Task.checkCancellation()
                try await writer.write(ByteBuffer(bytes: facts.table.rows(checkpoint.columns)))
            }
            try await writer.finish(nil)
        }
        var headers = Self.commonHeaders
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"embedlapse-table.csv\""
        return Response(status: .ok, headers: headers, body: body)
    }

    /// `text/event-stream`: a `checkpoint` event, its data the step, for every step analysed so
    /// far and then for each new one; the stream ends when the server shuts down or the client
    /// goes away. A comment line every `keepAlive` keeps the connection from counting as idle
    /// between checkpoints. Beyond `maxEventStreams` open at once: 503.
    private func events(_ store: ExplorerStore, request: Request) -> Response {
        guard let slot = streams.take() else {
            var response = Self.plain(.serviceUnavailable, "too many open event streams (\(streams.limit)): close a page and reload\n")
            response.headers[.retryAfter] = "5"
            return response
        }
        let inbound = request.body
        let body = ResponseBody { writer in
            defer { slot.release() }
            try await inbound.consumeWithCancellationOnInboundClose { _ in
                for await event in Self.eventStream(store) { try await writer.write(event) }
            }
            try await writer.finish(nil)
        }
        var headers = Self.commonHeaders
        headers[.contentType] = "text/event-stream"
        return Response(status: .ok, headers: headers, body: body)
    }

    /// The events of one stream: the retry interval, then the store's steps, with keep-alive
    /// comments between them. Ends when the store closes; its tasks stop when iteration stops.
    private static func eventStream(_ store: ExplorerStore) -> AsyncStream<ByteBuffer> {
        let steps = store.subscribe()
        return AsyncStream<ByteBuffer> { continuation in
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

    /// The page's files (Sources/Explorer/Page), built into the binary by SwiftPM (`.embedInCode`):
    /// one binary serves them with nothing beside it.
    static let assets: [String: [UInt8]] = [
        "index.html": PackageResources.index_html, "app.js": PackageResources.app_js,
        "style.css": PackageResources.style_css, "favicon.svg": PackageResources.favicon_svg,
    ]

    static func asset(_ name: String) -> Response? {
        guard let contents = assets[name] else { return nil }
        let type: String
        switch name.split(separator: ".").last {
        case "html": type = "text/html; charset=utf-8"
        case "js": type = "text/javascript; charset=utf-8"
        case "css": type = "text/css; charset=utf-8"
        case "svg": type = "image/svg+xml"
        default: type = "application/octet-stream"
        }
        var response = bytes(contents, type: type)
        if name.hasSuffix(".html") { response.headers[.contentSecurityPolicy] = contentSecurityPolicy }
        return response
    }

    /// Why a request addressed to `authority` (its Host header) is not answered, or nil. A Host
    /// with userinfo (`name@host`) is never answered: it is not an address of this server, and a
    /// lax reader would take the part before `@` for the host. On loopback, the Host must name a
    /// loopback host. A request without a Host (HTTP/1.0; the gate refuses HTTP/1.1 without one)
    /// is let through: a browser always sends it.
    static func hostRefusal(authority: String?, loopbackOnly: Bool) -> String? {
        guard let authority else { return nil }
        if authority.contains("@") {
            return "a Host header names a host and a port, never a user (\"@\"): not answered\n"
        }
        if loopbackOnly, !isLoopback(authority: authority) {
            return "this server answers only requests addressed to 127.0.0.1, localhost or [::1]\n"
        }
        return nil
    }

    /// Whether an authority (`host[:port]`, as a Host header carries it) names the loopback
    /// interface: one of its names, then nothing or a port of one to five digits.
    static func isLoopback(authority: String) -> Bool {
        let host: Substring
        let rest: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return false }
            host = authority[authority.index(after: authority.startIndex)..<close]
            rest = authority[authority.index(after: close)...]
        } else {
            let colon = authority.firstIndex(of: ":") ?? authority.endIndex
            host = authority[..<colon]
            rest = authority[colon...]
        }
        if !rest.isEmpty {
            let port = rest.dropFirst()
            guard rest.first == ":", (1...5).contains(port.count), port.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
            else { return false }
        }
        switch host.lowercased() {
        case "127.0.0.1", "localhost", "::1": return true
        default: return false
        }
    }
}

/// The event streams open now, at most `limit`: a taken slot is given back when its stream ends
/// (`Slot.release`), or when the response that held it is dropped unwritten.
final class StreamSlots: Sendable {
    let limit: Int
    private let open = Mutex(0)

    init(limit: Int) { self.limit = limit }

    /// A slot, or nil when `limit` streams are open.
    func take() -> Slot? {
        let taken = open.withLock { open in
            guard open < limit else { return false }
            open += 1
            return true
        }
        return taken ? Slot(slots: self) : nil
    }

    /// One open stream's place; released once, explicitly or at the latest when it is freed.
    final class Slot: Sendable {
        private let slots: StreamSlots
        private let held = Mutex(true)

        fileprivate init(slots: StreamSlots) { self.slots = slots }

        func release() {
            guard held.withLock({ held in defer { held = false }; return held }) else { return }
            slots.open.withLock { $0 -= 1 }
        }

        deinit { release() }
    }
}
