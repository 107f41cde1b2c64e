import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

/// Collects what arrives on one HTTP/2 stream: its response headers, its DATA bytes, END_STREAM and resets.
final class H2StreamCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame.FramePayload

    let bytes: InboundCollector
    private let lock = NIOLockedValueBox<(headers: [HPACKHeaders], reset: HTTP2ErrorCode?)>(([], nil))

    init(eventLoop: EventLoop) {
        self.bytes = InboundCollector(eventLoop: eventLoop)
    }

    var headers: [HPACKHeaders] { self.lock.withLockedValue { $0.headers } }
    var reset: HTTP2ErrorCode? { self.lock.withLockedValue { $0.reset } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let headers):
            self.lock.withLockedValue { $0.headers.append(headers.headers) }
            self.bytes.poke()
            if headers.endStream { self.bytes.userInboundEventTriggered(context: context, event: ChannelEvent.inputClosed) }
        case .data(let data):
            if case .byteBuffer(let buffer) = data.data {
                self.bytes.channelRead(context: context, data: NIOAny(buffer))
            }
            if data.endStream { self.bytes.userInboundEventTriggered(context: context, event: ChannelEvent.inputClosed) }
        case .rstStream(let code):
            self.lock.withLockedValue { $0.reset = code }
            self.bytes.userInboundEventTriggered(context: context, event: ChannelEvent.inputClosed)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.bytes.channelInactive(context: context)
    }
}

/// One stream of a test HTTP/2 connection.
struct TestH2Stream: Sendable {
    let channel: Channel
    let collector: H2StreamCollector

    func readHeaders(timeout: TimeAmount = .seconds(10)) async throws -> HPACKHeaders {
        try await self.collector.bytes.wait(timeout: timeout, what: "response headers") { _, closed in
            if let first = self.collector.headers.first { return first }
            if closed { throw TestError("stream ended without headers") }
            return nil
        }
    }

    func status(timeout: TimeAmount = .seconds(10)) async throws -> Int {
        Int(try await self.readHeaders(timeout: timeout).first(name: ":status") ?? "") ?? 0
    }

    /// Sends bytes in one DATA frame.
    func send(_ bytes: [UInt8], endStream: Bool = false) async throws {
        let payload = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(self.channel.allocator.buffer(bytes: bytes)), endStream: endStream))
        try await self.channel.writeAndFlush(payload)
    }

    func sendFrame(opcode: UInt8, payload: [UInt8], fin: Bool = true) async throws {
        try await self.send(TestFrame.encode(fin: fin, opcode: opcode, payload: payload))
    }

    func readFrame(timeout: TimeAmount = .seconds(10)) async throws -> TestFrame {
        try await self.collector.bytes.wait(timeout: timeout, what: "a frame on the stream") { buffer, closed in
            if let frame = TestFrame.parse(&buffer) { return frame }
            if closed { throw TestError("stream ended while waiting for a frame") }
            return nil
        }
    }

    func readMessage(timeout: TimeAmount = .seconds(30)) async throws -> [UInt8] {
        var payload: [UInt8] = []
        while true {
            let frame = try await self.readFrame(timeout: timeout)
            if frame.opcode >= 0x8 { continue }
            payload += frame.payload
            if frame.fin { return payload }
        }
    }

    func waitForEnd(timeout: TimeAmount = .seconds(10)) async throws {
        _ = try await self.collector.bytes.wait(timeout: timeout, what: "the stream to end") { _, closed in closed ? true : nil }
    }

    /// Sends RST_STREAM (closing a stream channel that is still open resets it).
    func reset() async {
        try? await self.channel.close()
    }
}

/// An HTTP/2 client over TLS (ALPN h2) that opens RFC 8441 WebSocket streams.
final class TestH2Client: Sendable {
    let channel: Channel
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    let settings: InboundCollector
    private let serverSettings: NIOLockedValueBox<[HTTP2Setting]>
    private let goAway: NIOLockedValueBox<HTTP2StreamID?>

    private init(
        channel: Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, settings: InboundCollector,
        serverSettings: NIOLockedValueBox<[HTTP2Setting]>, goAway: NIOLockedValueBox<HTTP2StreamID?>
    ) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.settings = settings
        self.serverSettings = serverSettings
        self.goAway = goAway
    }

    /// Watches connection-level frames for the server's SETTINGS and GOAWAY, and the connection's end.
    final class SettingsWatcher: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTP2Frame
        let seen: NIOLockedValueBox<[HTTP2Setting]>
        let goAway: NIOLockedValueBox<HTTP2StreamID?>
        let signal: InboundCollector
        init(seen: NIOLockedValueBox<[HTTP2Setting]>, goAway: NIOLockedValueBox<HTTP2StreamID?>, signal: InboundCollector) {
            self.seen = seen
            self.goAway = goAway
            self.signal = signal
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data).payload {
            case .settings(.settings(let settings)):
                self.seen.withLockedValue { $0 += settings }
                self.signal.poke()
            case .goAway(let lastStreamID, _, _):
                self.goAway.withLockedValue { $0 = lastStreamID }
                self.signal.poke()
            default:
                break
            }
        }
        func channelInactive(context: ChannelHandlerContext) {
            self.signal.channelInactive(context: context)
        }
    }

    static func connect(port: Int, serverName: String = "localhost", alpn: [String] = ["h2"]) async throws -> TestH2Client {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.applicationProtocols = alpn
        let context = try NIOSSLContext(configuration: configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ClientBootstrap(group: group).connectTimeout(.seconds(5)).connect(host: "127.0.0.1", port: port).get()
        let seen = NIOLockedValueBox<[HTTP2Setting]>([])
        let goAway = NIOLockedValueBox<HTTP2StreamID?>(nil)
        let signal = InboundCollector(eventLoop: channel.eventLoop)
        let multiplexer = try await channel.eventLoop.submit {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
            let multiplexer = try sync.configureHTTP2Pipeline(
                mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
            ) { stream in stream.eventLoop.makeSucceededVoidFuture() }
            try sync.addHandler(SettingsWatcher(seen: seen, goAway: goAway, signal: signal))
            return multiplexer
        }.get()
        let client = TestH2Client(channel: channel, multiplexer: multiplexer, settings: signal, serverSettings: seen, goAway: goAway)
        _ = try await signal.wait(timeout: .seconds(10), what: "the server's SETTINGS") { _, _ in seen.withLockedValue { $0.isEmpty ? nil : true } }
        return client
    }

    /// The value the server announced for `parameter`.
    func serverSetting(_ parameter: HTTP2SettingsParameter) -> Int? {
        self.serverSettings.withLockedValue { $0.last { $0.parameter == parameter }?.value }
    }

    /// Waits for the server's GOAWAY and returns the last stream id it names.
    func waitForGoAway(timeout: TimeAmount = .seconds(10)) async throws -> HTTP2StreamID {
        try await self.settings.wait(timeout: timeout, what: "GOAWAY") { _, closed in
            if let id = self.goAway.withLockedValue({ $0 }) { return id }
            if closed { throw TestError("connection closed without GOAWAY") }
            return nil
        }
    }

    /// Waits for the server to close the connection.
    func waitForConnectionClose(timeout: TimeAmount = .seconds(10)) async throws {
        _ = try await self.settings.wait(timeout: timeout, what: "the connection to close") { _, closed in closed ? true : nil }
    }

    /// Opens a stream and sends `headers` (an extended CONNECT by default).
    func openStream(path: String, extra: [(String, String)] = [], method: String = "CONNECT", protocolName: String? = "websocket", endStream: Bool = false) async throws -> TestH2Stream {
        let collector = H2StreamCollector(eventLoop: self.channel.eventLoop)
        let stream = try await self.multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(collector) }
        }.get()
        var headers = HPACKHeaders([(":method", method), (":scheme", "https"), (":path", path), (":authority", "localhost")])
        if let protocolName { headers.add(name: ":protocol", value: protocolName) }
        headers.add(name: "sec-websocket-version", value: "13")
        for (name, value) in extra { headers.add(name: name, value: value) }
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: endStream)))
        return TestH2Stream(channel: stream, collector: collector)
    }

    func close() async {
        try? await self.channel.close()
    }
}
