import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Gatehouse

/// Several in-process WebSocket echo servers, the servers of one backend in a test.
struct EchoFleet {
    let servers: [EchoServer]

    var ports: [Int] { self.servers.map { $0.localAddress?.port ?? 0 } }

    static func start(_ count: Int) async throws -> EchoFleet {
        var servers: [EchoServer] = []
        for _ in 0..<count {
            servers.append(try await EchoServer.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton))
        }
        return EchoFleet(servers: servers)
    }

    func stop() async {
        for server in self.servers { await server.stop() }
    }

    /// A `servers:` list of these servers (`weights` by index, 1 when absent).
    func serversYAML(_ ports: [Int]? = nil, weights: [Int: Int] = [:]) -> String {
        let entries = (ports ?? self.ports).enumerated().map { index, port in
            weights[index].map { "{address: \"127.0.0.1:\(port)\", weight: \($0)}" } ?? "\"127.0.0.1:\(port)\""
        }
        return "[\(entries.joined(separator: ", "))]"
    }
}

/// What balancing tests share: opening relayed connections and reading each server's live count.
enum Balancing {
    /// Opens a WebSocket through the proxy and returns it once the 101 arrived.
    static func open(_ proxy: TestProxy, path: String = "/ws", extra: [(String, String)] = []) async throws -> TestClient {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        try await client.sendUpgrade(path: path, extra: extra)
        let head = try await client.readHead()
        guard head.status == 101 else { throw TestError("expected 101, got \(head.status)") }
        return client
    }

    /// Live relayed connections per server port of `backend` (servers with none included).
    static func live(_ proxy: TestProxy, backend: String = "app") -> [Int: Int] {
        let servers = proxy.server.backendRuntime(named: backend)?.servers ?? []
        return Dictionary(servers.map { ($0.address.port, $0.live) }) { $0 + $1 }
    }

    /// Waits until the live counts are `expected`.
    static func waitForLive(_ proxy: TestProxy, _ expected: [Int: Int], backend: String = "app") async throws {
        try await eventually("live counts \(expected), now \(Self.live(proxy, backend: backend))") {
            Self.live(proxy, backend: backend) == expected
        }
    }

    static func config(servers: String, policy: String, route: String = "") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: app
            servers: \(servers)
        \(policy.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        routes:
          - name: app
            path: "/ws"
            backend: app
            origins: ["*"]
        \(route)
        """
    }
}

@Suite("Balancing")
struct BalancingTests {
    /// Skewed on purpose (10 closed on one server midway): least connections fills the gap and ends 10/10/10,
    /// which handshake order (round robin) would not.
    @Test func leastConnectionsSpreadsLiveConnectionsEvenly() async throws {
        let fleet = try await EchoFleet.start(3)
        let ports = fleet.ports
        try await TestProxy.with(Balancing.config(servers: fleet.serversYAML(), policy: "balance: least_connections")) { proxy in
            var clients: [TestClient] = []
            for _ in 0..<15 { clients.append(try await Balancing.open(proxy)) }
            try await Balancing.waitForLive(proxy, [ports[0]: 5, ports[1]: 5, ports[2]: 5])
            // Close the five of the first server: round robin would now give each server 5 more (5/10/10 for 25).
            let first = ports[0]
            var kept: [TestClient] = []
            for client in clients {
                let port = try await Self.serverPort(proxy, of: client)
                if port == first { await client.close() } else { kept.append(client) }
            }
            try await Balancing.waitForLive(proxy, [ports[0]: 0, ports[1]: 5, ports[2]: 5])
            for _ in 0..<20 { kept.append(try await Balancing.open(proxy)) }
            #expect(Balancing.live(proxy) == [ports[0]: 10, ports[1]: 10, ports[2]: 10])
            for client in kept { await client.close() }
            try await Balancing.waitForLive(proxy, [ports[0]: 0, ports[1]: 0, ports[2]: 0])
        }
        await fleet.stop()
    }

    /// Weights 1/2/3: 60 connections split 10/20/30 by smooth weighted round robin.
    @Test func roundRobinFollowsWeights() async throws {
        let fleet = try await EchoFleet.start(3)
        let ports = fleet.ports
        try await TestProxy.with(Balancing.config(servers: fleet.serversYAML(weights: [1: 2, 2: 3]), policy: "balance: round_robin")) { proxy in
            var clients: [TestClient] = []
            for _ in 0..<60 { clients.append(try await Balancing.open(proxy)) }
            #expect(Balancing.live(proxy) == [ports[0]: 10, ports[1]: 20, ports[2]: 30])
            for client in clients { await client.close() }
        }
        await fleet.stop()
    }

    /// `hash: {key: subject}` on a token route: each subject's connections all land on one server; a request of
    /// another backend key source (none here) would fall back to round robin.
    @Test func hashBySubjectKeepsASubjectOnOneServer() async throws {
        let fleet = try await EchoFleet.start(4)
        let fixture = try SubjectFixture.make()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let yaml = """
            listeners:
              - name: plain
                bind: "127.0.0.1:0"
            backends:
              - name: app
                servers: \(fleet.serversYAML())
                balance: hash
                hash: {key: subject}
            auth:
              - name: bots
                type: static
                tokens_file: tokens.txt
            routes:
              - name: app
                path: "/ws"
                backend: app
                origins: ["*"]
                auth: { providers: [bots] }
            """
        try await TestProxy.with(yaml, file: fixture.file) { proxy in
            var servers: [String: Set<Int>] = [:]
            var clients: [TestClient] = []
            for round in 0..<12 {
                let (subject, token) = round % 2 == 0 ? ("alice", SubjectFixture.aliceToken) : ("bob", SubjectFixture.bobToken)
                let client = try await Balancing.open(proxy, extra: [("Authorization", "Bearer \(token)")])
                servers[subject, default: []].insert(try await Self.serverPort(proxy, of: client))
                // Reconnects: half of them close at once, the next lands on the same server anyway.
                if round % 3 == 0 { await client.close() } else { clients.append(client) }
            }
            #expect(servers["alice"]?.count == 1)
            #expect(servers["bob"]?.count == 1)
            for client in clients { await client.close() }
        }
        await fleet.stop()
    }

    /// The server port of the connection `client` holds (the newest one not yet attributed, by the proxy's records).
    static func serverPort(_ proxy: TestProxy, of client: TestClient) async throws -> Int {
        guard let local = client.channel.localAddress?.port else { throw TestError("client has no local port") }
        for loop in proxy.server.engine.allLoops {
            let found = try await loop.eventLoop.submit {
                loop.connections.values.first { $0.record.client.hasSuffix(":\(local)") }?.record.backendAddress?.port
            }.get()
            if let found { return found }
        }
        throw TestError("no connection for client port \(local)")
    }
}
