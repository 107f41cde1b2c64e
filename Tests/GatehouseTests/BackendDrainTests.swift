import Foundation
import NIOCore
import Testing
@testable import Gatehouse

/// Draining servers: by the operator, by a reload that removes them; the close codes of each side; the runtime's
/// bookkeeping.
@Suite("Backend draining")
struct BackendDrainTests {
    // MARK: Decisions

    @Test func aDrainClosesTheClientWith1012AndTheServerWith1001() {
        var driver = RelayStateMachineTests.Driver()
        driver.machine.close(client: (.other(CloseCode.serviceRestart), "server leaving; reconnect"), backend: (.goingAway, "proxy draining this server"))
        let steps = driver.settle()
        #expect(
            steps.prefix(2) == [
                .close(1012, "server leaving; reconnect", to: .client), .close(1001, "proxy draining this server", to: .backend),
            ])
        #expect(driver.machine.ending == RelayEnding(code: .other(1012), by: .proxy, reason: "server leaving; reconnect"))
        // A second close (shutdown) changes nothing.
        #expect(driver.close(.goingAway, "server shutting down") == [])
    }

    @Test func theRuntimeKeepsLeavingServersUntilTheirLastConnection() {
        var config = BackendConfig(
            name: "app", kind: .servers([]), connectTimeout: .seconds(1), responseTimeout: .seconds(1), tls: nil,
            echoMaxFrameBytes: 1024, position: ConfigPosition(file: "-", line: 1, column: 1)
        )
        config.passive = nil
        let a = BindAddress(host: "10.0.0.1", port: 1)
        let b = BindAddress(host: "10.0.0.2", port: 1)
        let runtime = BackendRuntime(name: "app")
        #expect(runtime.update(servers: [(a, 1), (b, 1)], config: config).isEmpty)
        runtime.connectionOpened(b)
        #expect(runtime.setDrained(a, true))
        // A refresh that is not a reload keeps the operator's drain; a reload clears it.
        _ = runtime.update(servers: [(a, 1), (b, 1)], config: config)
        #expect(runtime.server(a)?.drained == true)
        _ = runtime.update(servers: [(a, 1), (b, 1)], config: config, clearDrains: true)
        #expect(runtime.server(a)?.drained == false)
        // b leaves: drained as removed, listed while it holds a connection, gone with its last one.
        #expect(runtime.update(servers: [(a, 1)], config: config) == [b])
        #expect(runtime.server(b)?.drainReason == "removed")
        #expect(runtime.servers.map(\.address) == [a, b])
        runtime.connectionClosed(b)
        #expect(runtime.server(b) == nil)
        #expect(runtime.setDrained(b, true) == false)
    }

    // MARK: Live

    /// 150 connections over three servers; draining one closes its 50 with 1012 at about 50 per second (spread
    /// over about a second, not at once), the others stay, and new handshakes go to the other two.
    @Test func drainClosesAServersConnectionsAtItsRate() async throws {
        let fleet = try await EchoFleet.start(3)
        let ports = fleet.ports
        let yaml = Balancing.config(servers: fleet.serversYAML(), policy: "drain_rate: 50")
        try await TestProxy.with(yaml) { proxy in
            var clients: [TestClient] = []
            for _ in 0..<150 { clients.append(try await Balancing.open(proxy)) }
            #expect(Balancing.live(proxy) == [ports[0]: 50, ports[1]: 50, ports[2]: 50])
            var drained: [TestClient] = []
            var others: [TestClient] = []
            for client in clients {
                if try await BalancingTests.serverPort(proxy, of: client) == ports[0] { drained.append(client) } else { others.append(client) }
            }
            let drainedServer = BindAddress(host: "127.0.0.1", port: ports[0])
            let started = ContinuousClock.now
            let answer = await proxy.server.drainBackendServer(backend: "app", server: drainedServer)
            #expect(answer == .done(closing: 50))
            // New handshakes during the drain go elsewhere.
            var fresh: [TestClient] = []
            for _ in 0..<10 {
                let client = try await Balancing.open(proxy)
                #expect(try await BalancingTests.serverPort(proxy, of: client) != ports[0])
                fresh.append(client)
            }
            let closedAt = try await withThrowingTaskGroup(of: (UInt16, Duration).self) { group in
                for client in drained {
                    group.addTask {
                        let frame = try await client.readFrame(timeout: .seconds(10))
                        let code = frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : 0
                        return (frame.opcode == TestFrame.close ? code : 0, ContinuousClock.now - started)
                    }
                }
                var result: [(UInt16, Duration)] = []
                for try await item in group { result.append(item) }
                return result
            }
            #expect(closedAt.allSatisfy { $0.0 == 1012 })
            let times = closedAt.map(\.1).sorted()
            let first = try #require(times.first)
            let last = try #require(times.last)
            // 50 at 50/s: about a second from first to last (jitter moves each by at most half a slot).
            #expect(last - first > .milliseconds(600), "spread \(last - first)")
            #expect(last < .seconds(4), "last close after \(last)")
            // Never all at once: at 50/s a 100 ms window holds about 5. The bound is loose because the times are taken
            // where the test reads the frames, and a test process starved on two loaded cores reads them in bunches.
            let burst = times.indices.map { index in times[index...].prefix { $0 - times[index] < .milliseconds(100) }.count }.max() ?? 0
            #expect(burst <= 25, "burst of \(burst)")
            _ = try await proxy.logs.waitForLine(containing: "ended_by=drain")
            for client in drained { await client.close() }
            try await eventually("the drained server's count to reach 0") { Balancing.live(proxy)[ports[0]] == 0 }
            #expect(Balancing.live(proxy)[ports[1]].map { $0 >= 50 } == true)
            // The others were left alone: each still echoes.
            for client in others.prefix(5) {
                try await client.sendFrame(opcode: TestFrame.text, payload: Array("still here".utf8))
                let echo = try await client.readFrame()
                #expect(echo.payload == Array("still here".utf8))
            }
            // Undrained, it takes connections again.
            #expect(await proxy.server.undrainBackendServer(backend: "app", server: drainedServer) == .done(closing: 0))
            var again: [TestClient] = []
            for _ in 0..<6 { again.append(try await Balancing.open(proxy)) }
            #expect((Balancing.live(proxy)[ports[0]] ?? 0) > 0)
            #expect(await proxy.server.drainBackendServer(backend: "app", server: BindAddress(host: "127.0.0.1", port: 1)) == .noSuchServer)
            #expect(await proxy.server.drainBackendServer(backend: "nope", server: drainedServer) == .noSuchBackend)
            for client in others + fresh + again { await client.close() }
        }
        await fleet.stop()
    }

    /// A reload that removes a server drains its connections (1012) and leaves the kept servers' connections open;
    /// an operator drain on a kept server ends with the reload.
    @Test func aReloadThatRemovesAServerDrainsIt() async throws {
        let fleet = try await EchoFleet.start(3)
        let ports = fleet.ports
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-drain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("proxy.yaml").path
        let yaml = Balancing.config(servers: fleet.serversYAML(), policy: "drain_rate: 100")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        try await TestProxy.with(yaml, file: file) { proxy in
            var clients: [TestClient] = []
            for _ in 0..<12 { clients.append(try await Balancing.open(proxy)) }
            var byServer: [Int: [TestClient]] = [:]
            for client in clients { byServer[try await BalancingTests.serverPort(proxy, of: client), default: []].append(client) }
            #expect(byServer.mapValues(\.count) == [ports[0]: 4, ports[1]: 4, ports[2]: 4])
            #expect(await proxy.server.drainBackendServer(backend: "app", server: BindAddress(host: "127.0.0.1", port: ports[1])) == .done(closing: 4))
            for client in byServer[ports[1]] ?? [] {
                let frame = try await client.readFrame()
                #expect(frame.opcode == TestFrame.close)
                await client.close()
            }
            try Balancing.config(servers: fleet.serversYAML([ports[0], ports[1]]), policy: "drain_rate: 100")
                .write(toFile: file, atomically: true, encoding: .utf8)
            guard case .success = await proxy.server.reload() else { throw TestError("reload failed") }
            for client in byServer[ports[2]] ?? [] {
                let frame = try await client.readFrame()
                #expect(frame.opcode == TestFrame.close)
                #expect(Array(frame.payload.prefix(2)) == [0x03, 0xF4])  // 1012
            }
            // The kept server's connections still echo; the drained one is back (the reload cleared the drain).
            for client in byServer[ports[0]] ?? [] {
                try await client.sendFrame(opcode: TestFrame.text, payload: Array("kept".utf8))
                #expect(try await client.readFrame().payload == Array("kept".utf8))
            }
            #expect(proxy.server.backendRuntime(named: "app")?.server(BindAddress(host: "127.0.0.1", port: ports[1]))?.drained == false)
            var fresh: [TestClient] = []
            for _ in 0..<4 { fresh.append(try await Balancing.open(proxy)) }
            for client in byServer[ports[2]] ?? [] { await client.close() }
            try await Balancing.waitForLive(proxy, [ports[0]: 6, ports[1]: 2])
            for client in (byServer[ports[0]] ?? []) + fresh { await client.close() }
        }
        await fleet.stop()
    }
}
