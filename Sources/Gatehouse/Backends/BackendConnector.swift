import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Opens a WebSocket on a backend server: connect (round robin, failing over), optional TLS, forward the upgrade
/// request and read the answer.
///
/// The backend channel is created on the client's event loop, so the relay between the two never hops threads.
enum BackendConnector {
    /// Channel settings the relay depends on.
    struct ChannelSettings {
        /// Write buffer high watermark (the route's `buffer_bytes`).
        var bufferBytes: Int
    }

    /// Tries the pool's servers in turn until one answers; fails with the last ``BackendFailure``, or with
    /// ``HandshakeCancellation/Cancelled`` (nothing reported to `onFailure`) once `cancellation` is cancelled.
    ///
    /// Passive health: every attempt is reported to the pool's runtime. Connect and TLS failures, missing, malformed
    /// or late answers, invalid 101s and 5xx answers count as failures (`onEjected` hears of the one that ejects a
    /// server); a 101 clears them; other answers (4xx: the application's decision) count for nothing.
    static func open(
        pool: BackendPool,
        request: HTTPRequestHead,
        expectedAccept: String,
        settings: ChannelSettings,
        eventLoop: EventLoop,
        cancellation: HandshakeCancellation,
        onFailure: @escaping @Sendable (BackendFailure) -> Void,
        onEjected: @escaping @Sendable (BindAddress) -> Void = { _ in }
    ) -> EventLoopFuture<BackendAnswer> {
        let servers = pool.attemptOrder()
        let promise = eventLoop.makePromise(of: BackendAnswer.self)
        Self.attempt(
            index: 0, servers: servers, pool: pool, request: request, expectedAccept: expectedAccept,
            settings: settings, eventLoop: eventLoop, cancellation: cancellation, sawTimeout: false,
            onFailure: onFailure, onEjected: onEjected, promise: promise
        )
        return promise.futureResult
    }

    private static func attempt(
        index: Int,
        servers: [BindAddress],
        pool: BackendPool,
        request: HTTPRequestHead,
        expectedAccept: String,
        settings: ChannelSettings,
        eventLoop: EventLoop,
        cancellation: HandshakeCancellation,
        sawTimeout: Bool,
        onFailure: @escaping @Sendable (BackendFailure) -> Void,
        onEjected: @escaping @Sendable (BindAddress) -> Void,
        promise: EventLoopPromise<BackendAnswer>
    ) {
        guard !cancellation.isCancelled else {
            promise.fail(HandshakeCancellation.Cancelled())
            return
        }
        let server = servers[index]
        Self.connectOnce(
            server: server, pool: pool, request: request, expectedAccept: expectedAccept, settings: settings,
            eventLoop: eventLoop, cancellation: cancellation
        ).whenComplete { result in
            // Whatever the attempt ended with, a client that left turns it into a cancellation: no failover,
            // nothing counted against the backend, no upgraded connection kept.
            if cancellation.isCancelled {
                if case .success(.upgraded(let upgrade)) = result { upgrade.channel.close(promise: nil) }
                promise.fail(HandshakeCancellation.Cancelled())
                return
            }
            switch result {
            case .success(let answer):
                switch answer {
                case .upgraded:
                    pool.runtime.attemptSucceeded(server)
                case .refused(_, let head, _) where head.status.code >= 500:
                    if pool.runtime.attemptFailed(server) { onEjected(server) }
                case .refused:
                    break
                }
                promise.succeed(answer)
            case .failure(let error):
                let failure = (error as? BackendFailure) ?? .connectFailed(server.description, "\(error)")
                if pool.runtime.attemptFailed(server) { onEjected(server) }
                onFailure(failure)
                let timedOut = sawTimeout || failure.isTimeout
                if failure.isRetryable && index + 1 < servers.count {
                    Self.attempt(
                        index: index + 1, servers: servers, pool: pool, request: request,
                        expectedAccept: expectedAccept, settings: settings, eventLoop: eventLoop,
                        cancellation: cancellation, sawTimeout: timedOut, onFailure: onFailure, onEjected: onEjected,
                        promise: promise
                    )
                } else if timedOut && failure.isRetryable {
                    promise.fail(BackendFailure.connectTimeout(failure.server))
                } else {
                    promise.fail(failure)
                }
            }
        }
    }

    private static func connectOnce(
        server: BindAddress,
        pool: BackendPool,
        request: HTTPRequestHead,
        expectedAccept: String,
        settings: ChannelSettings,
        eventLoop: EventLoop,
        cancellation: HandshakeCancellation
    ) -> EventLoopFuture<BackendAnswer> {
        let answer = eventLoop.makePromise(of: BackendAnswer.self)
        let tls = pool.tls
        let responseTimeout = pool.responseTimeout
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(pool.connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: ReceiveBuffers.plain)
            .channelOption(
                .writeBufferWaterMark,
                value: .init(low: settings.bufferBytes / 2, high: settings.bufferBytes)
            )
            .channelInitializer { channel in
                // Registered before the connect starts, so a client that leaves while it is in flight closes it.
                guard cancellation.register(channel) else {
                    return channel.eventLoop.makeFailedFuture(HandshakeCancellation.Cancelled())
                }
                answer.futureResult.whenComplete { _ in cancellation.unregister(channel) }
                do {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ReceiveBufferPin())
                    if let tls {
                        let handler = try NIOSSLClientHandler(
                            context: tls.context,
                            serverHostname: tls.serverName ?? server.host
                        )
                        try sync.addHandler(handler)
                    }
                    try sync.addHandler(HTTPRequestEncoder())
                    try sync.addHandler(NIOHTTPRequestHeadersValidator())
                    try sync.addHandler(
                        ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
                    )
                    try sync.addHandler(
                        BackendHandshakeHandler(
                            request: request, expectedAccept: expectedAccept, server: server,
                            responseTimeout: responseTimeout, promise: answer
                        )
                    )
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let connecting: EventLoopFuture<Channel>
        if let address = pool.literalAddresses[server] {
            connecting = bootstrap.connect(to: address)
        } else {
            connecting = bootstrap.connect(host: server.host, port: server.port)
        }
        connecting.whenFailure { error in
            if case ChannelError.connectTimeout = error {
                answer.fail(BackendFailure.connectTimeout(server.description))
            } else {
                answer.fail(BackendFailure.connectFailed(server.description, "\(error)"))
            }
        }
        return answer.futureResult
    }
}
