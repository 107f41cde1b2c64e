import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Gatehouse

/// A resolver whose answers the test sets, and which announces each lookup.
final class TestBackendResolver: BackendResolver {
    private let answers = Mutex<[String: [String]]>([:])
    private let lookups = LineCollector()

    func set(_ host: String, _ ips: [String]) {
        self.answers.withLock { $0[host] = ips }
    }

    func resolve(host: String, port: Int) async throws -> [BindAddress] {
        let ips = self.answers.withLock { $0[host] }
        self.lookups.append("\(host) \(ips?.joined(separator: ",") ?? "-")")
        guard let ips else { throw TestError("no such host \(host)") }
        return ips.map { BindAddress(host: $0, port: port) }
    }

    /// Waits until a lookup of `host` answered `ips`.
    func waitForLookup(_ host: String, answering ips: [String]) async throws {
        _ = try await self.lookups.waitForLine(containing: "\(host) \(ips.joined(separator: ","))", timeout: .seconds(10), what: "a lookup of \(host)")
    }
}

/// Server entries given by name: resolved off the loops, again every `resolve_interval`; each address is a
/// server, an address that goes away drains.
@Suite("Backend names")
struct BackendResolverTests {
    /// Echo servers on 127.0.0.1, 127.0.0.2 and 127.0.0.3, all on one port (loopback answers every 127/8 address).
    static func fleetOnOnePort() async throws -> (servers: [EchoServer], port: Int) {
        let first = try await EchoServer.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton)
        let port = first.localAddress?.port ?? 0
        var servers = [first]
        for host in ["127.0.0.2", "127.0.0.3"] {
            servers.append(try await EchoServer.start(host: host, port: port, group: MultiThreadedEventLoopGroup.singleton))
        }
        return (servers, port)
    }

    @Test func dnsChangesAddAndDrainServers() async throws {
        let (servers, port) = try await Self.fleetOnOnePort()
        let resolver = TestBackendResolver()
        resolver.set("app.test", ["127.0.0.1", "127.0.0.2"])
        let yaml = Balancing.config(servers: "[\"app.test:\(port)\"]", policy: "resolve_interval: 100ms\ndrain_rate: 100")
        let capture = LogCapture()
        let server = try await GatehouseServer.start(
            config: try ProxyConfig.parse(yaml: yaml, file: "test.yaml"),
            logger: Logger(label: "test") { _ in CapturingLogHandler(capture: capture) }, resolver: resolver
        )
        let proxy = TestProxy(server: server, logs: capture)
        do {
            let hosts = { (proxy.server.backendRuntime(named: "app")?.servers ?? []).map { "\($0.address.host)=\($0.live)" }.sorted() }
            try await eventually("two resolved servers") { hosts().count == 2 }
            var clients: [TestClient] = []
            for _ in 0..<4 { clients.append(try await Balancing.open(proxy)) }
            #expect(Balancing.live(proxy) == [port: 4])  // one port, two hosts
            #expect(hosts() == ["127.0.0.1=2", "127.0.0.2=2"])
            var byHost: [String: [TestClient]] = [:]
            for client in clients {
                byHost[try await Self.serverHost(proxy, of: client), default: []].append(client)
            }
            // .2 leaves DNS and .3 joins: .2's connections are drained with 1012, new ones go to .1 and .3.
            resolver.set("app.test", ["127.0.0.1", "127.0.0.3"])
            for client in byHost["127.0.0.2"] ?? [] {
                let frame = try await client.readFrame()
                #expect(frame.opcode == TestFrame.close)
                #expect(Array(frame.payload.prefix(2)) == [0x03, 0xF4])
                await client.close()
            }
            try await eventually("the vanished address to go") { !hosts().contains { $0.hasPrefix("127.0.0.2") } }
            var fresh: [TestClient] = []
            for _ in 0..<4 { fresh.append(try await Balancing.open(proxy)) }
            #expect(hosts() == ["127.0.0.1=4", "127.0.0.3=2"])
            // The kept address's connections were left alone.
            for client in byHost["127.0.0.1"] ?? [] {
                try await client.sendFrame(opcode: TestFrame.text, payload: Array("kept".utf8))
                #expect(try await client.readFrame().payload == Array("kept".utf8))
            }
            // A failed (or empty) lookup keeps the last addresses.
            resolver.set("app.test", [])
            _ = try await capture.waitForLine(containing: "keeping its last addresses")
            #expect(hosts() == ["127.0.0.1=4", "127.0.0.3=2"])
            for client in (byHost["127.0.0.1"] ?? []) + fresh { await client.close() }
        } catch {
            await proxy.stop()
            for server in servers { await server.stop() }
            throw error
        }
        await proxy.stop()
        for server in servers { await server.stop() }
    }

    @Test func theSystemResolverResolvesLocalhostOffTheLoop() async throws {
        let addresses = try await SystemBackendResolver().resolve(host: "localhost", port: 8080)
        #expect(!addresses.isEmpty)
        #expect(addresses.allSatisfy { $0.port == 8080 && BackendServerSet.isIPLiteral($0.host) })
        await #expect(throws: (any Error).self) {
            _ = try await SystemBackendResolver().resolve(host: "no-such-host.invalid", port: 1)
        }
    }

    static func serverHost(_ proxy: TestProxy, of client: TestClient) async throws -> String {
        guard let local = client.channel.localAddress?.port else { throw TestError("client has no local port") }
        for loop in proxy.server.engine.allLoops {
            let found = try await loop.eventLoop.submit {
                loop.connections.values.first { $0.record.client.hasSuffix(":\(local)") }?.record.backendAddress?.host
            }.get()
            if let found { return found }
        }
        throw TestError("no connection for client port \(local)")
    }
}
