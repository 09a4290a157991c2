import Hummingbird
import HummingbirdCore
import Logging
// Both come with Hummingbird (its HTTP/1 pipeline is NIO's); the explorer needs the HTTP/1 request
// as NIO decodes it, before Hummingbird converts it to HTTP types and drops what the gate checks.
import NIOCore
import NIOHTTP1

/// What the explorer checks of each HTTP/1 request before Hummingbird sees it, and how it ends
/// each exchange, where the request's version, its raw target and every Host line are still
/// visible (Hummingbird's HTTP types keep the first Host only, turn an absolute-form target into a
/// path, and answer every request as HTTP/1.1 on a connection kept open):
///
/// - a target that is not a path (`GET http://host/...`, `*`, an authority): 400;
/// - HTTP/1.1 without a Host header, or any request with two or more: 400 (RFC 9112, 3.2);
/// - a request that does not ask to keep the connection (HTTP/1.0 without `Connection:
///   keep-alive`, or `Connection: close`): answered, then the connection is closed; an HTTP/1.0
///   request is answered in HTTP/1.0, so a streamed body ends with the connection, not in chunks.
///
/// A refused request never reaches the responder: its answer is written here once the responses
/// before it are complete, and then the connection is closed. Which Host names are answered is the
/// responder's rule (`ExplorerResponder.hostRefusal`).
///
/// The decisions are `RequestGateState`'s; this handler only carries them out. It sits between
/// NIO's HTTP/1 decoder and Hummingbird's `HTTP1ToHTTPServerCodec` (`GatedHTTP1Channel`).
final class HTTPRequestGate: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var state = RequestGateState()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state.read(unwrapInboundIn(data)) {
        case .forward(let part):
            context.fireChannelRead(wrapInboundOut(part))
        case .drop:
            break
        case .refuse(let refusal):
            refuse(refusal, context: context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state.write(unwrapOutboundIn(data)) {
        case .forward(let part):
            context.write(wrapOutboundOut(part), promise: promise)
        case .forwardThenClose(let part):
            closeAfter(part, context: context, promise: promise)
        case .forwardThenRefuse(let part, let refusal):
            context.write(wrapOutboundOut(part), promise: promise)
            refuse(refusal, context: context)
        }
    }

    /// Writes `part` (a response's end) and closes the connection once it is on the wire.
    private func closeAfter(_ part: HTTPServerResponsePart, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(part), promise: written)
        written.futureResult.assumeIsolated().whenComplete { result in
            promise?.completeWith(result)
            context.close(promise: nil)
        }
    }

    /// Answers a refused request with its one-line reason, then closes the connection.
    private func refuse(_ refusal: RequestGateState.Refusal, context: ChannelHandlerContext) {
        let body = ByteBuffer(string: refusal.text)
        let headers = HTTPHeaders([
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", String(body.readableBytes)),
            ("Connection", "close"), ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
        ])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: refusal.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// The gate's decisions (`HTTPRequestGate`), one connection's worth: which request parts go on to
/// Hummingbird, how each response is framed, and when the connection closes. Responses come back
/// in request order, so the exchanges in flight are a queue.
struct RequestGateState {
    /// Why a request is answered here and not by the responder.
    struct Refusal: Equatable {
        let status: HTTPResponseStatus
        /// One line, newline-terminated.
        let text: String
    }

    /// A request passed on whose response is not complete yet.
    struct Exchange: Equatable {
        var version: HTTPVersion
        /// The connection closes after this response.
        var closes: Bool
    }

    enum ReadAction: Equatable {
        case forward(HTTPServerRequestPart)
        case drop
        /// Answer now and close: nothing is in flight before it.
        case refuse(Refusal)
    }

    enum WriteAction: Equatable {
        case forward(HTTPServerResponsePart)
        case forwardThenClose(HTTPServerResponsePart)
        /// The last response before a refused request is complete: answer that one and close.
        case forwardThenRefuse(HTTPServerResponsePart, Refusal)
    }

    private(set) var exchanges: [Exchange] = []
    /// Between a passed-on head and its end: the request's body parts go on too.
    private var isPassingRequest = false
    /// A refused request waiting for the responses before it.
    private var pendingRefusal: Refusal?
    /// No later request is read: a refusal or a request that closes the connection came.
    private var isLastRequestRead = false

    /// Why the gate answers `head` itself, or nil to pass it on.
    static func refusal(of head: HTTPRequestHead) -> Refusal? {
        // Origin form only: an absolute URL names a host the Host check would not see (Hummingbird
        // keeps only its path), and `*` or an authority (CONNECT) names no resource here.
        guard head.uri.utf8.first == UInt8(ascii: "/") else {
            return Refusal(status: .badRequest, text: "the request target must be a path such as /api/run, not an absolute URL\n")
        }
        let hosts = head.headers["Host"].count
        if hosts > 1 {
            return Refusal(status: .badRequest, text: "a request carries one Host header, not \(hosts)\n")
        }
        if hosts == 0, head.version.isHTTP11OrLater {
            return Refusal(status: .badRequest, text: "an HTTP/1.1 request needs a Host header\n")
        }
        return nil
    }

    mutating func read(_ part: HTTPServerRequestPart) -> ReadAction {
        switch part {
        case .head(var head):
            guard !isLastRequestRead else { return .drop }
            if let refusal = Self.refusal(of: head) {
                isLastRequestRead = true
                isPassingRequest = false
                if exchanges.isEmpty { return .refuse(refusal) }
                pendingRefusal = refusal
                return .drop
            }
            let closes = !head.isKeepAlive
            if closes {
                // Hummingbird closes after the response only on exactly `Connection: close`.
                head.headers.replaceOrAdd(name: "Connection", value: "close")
                isLastRequestRead = true
            }
            exchanges.append(Exchange(version: head.version, closes: closes))
            isPassingRequest = true
            return .forward(.head(head))
        case .body:
            return isPassingRequest ? .forward(part) : .drop
        case .end:
            guard isPassingRequest else { return .drop }
            isPassingRequest = false
            return .forward(part)
        }
    }

    mutating func write(_ part: HTTPServerResponsePart) -> WriteAction {
        switch part {
        case .head(var head):
            guard var exchange = exchanges.first, head.status.code >= 200 else { return .forward(part) }
            if !exchange.version.isHTTP11OrLater {
                // An HTTP/1.0 client reads no chunks: a body of unknown length ends with the connection.
                head.version = .http1_0
                if !head.headers.contains(name: "Content-Length") { exchange.closes = true }
            }
            if exchange.closes {
                head.headers.replaceOrAdd(name: "Connection", value: "close")
                isLastRequestRead = true
            } else if !exchange.version.isHTTP11OrLater {
                head.headers.replaceOrAdd(name: "Connection", value: "keep-alive")
            }
            exchanges[0] = exchange
            return .forward(.head(head))
        case .body:
            return .forward(part)
        case .end:
            guard !exchanges.isEmpty else { return .forward(part) }
            let exchange = exchanges.removeFirst()
            if exchange.closes { return .forwardThenClose(part) }
            if exchanges.isEmpty, let refusal = pendingRefusal {
                pendingRefusal = nil
                return .forwardThenRefuse(part, refusal)
            }
            return .forward(part)
        }
    }
}

/// Hummingbird's HTTP/1 channel with `HTTPRequestGate` placed right after NIO's HTTP/1 decoder.
struct GatedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel

    /// An `Application` server: HTTP/1.1 as configured, every request through the gate.
    static func builder(configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in GatedHTTP1Channel(base: HTTP1Channel(responder: responder, configuration: configuration)) }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // `setup` runs on the channel's event loop, and the base's future is already complete.
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(HTTPRequestGate(), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPVersion {
    /// HTTP/1.1 and later: Host is required, connections stay open unless closed, bodies may be chunked.
    fileprivate var isHTTP11OrLater: Bool { major > 1 || (major == 1 && minor >= 1) }
}
