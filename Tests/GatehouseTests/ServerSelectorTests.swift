import NIOCore
import NIOHTTP1
import Testing
@testable import Gatehouse

/// Balancing decisions without sockets: weighted round robin, least connections, the Maglev ring, slow start,
/// eligibility, the server set built from entries and resolved names, hash keys of requests.
@Suite("Server selector")
struct ServerSelectorTests {
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static func server(_ port: Int, weight: Int = 1, load: Int = 0, eligible: Bool = true, since: NIODeadline = .uptimeNanoseconds(0)) -> ServerSelector.Candidate {
        ServerSelector.Candidate(address: BindAddress(host: "10.0.0.\(port % 250 + 1)", port: port), weight: weight, load: load, eligible: eligible, eligibleSince: since)
    }

    /// First choices of `count` requests, by port.
    static func firsts(
        _ servers: [ServerSelector.Candidate], policy: BalancePolicy = .roundRobin, count: Int, slowStart: TimeAmount = .zero,
        now: NIODeadline = t0, selector: inout ServerSelector
    ) -> [Int] {
        (0..<count).compactMap { _ in selector.order(servers, policy: policy, key: nil, slowStart: slowStart, now: now).first?.port }
    }

    @Test func weightedRoundRobinFollowsWeightsSmoothly() {
        var selector = ServerSelector()
        let servers = [Self.server(1, weight: 5), Self.server(2), Self.server(3)]
        let picks = Self.firsts(servers, count: 7, selector: &selector)
        // nginx's smooth sequence for 5/1/1: the heavy server never runs more than three times in a row.
        #expect(picks == [1, 1, 2, 1, 3, 1, 1])
        let many = Self.firsts([Self.server(1), Self.server(2, weight: 2), Self.server(3, weight: 3)], count: 600, selector: &selector)
        #expect([1, 2, 3].map { port in many.filter { $0 == port }.count } == [100, 200, 300])
    }

    @Test func theOrderListsEveryEligibleServerOnceFirstChoiceFirst() {
        var selector = ServerSelector()
        let servers = [Self.server(1), Self.server(2, eligible: false), Self.server(3), Self.server(4)]
        for _ in 0..<8 {
            let order = selector.order(servers, policy: .roundRobin, key: nil, slowStart: .zero, now: Self.t0).map(\.port)
            #expect(Set(order) == [1, 3, 4])
            #expect(order.count == 3)
        }
    }

    @Test func withNoEligibleServerAllAreTried() {
        var selector = ServerSelector()
        let servers = [Self.server(1, eligible: false), Self.server(2, eligible: false)]
        #expect(Set(selector.order(servers, policy: .leastConnections, key: nil, slowStart: .zero, now: Self.t0).map(\.port)) == [1, 2])
        #expect(selector.order([], policy: .roundRobin, key: nil, slowStart: .zero, now: Self.t0).isEmpty)
    }

    @Test func leastConnectionsPicksTheLowestLoadPerWeightAndRotatesTies() {
        var selector = ServerSelector()
        let loaded = [Self.server(1, load: 4), Self.server(2, load: 1), Self.server(3, load: 3)]
        #expect(Self.firsts(loaded, policy: .leastConnections, count: 3, selector: &selector) == [2, 2, 2])
        // 6 on weight 3 (2 each) beats 3 on weight 1.
        let weighted = [Self.server(1, weight: 3, load: 6), Self.server(2, load: 3)]
        #expect(Self.firsts(weighted, policy: .leastConnections, count: 2, selector: &selector) == [1, 1])
        let even = [Self.server(1), Self.server(2), Self.server(3)]
        #expect(Set(Self.firsts(even, policy: .leastConnections, count: 3, selector: &selector)) == [1, 2, 3])
    }

    @Test func leastConnectionsSpreadsAsLoadGrows() {
        var selector = ServerSelector()
        var loads = [1: 5, 2: 0, 3: 0]
        for _ in 0..<25 {
            let servers = [1, 2, 3].map { Self.server($0, load: loads[$0] ?? 0) }
            let first = selector.order(servers, policy: .leastConnections, key: nil, slowStart: .zero, now: Self.t0)[0].port
            loads[first, default: 0] += 1
        }
        #expect(loads == [1: 10, 2: 10, 3: 10])
    }

    @Test func slowStartRampsANewServersShare() {
        let slowStart = TimeAmount.seconds(30)
        let old = Self.server(1)
        let fresh = Self.server(2, since: Self.t0)
        #expect(ServerSelector.effectiveWeight(fresh, slowStart: slowStart, now: Self.t0) == 50)  // the 5% floor
        #expect(ServerSelector.effectiveWeight(fresh, slowStart: slowStart, now: Self.t0 + .seconds(15)) == 500)
        #expect(ServerSelector.effectiveWeight(fresh, slowStart: slowStart, now: Self.t0 + .seconds(31)) == 1000)
        #expect(ServerSelector.effectiveWeight(fresh, slowStart: .zero, now: Self.t0) == 1000)
        var selector = ServerSelector()
        let halfway = Self.firsts([old, fresh], count: 300, slowStart: slowStart, now: Self.t0 + .seconds(15), selector: &selector)
        #expect(halfway.filter { $0 == 2 }.count == 100)  // weight 0.5 against 1: a third
        var lc = ServerSelector()
        // Least connections: the fresh server at 10% of its weight looks ten times as loaded.
        let early = [Self.server(1, load: 5), Self.server(2, load: 1, since: Self.t0)]
        #expect(lc.order(early, policy: .leastConnections, key: nil, slowStart: slowStart, now: Self.t0 + .seconds(3))[0].port == 1)
    }

    @Test func hashSendsAKeyToOneServerAndFallsBackWithoutKey() {
        var selector = ServerSelector(ringSize: 4099)
        let servers = (1...4).map { Self.server($0) }
        let first = selector.order(servers, policy: .hash, key: "alice", slowStart: .zero, now: Self.t0)[0]
        for _ in 0..<20 {
            #expect(selector.order(servers, policy: .hash, key: "alice", slowStart: .zero, now: Self.t0)[0] == first)
        }
        let keyless = Self.firsts(servers, policy: .hash, count: 8, selector: &selector)
        #expect(Set(keyless) == [1, 2, 3, 4])
    }

    /// Removing one server of four moves about its quarter of the keys, and only those.
    @Test func removingOneOfFourServersRemapsAboutAQuarter() {
        let servers = (1...4).map { Self.server($0) }
        var before = ServerSelector()
        var after = ServerSelector()
        let keys = (0..<20_000).map { "subject-\($0)" }
        var moved = 0
        var movedFromKept = 0
        let removed = servers[2].address
        for key in keys {
            let old = before.order(servers, policy: .hash, key: key, slowStart: .zero, now: Self.t0)[0]
            let new = after.order(servers.filter { $0.address != removed }, policy: .hash, key: key, slowStart: .zero, now: Self.t0)[0]
            if old != new {
                moved += 1
                if old != removed { movedFromKept += 1 }
            }
        }
        let share = Double(moved) / Double(keys.count)
        #expect(share > 0.22 && share < 0.30, "moved \(share)")
        // Maglev moves a little beyond the removed server's own keys (< 2% here), never many.
        #expect(Double(movedFromKept) / Double(keys.count) < 0.02)
        // An ineligible server counts as removed for hashing.
        var drained = ServerSelector()
        let withDrained = servers.map { $0.address == removed ? Self.server($0.address.port, eligible: false) : $0 }
        for key in keys.prefix(500) {
            #expect(drained.order(withDrained, policy: .hash, key: key, slowStart: .zero, now: Self.t0)[0] != removed)
        }
    }

    @Test func hashSharesFollowWeights() {
        var selector = ServerSelector()
        let servers = [Self.server(1, weight: 1), Self.server(2, weight: 3)]
        let picks = (0..<8000).map { selector.order(servers, policy: .hash, key: "k\($0)", slowStart: .zero, now: Self.t0)[0].port }
        let heavy = Double(picks.filter { $0 == 2 }.count) / 8000
        #expect(heavy > 0.70 && heavy < 0.80, "share \(heavy)")
    }

    @Test func serverSetExpandsNamesAndKeepsLiterals() {
        let entries = [
            BackendServerConfig(address: BindAddress(host: "10.0.0.1", port: 80), weight: 2),
            BackendServerConfig(address: BindAddress(host: "app.internal", port: 8080), weight: 3),
            BackendServerConfig(address: BindAddress(host: "unresolved.internal", port: 9), weight: 1),
        ]
        let resolved = [BindAddress(host: "app.internal", port: 8080): [BindAddress(host: "10.0.0.7", port: 0), BindAddress(host: "::1", port: 0)]]
        let set = BackendServerSet.servers(entries: entries) { resolved[$0] }
        #expect(set.map(\.0) == [BindAddress(host: "10.0.0.1", port: 80), BindAddress(host: "10.0.0.7", port: 8080), BindAddress(host: "::1", port: 8080)])
        #expect(set.map(\.1) == [2, 3, 3])
        let many = (0..<200).map { BindAddress(host: "10.1.\($0 / 250).\($0 % 250)", port: 1) }
        #expect(BackendServerSet.servers(entries: [entries[1]]) { _ in many }.count == BackendServerSet.maxAddressesPerName)
        #expect(BackendServerSet.isIPLiteral("192.168.1.1"))
        #expect(BackendServerSet.isIPLiteral("::1"))
        #expect(!BackendServerSet.isIPLiteral("1.2.3.example"))
        #expect(!BackendServerSet.isIPLiteral("localhost"))
    }

    @Test func hashKeysAreReadFromTheRequest() {
        var headers = HTTPHeaders()
        headers.add(name: "X-Tenant", value: "acme")
        headers.add(name: "Cookie", value: "a=1; sticky=s-42")
        let request = UpgradeRequest(
            target: "/ws?room=blue&x=1", authority: "example.test", headers: headers, scheme: "http",
            clientAddress: try? SocketAddress(ipAddress: "192.0.2.9", port: 5555), listener: "plain", transport: .http1
        )
        #expect(HashKey.subject.value(in: request, subject: "alice") == "alice")
        #expect(HashKey.subject.value(in: request, subject: nil) == nil)
        #expect(HashKey.clientIP.value(in: request, subject: nil) == "192.0.2.9")
        #expect(HashKey.header("x-tenant").value(in: request, subject: nil) == "acme")
        #expect(HashKey.header("x-missing").value(in: request, subject: nil) == nil)
        #expect(HashKey.cookie("sticky").value(in: request, subject: nil) == "s-42")
        #expect(HashKey.query("room").value(in: request, subject: nil) == "blue")
        #expect(HashKey.query("nope").value(in: request, subject: nil) == nil)
    }
}
