import Foundation
import Testing
@testable import Gatehouse

@Suite("Configuration")
struct ConfigTests {
    static let valid = """
        listeners:
          - name: public
            bind: "127.0.0.1:8443"
            tls:
              self_signed: true
              min_version: "1.3"
          - name: plain
            bind: "127.0.0.1:8080"
        backends:
          - name: echo
            servers: ["127.0.0.1:9001", "127.0.0.1:9002"]
            connect_timeout: 500ms
          - name: demo
            builtin: echo
        routes:
          - name: chat
            host: "Chat.Example"
            path: "/ws/*"
            backend: echo
            origins: ["https://app.example", "https://*.app.example"]
            limits: { buffer_bytes: 256KiB }
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
        defaults:
          limits:
            max_head_bytes: 8KiB
            handshake_timeout: 5s
        admin: { bind: "127.0.0.1:9901" }
        """

    func parseError(_ yaml: String) -> ConfigError? {
        do {
            _ = try ProxyConfig.parse(yaml: yaml, file: "proxy.yaml")
            return nil
        } catch {
            return error
        }
    }

    @Test func parsesAValidFile() throws {
        let config = try ProxyConfig.parse(yaml: Self.valid, file: "proxy.yaml")
        #expect(config.listeners.map(\.name) == ["public", "plain"])
        #expect(config.listeners[0].tls?.minVersion == .v1_3)
        #expect(config.listeners[0].tls?.selfSigned == true)
        #expect(config.listeners[1].tls == nil)
        #expect(
            config.backends[0].kind
                == .servers([
                    BackendServerConfig(address: BindAddress(host: "127.0.0.1", port: 9001), weight: 1),
                    BackendServerConfig(address: BindAddress(host: "127.0.0.1", port: 9002), weight: 1),
                ]))
        #expect(config.backends[0].connectTimeout == .milliseconds(500))
        #expect(config.backends[1].kind == .builtinEcho)
        #expect(config.routes[0].host == .exact("chat.example"))
        #expect(config.routes[0].path == .prefix("/ws/"))
        #expect(config.routes[0].limits.bufferBytes == 256 << 10)
        // Route limits inherit what defaults set and the route did not.
        #expect(config.routes[0].limits.maxHeadBytes == 8 << 10)
        #expect(config.routes[1].limits.bufferBytes == LimitsConfig().bufferBytes)
        #expect(config.defaultLimits.handshakeTimeout == .seconds(5))
        #expect(config.admin.bind == .tcp(BindAddress(host: "127.0.0.1", port: 9901)))
    }

    @Test func unknownKeyIsAnErrorAtItsPosition() throws {
        let yaml = Self.valid.replacingOccurrences(of: "    origins: [\"*\"]", with: "    origins: [\"*\"]\n    orgins: [\"x\"]")
        let error = try #require(self.parseError(yaml))
        #expect(error.description == "proxy.yaml:26:5: unknown key 'orgins' in a route (did you mean 'origins'?)")
    }

    @Test func unknownTopLevelKeyIsAnError() throws {
        let error = try #require(self.parseError(Self.valid + "\nlisteners_extra: 1\n"))
        #expect(error.line == 31 && error.column == 1)
        #expect(error.message.contains("unknown key 'listeners_extra'"))
    }

    @Test func wrongTypesAreErrorsAtTheValue() throws {
        let badBind = try #require(self.parseError(Self.valid.replacingOccurrences(of: "bind: \"127.0.0.1:8080\"", with: "bind: 8080")))
        #expect(badBind.description == "proxy.yaml:8:11: listener bind must be HOST:PORT (IPv6 as [::1]:PORT), found '8080'")
        let badList = try #require(self.parseError(Self.valid.replacingOccurrences(of: "servers: [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]", with: "servers: \"127.0.0.1:9001\"")))
        #expect(badList.description == "proxy.yaml:11:14: servers must be a list, found '127.0.0.1:9001'")
        let badBool = try #require(self.parseError(Self.valid.replacingOccurrences(of: "self_signed: true", with: "self_signed: yes")))
        #expect(badBool.description == "proxy.yaml:5:20: self_signed must be true or false, found 'yes'")
        let badMapping = try #require(self.parseError(Self.valid.replacingOccurrences(of: "limits: { buffer_bytes: 256KiB }", with: "limits: [1]")))
        #expect(badMapping.description == "proxy.yaml:21:13: limits must be a mapping, found a list")
    }

    @Test func danglingBackendNameIsAnError() throws {
        let error = try #require(self.parseError(Self.valid.replacingOccurrences(of: "backend: echo\n", with: "backend: ehco\n")))
        #expect(error.description == "proxy.yaml:19:14: route 'chat' names backend 'ehco', which does not exist (backends: echo, demo)")
    }

    @Test func duplicateBindsAreErrors() throws {
        let duplicate = try #require(self.parseError(Self.valid.replacingOccurrences(of: "bind: \"127.0.0.1:8080\"", with: "bind: \"127.0.0.1:8443\"")))
        #expect(duplicate.line == 7 && duplicate.column == 5)
        #expect(duplicate.message.contains("listener 'plain' binds 127.0.0.1:8443, already bound by listener 'public'"))
        let wildcard = try #require(self.parseError(Self.valid.replacingOccurrences(of: "bind: \"127.0.0.1:8080\"", with: "bind: \"0.0.0.0:8443\"")))
        #expect(wildcard.message.contains("already bound"))
        let admin = try #require(self.parseError(Self.valid.replacingOccurrences(of: "admin: { bind: \"127.0.0.1:9901\" }", with: "admin: { bind: \"127.0.0.1:8080\" }")))
        #expect(admin.message.contains("the admin listener binds 127.0.0.1:8080"))
    }

    @Test func duplicateNamesAndKeysAreErrors() throws {
        let names = try #require(self.parseError(Self.valid.replacingOccurrences(of: "name: plain", with: "name: public")))
        #expect(names.description == "proxy.yaml:7:5: duplicate listener name 'public' (first declared at proxy.yaml:2:5)")
        let keys = try #require(self.parseError(Self.valid.replacingOccurrences(of: "connect_timeout: 500ms", with: "connect_timeout: 500ms\n    connect_timeout: 1s")))
        #expect(keys.message.contains("duplicate key 'connect_timeout'"))
    }

    @Test func impossibleValuesAreErrors() throws {
        let small = try #require(self.parseError(Self.valid.replacingOccurrences(of: "256KiB", with: "1")))
        #expect(small.description == "proxy.yaml:21:29: buffer_bytes must be between 4KiB and 64MiB, found '1'")
        let duration = try #require(self.parseError(Self.valid.replacingOccurrences(of: "500ms", with: "5 parsecs")))
        #expect(duration.description == "proxy.yaml:12:22: connect_timeout must be a duration like 500ms, 30s, 5m or 1h, found '5 parsecs'")
        let tls = try #require(self.parseError(Self.valid.replacingOccurrences(of: "min_version: \"1.3\"", with: "min_version: \"1.1\"")))
        #expect(tls.message.contains("min_version must be \"1.2\" or \"1.3\" (older TLS is never accepted)"))
        let port = try #require(self.parseError(Self.valid.replacingOccurrences(of: "127.0.0.1:9002", with: "127.0.0.1:99999")))
        #expect(port.line == 11)
        let routeOnly = try #require(self.parseError(Self.valid.replacingOccurrences(of: "limits: { buffer_bytes: 256KiB }", with: "limits: { handshake_timeout: 1s }")))
        #expect(routeOnly.message == "handshake_timeout applies before a route is chosen; set it in defaults.limits")
        let emptyOrigins = try #require(self.parseError(Self.valid.replacingOccurrences(of: "origins: [\"*\"]", with: "origins: []")))
        #expect(emptyOrigins.message.contains("origins must not be empty"))
        let missingOrigins = try #require(self.parseError(Self.valid.replacingOccurrences(of: "    origins: [\"*\"]\n", with: "")))
        #expect(missingOrigins.message == "a route is missing the required key 'origins'")
    }

    @Test func yamlSyntaxErrorsHaveAPosition() throws {
        let error = try #require(self.parseError("listeners:\n  - name: [unclosed\n"))
        #expect(error.file == "proxy.yaml")
        #expect(error.line >= 2)
        #expect(error.message.hasPrefix("invalid YAML"))
    }

    @Test func relativePathsResolveAgainstTheFilesDirectory() throws {
        let yaml = Self.valid.replacingOccurrences(of: "self_signed: true", with: "certificates:\n        - { cert: certs/a.pem, key: /abs/a-key.pem }")
        let config = try ProxyConfig.parse(yaml: yaml, file: "/etc/gatehouse/proxy.yaml")
        #expect(config.listeners[0].tls?.certificates.first == CertificateFiles(cert: "/etc/gatehouse/certs/a.pem", key: "/abs/a-key.pem"))
        let local = try ProxyConfig.parse(yaml: yaml, file: "conf/proxy.yaml")
        #expect(local.listeners[0].tls?.certificates.first?.cert == "conf/certs/a.pem")
    }

    @Test func durationsAndSizes() {
        #expect(ConfigValueParser.duration("500ms") == .milliseconds(500))
        #expect(ConfigValueParser.duration("30s") == .seconds(30))
        #expect(ConfigValueParser.duration("5m") == .seconds(300))
        #expect(ConfigValueParser.duration("1h") == .seconds(3600))
        #expect(ConfigValueParser.duration("0") == .zero)
        #expect(ConfigValueParser.duration("30") == nil)
        #expect(ConfigValueParser.duration("-1s") == nil)
        #expect(ConfigValueParser.duration("1.5s") == nil)
        #expect(ConfigValueParser.byteSize("65536") == 65536)
        #expect(ConfigValueParser.byteSize("64KiB") == 65536)
        #expect(ConfigValueParser.byteSize("1MiB") == 1 << 20)
        #expect(ConfigValueParser.byteSize("2GiB") == 2 << 30)
        #expect(ConfigValueParser.byteSize("64KB") == nil)
        #expect(ConfigValueParser.byteSize("KiB") == nil)
        #expect(ConfigValueParser.byteSize("99999999999999999999") == nil)
    }

    @Test func shippedConfigIsValid() async throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("proxy.yaml")
        let config = try ConfigLoader.load(path: url.path)
        try await ConfigCheck.verifyFiles(config)
        #expect(config.backends.contains { $0.kind == .builtinEcho })
        #expect(config.listeners.contains { $0.tls?.selfSigned == true })
    }
}

extension ConfigTests {
    /// Two routes, one with auth and one without, under `defaults.limits`; `routeLimits` and `openLimits` are the
    /// routes' own limits (left out when empty).
    static func limitsYAML(defaults: String, routeLimits: String = "", openLimits: String = "") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:8080"
        backends:
          - name: demo
            builtin: echo
        auth:
          - name: bots
            type: static
            tokens_file: tokens.txt
        routes:
          - name: secure
            path: "/secure"
            backend: demo
            origins: ["*"]
            auth: { providers: [bots] }
        \(routeLimits.isEmpty ? "" : "    limits: { \(routeLimits) }")
          - name: open
            path: "/open"
            backend: demo
            origins: ["*"]
        \(openLimits.isEmpty ? "" : "    limits: { \(openLimits) }")
        defaults:
          limits: { \(defaults) }
        cluster:
          node: gw-1
          postgres: { url_env: GATEHOUSE_PG_URL }
        """
    }

    @Test func subjectLimitAndScopeAreRead() throws {
        let config = try ProxyConfig.parse(
            yaml: Self.limitsYAML(defaults: "max_connections_per_subject: 3", routeLimits: "scope: cluster"), file: "proxy.yaml"
        )
        #expect(config.defaultLimits.maxConnectionsPerSubject == 3)
        #expect(config.defaultLimits.scope == .local)
        #expect(config.routes[0].limits.maxConnectionsPerSubject == 3)
        #expect(config.routes[0].limits.scope == .cluster)
        // The default applies to authenticated routes only.
        #expect(config.routes[1].limits.maxConnectionsPerSubject == nil)
        #expect(config.routes[1].limits.scope == .local)
        #expect(LimitsConfig().maxConnectionsPerSubject == nil && LimitsConfig().scope == .local)

        let overridden = try ProxyConfig.parse(
            yaml: Self.limitsYAML(defaults: "scope: cluster, max_connections_per_subject: 3", routeLimits: "max_connections_per_subject: unlimited, scope: local"),
            file: "proxy.yaml"
        )
        #expect(overridden.defaultLimits.scope == .cluster)
        #expect(overridden.routes[0].limits.maxConnectionsPerSubject == nil)
        #expect(overridden.routes[0].limits.scope == .local)
        #expect(overridden.routes[1].limits.scope == .cluster)
    }

    @Test func subjectLimitAndScopeErrors() throws {
        let cases: [(String, String)] = [
            (
                Self.limitsYAML(defaults: "buffer_bytes: 64KiB", openLimits: "max_connections_per_subject: 2"),
                "proxy.yaml:22:15: max_connections_per_subject needs a route with auth (route 'open' has none)"
            ),
            (
                Self.limitsYAML(defaults: "max_connections_per_subject: 0"),
                "proxy.yaml:24:42: max_connections_per_subject must be between 1 and 10000000, found 0"
            ),
            (
                Self.limitsYAML(defaults: "buffer_bytes: 64KiB", routeLimits: "max_connections_per_subject: lots"),
                "proxy.yaml:17:44: max_connections_per_subject must be an integer, found 'lots'"
            ),
            (
                Self.limitsYAML(defaults: "scope: clustr"),
                "proxy.yaml:24:20: scope must be local or cluster, found 'clustr'"
            ),
            (
                Self.limitsYAML(defaults: "buffer_bytes: 64KiB", openLimits: "scope: global"),
                "proxy.yaml:22:22: scope must be local or cluster, found 'global'"
            ),
            (
                Self.limitsYAML(defaults: "buffer_bytes: 64KiB", openLimits: "scopes: cluster"),
                "proxy.yaml:22:15: unknown key 'scopes' in limits (did you mean 'scope'?)"
            ),
        ]
        for (yaml, expected) in cases {
            let error = try #require(self.parseError(yaml), "\(expected)")
            #expect(error.description == expected)
        }
    }
}
