import Foundation
import Logging
import PostgresNIO
import Testing
@testable import GatehouseCluster

#if canImport(Glibc)
import Glibc
#endif

/// The PostgreSQL engine of cluster mode against a real server (``PostgresFixture``): each test has a database of
/// its own, so they run in parallel.
@Suite("PostgreSQL cluster store", .enabled(if: PostgresFixture.isAvailable, "needs PostgreSQL binaries"), .timeLimit(.minutes(2)))
struct PostgresClusterStoreTests {
    static let logger = Logger(label: "gatehouse.test.store", factory: { _ in SwiftLogNoOpLogHandler() })
    static let live = Duration.seconds(30)
    static let epoch = Date(timeIntervalSince1970: 1_700_000_000)

    /// Runs `body` with a prepared store on a fresh database of `fixture` (the shared cluster by default).
    static func withStore(
        on fixture: PostgresFixture? = nil, url: String? = nil, prepare: Bool = true,
        _ body: (PostgresClusterStore, String) async throws -> Void
    ) async throws {
        let cluster: PostgresFixture
        if let fixture { cluster = fixture } else { cluster = try await PostgresFixture.shared() }
        let text: String
        if let url { text = url } else { text = try await cluster.createDatabase() }
        let store = try PostgresClusterStore(url: PostgresURL(text), logger: Self.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            if prepare { try await store.prepare() }
            try await body(store, text)
        }
    }

    static func row(
        _ id: String, node: String = "a", route: String = "chat", subject: String? = nil, ip: String = "10.0.0.1",
        started: Int = 0, channels: [String] = []
    ) -> RegistryRow {
        RegistryRow(
            id: id, node: node, route: route, listener: "public", subject: subject, clientIP: ip, transport: "http/1.1",
            started: Self.epoch.addingTimeInterval(Double(started)), channels: channels)
    }

    static func lease(
        _ row: RegistryRow, route: Int? = nil, ip: Int? = nil, subject: Int? = nil
    ) -> LeaseRequest {
        LeaseRequest(row: row, maxConnections: route, maxConnectionsPerIP: ip, maxConnectionsPerSubject: subject)
    }

    /// Moves `node`'s last heartbeat an hour back, as if it had stopped (the database clock decides liveness).
    static func kill(_ node: String, in store: PostgresClusterStore) async throws {
        try await store.execute("UPDATE gatehouse_nodes SET seen = now() - interval '1 hour' WHERE node = \(node)")
    }

    static func scalar(_ query: PostgresQuery, in store: PostgresClusterStore) async throws -> Int {
        var value = -1
        for try await number in try await store.client.query(query).decode(Int.self) { value = number }
        return value
    }

    // MARK: Schema

    @Test func concurrentPrepareOnAFreshDatabaseMigratesOnce() async throws {
        let fixture = try await PostgresFixture.shared()
        let url = try await fixture.createDatabase()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    try await Self.withStore(on: fixture, url: url, prepare: false) { store, _ in try await store.prepare() }
                }
            }
            try await group.waitForAll()
        }
        try await Self.withStore(on: fixture, url: url) { store, _ in
            // prepare() ran once more here: still one row per version.
            let version = try await Self.scalar("SELECT max(version)::int8 FROM gatehouse_schema", in: store)
            #expect(version == ClusterSchema.latestVersion)
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_schema", in: store) == ClusterSchema.migrations.count)
            #expect(try await store.heartbeat(node: "a", liveWithin: Self.live) == ["a"])
        }
    }

    @Test func serverErrorsCarrySQLStateButNotThePassword() async throws {
        try await Self.withStore(prepare: false) { store, url in
            let password = try #require(try PostgresURL(url).password)
            do {
                _ = try await store.heartbeat(node: "a", liveWithin: Self.live)
                Issue.record("heartbeat before prepare() succeeded")
            } catch let error as PostgresStoreError {
                #expect(error.kind == .server)
                #expect(error.sqlState == "42P01")
                #expect(error.description.contains("gatehouse_nodes"))
                #expect(!error.description.contains(password))
                #expect(!String(reflecting: error).contains(password))
            }
        }
    }

    // MARK: Nodes

    @Test func heartbeatReturnsLiveNodes() async throws {
        try await Self.withStore { store, _ in
            #expect(try await store.heartbeat(node: "b", liveWithin: Self.live) == ["b"])
            #expect(try await store.heartbeat(node: "a", liveWithin: Self.live) == ["a", "b"])
            try await Self.kill("b", in: store)
            #expect(try await store.heartbeat(node: "a", liveWithin: Self.live) == ["a"])
            #expect(try await store.heartbeat(node: "b", liveWithin: Self.live) == ["a", "b"])
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_nodes", in: store) == 2)
        }
    }

    @Test func reapRemovesNodesSilentLongerThanLiveWithinWithTheirRows() async throws {
        try await Self.withStore { store, _ in
            let liveWithin = Duration.seconds(1)
            _ = try await store.heartbeat(node: "a", liveWithin: liveWithin)
            _ = try await store.heartbeat(node: "b", liveWithin: liveWithin)
            try await store.apply(RegistryBatch(upserts: [Self.row("a:1"), Self.row("a:2")]), node: "a")
            try await store.apply(RegistryBatch(upserts: [Self.row("b:1", node: "b")]), node: "b")
            #expect(try await store.reapDeadNodes(liveWithin: liveWithin) == [])
            // Only b keeps beating; a goes silent and is reaped once the database clock is 1 s past its heartbeat.
            let reaped = try await eventuallyValue("node a reaped", deadline: .seconds(10)) { () -> [String]? in
                _ = try await store.heartbeat(node: "b", liveWithin: liveWithin)
                let names = try await store.reapDeadNodes(liveWithin: liveWithin)
                return names.isEmpty ? nil : names
            }
            #expect(reaped == ["a"])
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_connections WHERE node = 'a'", in: store) == 0)
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_connections WHERE node = 'b'", in: store) == 1)
            #expect(try await store.heartbeat(node: "b", liveWithin: liveWithin) == ["b"])
        }
    }

    @Test func reapRemovesOldBusPayloadsAndLongExpiredRevocations() async throws {
        try await Self.withStore { store, _ in
            try await store.execute("INSERT INTO gatehouse_bus_payloads (payload, created) VALUES ('old', now() - interval '6 minutes')")
            try await store.execute("INSERT INTO gatehouse_bus_payloads (payload) VALUES ('new')")
            let old = try await store.addRevocation(NewRevocation(subject: "x", jti: nil, issuedBefore: nil, expires: Date(timeIntervalSinceNow: -7200)))
            let recent = try await store.addRevocation(NewRevocation(subject: "y", jti: nil, issuedBefore: nil, expires: Date(timeIntervalSinceNow: -60)))
            #expect(try await store.reapDeadNodes(liveWithin: Self.live) == [])
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_bus_payloads", in: store) == 1)
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_revocations WHERE id = \(old.id)", in: store) == 0)
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_revocations WHERE id = \(recent.id)", in: store) == 1)
        }
    }

    // MARK: Registry

    @Test func applyUpsertsInChunksThenRemoves() async throws {
        try await Self.withStore { store, _ in
            _ = try await store.heartbeat(node: "a", liveWithin: Self.live)
            let rows = (0..<1_200).map { i in
                Self.row("a:\(i)", route: i % 2 == 0 ? "chat" : "feed", subject: i % 3 == 0 ? "alice" : nil, started: i,
                         channels: i % 4 == 0 ? ["news", "sport"] : [])
            }
            try await store.apply(RegistryBatch(upserts: rows), node: "a")
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_connections", in: store) == 1_200)
            let all = try await store.connections(matching: RegistryFilter(), liveWithin: Self.live, limit: 10_000)
            #expect(all == rows)
            #expect(try await store.connections(matching: RegistryFilter(), liveWithin: Self.live, limit: 3) == Array(rows.prefix(3)))
            let chat = try await store.connections(matching: RegistryFilter(route: "chat"), liveWithin: Self.live, limit: 10_000)
            #expect(chat.count == 600 && chat.allSatisfy { $0.route == "chat" })
            let alice = try await store.connections(matching: RegistryFilter(route: "feed", subject: "alice"), liveWithin: Self.live, limit: 10_000)
            #expect(alice.count == 200 && alice.allSatisfy { $0.route == "feed" && $0.subject == "alice" })
            #expect(try await store.connections(matching: RegistryFilter(id: "a:7"), liveWithin: Self.live, limit: 10) == [rows[7]])
            #expect(try await store.connections(matching: RegistryFilter(node: "b"), liveWithin: Self.live, limit: 10) == [])
            #expect(try await store.countSubscribers(channel: "sport", liveWithin: Self.live) == 300)
            #expect(try await store.countSubscribers(channel: "weather", liveWithin: Self.live) == 0)

            // One batch: a row upserted twice (last wins), channels changed, then removals (also of unknown ids).
            var changed = rows[1]
            changed.channels = ["sport"]
            let batch = RegistryBatch(
                upserts: [Self.row("a:1", channels: ["news"]), changed, Self.row("a:5000", started: 5000)],
                removals: (0..<100).map { "a:\($0 * 2)" } + ["a:nope"])
            try await store.apply(batch, node: "a")
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_connections", in: store) == 1_101)
            #expect(try await store.connections(matching: RegistryFilter(id: "a:1"), liveWithin: Self.live, limit: 10) == [changed])
            // 300 subscribed, 50 of them removed, a:1 subscribed now.
            #expect(try await store.countSubscribers(channel: "sport", liveWithin: Self.live) == 251)
            // Removals of another node's ids do nothing.
            try await store.apply(RegistryBatch(removals: ["a:1"]), node: "b")
            #expect(try await store.connections(matching: RegistryFilter(id: "a:1"), liveWithin: Self.live, limit: 10).count == 1)
        }
    }

    @Test func replaceRegistryReplacesOnlyThatNodesRows() async throws {
        try await Self.withStore { store, _ in
            _ = try await store.heartbeat(node: "a", liveWithin: Self.live)
            _ = try await store.heartbeat(node: "b", liveWithin: Self.live)
            try await store.apply(RegistryBatch(upserts: [Self.row("a:1"), Self.row("a:2")]), node: "a")
            try await store.apply(RegistryBatch(upserts: [Self.row("b:1", node: "b")]), node: "b")
            let fresh = [Self.row("a:3", started: 3, channels: ["x"]), Self.row("a:4", started: 4)]
            try await store.replaceRegistry(node: "a", rows: fresh)
            #expect(try await store.connections(matching: RegistryFilter(node: "a"), liveWithin: Self.live, limit: 10) == fresh)
            #expect(try await store.connections(matching: RegistryFilter(node: "b"), liveWithin: Self.live, limit: 10).map(\.id) == ["b:1"])
            try await store.replaceRegistry(node: "a", rows: [])
            #expect(try await store.connections(matching: RegistryFilter(node: "a"), liveWithin: Self.live, limit: 10) == [])
        }
    }

    @Test func rowsOfDeadNodesAreNotSeen() async throws {
        try await Self.withStore { store, _ in
            // No heartbeat yet: publishing rows creates the node row.
            try await store.replaceRegistry(node: "a", rows: [Self.row("a:1", channels: ["c"])])
            try await store.apply(RegistryBatch(upserts: [Self.row("b:1", node: "b", channels: ["c"])]), node: "b")
            #expect(try await store.connections(matching: RegistryFilter(), liveWithin: Self.live, limit: 10).map(\.id) == ["a:1", "b:1"])
            try await Self.kill("a", in: store)
            #expect(try await store.connections(matching: RegistryFilter(), liveWithin: Self.live, limit: 10).map(\.id) == ["b:1"])
            #expect(try await store.countSubscribers(channel: "c", liveWithin: Self.live) == 1)
            #expect(try await store.heartbeat(node: "b", liveWithin: Self.live) == ["b"])
        }
    }

    // MARK: Leases

    @Test func leaseLimitsRefuseInOrderRouteIPSubject() async throws {
        try await Self.withStore { store, _ in
            _ = try await store.heartbeat(node: "a", liveWithin: Self.live)
            let first = Self.row("a:1", subject: "alice", ip: "10.0.0.1")
            #expect(try await store.acquireLease(Self.lease(first, route: 3, ip: 1, subject: 1), liveWithin: Self.live) == .granted)
            // Asking again for the same id does not count the lease it already holds.
            #expect(try await store.acquireLease(Self.lease(first, route: 1, ip: 1, subject: 1), liveWithin: Self.live) == .granted)
            let sameIP = Self.row("a:2", subject: "bob", ip: "10.0.0.1")
            #expect(try await store.acquireLease(Self.lease(sameIP, route: 3, ip: 1, subject: 1), liveWithin: Self.live) == .refused(.clientIP))
            let sameSubject = Self.row("a:3", subject: "alice", ip: "10.0.0.2")
            #expect(try await store.acquireLease(Self.lease(sameSubject, route: 3, ip: 1, subject: 1), liveWithin: Self.live) == .refused(.subject))
            // No subject: the subject limit does not apply.
            let anonymous = Self.row("a:4", subject: nil, ip: "10.0.0.3")
            #expect(try await store.acquireLease(Self.lease(anonymous, route: 3, ip: 1, subject: 0), liveWithin: Self.live) == .granted)
            // Route full (2 of 2) and IP full: the route is named first.
            #expect(try await store.acquireLease(Self.lease(sameIP, route: 2, ip: 1, subject: 1), liveWithin: Self.live) == .refused(.route))
            // Other routes are counted apart; unlimited requests always pass.
            #expect(try await store.acquireLease(Self.lease(Self.row("a:5", route: "feed"), route: 1), liveWithin: Self.live) == .granted)
            #expect(try await store.acquireLease(Self.lease(Self.row("a:6", ip: "10.0.0.6")), liveWithin: Self.live) == .granted)
            // A removal releases the lease.
            try await store.apply(RegistryBatch(removals: ["a:1"]), node: "a")
            #expect(try await store.acquireLease(Self.lease(sameIP, route: 3, ip: 1, subject: 1), liveWithin: Self.live) == .granted)
            let granted = try await store.connections(matching: RegistryFilter(route: "chat"), liveWithin: Self.live, limit: 10)
            #expect(granted.map(\.id).sorted() == ["a:2", "a:4", "a:6"])
        }
    }

    @Test func concurrentLeasesFromTwoNodesNeverPassTheLimit() async throws {
        let fixture = try await PostgresFixture.shared()
        let url = try await fixture.createDatabase()
        try await Self.withStore(on: fixture, url: url) { first, _ in
            try await Self.withStore(on: fixture, url: url) { second, _ in
                let outcomes = try await withThrowingTaskGroup(of: LeaseOutcome.self) { group in
                    for i in 0..<20 {
                        let (store, node) = i % 2 == 0 ? (first, "a") : (second, "b")
                        group.addTask {
                            let row = Self.row("\(node):\(i)", node: node, ip: "10.0.0.\(i)")
                            return try await store.acquireLease(Self.lease(row, route: 5), liveWithin: Self.live)
                        }
                    }
                    return try await group.reduce(into: [LeaseOutcome]()) { $0.append($1) }
                }
                #expect(outcomes.filter { $0 == .granted }.count == 5)
                #expect(outcomes.filter { $0 == .refused(.route) }.count == 15)
                #expect(try await first.connections(matching: RegistryFilter(route: "chat"), liveWithin: Self.live, limit: 100).count == 5)
            }
        }
    }

    @Test func leasesOfDeadNodesDoNotCount() async throws {
        try await Self.withStore { store, _ in
            _ = try await store.heartbeat(node: "a", liveWithin: Self.live)
            for i in 0..<5 {
                #expect(try await store.acquireLease(Self.lease(Self.row("a:\(i)"), route: 5), liveWithin: Self.live) == .granted)
            }
            let late = Self.row("b:1", node: "b")
            #expect(try await store.acquireLease(Self.lease(late, route: 5), liveWithin: Self.live) == .refused(.route))
            try await Self.kill("a", in: store)
            #expect(try await store.acquireLease(Self.lease(late, route: 5), liveWithin: Self.live) == .granted)
            // Node b had no heartbeat yet: the lease created its node row, so its row counts as live.
            #expect(try await store.connections(matching: RegistryFilter(), liveWithin: Self.live, limit: 10).map(\.id) == ["b:1"])
        }
    }

    // MARK: Revocations

    @Test func revocationsAreStoredListedUntilExpiryAndDeleted() async throws {
        try await Self.withStore { store, _ in
            let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
            let bySubject = NewRevocation(subject: "alice", jti: nil, issuedBefore: now, expires: now.addingTimeInterval(3600))
            let byJTI = NewRevocation(subject: nil, jti: "token-7", issuedBefore: nil, expires: now.addingTimeInterval(60))
            let expired = NewRevocation(subject: "bob", jti: nil, issuedBefore: nil, expires: now.addingTimeInterval(-1))
            let first = try await store.addRevocation(bySubject)
            let second = try await store.addRevocation(byJTI)
            let third = try await store.addRevocation(expired)
            #expect(first.id < second.id && second.id < third.id)
            #expect(first.subject == "alice" && first.jti == nil && first.issuedBefore == now && first.expires == bySubject.expires)
            #expect(second.subject == nil && second.jti == "token-7" && second.issuedBefore == nil)
            #expect(abs(first.created.timeIntervalSinceNow) < 60)

            #expect(try await store.revocations(now: now, limit: 10) == [first, second])
            #expect(try await store.revocations(now: now, limit: 1) == [first])
            #expect(try await store.revocations(now: now.addingTimeInterval(120), limit: 10) == [first])
            #expect(try await store.revocations(now: now.addingTimeInterval(-10), limit: 10) == [first, second, third])

            #expect(try await store.deleteRevocation(id: first.id))
            #expect(try await !store.deleteRevocation(id: first.id))
            #expect(try await store.revocations(now: now, limit: 10) == [second])
        }
    }

    // MARK: Bus

    /// Envelopes a listener handled, and when it was ready.
    struct Listener {
        let ready: AsyncStream<Void>
        let received: AsyncStream<BusEnvelope>
        let task: Task<Void, any Error>

        init(_ store: PostgresClusterStore) {
            let ready = AsyncStream<Void>.makeStream()
            let received = AsyncStream<BusEnvelope>.makeStream()
            self.ready = ready.stream
            self.received = received.stream
            self.task = Task {
                try await store.listen(ready: { ready.continuation.yield() }, handle: { received.continuation.yield($0) })
            }
        }

        func waitUntilReady() async throws {
            let ready = self.ready
            try await withTimeout(20, "the bus listener to be ready") {
                for await _ in ready { return }
                throw TestError("listener ended before it was ready")
            }
        }

        func next(_ count: Int) async throws -> [BusEnvelope] {
            let received = self.received
            return try await withTimeout(20, "\(count) bus envelopes") {
                var envelopes: [BusEnvelope] = []
                for await envelope in received {
                    envelopes.append(envelope)
                    if envelopes.count == count { break }
                }
                return envelopes
            }
        }
    }

    static func envelope(_ text: String, bytes: Int = 0) -> BusEnvelope {
        BusEnvelope(
            from: "a", sent: Self.epoch,
            message: .push(
                request: text, selector: ConnectionSelector(subject: "alice"),
                message: PushMessage(text: false, body: Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31) }))))
    }

    @Test func busDeliversSmallAndLargeEnvelopesInOrderAndSkipsMalformedOnes() async throws {
        try await Self.withStore { store, _ in
            let listener = Listener(store)
            defer { listener.task.cancel() }
            try await listener.waitUntilReady()
            let small = Self.envelope("small", bytes: 100)
            // 60 KiB of body: 80 KiB of JSON, far over NOTIFY's 8000 bytes.
            let large = Self.envelope("large", bytes: 60 << 10)
            #expect(try large.encoded().count > 60 << 10)
            try await store.publish(small)
            try await store.publish(large)
            try await store.execute("SELECT pg_notify('gatehouse_bus', 'not json')")
            try await store.execute("SELECT pg_notify('gatehouse_bus', '{\"from\":\"x\"}')")
            try await store.execute("SELECT pg_notify('gatehouse_bus', '{\"ref\":987654321}')")
            let last = BusEnvelope(from: "b", sent: Self.epoch, message: .reply(BusReply(request: "r", to: "a", count: 3)))
            try await store.publish(last)
            #expect(try await listener.next(3) == [small, large, last])
            #expect(store.malformedBusPayloads == 3)
            #expect(try await Self.scalar("SELECT count(*) FROM gatehouse_bus_payloads", in: store) == 1)

            let tooLarge = Self.envelope("huge", bytes: 100 << 10)
            await #expect(throws: PostgresStoreError.self) { try await store.publish(tooLarge) }
        }
    }

    @Test func listenReturnsWhenCancelled() async throws {
        try await Self.withStore { store, _ in
            let listener = Listener(store)
            try await listener.waitUntilReady()
            listener.task.cancel()
            let task = listener.task
            try await withTimeout(10, "the listener to return") { try await task.value }
        }
    }

    @Test func listenThrowsWhenTheServerStopsAndWorksAfterItStarts() async throws {
        let fixture = try await PostgresFixture.dedicated()
        do {
            try await Self.withStore(on: fixture) { store, _ in
                let listener = Listener(store)
                try await listener.waitUntilReady()
                try await fixture.stop()
                let task = listener.task
                let failure = try await withTimeout(20, "the listener to fail") { () -> (any Error)? in
                    do {
                        try await task.value
                        return nil
                    } catch {
                        return error
                    }
                }
                #expect(failure is PostgresStoreError, "\(String(describing: failure))")

                try await fixture.start()
                let again = Listener(store)
                defer { again.task.cancel() }
                try await again.waitUntilReady()
                let envelope = Self.envelope("after restart")
                try await store.publish(envelope)
                #expect(try await again.next(1) == [envelope])
            }
        } catch {
            await fixture.destroy()
            throw error
        }
        await fixture.destroy()
    }

    // MARK: Probe

    @Test func probeReportsTheServerVersion() async throws {
        let fixture = try await PostgresFixture.shared()
        let url = try PostgresURL(try await fixture.createDatabase())
        let version = try await PostgresClusterStore.probe(url, timeout: .seconds(10))
        #expect(version.hasPrefix("PostgreSQL "), "\(version)")

        var wrong = url
        wrong.password = "Wrong-Password-42"
        do {
            _ = try await PostgresClusterStore.probe(wrong, timeout: .seconds(10))
            Issue.record("probe with a wrong password succeeded")
        } catch let error as PostgresStoreError {
            #expect(error.sqlState == "28P01", "\(error)")
            #expect(!"\(error)".contains("Wrong-Password-42"))
            #expect(!String(reflecting: error).contains("Wrong-Password-42"))
        }
    }

    @Test func probeIsBoundedByItsTimeout() async throws {
        // A socket that accepts connections (backlog) but never answers the startup message.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } } == 0)
        try #require(listen(fd, 8) == 0)
        try #require(withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } } == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))

        let url = PostgresURL(host: "127.0.0.1", port: port, username: "u", password: "p", sslMode: .disable)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await PostgresClusterStore.probe(url, timeout: .milliseconds(500))
            Issue.record("probe of a silent server succeeded")
        } catch let error as PostgresStoreError {
            #expect(error.kind == .timeout || error.kind == .connection, "\(error)")
        }
        #expect(clock.now - start < .seconds(5))
    }
}

/// The engine's pure parts: lease verdicts and how registry batches become statements.
@Suite("PostgreSQL cluster store logic")
struct PostgresClusterStoreLogicTests {
    @Test func leaseVerdicts() {
        let row = PostgresClusterStoreTests.row("a:1", subject: "alice")
        func outcome(_ counts: LeaseCounts, _ route: Int?, _ ip: Int?, _ subject: Int?, subjectless: Bool = false) -> LeaseOutcome {
            var row = row
            if subjectless { row.subject = nil }
            return counts.outcome(for: LeaseRequest(row: row, maxConnections: route, maxConnectionsPerIP: ip, maxConnectionsPerSubject: subject))
        }
        #expect(outcome(LeaseCounts(route: 0, clientIP: 0, subject: 0), nil, nil, nil) == .granted)
        #expect(outcome(LeaseCounts(route: 100, clientIP: 100, subject: 100), nil, nil, nil) == .granted)
        #expect(outcome(LeaseCounts(route: 4, clientIP: 1, subject: 1), 5, 2, 2) == .granted)
        #expect(outcome(LeaseCounts(route: 5, clientIP: 2, subject: 2), 5, 2, 2) == .refused(.route))
        #expect(outcome(LeaseCounts(route: 4, clientIP: 2, subject: 2), 5, 2, 2) == .refused(.clientIP))
        #expect(outcome(LeaseCounts(route: 4, clientIP: 1, subject: 2), 5, 2, 2) == .refused(.subject))
        #expect(outcome(LeaseCounts(route: 4, clientIP: 1, subject: 2), 5, 2, 2, subjectless: true) == .granted)
        #expect(outcome(LeaseCounts(route: 0, clientIP: 0, subject: 0), 0, nil, nil) == .refused(.route))
    }

    @Test func upsertsAreChunkedAndBound() throws {
        let rows = (0..<1_001).map { PostgresClusterStoreTests.row("a:\($0)", subject: "'; DROP TABLE x; --") }
        let statements = try PostgresClusterStore.upsertStatements(rows, node: "a")
        #expect(statements.count == 3)
        #expect(statements.map(\.binds.count) == [4_500, 4_500, 9])
        #expect(statements.allSatisfy { !$0.sql.contains("DROP") && !$0.sql.contains("a:1") })
        #expect(statements[2].sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
    }

    @Test func duplicateIDsKeepTheLastRowAtTheFirstPlace() {
        let rows = [
            PostgresClusterStoreTests.row("x", started: 1), PostgresClusterStoreTests.row("y"),
            PostgresClusterStoreTests.row("x", started: 2),
        ]
        #expect(PostgresClusterStore.lastByID(rows) == [rows[2], rows[1]])
    }

    @Test func schemaStepsAreOrderedAndNamespaced() {
        let versions = ClusterSchema.migrations.map(\.version)
        #expect(versions == Array(1...versions.count))
        #expect(ClusterSchema.pending(after: 0).count == versions.count)
        #expect(ClusterSchema.pending(after: ClusterSchema.latestVersion).isEmpty)
        for statement in ClusterSchema.migrations.flatMap(\.statements) where statement.hasPrefix("CREATE TABLE") {
            #expect(statement.hasPrefix("CREATE TABLE gatehouse_"))
        }
    }

    @Test func tlsFollowsSSLMode() throws {
        func tls(_ mode: PostgresURL.SSLMode) throws -> TLSConfiguration? {
            try PostgresClusterStore.tlsConfiguration(for: PostgresURL(host: "db", username: "u", password: nil, sslMode: mode))
        }
        #expect(try tls(.disable) == nil)
        #expect(try tls(.prefer)?.certificateVerification == CertificateVerification.none)
        #expect(try tls(.require)?.certificateVerification == CertificateVerification.none)
        #expect(try tls(.verifyCA)?.certificateVerification == .noHostnameVerification)
        #expect(try tls(.verifyFull)?.certificateVerification == .fullVerification)
        let missing = PostgresURL(host: "db", username: "u", password: nil, sslMode: .verifyFull, sslRootCert: "/nonexistent/ca.pem")
        #expect(throws: PostgresStoreError.self) { try PostgresClusterStore.tlsConfiguration(for: missing) }
    }
}
