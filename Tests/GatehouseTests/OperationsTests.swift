import Foundation
import NIOCore
import NIOSSL
import Testing
@testable import Gatehouse

/// Reload, the admin API and metrics.
@Suite("Operations")
struct OperationsTests {
    /// Writes `yaml` to a fresh file and starts a proxy on it (reload re-reads that file).
    func withProxy(_ yaml: String, _ body: (TestProxy, String) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-ops-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        try await TestProxy.with(yaml, file: path) { proxy in try await body(proxy, path) }
    }

    func admin(_ proxy: TestProxy, _ method: HTTPMethodName, _ path: String, token: String? = nil) async throws -> (status: UInt, body: String) {
        let port = try #require(proxy.server.adminAddress?.port)
        return try await AdminClient.request(method.nio, path, address: BindAddress(host: "127.0.0.1", port: port), token: token)
    }

    enum HTTPMethodName {
        case get, post, delete
        var nio: NIOHTTP1HTTPMethod {
            switch self {
            case .get: return .GET
            case .post: return .POST
            case .delete: return .DELETE
            }
        }
    }

    static let base = """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: demo
            builtin: echo
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
        admin: { bind: "127.0.0.1:0" }
        """

    func echoClient(_ proxy: TestProxy, path: String = "/echo", listener: String = "plain") async throws -> TestClient {
        let client = try await TestClient.connect(port: try proxy.port(listener))
        try await client.sendUpgrade(path: path)
        let head = try await client.readHead()
        guard head.status == 101 else { throw TestError("upgrade to \(path) answered \(head.status)") }
        return client
    }

    func echo(_ client: TestClient, _ text: String) async throws -> String {
        try await client.sendFrame(opcode: TestFrame.text, payload: Array(text.utf8))
        return String(decoding: try await client.readMessage().payload, as: UTF8.self)
    }

    @Test func reloadKeepsOpenConnectionsWhileANewRouteServes() async throws {
        try await self.withProxy(Self.base) { proxy, path async throws in
            let early = try await self.echoClient(proxy)
            #expect(try await self.echo(early, "before") == "before")
            let refused = try await TestClient.connect(port: try proxy.port("plain"))
            try await refused.sendUpgrade(path: "/chat")
            #expect(try await refused.readHead().status == 404)
            try Self.base.replacingOccurrences(of: "admin:", with: "  - name: chat\n    path: \"/chat\"\n    backend: demo\n    origins: [\"*\"]\nadmin:")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let port = try proxy.port("plain")
            let (status, body) = try await self.admin(proxy, .post, "/reload")
            #expect(status == 200, "\(body)")
            #expect(body.contains("\"generation\" : 2"))
            // Same socket, the old connection still relays, the new route serves.
            #expect(try proxy.port("plain") == port)
            #expect(try await self.echo(early, "after") == "after")
            let chat = try await self.echoClient(proxy, path: "/chat")
            #expect(try await self.echo(chat, "new route") == "new route")
            await early.close()
            await chat.close()
        }
    }

    @Test func brokenReloadKeepsTheOldConfigAndReportsTheLine() async throws {
        try await self.withProxy(Self.base) { proxy, path async throws in
            try Self.base.replacingOccurrences(of: "backend: demo", with: "backend: missing").write(toFile: path, atomically: true, encoding: .utf8)
            let (status, body) = try await self.admin(proxy, .post, "/reload")
            #expect(status == 422)
            #expect(body.contains("\(path):10:14: route 'echo' names backend 'missing', which does not exist"), "\(body)")
            #expect(proxy.logs.contains("reload failed"))
            let client = try await self.echoClient(proxy)
            #expect(try await self.echo(client, "still") == "still")
            await client.close()
            let metrics = Exposition(try await self.admin(proxy, .get, "/metrics").body)
            #expect(metrics.value("gatehouse_config_reloads_total", ["result": "failed"]) == 1)
            #expect(metrics.value("gatehouse_config_reloads_total", ["result": "ok"]) == 0)
        }
    }

    @Test func reloadOpensAndClosesListeners() async throws {
        try await self.withProxy(Self.base) { proxy, path async throws in
            let second = Self.base.replacingOccurrences(of: "backends:", with: "  - name: extra\n    bind: \"127.0.0.1:0\"\nbackends:")
            try second.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try await self.admin(proxy, .post, "/reload").status == 200)
            let extra = try await self.echoClient(proxy, listener: "extra")
            await extra.close()
            let extraPort = try proxy.port("extra")
            try Self.base.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try await self.admin(proxy, .post, "/reload").status == 200)
            #expect(proxy.server.localAddress(ofListener: "extra") == nil)
            #expect((try? await TestClient.connect(port: extraPort)) == nil)
        }
    }

    @Test func certificateSwapIsSeenByTheNextTLSClient() async throws {
        let ca = try TestCertificateAuthority.make()
        let first = try ca.issue("first", names: ["swap.test"])
        let second = try ca.issue("second", names: ["swap.test", "second.test"])
        let livePath = ca.directory.appendingPathComponent("live.pem").path
        let liveKey = ca.directory.appendingPathComponent("live-key.pem").path
        try FileManager.default.copyItem(atPath: first.cert, toPath: livePath)
        try FileManager.default.copyItem(atPath: first.key, toPath: liveKey)
        let yaml = Self.base.replacingOccurrences(of: "backends:", with: """
              - name: secure
                bind: "127.0.0.1:0"
                tls:
                  certificates:
                    - { cert: \(livePath), key: \(liveKey) }
            backends:
            """)
        try await self.withProxy(yaml) { proxy, _ async throws in
            func names() async throws -> [String] {
                let client = try await TestClient.connect(port: try proxy.port("secure"), tls: TestTLS(trust: [try ca.nioCertificate], serverName: "swap.test"))
                try await client.sendUpgrade(path: "/echo")
                #expect(try await client.readHead().status == 101)
                let certificate = try await client.channel.pipeline.handler(type: NIOSSLClientHandler.self).map { $0.peerCertificate }.get()
                await client.close()
                return certificate.map(ListenerTLSContext.dnsNames) ?? []
            }
            #expect(try await names() == ["swap.test"])
            try FileManager.default.removeItem(atPath: livePath)
            try FileManager.default.removeItem(atPath: liveKey)
            try FileManager.default.copyItem(atPath: second.cert, toPath: livePath)
            try FileManager.default.copyItem(atPath: second.key, toPath: liveKey)
            #expect(try await self.admin(proxy, .post, "/reload").status == 200)
            #expect(try await names() == ["swap.test", "second.test"])
        }
    }

    @Test func healthReadinessAndDrainEndpoints() async throws {
        try await self.withProxy(Self.base) { proxy, _ async throws in
            let healthz200 = try await self.admin(proxy, .get, "/healthz")
            #expect(healthz200.status == 200 && healthz200.body == "ok\n")
            let readyz200 = try await self.admin(proxy, .get, "/readyz")
            #expect(readyz200.status == 200 && readyz200.body == "ready\n")
            #expect(try await self.admin(proxy, .get, "/nope").status == 404)
            #expect(try await self.admin(proxy, .post, "/healthz").status == 405)
            let client = try await self.echoClient(proxy)
            #expect(try await self.admin(proxy, .post, "/drain").status == 202)
            let close = try await client.readFrame()
            #expect(close.closeCode == 1001)
            #expect(close.closeReason == "server shutting down")
            let readyz503 = try await self.admin(proxy, .get, "/readyz")
            #expect(readyz503.status == 503 && readyz503.body == "draining\n")
            // The process (and the admin endpoint) stays up after an admin drain.
            #expect(try await self.admin(proxy, .get, "/healthz").status == 200)
            await client.close()
        }
    }

    @Test func adminTokenIsRequiredWhenConfigured() async throws {
        let variable = "GATEHOUSE_TEST_ADMIN_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        setenv(variable, "admin-secret-token", 1)
        let yaml = Self.base.replacingOccurrences(of: "admin: { bind: \"127.0.0.1:0\" }", with: "admin: { bind: \"127.0.0.1:0\", token_env: \(variable) }")
        try await self.withProxy(yaml) { proxy, _ async throws in
            #expect(try await self.admin(proxy, .get, "/metrics").status == 401)
            #expect(try await self.admin(proxy, .get, "/metrics", token: "wrong").status == 401)
            #expect(try await self.admin(proxy, .get, "/connections", token: "admin-secret-token").status == 200)
            #expect(try await self.admin(proxy, .get, "/healthz", token: "admin-secret-token").status == 200)
        }
    }

    @Test func nonLoopbackAdminWithoutTokenIsAConfigError() throws {
        #expect(throws: ConfigError.self) {
            _ = try ProxyConfig.parse(yaml: Self.base.replacingOccurrences(of: "127.0.0.1:0\" }", with: "0.0.0.0:9901\" }"), file: "p.yaml")
        }
    }

    @Test func metricsFollowConnections() async throws {
        try await self.withProxy(Self.base) { proxy, _ async throws in
            let before = Exposition(try await self.admin(proxy, .get, "/metrics").body)
            #expect(before.value("gatehouse_build_info", ["version": GatehouseVersion.string]) == 1)
            #expect(before.value("gatehouse_active_connections", ["route": "echo"]) == 0)
            let client = try await self.echoClient(proxy)
            for index in 0..<3 { _ = try await self.echo(client, "message \(index)") }
            let open = Exposition(try await self.admin(proxy, .get, "/metrics").body)
            #expect(open.value("gatehouse_active_connections", ["route": "echo"]) == 1)
            #expect(open.value("gatehouse_handshakes_total", ["route": "echo", "status": "101"]) == 1)
            #expect(open.value("gatehouse_messages_total", ["route": "echo", "direction": "client_to_backend"]) == 3)
            #expect(open.value("gatehouse_messages_total", ["route": "echo", "direction": "backend_to_client"]) == 3)
            #expect(open.value("gatehouse_bytes_total", ["route": "echo", "direction": "client_to_backend"]) == 3 * (6 + 9))
            #expect(open.value("gatehouse_handshake_duration_seconds_count", ["route": "echo"]) == 1)
            try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
            _ = try await client.readFrame()
            _ = try await client.waitForClose()
            _ = try await proxy.logs.waitForLine(containing: "connection closed")
            let refused = try await TestClient.connect(port: try proxy.port("plain"))
            try await refused.sendUpgrade(path: "/nowhere")
            _ = try await refused.readResponse()
            let after = Exposition(try await self.admin(proxy, .get, "/metrics").body)
            #expect(after.value("gatehouse_active_connections", ["route": "echo"]) == 0)
            #expect(after.value("gatehouse_connection_duration_seconds_count", ["route": "echo"]) == 1)
            #expect(after.value("gatehouse_closes_total", ["code": "1000", "by": "client"]) == 1)
            #expect(after.value("gatehouse_handshakes_total", ["route": "-", "status": "404"]) == 1)
        }
    }

    @Test func connectionsListingAndKickBySubject() async throws {
        let fixture = try SecurityFixture.make()
        let backend = try await RecordingBackend.start()
        let yaml = fixture.config(backendPort: backend.port) + "\nadmin: { bind: \"127.0.0.1:0\" }\n"
        try await TestProxy.with(yaml, file: fixture.file) { proxy in
            var clients: [String: [TestClient]] = [:]
            for subject in ["alice", "alice", "bob"] {
                let token = try await fixture.keys.sign(.valid(sub: subject), algorithm: "HS256")
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: "/secure/x", extra: [("Authorization", "Bearer \(token)")])
                #expect(try await client.readHead().status == 101)
                clients[subject, default: []].append(client)
            }
            let listing = try await self.admin(proxy, .get, "/connections?subject=alice")
            let decoded = try JSONSerialization.jsonObject(with: Data(listing.body.utf8)) as? [[String: Any]]
            #expect(decoded?.count == 2)
            #expect(decoded?.allSatisfy { $0["subject"] as? String == "alice" && $0["route"] as? String == "secure" } == true)
            let kicked = try await self.admin(proxy, .delete, "/connections?subject=alice")
            #expect(kicked.body.contains("\"closed\" : 2"))
            for client in clients["alice"] ?? [] {
                let close = try await client.readFrame()
                #expect(close.closeCode == 1008)
                #expect(close.closeReason == "closed by administrator")
            }
            // Bob is untouched: his connection still relays (the recording backend answers nothing, but a ping
            // through it must not be met by a close).
            let bob = try #require(clients["bob"]?.first)
            await #expect(throws: TestError.self) { _ = try await bob.readFrame(timeout: .milliseconds(300)) }
            let remaining = await proxy.server.connections()
            #expect(remaining.contains { $0.subject == "bob" })
            let id = try #require(remaining.first { $0.subject == "bob" }?.id)
            #expect(try await self.admin(proxy, .delete, "/connections/\(id)").status == 200)
            #expect(try await bob.readFrame().closeCode == 1008)
            #expect(try await self.admin(proxy, .delete, "/connections/999999").status == 404)
            #expect(try await self.admin(proxy, .delete, "/connections").status == 400)
        }
        await backend.stop()
    }
}

import NIOHTTP1
typealias NIOHTTP1HTTPMethod = NIOHTTP1.HTTPMethod
