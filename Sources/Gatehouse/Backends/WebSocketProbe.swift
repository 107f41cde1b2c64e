import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// One WebSocket-native health check of a backend server: TCP (and TLS with the backend's context and server
/// name), a real HTTP/1.1 upgrade to `path` with a fresh key, a valid 101 with the right `Sec-WebSocket-Accept`, a
/// masked ping with a random payload answered by the matching pong, then a masked close 1000 answered by the
/// server's close. A server that speaks HTTP but refuses the upgrade, or upgrades and then stops answering pings,
/// fails, where a TCP check would pass.
///
/// Runs on one event loop of the group and never blocks; the whole check, connect included, is bounded by `timeout`.
enum WebSocketProbe {
    enum Outcome: Sendable, Equatable {
        case passed
        case failed(String)
    }

    /// Checks `server` of `pool`; the future always succeeds, with the outcome. Completing `cancel` ends the check
    /// at once (its connection is closed).
    static func check(
        server: BindAddress, pool: BackendPool, path: String, timeout: TimeAmount, eventLoop: EventLoop, cancel: EventLoopFuture<Void>? = nil
    ) -> EventLoopFuture<Outcome> {
        let promise = eventLoop.makePromise(of: Outcome.self)
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let key = WebSocketAccept.randomKey()
        let request = Self.request(path: path, host: pool.tls?.serverName ?? server.host, port: server.port, key: key, tls: pool.tls != nil)
        let tls = pool.tls
        let connectTimeout = min(pool.connectTimeout, timeout)
        eventLoop.execute {
            let session = WebSocketProbeSession(steps: WebSocketProbeSteps(key: key, pingPayload: payload), promise: promise)
            session.arm(timeout: timeout, on: eventLoop)
            let bound = NIOLoopBound(session, eventLoop: eventLoop)
            cancel?.hop(to: eventLoop).whenSuccess { bound.value.ended("check cancelled") }
            let bootstrap = ClientBootstrap(group: eventLoop)
                .connectTimeout(connectTimeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tls {
                            try sync.addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverName ?? server.host))
                        }
                        try sync.addHandler(HTTPRequestEncoder())
                        try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
                        try sync.addHandler(WebSocketProbeSession.HTTPStage(session: bound.value, request: request))
                        bound.value.attach(channel)
                    }
                }
            let connecting: EventLoopFuture<Channel>
            if let address = pool.literalAddresses[server] ?? (try? SocketAddress(ipAddress: server.host, port: server.port)) {
                connecting = bootstrap.connect(to: address)
            } else {
                connecting = bootstrap.connect(host: server.host, port: server.port)
            }
            connecting.whenFailure { error in
                if case ChannelError.connectTimeout = error {
                    bound.value.ended("connect timed out")
                } else {
                    bound.value.ended("connect failed: \(error)")
                }
            }
        }
        return promise.futureResult
    }

    /// Awaits one check; cancelling the task ends the check at once (its connection is closed).
    static func check(server: BindAddress, pool: BackendPool, path: String, timeout: TimeAmount, on eventLoop: EventLoop) async -> Outcome {
        let cancel = eventLoop.makePromise(of: Void.self)
        let future = Self.check(server: server, pool: pool, path: path, timeout: timeout, eventLoop: eventLoop, cancel: cancel.futureResult)
        // The promise must be completed whatever happens: leaking an uncompleted promise traps in debug builds.
        future.whenComplete { _ in cancel.succeed(()) }
        return await withTaskCancellationHandler {
            (try? await future.get()) ?? .failed("check abandoned")
        } onCancel: {
            cancel.succeed(())
        }
    }

    /// The upgrade request of a check: no subprotocol, no extension, no credentials.
    static func request(path: String, host: String, port: Int, key: String, tls: Bool) -> HTTPRequestHead {
        let defaultPort = tls ? 443 : 80
        let hostHeader = host.contains(":") ? "[\(host)]" : host
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: port == defaultPort ? hostHeader : "\(hostHeader):\(port)")
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        headers.add(name: "Sec-WebSocket-Key", value: key)
        headers.add(name: "Sec-WebSocket-Version", value: "13")
        headers.add(name: "User-Agent", value: "gatehouse-health-check")
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
    }
}
