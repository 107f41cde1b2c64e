import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Gatehouse

/// The admin API against web pages (cross-site requests, DNS rebinding) and on a Unix socket.
@Suite("Admin hardening")
struct AdminHardeningTests {
    static let base = OperationsTests.base

    /// Writes `yaml` to a fresh file and starts a proxy on it (reload re-reads that file).
    func withProxy(_ yaml: String, _ body: (TestProxy, Int) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-adm-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await TestProxy.with(yaml, file: path) { proxy in
            try await body(proxy, try #require(proxy.server.adminAddress?.port))
        }
    }

    /// Sends one raw request (exactly these headers) to the admin port and reads the answer.
    func raw(port: Int, _ method: String, _ path: String, _ headers: [(String, String)], body: String = "") async throws -> (Int, String) {
        let client = try await TestClient.connect(port: port)
        defer { Task { await client.close() } }
        return try await self.exchange(client, method, path, headers, body: body)
    }

    func exchange(_ client: TestClient, _ method: String, _ path: String, _ headers: [(String, String)], body: String = "") async throws -> (Int, String) {
        var text = "\(method) \(path) HTTP/1.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        try await client.send(text)
        let (head, answer) = try await client.readResponse()
        return (head.status, answer)
    }

    @Test func crossSiteDrainIsRefusedAndTheProxyKeepsServing() async throws {
        try await self.withProxy(Self.base) { proxy, port async throws in
            // What an HTML form on another site posts: a "simple" request, no preflight.
            let (status, body) = try await self.raw(port: port, "POST", "/drain", [
                ("Host", "127.0.0.1:\(port)"), ("Origin", "https://evil.example"), ("Content-Type", "text/plain"),
            ], body: "x")
            #expect(status == 403, "\(body)")
            #expect(!proxy.server.isDraining)
            #expect(try await self.raw(port: port, "GET", "/readyz", [("Host", "127.0.0.1:\(port)")]).0 == 200)
            // Even a GET that a page could read is refused when it carries an Origin.
            #expect(try await self.raw(port: port, "GET", "/connections", [("Host", "localhost"), ("Origin", "null")]).0 == 403)
        }
    }

    @Test func fetchMetadataOtherThanNoneIsRefused() async throws {
        try await self.withProxy(Self.base) { _, port async throws in
            for site in ["cross-site", "same-site", "same-origin"] {
                let (status, _) = try await self.raw(port: port, "GET", "/connections", [("Host", "127.0.0.1:\(port)"), ("Sec-Fetch-Site", site)])
                #expect(status == 403, "Sec-Fetch-Site: \(site)")
            }
            // The operator typing the URL into the address bar.
            #expect(try await self.raw(port: port, "GET", "/connections", [("Host", "localhost:\(port)"), ("Sec-Fetch-Site", "none")]).0 == 200)
        }
    }

    @Test func foreignHostIsRefused() async throws {
        try await self.withProxy(Self.base) { _, port async throws in
            // DNS rebinding: evil.example now resolves to 127.0.0.1, the browser sends its own name.
            #expect(try await self.raw(port: port, "GET", "/connections", [("Host", "evil.example")]).0 == 403)
            #expect(try await self.raw(port: port, "GET", "/connections", [("Host", "evil.example:\(port)")]).0 == 403)
            #expect(try await self.raw(port: port, "DELETE", "/connections?subject=a", [("Host", "evil.example"), ("Gatehouse-Admin", "1")]).0 == 403)
            #expect(try await self.raw(port: port, "GET", "/connections", []).0 == 403)
            for host in ["127.0.0.1:\(port)", "127.0.0.1", "localhost", "LOCALHOST:\(port)", "[::1]:\(port)", "localhost."] {
                #expect(try await self.raw(port: port, "GET", "/connections", [("Host", host)]).0 == 200, "Host: \(host)")
            }
        }
    }

    @Test func stateChangesNeedTheConfirmationHeader() async throws {
        try await self.withProxy(Self.base) { proxy, port async throws in
            let host = ("Host", "127.0.0.1:\(port)")
            #expect(try await self.raw(port: port, "POST", "/reload", [host]).0 == 403)
            #expect(try await self.raw(port: port, "POST", "/reload", [host, ("Gatehouse-Admin", "yes")]).0 == 403)
            #expect(try await self.raw(port: port, "DELETE", "/connections?subject=a", [host]).0 == 403)
            #expect(try await self.raw(port: port, "POST", "/drain", [host]).0 == 403)
            #expect(!proxy.server.isDraining)
            let (status, body) = try await self.raw(port: port, "POST", "/reload", [host, ("Gatehouse-Admin", "1")])
            #expect(status == 200, "\(body)")
            // The documented client sends it.
            #expect(try await AdminClient.request(.POST, "/reload", address: BindAddress(host: "127.0.0.1", port: port), token: nil).status == 200)
        }
    }

    @Test func theAdminTokenAlsoAuthorisesStateChanges() async throws {
        let variable = "GATEHOUSE_TEST_ADMIN_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        setenv(variable, "admin-hardening-token", 1)
        let yaml = Self.base.replacingOccurrences(of: "admin: { bind: \"127.0.0.1:0\" }", with: "admin: { bind: \"127.0.0.1:0\", token_env: \(variable) }")
        try await self.withProxy(yaml) { _, port async throws in
            let host = ("Host", "127.0.0.1:\(port)")
            #expect(try await self.raw(port: port, "POST", "/reload", [host, ("Authorization", "Bearer admin-hardening-token")]).0 == 200)
            #expect(try await self.raw(port: port, "POST", "/reload", [host, ("Gatehouse-Admin", "1")]).0 == 401)
            // A page cannot use a token it would have to send with an Origin.
            let withOrigin = try await self.raw(port: port, "POST", "/reload", [
                host, ("Authorization", "Bearer admin-hardening-token"), ("Origin", "https://evil.example"),
            ])
            #expect(withOrigin.0 == 403)
        }
    }

    // MARK: Unix socket

    /// A fresh short directory (socket paths are limited to 107 bytes).
    func socketDirectory() throws -> String {
        let directory = "/tmp/gh-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        return directory
    }

    func unixConfig(_ socket: String, extra: String = "") -> String {
        Self.base.replacingOccurrences(of: "admin: { bind: \"127.0.0.1:0\" }", with: "admin: { bind: \"unix:\(socket)\"\(extra) }")
    }

    /// A raw HTTP client on a Unix socket.
    func unixClient(_ path: String) async throws -> TestClient {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(unixDomainSocketPath: path).get()
        let collector = InboundCollector(eventLoop: channel.eventLoop)
        try await channel.pipeline.addHandler(collector)
        return TestClient(channel: channel, inbound: collector)
    }

    static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return info.st_mode
    }

    @Test func unixSocketServesWithOwnerOnlyPermissionsAndIsRemovedOnStop() async throws {
        let directory = try self.socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/admin.sock"
        let yaml = self.unixConfig(socket)
        let path = directory + "/proxy.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let proxy = try await TestProxy.start(yaml, file: path)
        do {
            let mode = try #require(Self.mode(of: socket))
            #expect(mode & S_IFMT == S_IFSOCK)
            #expect(mode & 0o777 == 0o600)
            let client = try await self.unixClient(socket)
            let (status, body) = try await self.exchange(client, "GET", "/healthz", [("Host", "localhost")])
            await client.close()
            #expect(status == 200 && body == "ok\n")
            // What `gatehouse reload` does, through the socket.
            let config = try ConfigLoader.load(path: path)
            switch await ReloadRequest.send(for: config, environment: [:]) {
            case .success(let text): #expect(text.contains("\"reloaded\" : true"), "\(text)")
            case .failure(let text): Issue.record("reload through the socket failed: \(text)")
            }
        } catch {
            await proxy.stop()
            throw error
        }
        await proxy.stop()
        #expect(Self.mode(of: socket) == nil)
    }

    @Test func socketModeIsApplied() async throws {
        let directory = try self.socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/admin.sock"
        try await TestProxy.with(self.unixConfig(socket, extra: ", socket_mode: \"0660\"")) { _ in
            #expect(Self.mode(of: socket).map { $0 & 0o777 } == 0o660)
        }
    }

    @Test func staleSocketIsReplacedButAnotherFileIsNot() async throws {
        let directory = try self.socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/admin.sock"
        // A socket file left behind by a process that died.
        let stale = try await ExternalProcess.run(["python3", "-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", socket], timeout: 20)
        #expect(stale.status == 0, "\(stale.output)")
        #expect(Self.mode(of: socket).map { $0 & S_IFMT } == S_IFSOCK)
        try await TestProxy.with(self.unixConfig(socket)) { proxy in
            #expect(proxy.server.adminAddress != nil)
        }
        let regular = directory + "/not-a-socket"
        try "keep me".write(toFile: regular, atomically: true, encoding: .utf8)
        await #expect(throws: ConfigError.self) {
            try await TestProxy.with(self.unixConfig(regular)) { _ in }
        }
        #expect(try String(contentsOfFile: regular, encoding: .utf8) == "keep me")
    }

    @Test func socketInAMissingDirectoryIsAConfigError() async throws {
        let yaml = self.unixConfig("/tmp/gh-nonexistent-\(UUID().uuidString.prefix(8))/admin.sock")
        do {
            try await TestProxy.with(yaml, file: "adm.yaml") { _ in }
            Issue.record("the proxy started")
        } catch let error as ConfigError {
            #expect(error.line == 12 && error.message.contains("does not exist"), "\(error)")
        }
        let config = try ProxyConfig.parse(yaml: yaml, file: "adm.yaml")
        await #expect(throws: ConfigError.self) { try await ConfigCheck.verifyFiles(config) }
    }

    @Test func contradictoryAdminSettingsAreConfigErrors() throws {
        func error(_ admin: String) -> ConfigError? {
            let yaml = Self.base.replacingOccurrences(of: "admin: { bind: \"127.0.0.1:0\" }", with: "admin: \(admin)")
            do {
                _ = try ProxyConfig.parse(yaml: yaml, file: "p.yaml")
                return nil
            } catch {
                return error
            }
        }
        #expect(error("{ bind: \"127.0.0.1:0\", socket_mode: \"0600\" }")?.message.contains("only to a Unix socket") == true)
        #expect(error("{ socket_mode: \"0600\" }") != nil)
        #expect(error("{ bind: \"unix:/tmp/a.sock\", socket_mode: \"0666\" }")?.message.contains("every local user") == true)
        #expect(error("{ bind: \"unix:/tmp/a.sock\", socket_mode: \"0400\" }") != nil)
        #expect(error("{ bind: \"unix:/tmp/a.sock\", socket_mode: \"rw\" }") != nil)
        #expect(error("{ bind: \"unix:\" }") != nil)
        #expect(error("{ bind: \"unix:/tmp/\(String(repeating: "x", count: 120)).sock\" }") != nil)
        #expect(error("{ bind: \"unix:/tmp/a.sock\", socket_mode: \"0660\" }") == nil)
        // A listener or backend is never a Unix socket.
        #expect(throws: ConfigError.self) {
            _ = try ProxyConfig.parse(yaml: Self.base.replacingOccurrences(of: "bind: \"127.0.0.1:0\"\n", with: "bind: \"unix:/tmp/l.sock\"\n"), file: "p.yaml")
        }
    }

    @Test func hostNameParsing() {
        #expect(AdminRequestGuard.hostName(of: "[::1]:9901") == "::1")
        #expect(AdminRequestGuard.hostName(of: "Example.COM.") == "example.com")
        #expect(AdminRequestGuard.hostName(of: "::1") == nil)
        #expect(AdminRequestGuard.hostName(of: "a b") == nil)
        #expect(AdminRequestGuard.hostName(of: "localhost:x") == nil)
        let wildcard = AdminRequestGuard(bind: .tcp(BindAddress(host: "0.0.0.0", port: 9901)))
        var headers = NIOHTTP1HTTPHeaders()
        headers.add(name: "Host", value: "10.1.2.3:9901")
        #expect(wildcard.refusalBeforeAuthentication(headers) == nil)
        headers.replaceOrAdd(name: "Host", value: "rebound.example:9901")
        #expect(wildcard.refusalBeforeAuthentication(headers) != nil)
    }
}

import NIOHTTP1
typealias NIOHTTP1HTTPHeaders = NIOHTTP1.HTTPHeaders
