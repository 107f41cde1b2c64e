import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Gatehouse

/// A reload either applies completely or changes nothing at all.
@Suite("Reload atomicity")
struct ReloadAtomicityTests {
    static let base = OperationsTests.base
    static let chatRoute = "  - name: chat\n    path: \"/chat\"\n    backend: demo\n    origins: [\"*\"]\n"

    /// The base configuration plus a `/chat` route, `listeners` extra listener entries and `top` extra top-level text.
    static func withChat(listeners: String = "", admin: String = "admin: { bind: \"127.0.0.1:0\" }", top: String = "") -> String {
        Self.base
            .replacingOccurrences(of: "backends:", with: listeners + "backends:")
            .replacingOccurrences(of: "admin: { bind: \"127.0.0.1:0\" }", with: Self.chatRoute + admin + "\n" + top)
    }

    /// A socket held by the test, so the proxy cannot bind its address.
    static func occupiedPort() async throws -> Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
    }

    func status(_ proxy: TestProxy, path: String, listener: String = "plain") async throws -> Int {
        let client = try await TestClient.connect(port: try proxy.port(listener))
        defer { Task { await client.close() } }
        try await client.sendUpgrade(path: path)
        return try await client.readHead().status
    }

    /// Writes `broken`, reloads through the admin endpoint and checks that nothing changed.
    func expectFailedReloadChangesNothing(_ broken: String, _ what: String, proxy: TestProxy, file: String, adminPort: Int) async throws {
        try broken.write(toFile: file, atomically: true, encoding: .utf8)
        let admin = BindAddress(host: "127.0.0.1", port: adminPort)
        let (status, body) = try await AdminClient.request(.POST, "/reload", address: admin, token: nil)
        #expect(status == 422, "\(what): \(body)")
        #expect(try await self.status(proxy, path: "/echo") == 101, "\(what): the old route")
        #expect(try await self.status(proxy, path: "/chat") == 404, "\(what): the new route")
        #expect(try await AdminClient.request(.GET, "/healthz", address: admin, token: nil).status == 200, "\(what): the old admin endpoint")
        #expect(proxy.server.adminAddress?.port == adminPort, "\(what)")
        #expect(proxy.server.config.routes.map(\.name) == ["echo"], "\(what)")
    }

    @Test func everyKindOfFailureLeavesTheRunningConfiguration() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-atomic-\(UUID().uuidString).yaml").path
        try Self.base.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let busy = try await Self.occupiedPort()
        let busyPort = try #require(busy.localAddress?.port)
        let freePort = try await DrainTests.freePort()
        let unset = "GATEHOUSE_TEST_UNSET_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        try await TestProxy.with(Self.base, file: file) { proxy in
            let adminPort = try #require(proxy.server.adminAddress?.port)
            let check = { (yaml: String, what: String) async throws in
                try await self.expectFailedReloadChangesNothing(yaml, what, proxy: proxy, file: file, adminPort: adminPort)
            }
            try await check(Self.withChat(admin: "admin: { bind: \"127.0.0.1:\(busyPort)\" }"), "admin bind in use")
            try await check(
                Self.withChat(listeners: """
                      - name: extra
                        bind: "127.0.0.1:\(freePort)"
                      - name: busy
                        bind: "127.0.0.1:\(busyPort)"

                    """),
                "listener bind in use"
            )
            // The listener that could be bound was not left open.
            #expect((try? await TestClient.connect(port: freePort)) == nil)
            #expect(proxy.server.localAddress(ofListener: "extra") == nil)
            try await check(
                Self.withChat(listeners: """
                      - name: secure
                        bind: "127.0.0.1:0"
                        tls:
                          certificates:
                            - { cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }

                    """),
                "missing certificate file"
            )
            try await check(
                Self.withChat(top: "auth:\n  - { name: keys, type: jwt, algorithms: [RS256], jwks_file: /nonexistent/jwks.json }\n"),
                "missing JWKS file"
            )
            try await check(
                Self.withChat(top: "auth:\n  - { name: bots, type: static, tokens_file: /nonexistent/tokens.txt }\n"),
                "missing tokens file"
            )
            try await check(
                Self.withChat(top: "auth:\n  - { name: hs, type: jwt, algorithms: [HS256], secret_env: \(unset) }\n"),
                "unset secret variable"
            )
            try await check(Self.withChat(admin: "admin: { bind: \"127.0.0.1:0\", token_env: \(unset) }"), "unset admin token variable")
            try await check(Self.withChat() + "\nroutes: [\n", "syntax error")
            #expect(proxy.logs.contains("reload failed"))
        }
        try await busy.close()
    }

    @Test func aMovedAdminEndpointIsBoundBeforeTheOldOneCloses() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-atomic-\(UUID().uuidString).yaml").path
        try Self.base.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        try await TestProxy.with(Self.base, file: file) { proxy in
            let oldPort = try #require(proxy.server.adminAddress?.port)
            let old = BindAddress(host: "127.0.0.1", port: oldPort)
            // Unchanged address: the same endpoint keeps serving (an ephemeral port would otherwise change).
            try Self.withChat().write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try await AdminClient.request(.POST, "/reload", address: old, token: nil).status == 200)
            #expect(proxy.server.adminAddress?.port == oldPort)
            #expect(try await self.status(proxy, path: "/chat") == 101)
            // A new address: the answer to this very reload still comes from the old endpoint, then it closes.
            let newPort = try await DrainTests.freePort()
            try Self.withChat(admin: "admin: { bind: \"127.0.0.1:\(newPort)\" }").write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try await AdminClient.request(.POST, "/reload", address: old, token: nil).status == 200)
            #expect(proxy.server.adminAddress?.port == newPort)
            #expect(try await AdminClient.request(.GET, "/healthz", address: BindAddress(host: "127.0.0.1", port: newPort), token: nil).status == 200)
            await #expect(throws: (any Error).self) {
                _ = try await AdminClient.request(.GET, "/healthz", address: old, token: nil, timeout: .seconds(5))
            }
        }
    }
}
