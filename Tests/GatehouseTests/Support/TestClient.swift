import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A response head read by a test peer.
struct TestResponseHead {
    var status: Int
    var headers: [(String, String)]

    func header(_ name: String) -> String? {
        self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    func headers(_ name: String) -> [String] {
        self.headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}

/// TLS settings of a test client.
struct TestTLS {
    var trust: [NIOSSLCertificate]? = nil
    var serverName: String? = nil
    var maximumVersion: TLSVersion? = nil
    var minimumVersion: TLSVersion = .tlsv12
    var alpn: [String] = []
}

/// A client that speaks raw bytes to the proxy, so tests can send exactly what they mean, malformed or not.
final class TestClient: Sendable {
    let channel: Channel
    let inbound: InboundCollector

    init(channel: Channel, inbound: InboundCollector) {
        self.channel = channel
        self.inbound = inbound
    }

    static func connect(port: Int, host: String = "127.0.0.1", tls: TestTLS? = nil) async throws -> TestClient {
        let group = MultiThreadedEventLoopGroup.singleton
        let sslContext: NIOSSLContext? = try tls.map { options in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = options.minimumVersion
            configuration.maximumTLSVersion = options.maximumVersion
            configuration.applicationProtocols = options.alpn
            if let trust = options.trust {
                configuration.trustRoots = .certificates(trust)
            } else {
                configuration.certificateVerification = .none
            }
            return try NIOSSLContext(configuration: configuration)
        }
        let serverName = tls?.serverName
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port).get()
        let collector = InboundCollector(eventLoop: channel.eventLoop)
        try await channel.eventLoop.submit {
            if let sslContext {
                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
            }
            try channel.pipeline.syncOperations.addHandler(collector)
        }.get()
        return TestClient(channel: channel, inbound: collector)
    }

    // MARK: Writing

    func send(_ bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(self.channel.allocator.buffer(bytes: bytes))
    }

    func send(_ text: String) async throws {
        try await self.send(Array(text.utf8))
    }

    /// Sends a masked frame.
    func sendFrame(opcode: UInt8, payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0, masked: Bool = true) async throws {
        try await self.send(TestFrame.encode(fin: fin, rsv: rsv, opcode: opcode, payload: payload, mask: masked ? TestFrame.randomMask() : nil))
    }

    /// Sends an upgrade request for `path`.
    func sendUpgrade(path: String, host: String = "localhost", key: String = TestClient.randomKey(), extra: [(String, String)] = []) async throws {
        try await self.send(Self.upgradeRequest(path: path, host: host, key: key, extra: extra))
    }

    static func upgradeRequest(path: String, host: String = "localhost", key: String = TestClient.randomKey(), extra: [(String, String)] = []) -> String {
        var text = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        text += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in extra { text += "\(name): \(value)\r\n" }
        return text + "\r\n"
    }

    static func randomKey() -> String {
        Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    /// Shuts the write side (TCP FIN).
    func shutdownOutput() async throws {
        try await self.channel.close(mode: .output)
    }

    func close() async {
        // With half-closure allowed, NIOSSL (2.37) answers the server's close_notify during its own shutdown with an
        // inputClosed event instead of finishing, and the close waits out its 5 s timeout.
        try? await self.channel.setOption(.allowRemoteHalfClosure, value: false).get()
        try? await self.channel.close()
    }

    // MARK: Reading

    func readHead(timeout: TimeAmount = .seconds(10)) async throws -> TestResponseHead {
        let (startLine, headers) = try await self.readRawHead(timeout: timeout)
        let parts = startLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestError("bad status line \(startLine)") }
        return TestResponseHead(status: status, headers: headers)
    }

    func readHead(timeout: TimeAmount = .seconds(10), requestLine: Bool) async throws -> TestRequestHead {
        let (startLine, headers) = try await self.readRawHead(timeout: timeout)
        let parts = startLine.split(separator: " ")
        guard parts.count == 3 else { throw TestError("bad request line \(startLine)") }
        return TestRequestHead(method: String(parts[0]), target: String(parts[1]), headers: headers)
    }

    private func readRawHead(timeout: TimeAmount) async throws -> (String, [(String, String)]) {
        try await self.inbound.wait(timeout: timeout, what: "a message head") { buffer, closed in
            let view = buffer.readableBytesView
            guard let end = Self.headEnd(view) else {
                if closed { throw TestError("connection closed before a message head") }
                return nil
            }
            let text = String(decoding: view[view.startIndex..<end], as: UTF8.self)
            buffer.moveReaderIndex(forwardBy: end - view.startIndex + 4)
            var lines = text.components(separatedBy: "\r\n")
            let startLine = lines.removeFirst()
            let headers = lines.compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
            }
            return (startLine, headers)
        }
    }

    static func acceptValue(_ key: String) -> String {
        Data(Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
    }

    private static func headEnd(_ view: ByteBufferView) -> Int? {
        var index = view.startIndex
        while index + 3 < view.endIndex {
            if view[index] == 13, view[index + 1] == 10, view[index + 2] == 13, view[index + 3] == 10 { return index }
            index += 1
        }
        return nil
    }

    func readBody(length: Int, timeout: TimeAmount = .seconds(10)) async throws -> String {
        try await self.inbound.wait(timeout: timeout, what: "\(length) body bytes") { buffer, closed in
            if let text = buffer.readString(length: length) { return text }
            if closed { throw TestError("connection closed before the body") }
            return nil
        }
    }

    /// Reads a response head and its body (by Content-Length).
    func readResponse(timeout: TimeAmount = .seconds(10)) async throws -> (TestResponseHead, String) {
        let head = try await self.readHead(timeout: timeout)
        let length = Int(head.header("content-length") ?? "0") ?? 0
        return (head, try await self.readBody(length: length, timeout: timeout))
    }

    func readFrame(timeout: TimeAmount = .seconds(10)) async throws -> TestFrame {
        try await self.inbound.wait(timeout: timeout, what: "a frame") { buffer, closed in
            if let frame = TestFrame.parse(&buffer) { return frame }
            if closed { throw TestError("connection closed while waiting for a frame (\(buffer.readableBytes) bytes pending)") }
            return nil
        }
    }

    /// Reads frames until a data message completes (answering nothing), returning its opcode and payload.
    func readMessage(timeout: TimeAmount = .seconds(20)) async throws -> (opcode: UInt8, payload: [UInt8]) {
        var opcode: UInt8?
        var payload: [UInt8] = []
        while true {
            let frame = try await self.readFrame(timeout: timeout)
            if frame.opcode >= 0x8 { continue }
            if opcode == nil { opcode = frame.opcode }
            payload += frame.payload
            if frame.fin, let opcode { return (opcode, payload) }
        }
    }

    /// Waits until the peer closes the connection; returns the bytes that arrived meanwhile.
    func waitForClose(timeout: TimeAmount = .seconds(10)) async throws -> ByteBuffer {
        try await self.inbound.wait(timeout: timeout, what: "the connection to close") { buffer, closed in
            guard closed else { return nil }
            let rest = buffer
            buffer.clear()
            return rest
        }
    }
}
