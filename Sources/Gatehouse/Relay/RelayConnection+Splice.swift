import NIOCore
import NIOHTTP1

/// Joining the client to the upgraded backend connection: the relay handlers go in, the HTTP handlers come out.
/// Removing the decoders hands on the bytes they hold past the heads (frames the backend sent right after its 101,
/// a pipelined first frame from the client); removal completes on a later loop tick, and relaying starts once the
/// decoders are out (the backend's first).
extension RelayConnection {
    /// Splices an HTTP/1.1 client whose 101 was just written; `handshake` is the context of the handler leaving.
    func spliceHTTP1(client handshake: ChannelHandlerContext, upgrade: BackendUpgrade, bufferBytes: Int) {
        do {
            try handshake.channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: bufferBytes / 2, high: bufferBytes))
            let client = handshake.pipeline.syncOperations
            try client.addHandler(RelayHandler(connection: self, side: .client))
            let backendDecoder = try self.attachBackend(upgrade)
            _ = client.removeHandler(context: handshake)
            _ = client.removeHandler(try client.handler(type: NIOHTTPResponseHeadersValidator.self))
            _ = client.removeHandler(try client.handler(type: HTTPResponseEncoder.self))
            _ = client.removeHandler(try client.handler(type: HeadSizeGuard.self))
            let clientDecoder = client.removeHandler(try client.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self))
            backendDecoder.and(clientDecoder).assumeIsolated().whenComplete { result in
                switch result {
                case .success: self.start()
                case .failure: self.abort()
                }
            }
        } catch {
            self.abandon(client: handshake.channel, backend: upgrade.channel, error: error)
        }
    }

    /// Splices an HTTP/2 stream whose 200 was just written. `early` is the DATA that arrived before the backend
    /// answered, `earlyEnd` whether it ended the stream: both are relayed before anything else.
    func spliceHTTP2Stream(_ handshake: ChannelHandlerContext, upgrade: BackendUpgrade, early: [ByteBuffer], earlyEnd: Bool) {
        do {
            let stream = handshake.pipeline.syncOperations
            try stream.addHandler(HTTP2StreamAdapter())
            try stream.addHandler(RelayHandler(connection: self, side: .client, isStream: true))
            let backendDecoder = try self.attachBackend(upgrade)
            _ = stream.removeHandler(context: handshake)
            backendDecoder.assumeIsolated().whenComplete { result in
                guard case .success = result else {
                    self.abort()
                    return
                }
                for bytes in early { self.received(bytes, from: .client) }
                if earlyEnd { self.inputClosed(.client) }
                self.start()
            }
        } catch {
            self.abandon(client: handshake.channel, backend: upgrade.channel, error: error)
        }
    }

    /// Puts the relay handler on the backend channel and takes its HTTP handlers out. The returned future
    /// completes once the response decoder is gone (its removal hands on any frames that followed the 101).
    private func attachBackend(_ upgrade: BackendUpgrade) throws -> EventLoopFuture<Void> {
        let backend = upgrade.channel.pipeline.syncOperations
        try backend.addHandler(RelayHandler(connection: self, side: .backend))
        _ = backend.removeHandler(try backend.handler(type: BackendHandshakeHandler.self))
        _ = backend.removeHandler(try backend.handler(type: NIOHTTPRequestHeadersValidator.self))
        _ = backend.removeHandler(try backend.handler(type: HTTPRequestEncoder.self))
        // The decoder also watches outbound writes: nothing of the client's may be written before it is out.
        return backend.removeHandler(try backend.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self))
    }
}
