import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import Gatehouse

/// The owner of a relayed connection carrying out its state machine's actions on two embedded channels: no
/// sockets, no timing.
@Suite("Relay connection")
struct RelayConnectionTests {
    /// Everything a connection needs around it, on one embedded loop.
    struct Fixture {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let backend: EmbeddedChannel
        let context: LoopRuntime
        let counters = RouteCounters()
        let connection: RelayConnection
        let clientReads = ReadCounter()

        init() throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let config = try ConfigLoader.load(path: root.appendingPathComponent("proxy.yaml").path)
            let state = ServingState(config: config, routes: [], listenerTLS: [:], generation: 1, adminTokenDigest: nil)
            self.context = LoopRuntime(eventLoop: self.loop, state: state)
            let metrics = ProxyMetrics()
            let engine = ProxyEngine(
                loops: [self.context], logger: Logger(label: "test"),
                accessLog: AccessLog(logger: Logger(label: "access"), control: LogControl()), metrics: metrics
            )
            let ticket = try self.counters.admit(ip: "127.0.0.1", limits: LimitsConfig()).get()
            let request = UpgradeRequest(
                target: "/", authority: "example.test", headers: HTTPHeaders(), scheme: "http", clientAddress: nil,
                listener: "test", transport: .http1
            )
            let record = ConnectionRecord(
                id: 1, listener: "test", route: "r", request: request, identity: nil, backendServer: "b:1",
                started: .now(), startedWallClock: 0
            )
            self.connection = RelayConnection(
                record: record, settings: RelaySettings(limits: LimitsConfig(), negotiatedExtensions: [], expiresAt: nil),
                metrics: metrics.route("r"), ticket: ticket, engine: engine, loop: self.context
            )
            self.context.connections[record.id] = self.connection
            self.client = EmbeddedChannel(loop: self.loop)
            self.backend = EmbeddedChannel(loop: self.loop)
            try self.client.pipeline.syncOperations.addHandler(self.clientReads)
            try self.client.pipeline.syncOperations.addHandler(RelayHandler(connection: self.connection, side: .client))
            try self.backend.pipeline.syncOperations.addHandler(RelayHandler(connection: self.connection, side: .backend))
            try self.client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try self.backend.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        }

        /// Frames written toward one channel so far.
        func written(_ channel: EmbeddedChannel) throws -> [TestFrame] {
            var frames: [TestFrame] = []
            while var bytes = try channel.readOutbound(as: ByteBuffer.self) {
                while let frame = TestFrame.parse(&bytes) { frames.append(frame) }
            }
            return frames
        }
    }

    /// Counts the reads that reach the client's socket.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            self.reads += 1
            context.read()
        }
    }

    @Test func readsFromTheClientWaitWhileTheBackendIsNotWritable() throws {
        let fixture = try Fixture()
        fixture.connection.start()
        let started = fixture.clientReads.reads
        #expect(started == 1)  // the relay's first read
        fixture.backend.isWritable = false
        fixture.backend.pipeline.fireChannelWritabilityChanged()
        fixture.client.read()
        #expect(fixture.clientReads.reads == started)
        #expect(fixture.connection.snapshot(now: .now()).clientReadPaused)
        fixture.backend.isWritable = true
        fixture.backend.pipeline.fireChannelWritabilityChanged()
        #expect(fixture.clientReads.reads == started + 1)
        #expect(!fixture.connection.snapshot(now: .now()).clientReadPaused)
    }

    @Test func relaysFramesAndACloseHandshakeThenEndsOnce() throws {
        let fixture = try Fixture()
        fixture.connection.start()
        #expect(fixture.counters.active.load(ordering: .relaxed) == 1)

        let hello = TestFrame.encode(opcode: TestFrame.text, payload: Array("hello".utf8))
        try fixture.client.writeInbound(ByteBuffer(bytes: hello))
        fixture.client.pipeline.fireChannelReadComplete()
        #expect(try fixture.written(fixture.backend).map(\.payload) == [Array("hello".utf8)])

        // The backend closes: the close is relayed to the client, then the client's answer to the backend.
        try fixture.backend.writeInbound(ByteBuffer(bytes: TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(1000, "bye"), mask: nil)))
        #expect(try fixture.written(fixture.client).map(\.closeCode) == [1000])
        try fixture.client.writeInbound(ByteBuffer(bytes: TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(1000, "bye"))))
        #expect(try fixture.written(fixture.backend).map(\.closeCode) == [1000])

        // Both outputs were shut; the channels close and the connection ends: unregistered, ticket released.
        fixture.loop.run()
        _ = try? fixture.client.finish()
        _ = try? fixture.backend.finish()
        #expect(fixture.context.connections.isEmpty)
        #expect(fixture.counters.active.load(ordering: .relaxed) == 0)
    }

    @Test func drainCloseWritesTheProxysCloseToBothChannels() throws {
        let fixture = try Fixture()
        fixture.connection.start()
        fixture.connection.close(code: .goingAway, reason: "server shutting down")
        let toClient = try fixture.written(fixture.client)
        let toBackend = try fixture.written(fixture.backend)
        #expect(toClient.map(\.closeCode) == [1001])
        #expect(toClient.first?.masked == false)
        #expect(toBackend.map(\.closeReason) == ["server shutting down"])
        #expect(toBackend.first?.masked == true)
        // The backend never answers: the close timer (close_timeout, 5 s by default) closes both channels.
        fixture.loop.advanceTime(by: .seconds(5))
        #expect(!fixture.client.isActive)
        #expect(!fixture.backend.isActive)
        #expect(fixture.context.connections.isEmpty)
        #expect(fixture.counters.active.load(ordering: .relaxed) == 0)
    }
}
