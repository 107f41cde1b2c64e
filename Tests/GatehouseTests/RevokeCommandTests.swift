import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
@testable import Gatehouse

/// An admin endpoint stand-in: records each request (method, path, headers, body) and answers with a fixed status
/// and body, so the tests see exactly what `gatehouse revoke` sends.
final class FakeAdminServer: Sendable {
    struct Received: Sendable {
        var method: String
        var uri: String
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> [String] {
            self.headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
        }
    }

    let channel: Channel
    private let log = Mutex<[Received]>([])

    var received: [Received] { self.log.withLock { $0 } }
    var port: Int { self.channel.localAddress?.port ?? 0 }

    private init(channel: Channel) {
        self.channel = channel
    }

    static func start(status: HTTPResponseStatus = .ok, answer: String) async throws -> FakeAdminServer {
        let box = Recorder()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(status: status, answer: answer, recorder: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = FakeAdminServer(channel: channel)
        box.server.withLock { $0 = server }
        return server
    }

    func record(_ request: Received) {
        self.log.withLock { $0.append(request) }
    }

    func stop() async {
        try? await self.channel.close()
    }

    static func with<T>(status: HTTPResponseStatus = .ok, answer: String, _ body: (FakeAdminServer) async throws -> T) async throws -> T {
        let server = try await Self.start(status: status, answer: answer)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// Lets handlers reach the server created after the bootstrap.
    private final class Recorder: Sendable {
        let server = Mutex<FakeAdminServer?>(nil)
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let status: HTTPResponseStatus
        let answer: String
        let recorder: Recorder
        var head: HTTPRequestHead?
        var body = ""

        init(status: HTTPResponseStatus, answer: String, recorder: Recorder) {
            self.status = status
            self.answer = answer
            self.recorder = recorder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
            case .body(let buffer):
                if self.body.utf8.count < 1 << 16 { self.body += String(buffer: buffer) }
            case .end:
                guard let head = self.head else { return }
                let request = Received(
                    method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: self.body
                )
                // Recorded before answering: once the client has its answer, the request is in the log.
                self.recorder.server.withLock { $0?.record(request) }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(self.answer.utf8.count))
                headers.add(name: "Connection", value: "close")
                context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: self.status, headers: headers))), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: self.answer)))), promise: nil)
                let channel = context.channel
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}

@Suite("gatehouse revoke")
struct RevokeCommandTests {
    static let tokenVariable = "GATEHOUSE_TEST_REVOKE_TOKEN"
    static let token = "revoke-admin-token-0123456789"

    func config(adminPort: Int?) throws -> String {
        let admin = adminPort.map { "admin: { bind: \"127.0.0.1:\($0)\", token_env: \(Self.tokenVariable) }" } ?? ""
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-revoke-\(UUID().uuidString).yaml").path
        try TestConfig.echo(extraTop: admin).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func revoke(_ arguments: [String], adminPort: Int?) async throws -> ExternalProcess.Result {
        let path = try self.config(adminPort: adminPort)
        return try await ExternalProcess.run(["\(Self.tokenVariable)=\(Self.token)", CLITests.binary, "revoke", "-c", path] + arguments, timeout: 30)
    }

    func json(_ text: String) throws -> [String: String] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(object as? [String: String], "\(text)")
    }

    func expectAdminHeaders(_ request: FakeAdminServer.Received) {
        #expect(request.header("Gatehouse-Admin") == ["1"])
        #expect(request.header("Authorization") == ["Bearer \(Self.token)"])
    }

    @Test func subjectRevocationPostsItsJSON() async throws {
        try await FakeAdminServer.with(status: .created, answer: "{\"id\":7,\"subject\":\"alice\"}") { server in
            let result = try await self.revoke(
                ["--subject", "alice", "--issued-before", "2025-06-01T14:00:00+02:00", "--expires", "2030-01-01T00:00:00.5Z"],
                adminPort: server.port
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output == "{\"id\":7,\"subject\":\"alice\"}\n")
            let request = try #require(server.received.first)
            #expect(server.received.count == 1)
            #expect(request.method == "POST")
            #expect(request.uri == "/revocations")
            self.expectAdminHeaders(request)
            #expect(request.header("Content-Type") == ["application/json"])
            #expect(try self.json(request.body) == ["subject": "alice", "issued_before": "2025-06-01T12:00:00Z", "expires": "2030-01-01T00:00:00.500Z"])
        }
    }

    @Test func jtiRevocationWithADurationExpiry() async throws {
        try await FakeAdminServer.with(status: .created, answer: "{\"id\":8}") { server in
            let before = Date()
            let result = try await self.revoke(["--jti", "token-1", "--expires", "24h"], adminPort: server.port)
            #expect(result.status == 0, "\(result.output)")
            let request = try #require(server.received.first)
            #expect(request.method == "POST" && request.uri == "/revocations")
            self.expectAdminHeaders(request)
            let body = try self.json(request.body)
            #expect(Set(body.keys) == ["jti", "expires"])
            #expect(body["jti"] == "token-1")
            let expires = try #require(body["expires"].flatMap(RevokeRequest.parseTime))
            let expected = before.addingTimeInterval(24 * 3600)
            #expect(abs(expires.timeIntervalSince(expected)) < 120, "\(expires) vs \(expected)")
        }
    }

    @Test func listAndDelete() async throws {
        try await FakeAdminServer.with(answer: "[{\"id\":7}]") { server in
            let list = try await self.revoke(["--list"], adminPort: server.port)
            #expect(list.status == 0, "\(list.output)")
            #expect(list.output == "[{\"id\":7}]\n")
            let delete = try await self.revoke(["--delete", "7"], adminPort: server.port)
            #expect(delete.status == 0, "\(delete.output)")
            let requests = server.received
            #expect(requests.map { "\($0.method) \($0.uri)" } == ["GET /revocations", "DELETE /revocations/7"])
            #expect(requests.allSatisfy { $0.body.isEmpty })
            for request in requests { self.expectAdminHeaders(request) }
        }
    }

    @Test func errorAnswerExitsOneWithTheBody() async throws {
        try await FakeAdminServer.with(status: .serviceUnavailable, answer: "cluster store unreachable") { server in
            let result = try await self.revoke(["--subject", "alice"], adminPort: server.port)
            #expect(result.status == 1)
            #expect(result.output.contains("POST /revocations refused (503): cluster store unreachable"), "\(result.output)")
            #expect(server.received.count == 1)
        }
        try await FakeAdminServer.with(status: .notFound, answer: "no revocation 9") { server in
            let result = try await self.revoke(["--delete", "9"], adminPort: server.port)
            #expect(result.status == 1)
            #expect(result.output.contains("DELETE /revocations/9 refused (404): no revocation 9"), "\(result.output)")
        }
    }

    @Test func configurationWithoutAdminEndpointIsAnError() async throws {
        let result = try await self.revoke(["--list"], adminPort: nil)
        #expect(result.status == 1)
        #expect(result.output.contains("the configuration has no admin.bind"), "\(result.output)")
    }

    @Test(arguments: [
        ([], "give --subject S or --jti J (with optional --issued-before and --expires), --list, or --delete ID"),
        (["--issued-before", "2025-06-01T12:00:00Z"], "a revocation needs --subject or --jti"),
        (["--subject", "alice", "--list"], "--subject/--jti and --list cannot be combined"),
        (["--list", "--delete", "3"], "--list and --delete cannot be combined"),
        (["--subject", "alice", "--issued-before", "2025-06-01"], "--issued-before must be an RFC 3339 time like 2025-06-01T12:00:00Z (or now), found '2025-06-01'"),
        (["--subject", "alice", "--expires", "2020-01-01T00:00:00Z"], "--expires 2020-01-01T00:00:00Z is in the past"),
        (["--jti", "j", "--expires", "soon"], "--expires must be an RFC 3339 time like 2025-06-01T12:00:00Z or a duration like 90m, 24h or 7d, found 'soon'"),
        (["--delete", "seven"], "--delete needs a revocation id (a positive integer, as --list shows), found 'seven'"),
        (["--subject", ""], "--subject must not be empty"),
    ])
    func argumentErrors(_ arguments: [String], _ message: String) async throws {
        // No admin endpoint is reachable: arguments are checked before anything is sent.
        let result = try await self.revoke(arguments, adminPort: 9)
        #expect(result.status != 0)
        #expect(result.output.contains(message), "\(result.output)")
    }

    // MARK: Unit level

    @Test func actionsFromOptions() throws {
        let now = Date(timeIntervalSince1970: 1_750_000_000)
        func action(subject: String? = nil, jti: String? = nil, issuedBefore: String? = nil, expires: String? = nil, list: Bool = false, delete: String? = nil)
            throws -> RevokeRequest.Action
        {
            try RevokeRequest.action(subject: subject, jti: jti, issuedBefore: issuedBefore, expires: expires, list: list, delete: delete, now: now)
        }
        #expect(try action(list: true) == .list)
        #expect(try action(delete: "12") == .delete(12))
        #expect(try action(subject: "alice", issuedBefore: "now", expires: "7d")
            == .add(.init(subject: "alice", jti: nil, issuedBefore: now, expires: now.addingTimeInterval(7 * 86400))))
        #expect(try action(subject: "a", jti: "j", expires: "90m") == .add(.init(subject: "a", jti: "j", issuedBefore: nil, expires: now.addingTimeInterval(5400))))
        #expect(throws: RevokeRequest.ArgumentError.self) { try action(delete: "0") }
        #expect(throws: RevokeRequest.ArgumentError.self) { try action(delete: "-3") }
        #expect(throws: RevokeRequest.ArgumentError.self) { try action(jti: String(repeating: "j", count: 257)) }
        #expect(throws: RevokeRequest.ArgumentError.self) { try action(subject: "al\nice") }
        #expect(throws: RevokeRequest.ArgumentError.self) { try action(subject: "alice", expires: "0") }
        #expect(throws: RevokeRequest.ArgumentError.self) { try action(subject: "alice", expires: "2025-06-01T12:00:00") }

        let (method, path, body) = RevokeRequest.httpRequest(for: .add(.init(subject: "alice", jti: nil, issuedBefore: now, expires: nil)))
        #expect(method == .POST && path == "/revocations")
        #expect(body == "{\"issued_before\":\"2025-06-15T15:06:40Z\",\"subject\":\"alice\"}")
        #expect(RevokeRequest.httpRequest(for: .delete(5)).path == "/revocations/5")
        #expect(RevokeRequest.httpRequest(for: .list).method == .GET)
    }

    @Test func checkAcceptsConnectFlag() async throws {
        let path = try self.config(adminPort: nil)
        let result = try await ExternalProcess.run([CLITests.binary, "check", "--connect", path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"))
    }
}
