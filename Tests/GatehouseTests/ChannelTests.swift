import Foundation
import NIOCore
import NIOHPACK
import Testing
@testable import Gatehouse

@Suite("Channel names")
struct ChannelNameTests {
    @Test func theSyntaxIsOneTo128BytesOfASmallAlphabet() {
        for name in ["a", "room-1", "A.b_c:d@e-f", "user:42@tenant.example", String(repeating: "x", count: 128)] {
            #expect(ChannelName.isValid(name), "\(name)")
        }
        #expect(ChannelName.problem("")?.contains("empty") == true)
        #expect(ChannelName.problem(String(repeating: "x", count: 129))?.contains("129") == true)
        #expect(ChannelName.problem("room 1")?.contains("byte 0x20") == true)
        #expect(ChannelName.problem("room,1")?.contains("','") == true)
        #expect(ChannelName.problem("room/1")?.contains("'/'") == true)
        #expect(ChannelName.problem("café") != nil)
        #expect(ChannelName.problem("a\u{0}") != nil)
    }

    @Test func theHeaderIsACommaListOverRepeatedLines() {
        let parsed = ChannelName.parseHeader(["room-1, alerts", " room-1 ,,bad name!, news", "x/y"])
        #expect(parsed.channels == ["room-1", "alerts", "news"])
        #expect(parsed.ignored.count == 2)
        #expect(parsed.ignored[0].contains("bad name!"))
        let many = (0..<70).map { "c\($0)" }.joined(separator: ",")
        let capped = ChannelName.parseHeader([many])
        #expect(capped.channels == (0..<64).map { "c\($0)" })
        #expect(capped.ignored.count == 6)
        #expect(ChannelName.parseHeader([""]).channels.isEmpty)
    }

    @Test func aClientCopyOfTheHeaderIsNeverForwarded() {
        let edits = ForwardedRequest.Edits(target: "/", subprotocols: nil, dropAuthorization: false, dropCookies: [], identity: [])
        for name in ["Gatehouse-Channels", "gatehouse-channels", "GATEHOUSE-CHANNELS"] {
            #expect(ForwardedRequest.action(forHeader: name, edits: edits, connectionNamed: []) == .drop)
        }
    }
}

/// Channels end to end: subscriptions from the backend's 101 and the admin API, broadcasts to real sockets.
@Suite("Channels")
struct ChannelTests {
    static func secureConfig(backendPort: Int) -> String {
        """
        listeners:
          - name: secure
            bind: "127.0.0.1:0"
            tls:
              self_signed: true
        backends:
          - name: scripted
            servers: ["127.0.0.1:\(backendPort)"]
        routes:
          - name: scripted
            path: "/scripted"
            backend: scripted
            origins: ["*"]
        admin: { bind: "127.0.0.1:0" }
        """
    }

    @Test func theBackendsHeaderSubscribesAndTheClientNeverSeesIt() async throws {
        let backend = try await ScriptedBackend.start()
        defer { Task { await backend.stop() } }
        try await TestProxy.with(PushTests.config(backendPort: backend.port)) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/scripted")
            let server = try await backend.accept()
            let request = try await server.readRequestHead()
            try await server.accept(request, extra: [("Gatehouse-Channels", "room-1, bad name!"), ("Gatehouse-Channels", "alerts")])
            let head = try await client.readHead()
            #expect(head.status == 101)
            #expect(head.headers("gatehouse-channels").isEmpty)
            #expect(head.header("sec-websocket-accept") != nil)
            let snapshot = try #require(await proxy.server.connections().first)
            #expect(snapshot.channels == ["alerts", "room-1"])
            #expect(proxy.logs.contains("backend asked for channels that were ignored"))

            let count = try await MessagesAdmin.request(proxy, "GET", "/channels/room-1")
            #expect(count.status == 200)
            let object = try MessagesAdmin.json(count.body)
            #expect(object["channel"] as? String == "room-1")
            #expect(object["subscribers"] as? Int == 1)
            let broadcast = try await MessagesAdmin.post(proxy, "/channels/room-1/messages", text: "news for room-1")
            #expect(broadcast.status == 200)
            #expect(try MessagesAdmin.counts(broadcast.body) == [1, 0])
            #expect(try await client.readFrame() == TestFrame(fin: true, rsv: 0, opcode: TestFrame.text, masked: false, payload: Array("news for room-1".utf8)))
            // Nobody listens on another channel: 200 with zero; a bad name is 400.
            let empty = try await MessagesAdmin.post(proxy, "/channels/room-2/messages", text: "nobody")
            #expect(empty.status == 200)
            #expect(try MessagesAdmin.counts(empty.body) == [0, 0])
            #expect(try MessagesAdmin.json(try await MessagesAdmin.request(proxy, "GET", "/channels/room-2").body)["subscribers"] as? Int == 0)
            #expect(try await MessagesAdmin.request(proxy, "GET", "/channels/bad%20name").status == 400)
            #expect(try await MessagesAdmin.post(proxy, "/channels/bad%20name/messages", text: "x").status == 400)
            #expect(try await MessagesAdmin.request(proxy, "DELETE", "/channels/room-1").status == 405)
            // The backend's own next message arrives after the broadcast, untouched.
            try await server.send(TestFrame.encode(opcode: TestFrame.text, payload: Array("from backend".utf8), mask: nil))
            #expect(try await client.readFrame().payload == Array("from backend".utf8))
            await client.close()
            await server.close()
        }
    }

    @Test func aClientSentHeaderNeverReachesTheBackendAndSubscribesNothing() async throws {
        try await RecordingBackend.with { backend in
            try await TestProxy.with(PushTests.config(backendPort: backend.port)) { proxy in
                let client = try await PushTests.upgraded(
                    proxy, path: "/scripted", headers: [("Gatehouse-Channels", "sneaky"), ("Gatehouse_Channels", "sneakier")]
                )
                let request = try #require(backend.received.last)
                #expect(request.headers("gatehouse-channels").isEmpty)
                #expect(request.headers("gatehouse_channels").isEmpty)
                #expect(try #require(await proxy.server.connections().first).channels == [])
                let count = try await MessagesAdmin.request(proxy, "GET", "/channels/sneaky")
                #expect(try MessagesAdmin.json(count.body)["subscribers"] as? Int == 0)
                await client.close()
            }
        }
    }

    @Test func subscriptionsChangeThroughTheAdminAPI() async throws {
        try await TestProxy.with(PushTests.config()) { proxy in
            let client = try await PushTests.upgraded(proxy)
            let id = try #require(await proxy.server.connections().first?.id)
            var answer = try await MessagesAdmin.request(proxy, "PUT", "/connections/\(id)/channels/news")
            #expect(answer.status == 200, "\(answer.body)")
            var object = try MessagesAdmin.json(answer.body)
            #expect(object["subscribed"] as? Bool == true)
            #expect(object["changed"] as? Bool == true)
            #expect(object["channels"] as? [String] == ["news"])
            answer = try await MessagesAdmin.request(proxy, "PUT", "/connections/\(id)/channels/news")
            #expect(try MessagesAdmin.json(answer.body)["changed"] as? Bool == false)
            #expect(try MessagesAdmin.json(try await MessagesAdmin.request(proxy, "GET", "/channels/news").body)["subscribers"] as? Int == 1)
            #expect(try MessagesAdmin.counts(try await MessagesAdmin.post(proxy, "/channels/news/messages", text: "extra").body) == [1, 0])
            #expect(try await client.readFrame().payload == Array("extra".utf8))

            answer = try await MessagesAdmin.request(proxy, "DELETE", "/connections/\(id)/channels/news")
            object = try MessagesAdmin.json(answer.body)
            #expect(answer.status == 200)
            #expect(object["subscribed"] as? Bool == false)
            #expect(object["changed"] as? Bool == true)
            #expect(object["channels"] as? [String] == [])
            #expect(try MessagesAdmin.counts(try await MessagesAdmin.post(proxy, "/channels/news/messages", text: "gone").body) == [0, 0])

            #expect(try await MessagesAdmin.request(proxy, "PUT", "/connections/\(id + 1000)/channels/news").status == 404)
            #expect(try await MessagesAdmin.request(proxy, "PUT", "/connections/\(id)/channels/a%2Fb").status == 400)
            #expect(try await MessagesAdmin.request(proxy, "POST", "/connections/\(id)/channels/news").status == 405)
            // At most 64 channels per connection.
            for index in 0..<ChannelName.maxPerConnection {
                #expect(try await MessagesAdmin.request(proxy, "PUT", "/connections/\(id)/channels/c\(index)").status == 200)
            }
            let tooMany = try await MessagesAdmin.request(proxy, "PUT", "/connections/\(id)/channels/one-more")
            #expect(tooMany.status == 409)
            #expect(try #require(await proxy.server.connections().first).channels.count == ChannelName.maxPerConnection)
            // Nothing but the broadcast above reached the client.
            #expect(try await PushTests.echo(client, "echo") == "echo")
            await client.close()
        }
    }

    @Test func overHTTP2TheHeaderIsStrippedAndBroadcastsArrive() async throws {
        let backend = try await ScriptedBackend.start()
        defer { Task { await backend.stop() } }
        try await TestProxy.with(Self.secureConfig(backendPort: backend.port)) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let stream = try await client.openStream(path: "/scripted", extra: [("gatehouse-channels", "sneaky")])
            let server = try await backend.accept()
            let request = try await server.readRequestHead()
            #expect(request.headers("gatehouse-channels").isEmpty)
            try await server.accept(request, extra: [("Gatehouse-Channels", "room-2")])
            let headers = try await stream.readHeaders()
            #expect(headers.first(name: ":status") == "200")
            #expect(!headers.contains(name: "gatehouse-channels"))
            let snapshot = try #require(await proxy.server.connections().first)
            #expect(snapshot.channels == ["room-2"])
            #expect(snapshot.transport == "h2")
            #expect(try MessagesAdmin.counts(try await MessagesAdmin.post(proxy, "/channels/room-2/messages", text: "over h2").body) == [1, 0])
            #expect(try await stream.readFrame() == TestFrame(fin: true, rsv: 0, opcode: TestFrame.text, masked: false, payload: Array("over h2".utf8)))
            let push = try await MessagesAdmin.request(proxy, "POST", "/connections/\(snapshot.id)/messages", body: [9, 8, 7])
            #expect(push.status == 200)
            #expect(try await stream.readFrame() == TestFrame(fin: true, rsv: 0, opcode: TestFrame.binary, masked: false, payload: [9, 8, 7]))
            await client.close()
            await server.close()
        }
    }
}
