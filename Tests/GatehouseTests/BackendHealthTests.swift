import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import Gatehouse

/// Active WebSocket health checks, passive health, `GET /backends`, the drain endpoints and the backend metrics.
@Suite("BackendHealth")
struct BackendHealthTests {
    // MARK: The probe's decisions (pure)

    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    static func head(_ status: HTTPResponseStatus, _ headers: [(String, String)]) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers))
    }

    static let valid101 = head(
        .switchingProtocols,
        [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", WebSocketAccept.value(forKey: key))]
    )

    @Test func aCompleteExchangePassesStepByStep() {
        var steps = WebSocketProbeSteps(key: Self.key, pingPayload: [1, 2, 3])
        #expect(steps.answer(Self.valid101) == .none)
        #expect(steps.upgradeEnded() == .sendPing([1, 2, 3]))
        #expect(steps.frame(.text, payload: Array("hello".utf8)) == .none)
        #expect(steps.frame(.pong, payload: [9, 9]) == .none, "an unsolicited pong decides nothing")
        #expect(steps.frame(.pong, payload: [1, 2, 3]) == .sendClose)
        #expect(steps.frame(.connectionClose, payload: [0x03, 0xE8]) == .pass)
        #expect(steps.timedOut() == .none, "a finished check cannot time out")
    }

    @Test func anAnswerOtherThan101Fails() {
        var steps = WebSocketProbeSteps(key: Self.key, pingPayload: [1])
        #expect(steps.answer(Self.head(.forbidden, [])) == .fail("answered 403 instead of 101"))
        var ok = WebSocketProbeSteps(key: Self.key, pingPayload: [1])
        #expect(ok.answer(Self.head(.ok, [])) == .fail("answered 200 instead of 101"))
    }

    @Test func anInvalid101Fails() {
        let accept = WebSocketAccept.value(forKey: Self.key)
        let cases: [([(String, String)], String)] = [
            ([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "AAAA")], "wrong Sec-WebSocket-Accept"),
            ([("Upgrade", "websocket"), ("Connection", "Upgrade")], "wrong Sec-WebSocket-Accept"),
            ([("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)], "no Upgrade: websocket"),
            ([("Upgrade", "websocket"), ("Sec-WebSocket-Accept", accept)], "no Connection: Upgrade"),
            (
                [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept), ("Sec-WebSocket-Protocol", "chat")],
                "selected a subprotocol none was offered"
            ),
        ]
        for (headers, problem) in cases {
            var steps = WebSocketProbeSteps(key: Self.key, pingPayload: [1])
            #expect(steps.answer(Self.head(.switchingProtocols, headers)) == .fail("invalid 101: \(problem)"))
        }
        #expect(WebSocketProbeSteps.problem(with101: Self.valid101, key: Self.key) == nil)
    }

    @Test func silenceAndEarlyClosesFailWithTheirStage() {
        var noPong = WebSocketProbeSteps(key: Self.key, pingPayload: [7])
        _ = noPong.answer(Self.valid101)
        _ = noPong.upgradeEnded()
        #expect(noPong.timedOut() == .fail("no pong in time"))
        var closed = WebSocketProbeSteps(key: Self.key, pingPayload: [7])
        _ = closed.answer(Self.valid101)
        _ = closed.upgradeEnded()
        #expect(closed.frame(.connectionClose, payload: [0x03, 0xF3]) == .fail("server closed before the pong (code 1011)"))
        var silent = WebSocketProbeSteps(key: Self.key, pingPayload: [7])
        #expect(silent.timedOut() == .fail("no upgrade answer in time"))
        var dropped = WebSocketProbeSteps(key: Self.key, pingPayload: [7])
        #expect(dropped.connectionEnded("connect failed") == .fail("connect failed"))
        #expect(dropped.connectionEnded("again") == .none)
    }

    // MARK: Against real backends

    static func config(servers: [Int], health: String?, passive: String = "passive: off") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: app
            servers: [\(servers.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", "))]
            \(health.map { "health: \($0)" } ?? "")
            \(passive)
        routes:
          - name: echo
            path: "/echo"
            backend: app
            origins: ["*"]
        admin: { bind: "127.0.0.1:0" }
        """
    }

    /// Runs `body` on a proxy started from `yaml` with its health checker running (starting it is a no-op once the
    /// server starts it itself); the checker is stopped before the proxy.
    static func withChecks(_ yaml: String, _ body: (TestProxy) async throws -> Void) async throws {
        try await TestProxy.with(yaml) { proxy in
            let checker = proxy.server.healthChecker
            checker.start(proxy.server.core.withLock { $0.state })
            do {
                try await body(proxy)
                await checker.stop()
            } catch {
                await checker.stop()
                throw error
            }
        }
    }

    static func admin(_ proxy: TestProxy, _ method: HTTPMethod, _ path: String) async throws -> (status: UInt, body: String) {
        let port = try #require(proxy.server.adminAddress?.port)
        return try await AdminClient.request(method, path, address: BindAddress(host: "127.0.0.1", port: port), token: nil)
    }

    /// The servers of backend `app` on `GET /backends`, by address.
    static func servers(_ proxy: TestProxy) async throws -> [String: [String: Any]] {
        let (status, body) = try await Self.admin(proxy, .GET, "/backends")
        #expect(status == 200)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
        let app = try #require(list.first { $0["name"] as? String == "app" })
        let servers = try #require(app["servers"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: servers.compactMap { server in (server["address"] as? String).map { ($0, server) } })
    }

    static func metrics(_ proxy: TestProxy) async throws -> Exposition {
        let (status, body) = try await Self.admin(proxy, .GET, "/metrics")
        #expect(status == 200)
        return Exposition(body)
    }

    /// Opens a WebSocket through the proxy and returns the status of the answer.
    static func handshake(_ proxy: TestProxy) async throws -> Int {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        defer { Task { await client.close() } }
        try await client.sendUpgrade(path: "/echo")
        return try await client.readHead().status
    }

    /// A loopback port nobody listens on: bound, then closed.
    static func closedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(channel.localAddress?.port)
        try await channel.close()
        return port
    }

    @Test func aServerThatRefusesTheUpgradeIsEjectedThoughItAnswersHTTP() async throws {
        try await PythonPeerServer.with("ws_backend_faults.py", ["refuse-upgrade-200"]) { refusing, refusingPort in
            try await PythonPeerServer.with("ws_backend_faults.py", ["ok"]) { _, goodPort in
                // A TCP check would pass: the port accepts connections.
                let tcp = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: refusingPort).get()
                try await tcp.close()
                let yaml = Self.config(servers: [refusingPort, goodPort], health: "{interval: 200ms, timeout: 150ms, rise: 2, fall: 2, path: /health}")
                try await Self.withChecks(yaml) { proxy in
                    let bad = "127.0.0.1:\(refusingPort)"
                    let good = "127.0.0.1:\(goodPort)"
                    _ = try await refusing.waitForLine(containing: "upgrade /health refuse-upgrade-200")
                    let down = try await proxy.logs.waitForLine(containing: "backend server down")
                    #expect(down.contains("server=\(bad)") && down.contains("answered 200 instead of 101"), "\(down)")
                    let servers = try await Self.servers(proxy)
                    #expect(servers[bad]?["healthy"] as? Bool == false)
                    #expect(servers[bad]?["eligible"] as? Bool == false)
                    #expect(servers[good]?["healthy"] as? Bool == true)
                    #expect(servers[good]?["eligible"] as? Bool == true)
                    let metrics = try await Self.metrics(proxy)
                    #expect(metrics.value("gatehouse_backend_server_up", ["backend": "app", "server": bad]) == 0)
                    #expect(metrics.value("gatehouse_backend_server_up", ["backend": "app", "server": good]) == 1)
                    #expect(metrics.value("gatehouse_backend_ejections_total", ["backend": "app", "server": bad, "reason": "active"]) == 1)
                    #expect(metrics.value("gatehouse_backend_health_checks_total", ["backend": "app", "server": bad, "result": "fail"]) >= 2)
                    #expect(metrics.value("gatehouse_backend_health_checks_total", ["backend": "app", "server": good, "result": "pass"]) >= 1)
                    // Balancing: while it is out, every new handshake goes to the other server.
                    for _ in 0..<8 { #expect(try await Self.handshake(proxy) == 101) }
                }
            }
        }
    }

    @Test func aServerThatStopsAnsweringPingsIsEjectedAndReadmittedAfterRise() async throws {
        let modeFile = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-health-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: modeFile) }
        try "ok".write(toFile: modeFile, atomically: true, encoding: .utf8)
        try await PythonPeerServer.with("ws_backend_faults.py", ["ok", modeFile]) { _, flakyPort in
            try await PythonPeerServer.with("ws_backend_faults.py", ["ok"]) { _, goodPort in
                let yaml = Self.config(servers: [flakyPort, goodPort], health: "{interval: 200ms, timeout: 150ms, rise: 3, fall: 2}")
                try await Self.withChecks(yaml) { proxy in
                    let flaky = "127.0.0.1:\(flakyPort)"
                    try await eventually("a passed check of \(flaky)") {
                        try await Self.metrics(proxy).value(
                            "gatehouse_backend_health_checks_total", ["backend": "app", "server": flaky, "result": "pass"]
                        ) >= 1
                    }
                    try "no-pong".write(toFile: modeFile, atomically: true, encoding: .utf8)
                    let down = try await proxy.logs.waitForLine(containing: "backend server down")
                    #expect(down.contains("server=\(flaky)") && down.contains("no pong in time"), "\(down)")
                    #expect(try await Self.servers(proxy)[flaky]?["eligible"] as? Bool == false)
                    #expect(try await Self.metrics(proxy).value("gatehouse_backend_server_up", ["backend": "app", "server": flaky]) == 0)
                    for _ in 0..<4 { #expect(try await Self.handshake(proxy) == 101) }
                    let passesBefore = try await Self.metrics(proxy).value(
                        "gatehouse_backend_health_checks_total", ["backend": "app", "server": flaky, "result": "pass"]
                    )
                    try "ok".write(toFile: modeFile, atomically: true, encoding: .utf8)
                    let up = try await proxy.logs.waitForLine(containing: "backend server up")
                    #expect(up.contains("server=\(flaky)"), "\(up)")
                    let metrics = try await Self.metrics(proxy)
                    // Readmitted after `rise` (3) passes in a row, not before.
                    #expect(metrics.value("gatehouse_backend_health_checks_total", ["backend": "app", "server": flaky, "result": "pass"]) - passesBefore >= 3)
                    #expect(metrics.value("gatehouse_backend_server_up", ["backend": "app", "server": flaky]) == 1)
                    #expect(try await Self.servers(proxy)[flaky]?["healthy"] as? Bool == true)
                }
            }
        }
    }

    @Test func connectFailuresEjectAServerPassivelyWithoutCheckTraffic() async throws {
        let closed = try await Self.closedPort()
        try await PythonPeerServer.with("ws_backend_faults.py", ["ok"]) { good, goodPort in
            let yaml = Self.config(servers: [closed, goodPort], health: nil, passive: "passive: {failures: 2, window: 10s, eject: 30s}")
            try await Self.withChecks(yaml) { proxy in
                let dead = "127.0.0.1:\(closed)"
                // Failover hides the refused connects from clients; each one counts against the server.
                for _ in 0..<4 { #expect(try await Self.handshake(proxy) == 101) }
                let servers = try await Self.servers(proxy)
                let ejectedFor = try #require(servers[dead]?["ejected_until"] as? Double, "\(servers)")
                #expect(ejectedFor > 20 && ejectedFor <= 30)
                #expect(servers[dead]?["eligible"] as? Bool == false)
                #expect(servers[dead]?["healthy"] as? Bool == true, "no active checks: health stays up")
                var metrics = try await Self.metrics(proxy)
                #expect(metrics.value("gatehouse_backend_server_up", ["backend": "app", "server": dead]) == 0)
                #expect(metrics.value("gatehouse_backend_server_up", ["backend": "app", "server": "127.0.0.1:\(goodPort)"]) == 1)
                let failures = metrics.value("gatehouse_backend_connect_failures_total", ["backend": "app", "server": dead])
                #expect(failures == 2)
                // Balancing: handshakes no longer try it first.
                for _ in 0..<6 { #expect(try await Self.handshake(proxy) == 101) }
                metrics = try await Self.metrics(proxy)
                #expect(metrics.value("gatehouse_backend_connect_failures_total", ["backend": "app", "server": dead]) == failures)
                // No `health`: no check traffic at all.
                #expect(!metrics.values.keys.contains { $0.hasPrefix("gatehouse_backend_health_checks_total") })
                #expect(!good.child.output.all.contains { !$0.contains("upgrade /echo") && $0.hasPrefix("upgrade") })
            }
        }
    }

    @Test func backendsEndpointAndDrainEndpoints() async throws {
        try await PythonPeerServer.with("ws_backend_faults.py", ["ok"]) { _, port in
            try await TestProxy.with(Self.config(servers: [port], health: nil)) { proxy in
                let server = "127.0.0.1:\(port)"
                let (status, body) = try await Self.admin(proxy, .GET, "/backends")
                #expect(status == 200)
                let list = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
                #expect(list.first?["balance"] as? String == "round_robin")
                let entry = try #require(try await Self.servers(proxy)[server])
                #expect(entry["weight"] as? Int == 1)
                #expect(entry["live"] as? Int == 0)
                #expect(entry["healthy"] as? Bool == true)
                #expect(entry["ejected_until"] is NSNull)
                #expect(entry["drained"] as? Bool == false)
                #expect(entry["drain_reason"] is NSNull)
                #expect(entry["eligible"] as? Bool == true)
                #expect(try await Self.admin(proxy, .POST, "/backends").status == 405)
                #expect(try await Self.admin(proxy, .GET, "/backends/app/servers/\(server)/drain").status == 405)
                #expect(try await Self.admin(proxy, .POST, "/backends/app/servers/nonsense/drain").status == 400)
                #expect(try await Self.admin(proxy, .POST, "/backends/nope/servers/\(server)/drain").status == 404)
                #expect(try await Self.admin(proxy, .POST, "/backends/app/servers/127.0.0.1:1/drain").status == 404)
                let drained = try await Self.admin(proxy, .POST, "/backends/app/servers/\(server)/drain")
                #expect(drained.status == 200, "\(drained.body)")
                let answer = try #require(try JSONSerialization.jsonObject(with: Data(drained.body.utf8)) as? [String: Any])
                #expect(answer["drained"] as? Bool == true)
                #expect(answer["closing"] as? Int == 0)
                let after = try #require(try await Self.servers(proxy)[server])
                #expect(after["drained"] as? Bool == true)
                #expect(after["drain_reason"] as? String == "operator")
                #expect(after["eligible"] as? Bool == false)
                #expect(try await Self.metrics(proxy).value("gatehouse_backend_server_up", ["backend": "app", "server": server]) == 0)
                let undrained = try await Self.admin(proxy, .POST, "/backends/app/servers/\(server)/undrain")
                #expect(undrained.status == 200, "\(undrained.body)")
                #expect(try await Self.servers(proxy)[server]?["eligible"] as? Bool == true)
            }
        }
    }
}
