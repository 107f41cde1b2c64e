import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A request head read by a scripted backend.
struct TestRequestHead {
    var method: String
    var target: String
    var headers: [(String, String)]

    func header(_ name: String) -> String? {
        self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    func headers(_ name: String) -> [String] {
        self.headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}

/// A backend whose every move the test scripts: it accepts connections and hands each to the test as a
/// ``TestClient`` (the same raw peer the client side uses).
final class ScriptedBackend: Sendable {
    let channel: Channel
    private let accepted: NIOLockedValueBox<[TestClient]>
    private let waiter: InboundCollector

    private init(channel: Channel, accepted: NIOLockedValueBox<[TestClient]>, waiter: InboundCollector) {
        self.channel = channel
        self.accepted = accepted
        self.waiter = waiter
    }

    var port: Int { self.channel.localAddress?.port ?? 0 }

    static func start() async throws -> ScriptedBackend {
        let accepted = NIOLockedValueBox<[TestClient]>([])
        let group = MultiThreadedEventLoopGroup.singleton
        // A collector used only as a wake-up signal when a connection is accepted.
        let signal = InboundCollector(eventLoop: group.next())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let collector = InboundCollector(eventLoop: channel.eventLoop)
                    try channel.pipeline.syncOperations.addHandler(collector)
                    accepted.withLockedValue { $0.append(TestClient(channel: channel, inbound: collector)) }
                    signal.poke()
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedBackend(channel: channel, accepted: accepted, waiter: signal)
    }

    /// The next accepted connection.
    func accept(timeout: TimeAmount = .seconds(10)) async throws -> TestClient {
        try await self.waiter.wait(timeout: timeout, what: "a backend connection") { _, _ in
            self.accepted.withLockedValue { list in list.isEmpty ? nil : list.removeFirst() }
        }
    }

    func stop() async {
        try? await self.channel.close()
    }
}

extension TestClient {
    /// Reads a request head (backend side).
    func readRequestHead(timeout: TimeAmount = .seconds(10)) async throws -> TestRequestHead {
        let head = try await self.readHead(timeout: timeout, requestLine: true)
        return head
    }

    /// Answers a WebSocket upgrade with a correct 101.
    func accept(_ request: TestRequestHead, extra: [(String, String)] = []) async throws {
        let key = request.header("sec-websocket-key") ?? ""
        var text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        text += "Sec-WebSocket-Accept: \(TestClient.acceptValue(key))\r\n"
        for (name, value) in extra { text += "\(name): \(value)\r\n" }
        try await self.send(text + "\r\n")
    }
}

/// A backend that accepts every upgrade with a correct 101 (selecting the first offered subprotocol) and records
/// the requests it received, for tests about what the proxy forwards.
final class RecordingBackend: Sendable {
    let backend: ScriptedBackend
    private let requests: NIOLockedValueBox<[TestRequestHead]>
    private let task: Task<Void, Never>

    var port: Int { self.backend.port }

    private init(backend: ScriptedBackend, task: Task<Void, Never>, requests: NIOLockedValueBox<[TestRequestHead]>) {
        self.backend = backend
        self.task = task
        self.requests = requests
    }

    static func start() async throws -> RecordingBackend {
        let backend = try await ScriptedBackend.start()
        let requests = NIOLockedValueBox<[TestRequestHead]>([])
        let task = Task {
            while !Task.isCancelled {
                guard let connection = try? await backend.accept(timeout: .seconds(5)) else { continue }
                guard let request = try? await connection.readRequestHead() else { continue }
                requests.withLockedValue { $0.append(request) }
                let offered = request.header("sec-websocket-protocol")?.split(separator: ",").first
                    .map { String($0).trimmingCharacters(in: .whitespaces) }
                try? await connection.accept(request, extra: offered.map { [("Sec-WebSocket-Protocol", $0)] } ?? [])
                // Like a real server: answer a close frame, and close once the proxy closes its side.
                Task {
                    while let frame = try? await connection.readFrame(timeout: .seconds(600)) {
                        if frame.opcode == TestFrame.close {
                            try? await connection.send(TestFrame.encode(opcode: TestFrame.close, payload: Array(frame.payload.prefix(2)), mask: nil))
                            break
                        }
                    }
                    await connection.close()
                }
            }
        }
        return RecordingBackend(backend: backend, task: task, requests: requests)
    }

    /// Starts a backend, runs `body` with it and stops it afterwards, whatever happens.
    static func with<T>(_ body: (RecordingBackend) async throws -> T) async throws -> T {
        let backend = try await RecordingBackend.start()
        do {
            let result = try await body(backend)
            await backend.stop()
            return result
        } catch {
            await backend.stop()
            throw error
        }
    }

    /// Requests received so far.
    var received: [TestRequestHead] { self.requests.withLockedValue { $0 } }

    func stop() async {
        self.task.cancel()
        await self.backend.stop()
    }
}
