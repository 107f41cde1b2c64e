import Testing
@testable import Gatehouse

@Suite("Routing")
struct RoutingTests {
    func table(_ routes: [(String?, String, String)]) -> RouteTable<String> {
        RouteTable(routes.map { (host: $0.0.flatMap(HostPattern.init(parsing:)), path: PathPattern(parsing: $0.1)!, route: $0.2) })
    }

    @Test func mostSpecificRouteWins() {
        let table = self.table([
            (nil, "/*", "catch-all"),
            (nil, "/ws/*", "ws-any-host"),
            ("*.example", "/ws/*", "wildcard"),
            ("*.chat.example", "/ws/*", "longer-wildcard"),
            ("chat.example", "/ws/*", "exact-host"),
            ("chat.example", "/ws/chat", "exact-path"),
        ])
        #expect(table.match(host: "chat.example", path: "/ws/chat") == "exact-path")
        #expect(table.match(host: "chat.example", path: "/ws/other") == "exact-host")
        #expect(table.match(host: "eu.chat.example", path: "/ws/x") == "longer-wildcard")
        #expect(table.match(host: "api.example", path: "/ws/x") == "wildcard")
        #expect(table.match(host: "example", path: "/ws/x") == "ws-any-host")
        #expect(table.match(host: nil, path: "/ws/x") == "ws-any-host")
        #expect(table.match(host: "other.test", path: "/elsewhere") == "catch-all")
    }

    @Test func firstDeclaredWinsAmongEquals() {
        let table = self.table([(nil, "/a/*", "first"), (nil, "/a/*", "second")])
        #expect(table.match(host: nil, path: "/a/b") == "first")
    }

    @Test func hostPatternsAndAuthorities() {
        #expect(HostPattern(parsing: "Chat.Example") == .exact("chat.example"))
        #expect(HostPattern(parsing: "*.example") == .wildcard(suffix: "example"))
        #expect(HostPattern(parsing: "bad host") == nil)
        #expect(HostPattern(parsing: "*.") == nil)
        #expect(HostPattern.wildcard(suffix: "example").matches("a.b.example"))
        #expect(!HostPattern.wildcard(suffix: "example").matches("example"))
        #expect(!HostPattern.wildcard(suffix: "example").matches("badexample"))
        #expect(HostPattern.normalizedHost(fromAuthority: "Chat.Example:8443") == "chat.example")
        #expect(HostPattern.normalizedHost(fromAuthority: "chat.example.") == "chat.example")
        #expect(HostPattern.normalizedHost(fromAuthority: "[::1]:8080") == "[::1]")
        #expect(HostPattern.normalizedHost(fromAuthority: "a/b") == nil)
        #expect(HostPattern.normalizedHost(fromAuthority: "host:port") == nil)
    }

    @Test func pathPatterns() {
        #expect(PathPattern(parsing: "/ws/*") == .prefix("/ws/"))
        #expect(PathPattern(parsing: "/ws") == .exact("/ws"))
        #expect(PathPattern(parsing: "ws") == nil)
        #expect(PathPattern(parsing: "/a*b") == nil)
        // A pattern no normalised request path can take is refused rather than never matched.
        for unreachable in ["//ws/*", "/ws/./x", "/ws/../x", "/ws;v=1/*", "/%7Eu/*", "/a%2fb", "/a%c3%a9", "/a|b", "/ws?x", "/ws#x"] {
            #expect(PathPattern(parsing: unreachable) == nil, "\(unreachable)")
        }
        #expect(PathPattern(parsing: "/~u/caf%C3%A9/a%7Cb/*") == .prefix("/~u/caf%C3%A9/a%7Cb/"))
        #expect(PathPattern.prefix("/ws/").matches("/ws/"))
        #expect(!PathPattern.prefix("/ws/").matches("/ws"))
    }

    @Test func originSerialisation() {
        let exact = OriginPattern(parsing: "https://App.Example:443")
        #expect(exact == .exact(SerializedOrigin(scheme: "https", host: "app.example", port: 443)))
        #expect(exact?.matches("https://app.example", parsed: SerializedOrigin(parsing: "https://app.example")) == true)
        #expect(OriginPattern(parsing: "https://*.app.example")?.matches("https://x.app.example", parsed: SerializedOrigin(parsing: "https://x.app.example")) == true)
        #expect(OriginPattern(parsing: "https://a*.example") == nil)
        #expect(OriginPattern(parsing: "https://app.example/path") == nil)
        #expect(OriginPattern(parsing: "app.example") == nil)
        #expect(SerializedOrigin(parsing: "http://localhost:80")?.description == "http://localhost")
    }

    @Test func targetNormalisation() {
        #expect(RequestTarget.normalize("/ws/chat?x=1") == .success("/ws/chat?x=1"))
        #expect(RequestTarget.normalize("//ws/%63hat") == .success("/ws/chat"))
        #expect(throws: HandshakeRefusal.self) { try RequestTarget.normalize("/ws/%2e%2e/admin").get() }
        #expect(throws: HandshakeRefusal.self) { try RequestTarget.normalize("/ws/a%2Fb").get() }
        #expect(throws: HandshakeRefusal.self) { try RequestTarget.normalize("http://evil/ws").get() }
        #expect(throws: HandshakeRefusal.self) { try RequestTarget.normalize("/ws/\u{7F}").get() }
    }
}
