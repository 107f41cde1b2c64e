import Crypto
import Foundation
import GatehouseCluster
import JWTKit
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
@testable import Gatehouse

/// Cluster hooks that record what the handshake asks: revocations by subject, leases granted or refused.
final class PolicyTestClusterHooks: ClusterHooks {
    struct State {
        var revokedSubjects: Set<String> = []
        var leaseRefusal: HandshakeRefusal?
        var leases: [LeaseRequest] = []
        var released: [UInt64] = []
    }

    let node = "gw-test"
    let state = Mutex(State())

    init(revokedSubjects: Set<String> = [], leaseRefusal: HandshakeRefusal? = nil) {
        self.state.withLock {
            $0.revokedSubjects = revokedSubjects
            $0.leaseRefusal = leaseRefusal
        }
    }

    var leases: [LeaseRequest] { self.state.withLock { $0.leases } }
    var released: [UInt64] { self.state.withLock { $0.released } }

    func isRevoked(_ identity: AuthIdentity, now: Date) -> Bool {
        self.state.withLock { state in identity.subject.map { state.revokedSubjects.contains($0) } ?? false }
    }

    func acquireLease(_ request: LeaseRequest, on eventLoop: EventLoop) -> EventLoopFuture<Void> {
        let refusal: HandshakeRefusal? = self.state.withLock { state in
            state.leases.append(request)
            return state.leaseRefusal
        }
        if let refusal { return eventLoop.makeFailedFuture(refusal) }
        return eventLoop.makeSucceededVoidFuture()
    }

    func opened(_ row: RegistryRow) {}

    func released(connectionID: UInt64) {
        self.state.withLock { $0.released.append(connectionID) }
    }

    func channelsChanged(connectionID: UInt64, channels: [String]) {}
}

/// Static tokens for two subjects, written next to the configuration.
struct SubjectFixture {
    static let aliceToken = "alice-token-0123456789abcdef"
    static let bobToken = "bob-token-0123456789abcdef"
    let directory: URL

    static func make() throws -> SubjectFixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-subject-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let lines = [("alice", aliceToken), ("bob", bobToken)].map { name, token in
            "\(name) " + SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
        }
        try (lines.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("tokens.txt"), atomically: true, encoding: .utf8)
        return SubjectFixture(directory: directory)
    }

    var file: String { self.directory.appendingPathComponent("proxy.yaml").path }

    /// `cluster`: with a `cluster:` section (parsed only: a proxy started on it would connect to its database).
    func config(limits: String, openLimits: String = "", cluster: Bool = false) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: demo
            builtin: echo
        auth:
          - name: bots
            type: static
            tokens_file: tokens.txt
        routes:
          - name: capped
            path: "/capped"
            backend: demo
            origins: ["*"]
            auth: { providers: [bots] }
            limits: { \(limits) }
          - name: open
            path: "/open"
            backend: demo
            origins: ["*"]
            \(openLimits.isEmpty ? "" : "limits: { \(openLimits) }")
        \(cluster ? "cluster: { node: gw-test, postgres: { url_env: GATEHOUSE_PG_URL } }" : "")
        """
    }

    /// The parsed routes of ``config(limits:openLimits:)`` made ready to serve (no backend is ever contacted).
    func routes(limits: String, openLimits: String = "") async throws -> [String: ActiveRoute] {
        let config = try ProxyConfig.parse(yaml: self.config(limits: limits, openLimits: openLimits, cluster: true), file: self.file)
        let provider = try StaticTokenProvider.load(
            path: self.directory.appendingPathComponent("tokens.txt").path, name: "bots",
            position: ConfigPosition(file: self.file, line: 1, column: 1)
        )
        let metrics = ProxyMetrics()
        var routes: [String: ActiveRoute] = [:]
        for route in config.routes {
            let pool = BackendPool(
                name: "demo", servers: [BindAddress(host: "127.0.0.1", port: 9)], connectTimeout: .seconds(1),
                responseTimeout: .seconds(1), tls: nil
            )
            let auth = route.auth.map { RouteAuth(providers: [provider], sources: $0.tokenSources, scopes: $0.scopes) }
            routes[route.name] = ActiveRoute(config: route, backend: pool, counters: RouteCounters(), auth: auth, metrics: metrics.route(route.name))
        }
        return routes
    }
}

@Suite("Per-subject limits, revocation and leases")
struct SubjectLimitTests {
    func upgrade(_ proxy: TestProxy, path: String, token: String) async throws -> (TestResponseHead, TestClient) {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        try await client.sendUpgrade(path: path, extra: [("Authorization", "Bearer \(token)")])
        return (try await client.readHead(), client)
    }

    @Test func thirdConnectionOfASubjectIs429AndASlotComesBackOnClose() async throws {
        let fixture = try SubjectFixture.make()
        try await TestProxy.with(fixture.config(limits: "max_connections_per_subject: 2"), file: fixture.file) { proxy in
            var alice: [TestClient] = []
            for _ in 0..<2 {
                let (head, client) = try await self.upgrade(proxy, path: "/capped", token: SubjectFixture.aliceToken)
                #expect(head.status == 101)
                alice.append(client)
            }
            let (third, refused) = try await self.upgrade(proxy, path: "/capped", token: SubjectFixture.aliceToken)
            #expect(third.status == 429)
            #expect(third.header("retry-after") == "5")
            await refused.close()
            // Another subject from the same address is not held by alice's count.
            let (other, bob) = try await self.upgrade(proxy, path: "/capped", token: SubjectFixture.bobToken)
            #expect(other.status == 101)

            // Close one of alice's connections and wait until the proxy has closed it too.
            let first = alice.removeFirst()
            try await first.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
            #expect(try await first.readFrame().closeCode == 1000)
            _ = try await first.waitForClose()
            try await eventually("alice's slot to come back") {
                let (head, client) = try await self.upgrade(proxy, path: "/capped", token: SubjectFixture.aliceToken)
                if head.status == 101 {
                    alice.append(client)
                    return true
                }
                await client.close()
                return false
            }
            let (full, again) = try await self.upgrade(proxy, path: "/capped", token: SubjectFixture.aliceToken)
            #expect(full.status == 429)
            await again.close()
            await bob.close()
            for client in alice { await client.close() }
        }
    }

    // MARK: Unit level: the policy with a recording cluster

    static func request(token: String?, path: String, transport: UpgradeRequest.Transport = .http1) throws -> UpgradeRequest {
        var headers = HTTPHeaders()
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        headers.add(name: "Sec-WebSocket-Key", value: "dGhlIHNhbXBsZSBub25jZQ==")
        return UpgradeRequest(
            target: path, authority: "localhost", headers: headers, scheme: "http",
            clientAddress: try SocketAddress(ipAddress: "127.0.0.9", port: 40000), listener: "plain", transport: transport
        )
    }

    static func authorize(_ request: UpgradeRequest, _ route: ActiveRoute, id: UInt64, cluster: PolicyTestClusterHooks?) async throws -> Admission {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        return try await HandshakePolicy.authorize(request, route: route, connectionID: id, cluster: cluster, on: loop).get()
    }

    static func refusal(_ request: UpgradeRequest, _ route: ActiveRoute, id: UInt64, cluster: PolicyTestClusterHooks?) async throws -> HandshakeRefusal {
        do {
            let admission = try await Self.authorize(request, route, id: id, cluster: cluster)
            admission.ticket.release()
            throw TestError("admitted, expected a refusal")
        } catch let refusal as HandshakeRefusal {
            return refusal
        }
    }

    @Test func revokedTokenIs401AndHoldsNoSlot() async throws {
        let routes = try await SubjectFixture.make().routes(limits: "max_connections_per_subject: 2, max_connections_per_ip: 5")
        let route = try #require(routes["capped"])
        let cluster = PolicyTestClusterHooks(revokedSubjects: ["alice"])
        let refusal = try await Self.refusal(try Self.request(token: SubjectFixture.aliceToken, path: "/capped"), route, id: 1, cluster: cluster)
        #expect(refusal.status == .unauthorized)
        #expect(refusal.reason == "invalid token: token revoked")
        #expect(refusal.headers.first { $0.0 == "WWW-Authenticate" }?.1
            == "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"token revoked\"")
        #expect(route.counters.active.load(ordering: .relaxed) == 0)
        #expect(route.counters.connections(of: "127.0.0.9") == 0)
        #expect(route.counters.connections(ofSubject: "alice") == 0)
        // Bob is not revoked; without cluster mode nobody is.
        let bob = try await Self.authorize(try Self.request(token: SubjectFixture.bobToken, path: "/capped"), route, id: 2, cluster: cluster)
        bob.ticket.release()
        let alice = try await Self.authorize(try Self.request(token: SubjectFixture.aliceToken, path: "/capped"), route, id: 3, cluster: nil)
        alice.ticket.release()
        #expect(cluster.leases.isEmpty, "scope is local")
    }

    @Test func subjectSlotsAreCountedAndReturnedWithTheTicket() async throws {
        let route = try #require(try await SubjectFixture.make().routes(limits: "max_connections_per_subject: 2")["capped"])
        let request = try Self.request(token: SubjectFixture.aliceToken, path: "/capped")
        let first = try await Self.authorize(request, route, id: 1, cluster: nil)
        let second = try await Self.authorize(request, route, id: 2, cluster: nil)
        #expect(route.counters.connections(ofSubject: "alice") == 2)
        let refusal = try await Self.refusal(request, route, id: 3, cluster: nil)
        #expect(refusal == HandshakeRefusal(.tooManyRequests, "too many connections for this subject", headers: [("Retry-After", "5")]))
        #expect(route.counters.active.load(ordering: .relaxed) == 2)
        first.ticket.release()
        first.ticket.release()
        #expect(route.counters.connections(ofSubject: "alice") == 1)
        second.ticket.release()
        #expect(route.counters.connections(ofSubject: "alice") == 0)
        #expect(route.counters.active.load(ordering: .relaxed) == 0)
    }

    @Test func clusterScopeTakesALeaseReleasedExactlyOnce() async throws {
        let route = try #require(
            try await SubjectFixture.make().routes(
                limits: "scope: cluster, max_connections: 7, max_connections_per_ip: 5, max_connections_per_subject: 3"
            )["capped"]
        )
        let cluster = PolicyTestClusterHooks()
        let admission = try await Self.authorize(
            try Self.request(token: SubjectFixture.aliceToken, path: "/capped", transport: .http2), route, id: 42, cluster: cluster
        )
        let lease = try #require(cluster.leases.first)
        #expect(cluster.leases.count == 1)
        #expect(lease.row.id == "gw-test:42")
        #expect(lease.row.node == "gw-test")
        #expect(lease.row.route == "capped")
        #expect(lease.row.listener == "plain")
        #expect(lease.row.subject == "alice")
        #expect(lease.row.clientIP == "127.0.0.9")
        #expect(lease.row.transport == "h2")
        #expect(abs(lease.row.started.timeIntervalSinceNow) < 60)
        #expect(lease.maxConnections == 7 && lease.maxConnectionsPerIP == 5 && lease.maxConnectionsPerSubject == 3)
        #expect(cluster.released.isEmpty)
        admission.ticket.release()
        admission.ticket.release()
        #expect(cluster.released == [42])
    }

    @Test func refusedLeaseFailsTheHandshakeAndReturnsTheLocalSlots() async throws {
        let route = try #require(try await SubjectFixture.make().routes(limits: "scope: cluster, max_connections_per_subject: 3")["capped"])
        let full = HandshakeRefusal(.tooManyRequests, "too many connections for this subject", headers: [("Retry-After", "5")])
        let cluster = PolicyTestClusterHooks(leaseRefusal: full)
        let refusal = try await Self.refusal(try Self.request(token: SubjectFixture.aliceToken, path: "/capped"), route, id: 5, cluster: cluster)
        #expect(refusal == full)
        #expect(cluster.leases.count == 1)
        #expect(cluster.released.isEmpty, "no lease was granted, none is returned")
        #expect(route.counters.active.load(ordering: .relaxed) == 0)
        #expect(route.counters.connections(ofSubject: "alice") == 0)
    }

    @Test func localChecksRunBeforeTheLease() async throws {
        let route = try #require(try await SubjectFixture.make().routes(limits: "scope: cluster, max_connections_per_subject: 1")["capped"])
        let cluster = PolicyTestClusterHooks()
        let request = try Self.request(token: SubjectFixture.aliceToken, path: "/capped")
        let first = try await Self.authorize(request, route, id: 1, cluster: cluster)
        let refusal = try await Self.refusal(request, route, id: 2, cluster: cluster)
        #expect(refusal.reason == "too many connections for this subject")
        #expect(cluster.leases.map(\.row.id) == ["gw-test:1"], "the second handshake never reached the store")
        first.ticket.release()
        #expect(cluster.released == [1])
    }

    @Test func unauthenticatedClusterRoutesLeaseWithoutSubject() async throws {
        let routes = try await SubjectFixture.make().routes(limits: "max_connections: 3", openLimits: "scope: cluster, max_connections_per_ip: 4")
        let route = try #require(routes["open"])
        let cluster = PolicyTestClusterHooks()
        let admission = try await Self.authorize(try Self.request(token: nil, path: "/open"), route, id: 9, cluster: cluster)
        #expect(cluster.leases.map(\.row.subject) == [nil])
        #expect(cluster.leases.first?.maxConnectionsPerIP == 4)
        #expect(cluster.leases.first?.maxConnectionsPerSubject == nil)
        #expect(cluster.leases.first?.row.transport == "http/1.1")
        admission.ticket.release()
        #expect(cluster.released == [9])
        // Without cluster mode, scope: cluster counts locally and asks nobody.
        let local = try await Self.authorize(try Self.request(token: nil, path: "/open"), route, id: 10, cluster: nil)
        local.ticket.release()
        #expect(cluster.leases.count == 1)
    }

    // MARK: JWT claims that revocations match

    struct ClaimsWithID: JWTPayload {
        var sub: String
        var exp: Double
        var iat: Double?
        var jti: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    struct ClaimsWithNumericID: JWTPayload {
        var sub: String
        var exp: Double
        var jti: Int
        var iat: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func provider() async -> (JWTProvider, JWTKeyCollection) {
        let position = ConfigPosition(file: "t.yaml", line: 1, column: 1)
        let config = JWTProviderConfig(
            algorithms: ["HS256"], secretEnv: nil, jwksFile: nil, issuer: nil, audience: nil, leeway: .zero, requireExpiry: true,
            algorithmsPosition: position, secretEnvPosition: nil, jwksFilePosition: nil
        )
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: TestKeys.secret), digestAlgorithm: .sha256)
        return (JWTProvider(name: "main", config: config, hmac: ["HS256": keys], publicKeys: [:]), keys)
    }

    @Test func jwtIdentityCarriesJTIAndIssuedAt() async throws {
        let (provider, keys) = await Self.provider()
        let now = Date()
        let iat = (now.timeIntervalSince1970 - 100).rounded()
        let exp = now.timeIntervalSince1970 + 3600
        let token = try await keys.sign(ClaimsWithID(sub: "alice", exp: exp, iat: iat, jti: "token-1"))
        guard case .accepted(let identity) = await provider.verify(token, now: now) else {
            Issue.record("token refused")
            return
        }
        #expect(identity.subject == "alice")
        #expect(identity.jti == "token-1")
        #expect(identity.issuedAt == Date(timeIntervalSince1970: iat))

        let bare = try await keys.sign(ClaimsWithID(sub: "alice", exp: exp, iat: nil, jti: nil))
        guard case .accepted(let plain) = await provider.verify(bare, now: now) else {
            Issue.record("token without jti refused")
            return
        }
        #expect(plain.jti == nil && plain.issuedAt == nil)

        // Claims of another type than RFC 7519's are ignored, as before they were read.
        let odd = try await keys.sign(ClaimsWithNumericID(sub: "alice", exp: exp, jti: 7, iat: "yesterday"))
        guard case .accepted(let lenient) = await provider.verify(odd, now: now) else {
            Issue.record("token with a numeric jti refused")
            return
        }
        #expect(lenient.jti == nil && lenient.issuedAt == nil)

        let longest = try await keys.sign(ClaimsWithID(sub: "alice", exp: exp, iat: iat, jti: String(repeating: "j", count: 256)))
        guard case .accepted(let long) = await provider.verify(longest, now: now) else {
            Issue.record("256-byte jti refused")
            return
        }
        #expect(long.jti?.utf8.count == 256)
        let oversized = try await keys.sign(ClaimsWithID(sub: "alice", exp: exp, iat: iat, jti: String(repeating: "j", count: 257)))
        guard case .rejected(let reason) = await provider.verify(oversized, now: now) else {
            Issue.record("257-byte jti accepted")
            return
        }
        #expect(reason == .oversizedJTI)
    }

    @Test func staticTokensHaveNoJTIOrIssuedAt() async throws {
        let fixture = try SubjectFixture.make()
        let provider = try StaticTokenProvider.load(
            path: fixture.directory.appendingPathComponent("tokens.txt").path, name: "bots", position: ConfigPosition(file: "t", line: 1, column: 1)
        )
        guard case .accepted(let identity) = await provider.verify(SubjectFixture.bobToken, now: Date()) else {
            Issue.record("static token refused")
            return
        }
        #expect(identity.subject == "bob" && identity.jti == nil && identity.issuedAt == nil)
    }
}
