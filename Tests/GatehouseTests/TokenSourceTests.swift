import Foundation
import NIOHTTP1
import Testing
@testable import Gatehouse

/// The token is removed from every source a route reads, whichever it came from; what sits in a source the route
/// does not read is not the proxy's and passes untouched.
@Suite("Token sources")
struct TokenSourceTests {
    static let sources = ["header", "subprotocol", "query", "cookie:a", "cookie:b"]

    /// Every source alone and every ordered pair of two different sources (two cookie sources included).
    static let combinations: [[String]] = sources.map { [$0] } + sources.flatMap { first in
        sources.filter { $0 != first }.map { [first, $0] }
    }

    /// Where a value goes in the request: headers to add and a query to append.
    static func place(_ value: String, in source: String) -> (headers: [(String, String)], query: String?) {
        switch source {
        case "header": return ([("Authorization", "Bearer \(value)")], nil)
        case "subprotocol": return ([("Sec-WebSocket-Protocol", "chat.v1, bearer.\(value)")], nil)
        case "query": return ([], "access_token=\(value)")
        default:
            // One Cookie field per cookie source: several Cookie headers are part of the case.
            let name = String(source.dropFirst("cookie:".count))
            return ([("Cookie", "theme=dark; \(name)=\(value)")], nil)
        }
    }

    static func config(backendPort: Int, fixture: SecurityFixture, sources: [String]) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: app
            servers: ["127.0.0.1:\(backendPort)"]
        auth:
          - name: main
            type: jwt
            algorithms: [HS256]
            secret_env: \(fixture.secretVariable)
        routes:
          - name: t
            path: "/t"
            backend: app
            origins: ["*"]
            auth:
              providers: [main]
              token_sources: [\(sources.map { "\"\($0)\"" }.joined(separator: ", "))]
        """
    }

    /// Every place of a forwarded head where a token could hide.
    static func expectNowhere(_ token: String, in request: TestRequestHead, _ comment: Comment) {
        #expect(!request.target.contains(token), comment)
        for (name, value) in request.headers {
            #expect(!value.contains(token), "\(name) carries the token; \(comment)")
        }
    }

    @Test(arguments: combinations)
    func tokenIsRemovedFromEverySourceTheRouteReads(_ routeSources: [String]) async throws {
        let fixture = try SecurityFixture.make()
        let token = try await fixture.keys.sign(.valid(sub: "alice"), algorithm: "HS256")
        let unread = Self.sources.filter { !routeSources.contains($0) }
        try await RecordingBackend.with { backend in
            try await self.check(routeSources, unread: unread, token: token, fixture: fixture, backend: backend)
        }
    }

    func check(_ routeSources: [String], unread: [String], token: String, fixture: SecurityFixture, backend: RecordingBackend) async throws {
        try await TestProxy.with(Self.config(backendPort: backend.port, fixture: fixture, sources: routeSources), file: fixture.file) { proxy in
            // The token in each source the route reads, then in all of them at once; a decoy in every source the
            // route does not read, which must arrive as sent.
            let placements = routeSources.map { [$0] } + [routeSources]
            for placement in placements {
                let decoy = "decoy\(Int.random(in: 100_000...999_999))"
                var headers: [(String, String)] = []
                var query: [String] = ["room=1"]
                for source in placement {
                    let placed = Self.place(token, in: source)
                    headers += placed.headers
                    query += placed.query.map { [$0] } ?? []
                }
                for source in unread {
                    let placed = Self.place(decoy, in: source)
                    headers += placed.headers
                    query += placed.query.map { [$0] } ?? []
                }
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: "/t?" + query.joined(separator: "&"), extra: headers)
                let comment: Comment = "route reads \(routeSources), token in \(placement)"
                let head = try await client.readHead()
                #expect(head.status == 101, comment)
                await client.close()
                guard head.status == 101 else { continue }
                let request = try #require(backend.received.last)
                #expect(request.header("x-auth-subject") == "alice", comment)
                Self.expectNowhere(token, in: request, comment)
                #expect(request.target.contains("room=1"), comment)
                for source in unread {
                    switch source {
                    case "header": #expect(request.header("authorization") == "Bearer \(decoy)", comment)
                    case "subprotocol": #expect(request.header("sec-websocket-protocol") == "chat.v1, bearer.\(decoy)", comment)
                    case "query": #expect(request.target.contains("access_token=\(decoy)"), comment)
                    default:
                        let name = String(source.dropFirst("cookie:".count))
                        #expect(request.headers("cookie").contains { $0.contains("\(name)=\(decoy)") }, comment)
                    }
                }
                // Cookies that are not tokens stay.
                if headers.contains(where: { $0.0 == "Cookie" }) {
                    #expect(request.headers("cookie").contains { $0.contains("theme=dark") }, comment)
                }
            }
        }
    }

    // MARK: Edge cases of each source

    @Test func duplicateAndEncodedQueryTokensAreAllRemoved() {
        let (target, token) = TokenExtractor.removingQueryToken(from: "/t?access_token=&a=1&access_token=T1&access%5Ftoken=T2&access_token=T3&b=2")
        #expect(token == "T1")
        #expect(target == "/t?a=1&b=2")
        #expect(TokenExtractor.removingQueryToken(from: "/t?Access_Token=X").0 == "/t?Access_Token=X")
    }

    @Test func cookiesAreRemovedFromEveryCookieFieldAndComparedExactly() {
        let request = UpgradeRequest(
            target: "/t", authority: "localhost",
            headers: HTTPHeaders([("Cookie", "A=upper; a = T ; theme=dark"), ("Cookie", "b=T; a=again; ab=keep")]),
            scheme: "http", clientAddress: nil, listener: "plain", transport: .http1
        )
        #expect(TokenExtractor.cookie("a", in: request.headers) == "T")
        #expect(TokenExtractor.cookie("b", in: request.headers) == "T")
        #expect(TokenExtractor.cookie("B", in: request.headers) == nil)
        let edits = ForwardedRequest.Edits(target: "/t", subprotocols: nil, dropAuthorization: false, dropCookies: ["a", "b"], identity: [], key: nil)
        let head = ForwardedRequest.make(from: request, edits: edits)
        #expect(head.headers["cookie"] == ["A=upper; theme=dark; ab=keep"])
        // A route that reads no cookie forwards the fields as sent.
        let untouched = ForwardedRequest.make(from: request, edits: .init(target: "/t", subprotocols: nil, dropAuthorization: false, dropCookies: [], identity: [], key: nil))
        #expect(untouched.headers["cookie"] == ["A=upper; a = T ; theme=dark", "b=T; a=again; ab=keep"])
    }

    @Test func everyBearerSubprotocolEntryIsRemoved() {
        let request = UpgradeRequest(
            target: "/t", authority: "localhost",
            headers: HTTPHeaders([("Sec-WebSocket-Protocol", "bearer.T, chat"), ("Sec-WebSocket-Protocol", "bearer.U")]),
            scheme: "http", clientAddress: nil, listener: "plain", transport: .http1
        )
        let result = TokenExtractor(sources: [.subprotocol]).extract(from: request)
        #expect(result.token == "T")
        #expect(result.remainingSubprotocols == ["chat"])
        let edits = ForwardedRequest.Edits(target: "/t", subprotocols: result.remainingSubprotocols, dropAuthorization: false, dropCookies: [], identity: [], key: nil)
        #expect(ForwardedRequest.make(from: request, edits: edits).headers["sec-websocket-protocol"] == ["chat"])
    }
}
