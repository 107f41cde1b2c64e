import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import Gatehouse

/// `compression: inspect | passthrough | strip` with permessage-deflate negotiated between real peers.
@Suite("Compression")
struct CompressionTests {
    static func config(backendPort: Int, route: String) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: py
            servers: ["127.0.0.1:\(backendPort)"]
        routes:
          - name: py
            path: "/"
            backend: py
            origins: ["*"]
        \(route)
        """
    }

    /// close_timeout leaves a busy Python peer (still sending its bomb on a loaded machine) time to read the 1009
    /// close before the proxy drops the connection: dropped earlier, unread bytes turn it into a reset (1006).
    static let limited = """
            limits: { max_message_bytes: 1MiB, close_timeout: 5s }
        """

    static func value(_ key: String, in line: String) -> String? {
        line.split(separator: " ").first { $0.hasPrefix("\(key)=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    // MARK: Configuration and request edits

    @Test func compressionIsReadStrictly() throws {
        let base = Self.config(backendPort: 9, route: "")
        #expect(try ProxyConfig.parse(yaml: base, file: "proxy.yaml").routes[0].compression == .inspect)
        for mode in CompressionMode.allCases {
            let config = try ProxyConfig.parse(yaml: base + "    compression: \(mode.rawValue)\n", file: "proxy.yaml")
            #expect(config.routes[0].compression == mode)
        }
        do {
            _ = try ProxyConfig.parse(yaml: base + "    compression: off\n", file: "proxy.yaml")
            Issue.record("an unknown compression mode was accepted")
        } catch {
            #expect(error.line == 12)
            #expect(error.message == "compression must be inspect, passthrough or strip, found 'off'")
        }
        do {
            _ = try ProxyConfig.parse(yaml: base + "    compresion: passthrough\n", file: "proxy.yaml")
            Issue.record("a misspelt compression key was accepted")
        } catch {
            #expect(error.message.contains("unknown key 'compresion'"), "\(error)")
        }
    }

    @Test func stripRemovesOnlyPermessageDeflateFromTheOffer() {
        let request = UpgradeRequest(
            target: "/t", authority: "localhost",
            headers: HTTPHeaders([
                ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits, x-custom; a=1"),
                ("sec-websocket-extensions", "PerMessage-Deflate"),
            ]),
            scheme: "http", clientAddress: nil, listener: "plain", transport: .http1
        )
        var edits = ForwardedRequest.Edits(target: "/t", subprotocols: nil, dropAuthorization: false, dropCookies: [], identity: [], key: nil)
        #expect(ForwardedRequest.make(from: request, edits: edits).headers["sec-websocket-extensions"].count == 2)
        edits.dropExtensions = ["permessage-deflate"]
        #expect(ForwardedRequest.make(from: request, edits: edits).headers["sec-websocket-extensions"] == ["x-custom; a=1"])
        let onlyDeflate = UpgradeRequest(
            target: "/t", authority: "localhost", headers: HTTPHeaders([("Sec-WebSocket-Extensions", "permessage-deflate")]),
            scheme: "http", clientAddress: nil, listener: "plain", transport: .http1
        )
        #expect(!ForwardedRequest.make(from: onlyDeflate, edits: edits).headers.contains(name: "sec-websocket-extensions"))
    }

    // MARK: Real peers

    /// 64 MiB of zeros (about 64 KiB compressed) under a 1 MiB limit: 1009 to the client, and the backend gets at
    /// most the limit plus one 1 MiB fragment of it (nothing of the single-frame message, which is cut).
    @Test(arguments: ["single", "fragmented"])
    func aCompressionBombGets1009AndStopsAtTheLimit(shape: String) async throws {
        try await PythonPeerServer.with("ws_deflate_limits.py", ["server"]) { server, port in
            try await TestProxy.with(Self.config(backendPort: port, route: Self.limited)) { proxy in
                let result = try await ExternalProcess.run(
                    ["python3", ExternalProcess.peerScript("ws_deflate_limits.py"), "client", "ws://127.0.0.1:\(try proxy.port("plain"))/", "bomb", shape],
                    timeout: 60
                )
                #expect(result.status == 0, "\(result.output)")
                #expect(result.output.contains("closed code=1009 reason=message larger than 1048576 bytes inflated"), "\(result.output)")
                let done = try await server.waitForLine(containing: "done ", timeout: .seconds(20))
                let received = Int(Self.value("received", in: done) ?? "") ?? -1
                #expect(received >= 0 && received <= 2 << 20, "\(done)")
                #expect(Self.value("messages", in: done) == "0", "\(done)")
                let line = try await proxy.logs.waitForLine(containing: "connection closed")
                #expect(line.contains("close_code=1009"), "\(line)")
            }
        }
    }

    /// 1,000 compressed messages each way (context takeover, then none), echoed byte for byte under `inspect`; the
    /// inflaters stayed in step, as a 2 MiB message after them (a few KiB on the wire) still gets 1009.
    @Test(arguments: [false, true])
    func contextTakeoverStaysCorrectOverAThousandMessages(noContextTakeover: Bool) async throws {
        let flags = noContextTakeover ? ["--no-context-takeover"] : []
        try await PythonPeerServer.with("ws_deflate_limits.py", ["server"] + flags) { server, port in
            try await TestProxy.with(Self.config(backendPort: port, route: Self.limited)) { proxy in
                let result = try await ExternalProcess.run(
                    ["python3", ExternalProcess.peerScript("ws_deflate_limits.py"), "client", "ws://127.0.0.1:\(try proxy.port("plain"))/",
                     "traffic", "1000", "--then-oversize"] + flags,
                    timeout: 90
                )
                #expect(result.status == 0, "\(result.output)")
                #expect(result.output.contains("ok messages=1000 extensions=permessage-deflate"), "\(result.output)")
                #expect(result.output.contains("oversize closed code=1009"), "\(result.output)")
                let done = try await server.waitForLine(containing: "done ", timeout: .seconds(20))
                #expect(Self.value("messages", in: done) == "1000", "\(done)")
            }
        }
    }

    @Test func stripYieldsAnUncompressedSession() async throws {
        try await PythonPeerServer.with("ws_deflate_limits.py", ["server"]) { server, port in
            let route = Self.limited + "\n    compression: strip"
            try await TestProxy.with(Self.config(backendPort: port, route: route)) { proxy in
                let result = try await ExternalProcess.run(
                    ["python3", ExternalProcess.peerScript("ws_deflate_limits.py"), "client", "ws://127.0.0.1:\(try proxy.port("plain"))/", "strip"],
                    timeout: 30
                )
                #expect(result.status == 0, "\(result.output)")
                #expect(result.output.contains("extensions= header=\n"), "\(result.output)")
                let done = try await server.waitForLine(containing: "done ", timeout: .seconds(20))
                #expect(Self.value("extensions", in: done) == "", "\(done)")
            }
        }
    }

    /// `passthrough` is the behaviour before inspection: a message that inflates far past the limit passes, as its
    /// compressed size is under it.
    @Test
    func passthroughForwardsCompressedMessagesUnchecked() async throws {
        let backend = try await ScriptedBackend.start()
        let route = Self.limited + "\n    compression: passthrough"
        try await TestProxy.with(Self.config(backendPort: backend.port, route: route)) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/", extra: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            try await upstream.accept(request, extra: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            #expect(try await client.readHead().status == 101)
            let bomb = try TestDeflater().message([[UInt8]](repeating: [UInt8](repeating: 0x61, count: 1 << 20), count: 8))
            try await client.send(TestFrame.encode(rsv: 0b100, opcode: TestFrame.binary, payload: bomb))
            #expect(try await upstream.readFrame() == TestFrame(fin: true, rsv: 0b100, opcode: TestFrame.binary, masked: true, payload: bomb))
            await client.close()
            await upstream.close()
        }
        await backend.stop()
    }

    /// The backend never sees the offer, and one that accepts permessage-deflate all the same is refused (502).
    @Test func stripHidesTheOfferAndRefusesABackendThatCompressesAnyway() async throws {
        let backend = try await ScriptedBackend.start()
        let route = Self.limited + "\n    compression: strip"
        try await TestProxy.with(Self.config(backendPort: backend.port, route: route)) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/", extra: [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            #expect(request.header("sec-websocket-extensions") == nil)
            try await upstream.accept(request, extra: [("Sec-WebSocket-Extensions", "permessage-deflate")])
            #expect(try await client.readHead().status == 502)
            await client.close()
            await upstream.close()
        }
        await backend.stop()
    }

    /// Under `inspect` the compressed frames pass exactly as sent both ways (RSV1, the client's mask, the bytes),
    /// and a backend message that inflates past the limit is stopped: the backend gets 1009, the client only the
    /// start of the frame and then the end of the connection.
    @Test func compressedFramesPassUnchangedAndABackendBombIsStopped() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(Self.config(backendPort: backend.port, route: Self.limited)) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/", extra: [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            #expect(request.header("sec-websocket-extensions") == "permessage-deflate; client_max_window_bits")
            try await upstream.accept(request, extra: [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=12")])
            #expect(try await client.readHead().status == 101)
            let fromClient = try TestDeflater(windowBits: 12)
            let fromBackend = try TestDeflater()
            for index in 0..<20 {
                let text = DeflateInspectorTests.jsonish(index, repeats: 30)
                let payload = try fromClient.message(text)
                let mask: [UInt8] = [UInt8(index), 0x5A, 0xA5, 0x0F]
                try await client.send(TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: payload, mask: mask))
                let forwarded = try await upstream.readFrame()
                #expect(forwarded == TestFrame(fin: true, rsv: 0b100, opcode: TestFrame.text, masked: true, payload: payload))
                let answer = try fromBackend.message(text)
                try await upstream.send(TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: answer, mask: nil))
                #expect(try await client.readFrame() == TestFrame(fin: true, rsv: 0b100, opcode: TestFrame.text, masked: false, payload: answer))
            }
            let bomb = try fromBackend.message([[UInt8]](repeating: [UInt8](repeating: 0x61, count: 1 << 20), count: 8))
            let frame = TestFrame.encode(rsv: 0b100, opcode: TestFrame.binary, payload: bomb, mask: nil)
            try await upstream.send(frame)
            let close = try await upstream.readFrame()
            #expect(close.closeCode == 1009 && close.closeReason == "message larger than 1048576 bytes inflated")
            let rest = try await client.waitForClose(timeout: .seconds(10))
            #expect(rest.readableBytes < frame.count)
            let line = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(line.contains("close_code=1009"), "\(line)")
            await upstream.close()
        }
        await backend.stop()
    }
}
