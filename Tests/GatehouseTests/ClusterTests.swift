import Foundation
import NIOCore
import Testing

/// Cluster mode with three real `gatehouse` processes on one throw-away PostgreSQL database.
@Suite("Cluster mode", .enabled(if: PostgresFixture.isAvailable), .serialized)
struct ClusterTests {
    /// A fleet on a new database of the shared PostgreSQL, a backend, and cleanup whatever happens.
    static func withFleet<T>(
        routeLimits: String = "", clusterExtra: String = "", nodeExtra: [String: String] = [:], database: String? = nil,
        _ body: (ClusterFleet, PythonPeerServer) async throws -> T
    ) async throws -> T {
        let url: String
        if let database {
            url = database
        } else {
            url = try await PostgresFixture.shared().createDatabase()
        }
        return try await PythonPeerServer.with("cluster_backend.py", []) { backend, port in
            let fleet = try ClusterFleet(
                databaseURL: url, backendPort: port, routeLimits: routeLimits, clusterExtra: clusterExtra, nodeExtra: nodeExtra
            )
            defer { fleet.stopAll() }
            return try await body(fleet, backend)
        }
    }

    /// The close code of a connection the proxy closed.
    static func closeCode(_ client: TestClient) async throws -> UInt16 {
        let frame = try await client.readFrame(timeout: .seconds(5))
        guard frame.opcode == 0x8, frame.payload.count >= 2 else { throw TestError("expected a close frame, got opcode \(frame.opcode)") }
        return UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1])
    }

    /// The next frame, or an error saying which one did not come.
    static func frame(_ client: TestClient, _ what: String) async throws -> TestFrame {
        do {
            return try await client.readFrame()
        } catch {
            throw TestError("no frame for \(what): \(error)")
        }
    }

    static func echo(_ client: TestClient, _ text: String) async throws {
        try await client.sendFrame(opcode: 0x1, payload: Array(text.utf8))
        let message = try await client.readMessage()
        #expect(String(decoding: message.payload, as: UTF8.self) == text)
    }

    @Test func registryListsTheFleetAndAKickOnOneNodeClosesASubjectEverywhere() async throws {
        try await Self.withFleet { fleet, _ in
            let nodes = try await fleet.startAll(["a", "b", "c"])
            let alice = ClusterFleet.token(sub: "alice")
            let onB = try await nodes[1].connect(token: alice)
            let onC = try await nodes[2].connect(token: alice)
            let bob = try await nodes[2].connect(token: ClusterFleet.token(sub: "bob"))
            try await Self.echo(onB, "hello")

            let rows = try await eventuallyValue("node a to list alice's two connections", deadline: .seconds(10)) { () -> [[String: Any]]? in
                let (_, json) = try await nodes[0].adminJSON(.GET, "/connections?scope=cluster&subject=alice")
                let rows = json as? [[String: Any]] ?? []
                return rows.count == 2 ? rows : nil
            }
            #expect(Set(rows.compactMap { $0["node"] as? String }) == ["b", "c"])
            #expect(rows.allSatisfy { ($0["id"] as? String)?.hasPrefix("\($0["node"] as? String ?? "?"):") == true })

            let started = ContinuousClock.now
            let (status, answer) = try await nodes[0].adminJSON(.DELETE, "/connections?subject=alice")
            #expect(status == 200)
            #expect((answer as? [String: Any])?["closed"] as? Int == 2, "\(answer)")
            #expect(try await Self.closeCode(onB) == 1008)
            #expect(try await Self.closeCode(onC) == 1008)
            #expect(ContinuousClock.now - started < .seconds(1))
            try await Self.echo(bob, "bob stays")

            // One id, on another node.
            let (_, bobRows) = try await eventuallyValue("bob in the registry") { () -> (UInt, Any)? in
                let answer = try await nodes[0].adminJSON(.GET, "/connections?scope=cluster&subject=bob")
                return (answer.1 as? [Any])?.count == 1 ? answer : nil
            }
            let bobID = try #require(((bobRows as? [[String: Any]])?.first?["id"]) as? String)
            #expect(bobID.hasPrefix("c:"))
            let (kickStatus, _) = try await nodes[0].adminJSON(.DELETE, "/connections/\(bobID)")
            #expect(kickStatus == 200)
            #expect(try await Self.closeCode(bob) == 1008)
            await onB.close()
            await onC.close()
            await bob.close()
        }
    }

    @Test func aRevocationMadeOnOneNodeHoldsEverywhereAndAfterRestarts() async throws {
        try await Self.withFleet { fleet, _ in
            let nodes = try await fleet.startAll(["a", "b", "c"])
            let revokedToken = ClusterFleet.token(sub: "mallory", issuedAt: Date().addingTimeInterval(-60))
            let live = try await nodes[2].connect(token: revokedToken)
            try await Self.echo(live, "before")

            let body = Array(#"{"subject": "mallory", "issued_before": "\#(RevocationTime.now())"}"#.utf8)
            let (status, answer) = try await nodes[0].adminJSON(.POST, "/revocations", body: body, contentType: "application/json")
            #expect(status == 201, "\(answer)")
            let id = try #require((answer as? [String: Any])?["id"] as? Int)

            #expect(try await Self.closeCode(live) == 1008)
            #expect(try await nodes[1].refusal(token: revokedToken) == 401)
            // A token issued after the cut-off is not revoked.
            let fresh = try await nodes[1].connect(token: ClusterFleet.token(sub: "mallory", issuedAt: Date().addingTimeInterval(5)))
            await fresh.close()

            for name in ["a", "b", "c"] { try await fleet.stop(name) }
            let restarted = try await fleet.startAll(["a", "b", "c"])
            for node in restarted { #expect(try await node.refusal(token: revokedToken) == 401, "on \(node.name) after restart") }
            let (_, list) = try await restarted[1].adminJSON(.GET, "/revocations")
            #expect((list as? [[String: Any]])?.contains { $0["id"] as? Int == id } == true)

            let (deleted, _) = try await restarted[2].adminJSON(.DELETE, "/revocations/\(id)")
            #expect(deleted == 200)
            try await eventually("node a to forget the revocation") {
                (try? await restarted[0].connect(token: revokedToken)).map { client in Task { await client.close() }; return true } ?? false
            }
        }
    }

    @Test func aClusterScopedSubjectCapAdmitsExactlyItsCountAcrossNodes() async throws {
        try await Self.withFleet(routeLimits: "max_connections_per_subject: 2\nscope: cluster") { fleet, _ in
            let nodes = try await fleet.startAll(["a", "b", "c"])
            let token = ClusterFleet.token(sub: "carol")
            let first = try await nodes[0].connect(token: token)
            let second = try await nodes[1].connect(token: token)
            #expect(try await nodes[2].refusal(token: token) == 429)
            #expect(try await nodes[0].refusal(token: token) == 429)
            // Another subject is not affected.
            let dave = try await nodes[2].connect(token: ClusterFleet.token(sub: "dave"))
            await first.close()
            let third = try await eventuallyValue("a slot for carol once one connection closed") {
                try? await nodes[2].connect(token: token)
            }
            await second.close()
            await third.close()
            await dave.close()
        }
    }

    @Test func aKilledNodeLeavesTheRegistryAndFreesItsLeasesWithinThreeHeartbeats() async throws {
        try await Self.withFleet(routeLimits: "max_connections_per_subject: 1\nscope: cluster") { fleet, _ in
            let nodes = try await fleet.startAll(["a", "b", "c"])
            let token = ClusterFleet.token(sub: "erin")
            let held = try await nodes[2].connect(token: token)
            #expect(try await nodes[0].refusal(token: token) == 429)
            try await eventually("c's connection in the registry") {
                let (_, rows) = try await nodes[0].adminJSON(.GET, "/connections?scope=cluster&node=c")
                return (rows as? [Any])?.count == 1
            }
            let killed = ContinuousClock.now
            try await fleet.kill("c")
            // Heartbeat 500 ms: dead after 1.5 s; the reaper runs every third beat.
            try await eventually("c's rows to leave the registry", deadline: .seconds(5)) {
                let (_, rows) = try await nodes[0].adminJSON(.GET, "/connections?scope=cluster&node=c")
                return (rows as? [Any])?.isEmpty == true
            }
            let replacement = try await eventuallyValue("erin's lease to be free", deadline: .seconds(5)) {
                try? await nodes[1].connect(token: token)
            }
            #expect(ContinuousClock.now - killed < .seconds(4))
            await replacement.close()
            await held.close()
        }
    }

    @Test func aPushToASubjectReachesItsSocketsOnTwoNodesBetweenBackendMessages() async throws {
        try await Self.withFleet { fleet, _ in
            let nodes = try await fleet.startAll(["a", "b", "c"])
            let token = ClusterFleet.token(sub: "frank")
            let onA = try await nodes[0].connect(token: token)
            let onB = try await nodes[1].connect(token: token)
            // The backend opens a fragmented message toward B's client and holds its last fragment.
            try await onB.sendFrame(opcode: 0x1, payload: Array("fragment".utf8))
            let first = try await Self.frame(onB, "the first fragment")
            #expect(first.opcode == 0x1 && !first.fin && first.payload == Array("part1-".utf8))

            let (status, answer) = try await nodes[2].adminJSON(.POST, "/subjects/frank/messages", body: Array("notice".utf8), contentType: "text/plain")
            #expect(status == 200, "\(answer)")
            #expect((answer as? [String: Any])?["delivered"] as? Int == 2, "\(answer)")

            let onA1 = try await Self.frame(onA, "the push on A")
            #expect(onA1.opcode == 0x1 && onA1.fin && onA1.payload == Array("notice".utf8))
            // B gets the push only after the backend's message is complete.
            try await onB.sendFrame(opcode: 0x1, payload: Array("continue".utf8))
            var rest: [UInt8] = []
            while true {
                let fragment = try await Self.frame(onB, "the rest of the fragmented message")
                #expect(fragment.opcode == 0x0, "\(fragment) inside the backend's fragmented message")
                guard fragment.opcode == 0x0 else { break }
                rest += fragment.payload
                if fragment.fin { break }
            }
            #expect(rest == Array("part2".utf8))
            let pushed = try await Self.frame(onB, "the push on B")
            #expect(pushed.opcode == 0x1 && pushed.fin && pushed.payload == Array("notice".utf8), "\(pushed)")

            let binary: [UInt8] = [0, 1, 2, 255]
            let binaryAnswer = try await nodes[0].admin(.POST, "/subjects/frank/messages", body: binary, contentType: "application/octet-stream")
            #expect(binaryAnswer.status == 200 && binaryAnswer.body.contains("\"delivered\" : 2"), "\(binaryAnswer)")
            for client in [onA, onB] {
                let frame = try await Self.frame(client, "the binary push")
                #expect(frame.opcode == 0x2 && frame.payload == binary)
            }
            await onA.close()
            await onB.close()
        }
    }

    @Test func aChannelSubscribedByTheBackendGetsOneBroadcastOnEachSubscriber() async throws {
        try await Self.withFleet { fleet, backend in
            let nodes = try await fleet.startAll(["a", "b", "c"])
            let token = ClusterFleet.token(sub: "gina")
            let onA = try await nodes[0].connect(path: "/chat?channels=room-1", token: token)
            let onB = try await nodes[1].connect(path: "/chat?channels=room-1,alerts", token: token)
            // A client cannot subscribe itself: its header never reaches the backend and subscribes nothing.
            let sneaky = try await nodes[2].connect(token: token, extra: [("Gatehouse-Channels", "room-1")])
            _ = try await backend.waitForLine(containing: "upgrade /chat channels-from-client=-")
            #expect(!(backend.child.output.all.contains { $0.contains("channels-from-client=room-1") }))

            try await eventually("two subscribers of room-1 in the registry") {
                let (_, json) = try await nodes[2].adminJSON(.GET, "/channels/room-1")
                return (json as? [String: Any])?["subscribers"] as? Int == 2
            }
            let (status, answer) = try await nodes[2].adminJSON(.POST, "/channels/room-1/messages", body: Array("tick".utf8), contentType: "text/plain")
            #expect(status == 200)
            #expect((answer as? [String: Any])?["delivered"] as? Int == 2, "\(answer)")
            for client in [onA, onB] {
                let frame = try await client.readFrame()
                #expect(frame.payload == Array("tick".utf8))
            }
            // Exactly one copy each: the next frame is the echo of a probe, not a second "tick".
            for client in [onA, onB, sneaky] { try await Self.echo(client, "probe") }
            await onA.close()
            await onB.close()
            await sneaky.close()
        }
    }

    @Test func whenTheDatabaseStopsRelayingContinuesOnStoreErrorDecidesAndEverythingRecovers() async throws {
        let postgres = try await PostgresFixture.dedicated()
        do {
            try await self.storeOutage(postgres)
        } catch {
            await postgres.destroy()
            throw error
        }
        await postgres.destroy()
    }

    private func storeOutage(_ postgres: PostgresFixture) async throws {
        let url = try await postgres.createDatabase()
        try await Self.withFleet(
            routeLimits: "max_connections_per_subject: 5\nscope: cluster",
            nodeExtra: ["open": "on_store_error: open", "closed": "on_store_error: closed"], database: url
        ) { fleet, _ in
            let nodes = try await fleet.startAll(["open", "closed"])
            let token = ClusterFleet.token(sub: "hal")
            let live = try await nodes[1].connect(token: token)
            try await Self.echo(live, "before")

            try await postgres.stop()
            try await Self.echo(live, "during")
            for node in nodes {
                try await eventually("\(node.name) to see the store down", deadline: .seconds(10)) {
                    try await node.admin(.GET, "/metrics").body.contains("gatehouse_cluster_store_up 0")
                }
            }
            // on_store_error: open admits on local counts; closed refuses what needs the store.
            let admitted = try await nodes[0].connect(token: token)
            #expect(try await nodes[1].refusal(token: token) == 503)
            #expect(try await nodes[0].admin(.DELETE, "/connections?subject=hal").status == 503)
            let revoke = try await nodes[0].admin(.POST, "/revocations", body: Array(#"{"subject": "x"}"#.utf8), contentType: "application/json")
            #expect(revoke.status == 503 && revoke.body.contains("cluster store unavailable"), "\(revoke)")
            try await Self.echo(live, "still relaying")

            try await postgres.start()
            let again = try await eventuallyValue("the closed node to admit again", deadline: .seconds(20)) {
                try? await nodes[1].connect(token: token)
            }
            // Resynchronised: the registry lists what each node holds, the connections opened during the outage too.
            try await eventually("the registry to list hal's three connections", deadline: .seconds(10)) {
                let (_, rows) = try await nodes[0].adminJSON(.GET, "/connections?scope=cluster&subject=hal")
                return (rows as? [Any])?.count == 3
            }
            let (status, _) = try await nodes[0].admin(.POST, "/revocations", body: Array(#"{"subject": "hal"}"#.utf8), contentType: "application/json")
            #expect(status == 201)
            for client in [live, admitted, again] { #expect(try await Self.closeCode(client) == 1008) }
        }
    }

    @Test func checkNamesAMissingVariableAndConnectsWhenAsked() async throws {
        let url = try await PostgresFixture.shared().createDatabase()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-check-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            listeners: [{name: plain, bind: "127.0.0.1:0"}]
            backends: [{name: app, servers: ["127.0.0.1:9"]}]
            routes: [{name: r, path: "/", backend: app, origins: ["*"], limits: {scope: cluster, max_connections: 10}}]
            cluster:
              node: gw-1
              postgres: {url_env: GH_CHECK_PG_URL}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let missing = try await ExternalProcess.run(["/usr/bin/env", "-u", "GH_CHECK_PG_URL", CLITests.binary, "check", path], timeout: 30)
        #expect(missing.status == 1)
        #expect(missing.output.contains("the environment variable GH_CHECK_PG_URL is not set"), "\(missing.output)")

        let password = try #require(URLComponents(string: url)?.password)
        let connected = try await ExternalProcess.run(["/usr/bin/env", "GH_CHECK_PG_URL=\(url)", CLITests.binary, "check", "--connect", path], timeout: 30)
        #expect(connected.status == 0, "\(connected.output)")
        #expect(connected.output.contains("cluster node 'gw-1'") && connected.output.contains("answers (PostgreSQL"), "\(connected.output)")
        #expect(!connected.output.contains(password))

        let wrong = url.replacingOccurrences(of: password, with: "not-the-password")
        let refused = try await ExternalProcess.run(["/usr/bin/env", "GH_CHECK_PG_URL=\(wrong)", CLITests.binary, "check", "--connect", path], timeout: 30)
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("does not answer") && !refused.output.contains("not-the-password"), "\(refused.output)")
    }
}

/// RFC 3339 times for request bodies.
enum RevocationTime {
    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }
}
