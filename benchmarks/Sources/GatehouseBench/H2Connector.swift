import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// One TLS connection that negotiated HTTP/2 and whose server allows RFC 8441 extended CONNECT; WebSockets are
/// opened on it as streams.
struct H2Connection: Sendable {
    let channel: Channel
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    let target: BenchTarget
    let maxFrameSize: Int

    /// Opens one WebSocket on a new stream; the future succeeds once the server's `:status 200` is in and `install`
    /// has added the mode's handlers. A failed future means the stream is already closed.
    func openWebSocket(
        install: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) -> EventLoopFuture<Channel> {
        let accepted = self.channel.eventLoop.makePromise(of: Void.self)
        let target = self.target
        let maxFrameSize = self.maxFrameSize
        let created = self.multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    ExtendedConnectHandler(target: target, maxFrameSize: maxFrameSize, promise: accepted, install: install)
                )
            }
        }
        // A stream that could not be created never ran the handler: fail the promise rather than leak it.
        created.whenFailure { accepted.fail($0) }
        return created.flatMap { stream in accepted.futureResult.map { stream } }
    }
}

/// Opens HTTP/2 connections (TLS with ALPN `h2` only) to one loopback target.
struct H2Connector: Sendable {
    let target: BenchTarget
    /// Must offer ALPN `h2`.
    let tlsContext: NIOSSLContext
    /// Largest WebSocket frame the client decoder accepts.
    let maxFrameSize: Int
    /// Bound on TCP connect; TLS, ALPN and the server's SETTINGS are bounded by ``H2ReadyHandler/timeout``.
    var connectTimeout: TimeAmount = .seconds(10)
    private let address: SocketAddress

    init(target: BenchTarget, tlsContext: NIOSSLContext, maxFrameSize: Int) throws {
        self.target = target
        self.tlsContext = tlsContext
        self.maxFrameSize = maxFrameSize
        self.address = try target.loopbackSocketAddress()
    }

    /// Connects on `eventLoop` and returns once TLS negotiated `h2` and the server's first SETTINGS frame carried
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3: only then may a client send an extended CONNECT).
    func connect(on eventLoop: EventLoop) async throws -> H2Connection {
        let ready = eventLoop.makePromise(of: Void.self)
        let tlsContext = self.tlsContext
        let serverName = self.target.serverName
        let connection: H2Connection
        do {
            connection = try await ClientBootstrap(group: eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(self.connectTimeout)
                .connect(to: self.address) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                        let multiplexer = try sync.configureHTTP2Pipeline(
                            mode: .client,
                            connectionConfiguration: .init(),
                            streamConfiguration: .init()
                        ) { stream in
                            // A server has no business opening streams to this client.
                            stream.close(mode: .all)
                        }
                        try sync.addHandler(H2ReadyHandler(promise: ready))
                        return H2Connection(
                            channel: channel, multiplexer: multiplexer, target: self.target, maxFrameSize: self.maxFrameSize
                        )
                    }
                }
        } catch {
            ready.fail(error)
            throw error
        }
        do {
            try await ready.futureResult.get()
        } catch {
            try? await connection.channel.close()
            throw error
        }
        return connection
    }
}

/// Watches a new HTTP/2 client connection until it may carry RFC 8441 WebSockets: ALPN must have chosen `h2` and
/// the server's first SETTINGS frame must enable the extended CONNECT protocol. Sits after `NIOHTTP2Handler`,
/// which forwards the TLS event and the connection-level frames.
final class H2ReadyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    enum Failure: Error, CustomStringConvertible {
        case notH2(String?)
        case noExtendedConnect
        case closed
        case timedOut

        var description: String {
            switch self {
            case .notH2(let protocolName): "TLS negotiated \(protocolName ?? "no ALPN protocol"), not h2"
            case .noExtendedConnect: "server SETTINGS do not enable the extended CONNECT protocol (RFC 8441)"
            case .closed: "connection closed before the server's SETTINGS"
            case .timedOut: "no TLS handshake or server SETTINGS in time"
            }
        }
    }

    static let timeout = TimeAmount.seconds(10)

    private let promise: EventLoopPromise<Void>
    private var timer: Scheduled<Void>?
    private var finished = false

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.timeout) {
            self.fail(context: context, Failure.timedOut)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        if !self.finished {
            self.finished = true
            self.promise.fail(Failure.closed)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event, negotiated != "h2" {
            self.fail(context: context, Failure.notH2(negotiated))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        if !self.finished, case .settings(.settings(let settings)) = frame.payload {
            // The first SETTINGS frame decides: RFC 8441 §3 lets a client rely on the setting only once received.
            if settings.contains(where: { $0.parameter == .enableConnectProtocol && $0.value == 1 }) {
                self.finished = true
                self.timer?.cancel()
                self.promise.succeed()
            } else {
                self.fail(context: context, Failure.noExtendedConnect)
            }
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(context: context, Failure.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !self.finished {
            self.fail(context: context, error)
        } else {
            context.fireErrorCaught(error)
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        guard !self.finished else { return }
        self.finished = true
        self.timer?.cancel()
        self.promise.fail(error)
        context.close(promise: nil)
    }
}
