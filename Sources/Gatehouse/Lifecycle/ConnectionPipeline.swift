import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS

/// Sets up an accepted connection: TLS (with ALPN choosing HTTP/2 or HTTP/1.1) or plain HTTP/1.1, always from the
/// event loop's current state, so a reload applies to the next connection.
enum ConnectionPipeline {
    static func configure(_ channel: Channel, listenerKey: String, engine: ProxyEngine) throws {
        let accepted = NIODeadline.now()
        let state = engine.loop(channel.eventLoop).state
        guard let listener = state.listeners[listenerKey] else {
            throw ChannelError.inappropriateOperationForState  // removed by a reload: refuse
        }
        let info = ListenerInfo(name: listener.name, isTLS: listener.tls != nil)
        let limits = state.config.defaultLimits
        // Refused before any TLS or HTTP work: the cheapest answer to a flood of idle connections.
        guard
            let pending = engine.pending.admit(
                ip: channel.remoteAddress?.ipAddress, maxTotal: limits.maxPendingConnections,
                maxPerIP: limits.maxPendingConnectionsPerIP
            )
        else {
            engine.metrics.pendingLimitRefusals.increment()
            throw PendingConnectionCounter.Exceeded()
        }
        channel.closeFuture.whenComplete { _ in pending.release() }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ReceiveBufferPin())
        guard info.isTLS else {
            try Self.addHTTP1(sync, engine: engine, info: info, limits: limits, accepted: accepted, pending: pending)
            return
        }
        guard let tls = state.listenerTLS[info.name] else { throw ChannelError.inappropriateOperationForState }
        // Before the first read: the ClientHello comes in one piece.
        try channel.syncOptions?.setOption(.recvAllocator, value: ReceiveBuffers.tlsClient)
        let metrics = engine.metrics
        let deadline = AcceptDeadlineHandler(deadline: accepted + TimeAmount(limits.handshakeTimeout)) {
            metrics.tlsHandshakeFailed(listener: info.name)
        }
        try sync.addHandler(NIOSSLServerHandler(context: tls.context))
        try sync.addHandler(deadline)
        let maxStreams = listener.maxConcurrentStreams
        let verifiesClients = tls.verifiesClients
        try sync.addHandler(
            ApplicationProtocolNegotiationHandler { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    _ = sync.removeHandler(deadline)
                    // Read once per connection, now that the handshake verified it; every request of the
                    // connection (each HTTP/2 stream) carries it.
                    let certificate: ClientCertificate?
                    do {
                        certificate = verifiesClients ? try ClientCertificate.peer(of: sync) : nil
                    } catch {
                        // Verified by BoringSSL yet unreadable here: closed, never passed on as anonymous.
                        metrics.tlsHandshakeFailed(listener: info.name)
                        channel.close(promise: nil)
                        return
                    }
                    if case .negotiated("h2") = result {
                        try Self.addHTTP2(
                            channel, engine: engine, info: info, limits: limits, maxStreams: maxStreams, pending: pending,
                            certificate: certificate
                        )
                    } else {
                        try Self.addHTTP1(
                            sync, engine: engine, info: info, limits: limits, accepted: accepted, pending: pending,
                            certificate: certificate
                        )
                    }
                }
            }
        )
    }

    private static func addHTTP1(
        _ sync: ChannelPipeline.SynchronousOperations, engine: ProxyEngine, info: ListenerInfo, limits: LimitsConfig,
        accepted: NIODeadline, pending: PendingTicket, certificate: ClientCertificate? = nil
    ) throws {
        let headGuard = HeadSizeGuard(limit: limits.maxHeadBytes)
        try sync.addHandler(headGuard)
        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        try sync.addHandler(HTTPResponseEncoder())
        // Nothing the proxy answers may carry CR, LF or NUL in a header, whatever reached it.
        try sync.addHandler(NIOHTTPResponseHeadersValidator())
        try sync.addHandler(
            HTTP1HandshakeHandler(
                engine: engine, listener: info, headGuard: headGuard, limits: limits, accepted: accepted, pending: pending,
                clientCertificate: certificate
            )
        )
    }

    private static func addHTTP2(
        _ channel: Channel, engine: ProxyEngine, info: ListenerInfo, limits: LimitsConfig, maxStreams: Int, pending: PendingTicket,
        certificate: ClientCertificate?
    ) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        // NIOHTTP2 enforces the limit it announces as a connection error; it is given room above the listener's
        // limit, which HTTP2OutboundFrameEditor announces and the watcher enforces stream by stream.
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: Self.libraryStreamLimit(advertised: maxStreams)),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeadBytes),
            HTTP2Setting(parameter: .enableConnectProtocol, value: 1),
        ]
        var stream = NIOHTTP2Handler.StreamConfiguration()
        // A stream's writability follows its flow-control window and this much buffered output: the relay stops
        // reading the backend while a stream cannot take more.
        stream.outboundBufferSizeHighWatermark = limits.bufferBytes
        stream.outboundBufferSizeLowWatermark = limits.bufferBytes / 2
        let watcher = HTTP2ConnectionWatcher(
            connection: channel, timeout: TimeAmount(limits.handshakeTimeout), maxStreams: maxStreams,
            maxHandshakes: limits.maxHandshakesPerConnection, pending: pending
        )
        // HTTP/2 has no half-closed connections: a client's FIN ends them.
        try channel.pipeline.syncOperations.addHandler(CloseOnInputClosedHandler())
        // Many streams flush in one event-loop tick; one TLS record and one write for all of them.
        try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
        try channel.pipeline.syncOperations.addHandler(HTTP2OutboundFrameEditor(advertisedMaxStreams: maxStreams, watcher: watcher))
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: stream, streamDelegate: watcher
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let withinLimit = watcher.streamInitialized(stream)
                try stream.pipeline.syncOperations.addHandler(
                    HTTP2StreamHandshakeHandler(
                        engine: engine, listener: info, watcher: watcher, withinStreamLimit: withinLimit, clientCertificate: certificate
                    )
                )
            }
        }
        watcher.start()
        // Registered on its loop so a drain can send it GOAWAY; one that negotiated h2 after the drain began gets
        // it at once.
        let loop = engine.loop(channel.eventLoop)
        let key = ObjectIdentifier(channel)
        loop.http2Connections[key] = watcher
        channel.closeFuture.whenComplete { _ in loop.http2Connections[key] = nil }
        if engine.isDraining { watcher.drain() }
    }
}

extension ConnectionPipeline {
    /// The concurrency NIOHTTP2 itself enforces: enough above the advertised limit that a client briefly over it
    /// (its refused streams not yet closed) gets REFUSED_STREAM rather than a connection error.
    static func libraryStreamLimit(advertised: Int) -> Int {
        min(advertised * 2 + 100, Int(Int32.max))
    }
}
