import Crypto
import Foundation
import GatehouseCluster
import NIOCore
import NIOPosix
import Testing
@testable import Gatehouse

/// Pushes in the pure state machine: where a message of the proxy's own may enter the backend's stream toward the
/// client, and the queue's bounds. Everything written toward the client is kept in one byte stream, in order.
@Suite("Push state machine")
struct PushStateMachineTests {
    final class Driver {
        var machine: RelayStateMachine
        /// Every byte written toward the client (relayed runs and the proxy's own frames), in order.
        var toClient: [UInt8] = []

        init(start: Bool = true) {
            self.machine = RelayStateMachine(settings: RelayStateMachineTests.settings())
            if start { self.start() }
        }

        func start() {
            self.machine.start(now: RelayStateMachineTests.Driver.t0)
            self.settle()
        }

        /// Reads `bytes` from `side` the way ``RelayConnection`` does: runs, settling if asked, read-complete.
        func read(_ bytes: [UInt8], from side: RelaySide) {
            var buffer = ByteBuffer(bytes: bytes)
            while case .write(let run, let target) = self.machine.received(&buffer, from: side) {
                if target == .client { self.toClient += run.readableBytesView }
            }
            if self.machine.needsSettling { self.settle() }
            _ = self.machine.readComplete(from: side)
        }

        func push(_ text: String) -> PushOutcome {
            self.push(PushMessage(text: true, body: Data(text.utf8)))
        }

        func push(_ message: PushMessage) -> PushOutcome {
            let outcome = self.machine.push(message)
            if self.machine.needsSettling { self.settle() }
            return outcome
        }

        func settle() {
            var count = 0
            while let action = self.machine.nextAction() {
                count += 1
                precondition(count < 1000, "the machine does not settle")
                if case .write(let bytes, .client) = action { self.toClient += bytes.readableBytesView }
            }
        }

        /// The frames written toward the client so far.
        var clientFrames: [TestFrame] {
            var buffer = ByteBuffer(bytes: self.toClient)
            var frames: [TestFrame] = []
            while let frame = TestFrame.parse(&buffer) { frames.append(frame) }
            return frames
        }

        /// The text payloads of the data frames written toward the client.
        var clientTexts: [String] {
            self.clientFrames.filter { $0.opcode < 8 }.map { String(decoding: $0.payload, as: UTF8.self) }
        }
    }

    static func backend(_ opcode: UInt8, _ text: String, fin: Bool = true) -> [UInt8] {
        TestFrame.encode(fin: fin, opcode: opcode, payload: Array(text.utf8), mask: nil)
    }

    @Test func aPushWhileIdleIsWrittenAtOnceAsOneUnmaskedFrame() {
        let driver = Driver()
        #expect(driver.push("hello") == .queued)
        #expect(driver.toClient == [0x81, 5] + Array("hello".utf8))
        // Binary, with a 16-bit and a 64-bit length.
        for size in [126, 70_000] {
            let fresh = Driver()
            let body = (0..<size).map { UInt8(truncatingIfNeeded: $0) }
            #expect(fresh.push(PushMessage(text: false, body: Data(body))) == .queued)
            #expect(fresh.toClient == TestFrame.encode(opcode: TestFrame.binary, payload: body, mask: nil))
        }
        #expect(driver.machine.pushedMessages == 1)
        #expect(driver.machine.messagesToClient == 1)
        #expect(!driver.machine.needsSettling)
    }

    @Test func aPushIsFlushedRightAway() {
        let driver = Driver()
        _ = driver.machine.push(PushMessage(text: true, body: Data("x".utf8)))
        guard case .write(_, .client) = driver.machine.nextAction() else {
            Issue.record("the push is not written first")
            return
        }
        #expect(driver.machine.nextAction() == .flush(.init(side: .client, sampleBacklog: false)))
        #expect(driver.machine.nextAction() == nil)
    }

    @Test func aPushDuringAFragmentedMessageWaitsForItsLastFragmentNotForAPing() {
        let driver = Driver()
        driver.read(Self.backend(TestFrame.text, "part one ", fin: false), from: .backend)
        #expect(driver.push("pushed") == .queued)
        #expect(driver.clientTexts == ["part one "])
        // A control frame of the backend's in between does not end the message.
        driver.read(TestFrame.encode(opcode: TestFrame.ping, payload: [1], mask: nil), from: .backend)
        driver.read(Self.backend(TestFrame.continuation, "part two ", fin: false), from: .backend)
        #expect(driver.clientTexts == ["part one ", "part two "])
        #expect(driver.machine.needsSettling)
        // The client's traffic does not release it either.
        driver.read(TestFrame.encode(opcode: TestFrame.text, payload: [0x61]), from: .client)
        #expect(driver.clientTexts == ["part one ", "part two "])
        driver.read(Self.backend(TestFrame.continuation, "end"), from: .backend)
        #expect(driver.clientTexts == ["part one ", "part two ", "end", "pushed"])
        #expect(driver.clientFrames.map(\.opcode) == [TestFrame.text, TestFrame.ping, 0, 0, TestFrame.text])
        #expect(driver.clientFrames.last == TestFrame(fin: true, rsv: 0, opcode: TestFrame.text, masked: false, payload: Array("pushed".utf8)))
        #expect(!driver.machine.needsSettling)
    }

    @Test func aPushInTheMiddleOfAFrameWaitsForTheFrameToEnd() {
        let driver = Driver()
        let frame = Self.backend(TestFrame.binary, String(repeating: "z", count: 300))
        driver.read(Array(frame[0..<150]), from: .backend)
        #expect(driver.push("pushed") == .queued)
        #expect(driver.toClient == Array(frame[0..<150]))
        driver.read(Array(frame[150..<299]), from: .backend)
        #expect(driver.toClient == Array(frame[0..<299]))
        driver.read(Array(frame[299...]), from: .backend)
        #expect(driver.toClient == frame + [0x81, 6] + Array("pushed".utf8))
    }

    @Test func aPushWaitsWhenAFrameAndTheNextMessageArriveInOneRead() {
        let driver = Driver()
        driver.read(Self.backend(TestFrame.text, "a", fin: false), from: .backend)
        #expect(driver.push("pushed") == .queued)
        // The message ends and the next one starts, unfinished, in the same read: the push waits for that one.
        driver.read(Self.backend(TestFrame.continuation, "b") + Self.backend(TestFrame.text, "c", fin: false), from: .backend)
        #expect(driver.clientTexts == ["a", "b", "c"])
        driver.read(Self.backend(TestFrame.continuation, "d"), from: .backend)
        #expect(driver.clientTexts == ["a", "b", "c", "d", "pushed"])
    }

    @Test func theQueueIsBoundedByMessagesAndByBytes() {
        let driver = Driver()
        driver.read(Self.backend(TestFrame.text, "held", fin: false), from: .backend)
        for index in 0..<PushQueue.maxMessages {
            #expect(driver.push("m\(index)") == .queued)
        }
        #expect(driver.push("one too many") == .full)
        driver.read(Self.backend(TestFrame.continuation, "done"), from: .backend)
        #expect(driver.clientTexts == ["held", "done"] + (0..<PushQueue.maxMessages).map { "m\($0)" })
        #expect(driver.push("room again") == .queued)

        let bytes = Driver()
        bytes.read(Self.backend(TestFrame.text, "held", fin: false), from: .backend)
        let large = PushMessage(text: false, body: Data(count: 64 << 10))
        for _ in 0..<(PushQueue.maxPayloadBytes / (64 << 10)) {
            #expect(bytes.push(large) == .queued)
        }
        #expect(bytes.push(large) == .full)
        #expect(bytes.push(PushMessage(text: false, body: Data())) == .queued)  // an empty message still fits
        #expect(bytes.machine.pushes.payloadBytes == PushQueue.maxPayloadBytes)
    }

    @Test func afterACloseStartsPushesAreRefusedAndQueuedOnesDropped() {
        let driver = Driver()
        driver.read(Self.backend(TestFrame.text, "held", fin: false), from: .backend)
        #expect(driver.push("queued before the close") == .queued)
        driver.machine.close(code: .goingAway, reason: "server shutting down")
        driver.settle()
        #expect(driver.push("after the close") == .closed)
        driver.read(Self.backend(TestFrame.continuation, "end"), from: .backend)
        // The close (a control frame) went out between the fragments; the queued push is never written.
        #expect(driver.clientFrames.map(\.opcode) == [TestFrame.text, TestFrame.close])
        #expect(driver.machine.pushes.isEmpty)
        #expect(driver.machine.pushedMessages == 0)

        let clientClosed = Driver()
        clientClosed.read(TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(1000)), from: .client)
        #expect(clientClosed.push("late") == .closed)
    }

    @Test func pushesWaitWhileTheClientIsNotWritable() {
        let driver = Driver()
        _ = driver.machine.writabilityChanged(.client, writable: false)
        #expect(driver.push("one") == .queued)
        #expect(driver.push("two") == .queued)
        #expect(driver.toClient.isEmpty)
        _ = driver.machine.writabilityChanged(.client, writable: true)
        #expect(driver.machine.needsSettling)
        driver.settle()
        #expect(driver.clientTexts == ["one", "two"])
    }

    @Test func aPushBeforeTheSpliceEndsIsWrittenWhenRelayingStarts() {
        let driver = Driver(start: false)
        #expect(driver.push("early") == .queued)
        #expect(driver.toClient.isEmpty)
        driver.start()
        #expect(driver.clientTexts == ["early"])
    }
}

/// Admin requests with a body, as a raw HTTP/1.1 exchange (`AdminClient` sends none).
enum MessagesAdmin {
    static func request(
        _ proxy: TestProxy, _ method: String, _ path: String, body: [UInt8] = [], contentType: String? = nil
    ) async throws -> (status: Int, body: String) {
        let port = try #require(proxy.server.adminAddress?.port)
        let client = try await TestClient.connect(port: port)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nGatehouse-Admin: 1\r\nContent-Length: \(body.count)\r\n"
        head += "Connection: close\r\n"
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        try await client.send(Array((head + "\r\n").utf8) + body)
        let (response, text) = try await client.readResponse()
        await client.close()
        return (response.status, text)
    }

    /// POSTs a text message.
    static func post(_ proxy: TestProxy, _ path: String, text: String) async throws -> (status: Int, body: String) {
        try await self.request(proxy, "POST", path, body: Array(text.utf8), contentType: "text/plain")
    }

    static func json(_ text: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(object as? [String: Any], "not a JSON object: \(text)")
    }

    /// `{"delivered": n, "full": f}` as a pair.
    static func counts(_ text: String) throws -> [Int] {
        let object = try self.json(text)
        return [object["delivered"] as? Int ?? -1, object["full"] as? Int ?? -1]
    }
}

extension TestClient {
    /// Reads exactly `count` raw bytes.
    func readBytes(_ count: Int, timeout: TimeAmount = .seconds(10)) async throws -> [UInt8] {
        try await self.inbound.wait(timeout: timeout, what: "\(count) bytes") { buffer, closed in
            if let bytes = buffer.readBytes(length: count) { return bytes }
            if closed { throw TestError("connection closed with \(buffer.readableBytes) of \(count) bytes") }
            return nil
        }
    }
}

/// Pushes through the admin API to real sockets.
@Suite("Push")
struct PushTests {
    /// Echo, scripted-backend routes and, given a static tokens file, an authenticated echo route `/users`.
    static func config(backendPort: Int = 9, tokensFile: String? = nil, limits: String = "") -> String {
        let auth = tokensFile.map { file in
            """
            auth:
              - { name: bots, type: static, tokens_file: \(file) }
            """
        } ?? ""
        let users = tokensFile == nil ? "" : """
              - name: users
                path: "/users"
                backend: demo
                origins: ["*"]
                auth: { providers: [bots], token_sources: [header] }
            """
        return """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: demo
            builtin: echo
          - name: scripted
            servers: ["127.0.0.1:\(backendPort)"]
        \(auth)
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
            \(limits.isEmpty ? "" : "limits: { \(limits) }")
          - name: scripted
            path: "/scripted"
            backend: scripted
            origins: ["*"]
        \(users)
        admin: { bind: "127.0.0.1:0" }
        """
    }

    static func upgraded(_ proxy: TestProxy, path: String = "/echo", headers: [(String, String)] = []) async throws -> TestClient {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        try await client.sendUpgrade(path: path, extra: headers)
        let head = try await client.readHead()
        guard head.status == 101 else { throw TestError("upgrade to \(path) answered \(head.status)") }
        return client
    }

    static func echo(_ client: TestClient, _ text: String) async throws -> String {
        try await client.sendFrame(opcode: TestFrame.text, payload: Array(text.utf8))
        return String(decoding: try await client.readMessage().payload, as: UTF8.self)
    }

    @Test func aPushReachesTheClientAsTextOrBinaryByteForByte() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await Self.upgraded(proxy)
            let id = try #require(await proxy.server.connections().first?.id)
            let text = Array("héllo wörld".utf8)
            var answer = try await MessagesAdmin.request(proxy, "POST", "/connections/\(id)/messages", body: text, contentType: "Text/Plain; charset=utf-8")
            #expect(answer.status == 200, "\(answer.body)")
            #expect(try MessagesAdmin.counts(answer.body) == [1, 0])
            #expect(try await client.readBytes(2 + text.count) == [0x81, UInt8(text.count)] + text)
            // Anything but text/plain is binary, bytes that are not UTF-8 included; 300 bytes take a 16-bit length.
            let binary: [UInt8] = [0xFF, 0x00, 0xFE] + (0..<297).map { UInt8(truncatingIfNeeded: $0) }
            answer = try await MessagesAdmin.request(proxy, "POST", "/connections/\(id)/messages", body: binary, contentType: "application/octet-stream")
            #expect(answer.status == 200)
            #expect(try await client.readBytes(4 + binary.count) == [0x82, 126, 0x01, 0x2C] + binary)
            answer = try await MessagesAdmin.request(proxy, "POST", "/connections/\(id)/messages", body: [1, 2])
            #expect(try await client.readBytes(4) == [0x82, 2, 1, 2])
            // An empty body is an empty message; the id may carry the node name only in cluster mode.
            answer = try await MessagesAdmin.request(proxy, "POST", "/connections/\(id)/messages", contentType: "text/plain")
            #expect(answer.status == 200)
            #expect(try await client.readBytes(2) == [0x81, 0])
            // The relay still works and counts the pushes as messages toward the client.
            #expect(try await Self.echo(client, "still relaying") == "still relaying")
            let snapshot = try #require(await proxy.server.connections().first)
            #expect(snapshot.messagesPushed == 4)
            #expect(snapshot.messagesFromBackend == 5)
            await client.close()
        }
    }

    @Test func refusalsOfThePushEndpoint() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await Self.upgraded(proxy)
            let id = try #require(await proxy.server.connections().first?.id)
            let invalid = try await MessagesAdmin.request(proxy, "POST", "/connections/\(id)/messages", body: [0xC3, 0x28], contentType: "text/plain")
            #expect(invalid.status == 400)
            #expect(invalid.body.contains("UTF-8"))
            #expect(try await MessagesAdmin.post(proxy, "/connections/\(id + 1000)/messages", text: "x").status == 404)
            #expect(try await MessagesAdmin.post(proxy, "/connections/other-node:\(id)/messages", text: "x").status == 404)
            #expect(try await MessagesAdmin.post(proxy, "/connections/abc/messages", text: "x").status == 400)
            #expect(try await MessagesAdmin.request(proxy, "GET", "/connections/\(id)/messages").status == 405)
            #expect(try await MessagesAdmin.request(proxy, "PUT", "/subjects/alice/messages").status == 405)
            // Nothing of those reached the client: the next frame it gets is its own echo.
            #expect(try await Self.echo(client, "only this") == "only this")
            await client.close()
        }
    }

    @Test func aPushToASubjectReachesEachOfItsConnections() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-push-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func hash(_ token: String) -> String { SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined() }
        let tokens = directory.appendingPathComponent("tokens.txt")
        try "alice.smith \(hash("alice-token-0123456789"))\nbob \(hash("bob-token-0123456789"))\n".write(to: tokens, atomically: true, encoding: .utf8)
        try await TestProxy.with(Self.config(tokensFile: tokens.path)) { proxy in
            let alice = [
                try await Self.upgraded(proxy, path: "/users", headers: [("Authorization", "Bearer alice-token-0123456789")]),
                try await Self.upgraded(proxy, path: "/users", headers: [("Authorization", "Bearer alice-token-0123456789")]),
            ]
            let bob = try await Self.upgraded(proxy, path: "/users", headers: [("Authorization", "Bearer bob-token-0123456789")])
            #expect(await proxy.server.connections().compactMap(\.subject).sorted() == ["alice.smith", "alice.smith", "bob"])
            // The subject is percent-decoded.
            let answer = try await MessagesAdmin.post(proxy, "/subjects/alice%2Esmith/messages", text: "for alice")
            #expect(answer.status == 200)
            #expect(try MessagesAdmin.counts(answer.body) == [2, 0])
            for client in alice {
                #expect(try await client.readFrame() == TestFrame(fin: true, rsv: 0, opcode: TestFrame.text, masked: false, payload: Array("for alice".utf8)))
            }
            #expect(try await Self.echo(bob, "bob's own") == "bob's own")
            let nobody = try await MessagesAdmin.post(proxy, "/subjects/nobody/messages", text: "lost")
            #expect(nobody.status == 200)
            #expect(try MessagesAdmin.counts(nobody.body) == [0, 0])
            for client in alice + [bob] { await client.close() }
        }
    }

    @Test func aPushDuringAFragmentedBackendMessageArrivesAfterItsLastFragment() async throws {
        let backend = try await ScriptedBackend.start()
        defer { Task { await backend.stop() } }
        try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/scripted")
            let server = try await backend.accept()
            try await server.accept(try await server.readRequestHead())
            #expect(try await client.readHead().status == 101)
            try await server.send(TestFrame.encode(fin: false, opcode: TestFrame.text, payload: Array("first ".utf8), mask: nil))
            #expect(try await client.readFrame() == TestFrame(fin: false, rsv: 0, opcode: TestFrame.text, masked: false, payload: Array("first ".utf8)))
            let id = try #require(await proxy.server.connections().first?.id)
            let answer = try await MessagesAdmin.post(proxy, "/connections/\(id)/messages", text: "pushed")
            #expect(answer.status == 200)
            #expect(try MessagesAdmin.counts(answer.body) == [1, 0])
            // The push was queued before the ping was sent: had it been written, it would arrive first.
            try await server.send(TestFrame.encode(opcode: TestFrame.ping, payload: [7], mask: nil))
            #expect(try await client.readFrame().opcode == TestFrame.ping)
            try await server.send(TestFrame.encode(fin: true, opcode: TestFrame.continuation, payload: Array("last".utf8), mask: nil))
            #expect(try await client.readFrame() == TestFrame(fin: true, rsv: 0, opcode: TestFrame.continuation, masked: false, payload: Array("last".utf8)))
            #expect(try await client.readFrame() == TestFrame(fin: true, rsv: 0, opcode: TestFrame.text, masked: false, payload: Array("pushed".utf8)))
            await client.close()
            await server.close()
        }
    }

    @Test func aClientThatStopsReadingFillsItsQueueAndGets429() async throws {
        try await TestProxy.with(Self.config(limits: "buffer_bytes: 4KiB")) { proxy in
            let group = MultiThreadedEventLoopGroup.singleton
            let channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .connect(host: "127.0.0.1", port: try proxy.port("plain")).get()
            let collector = InboundCollector(eventLoop: channel.eventLoop)
            try await channel.eventLoop.submit { try channel.pipeline.syncOperations.addHandler(collector) }.get()
            let client = TestClient(channel: channel, inbound: collector)
            try await client.sendUpgrade(path: "/echo")
            #expect(try await client.readHead().status == 101)
            try await channel.setOption(.autoRead, value: false).get()
            let id = try #require(await proxy.server.connections().first?.id)
            // Each message carries its number; the socket buffers fill, then the proxy's queue.
            var delivered = 0
            var refusal: (status: Int, body: String)?
            while refusal == nil && delivered < 2000 {
                let body = withUnsafeBytes(of: UInt32(delivered).bigEndian, Array.init) + [UInt8](repeating: 0x5A, count: 60_000)
                let answer = try await MessagesAdmin.request(proxy, "POST", "/connections/\(id)/messages", body: body)
                if answer.status == 200 {
                    delivered += 1
                } else {
                    refusal = answer
                }
            }
            let full = try #require(refusal)
            #expect(full.status == 429, "\(full.body)")
            #expect(try MessagesAdmin.counts(full.body) == [0, 1])
            #expect(delivered > PushQueue.maxMessages)
            // Reading again: every accepted message arrives, whole and in order, and the relay goes on.
            try await channel.setOption(.autoRead, value: true).get()
            channel.read()
            for expected in 0..<delivered {
                let (opcode, payload) = try await client.readMessage()
                #expect(opcode == TestFrame.binary)
                #expect(payload.count == 60_004)
                let number = payload.prefix(4).reduce(0) { $0 << 8 | Int($1) }
                guard number == expected else {
                    Issue.record("message \(number) arrived where \(expected) was expected")
                    break
                }
            }
            #expect(try await Self.echo(client, "after") == "after")
            await client.close()
        }
    }
}
