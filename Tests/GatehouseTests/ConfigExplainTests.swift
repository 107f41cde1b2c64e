import Foundation
import Testing

@testable import Gatehouse

/// `gatehouse check --explain`: the effective configuration, every default filled in, reads back to itself and
/// passes the schema editors use.
@Suite("Config explain")
struct ConfigExplainTests {
    static let file = "/etc/gatehouse/proxy.yaml"

    static func explain(_ yaml: String) throws -> String {
        ConfigExplainer.yaml(for: try ProxyConfig.parse(yaml: yaml, file: Self.file))
    }

    /// The schema tests' corpus, plus the forms it lacks: introspection, OIDC discovery, hash balancing, a Unix
    /// admin socket, and strings that need quoting.
    static var corpus: [(String, String)] {
        get throws { try ConfigSchemaTests.validCorpus + [("other providers", Self.otherProviders)] }
    }

    static let otherProviders = """
        listeners:
          - name: "odd: #name \\"quoted\\" \\\\ é"
            bind: "[::1]:0"
        backends:
          - name: rooms
            servers: ["10.0.1.5:9002", {address: "rooms.internal:9002", weight: 3}]
            balance: hash
            hash: {key: "header:X-Room"}
            tls: {}
          - name: echo
            builtin: echo
            max_frame_bytes: 65537
          - name: plain
            servers: ["127.0.0.1:9003"]
        routes:
          - name: rooms
            host: "*.example"
            path: "/rooms/*"
            backend: rooms
            origins: ["*", "null", "https://*.app.example:8443"]
            auth: { providers: [idp, oidc], token_sources: [query, "cookie:s"], scopes: ["a:b"] }
            limits: { max_connections_per_subject: 3, idle_timeout: 1500ms }
          - name: echo
            path: "/echo"
            backend: echo
            origins: ["*"]
        auth:
          - name: idp
            type: introspection
            endpoint: "http://127.0.0.1:8080/introspect"
            client_id_env: ID_VAR
            client_secret_env: SECRET_VAR
            cache_ttl: 0
            on_error: unauthorized
            audience: api
          - name: oidc
            type: jwt
            algorithms: [HS256, EdDSA]
            secret_env: HS_SECRET
            oidc_issuer: "https://idp.example/realms/x"
            ca: idp-ca.pem
            jwks_max_bytes: 1MiB
            leeway: 0
        defaults:
          limits: { max_connections_per_subject: 10, max_message_bytes: 100000 }
        admin:
          bind: "unix:run/admin.sock"
          socket_mode: "0660"
        tracing:
          endpoint: "https://collector.example:4318"
          protocol: http/json
          service_name: "edge \\"eu\\""
          sample_ratio: 0.25
        """

    @Test func explainingTwiceGivesTheSameText() throws {
        for (name, yaml) in try Self.corpus {
            let first = try Self.explain(yaml)
            var second = ""
            #expect(throws: Never.self, "\(name)") { second = try Self.explain(first) }
            #expect(first == second, "\(name):\n\(first)\n---\n\(second)")
        }
    }

    /// Beyond the text: what the explained YAML configures is what the original configured (positions aside).
    @Test func theExplainedConfigurationIsTheOriginal() throws {
        for (name, yaml) in try Self.corpus {
            let original = try ProxyConfig.parse(yaml: yaml, file: Self.file)
            let explained = try ProxyConfig.parse(yaml: ConfigExplainer.yaml(for: original), file: Self.file)
            #expect(explained.listeners.map(Self.tlsSettings) == original.listeners.map(Self.tlsSettings), "\(name)")
            #expect(explained.listeners.map(\.bind) == original.listeners.map(\.bind), "\(name)")
            #expect(explained.routes.map(\.limits) == original.routes.map(\.limits), "\(name)")
            #expect(explained.routes.map(\.origins) == original.routes.map(\.origins), "\(name)")
            #expect(explained.defaultLimits == original.defaultLimits, "\(name)")
            #expect(explained.log == original.log, "\(name)")
            #expect(explained.threads == original.threads, "\(name)")
            #expect(explained.admin.bind == original.admin.bind && explained.admin.socketMode == original.admin.socketMode, "\(name)")
            #expect(explained.listeners.map(\.name) == original.listeners.map(\.name), "\(name)")
            #expect(explained.backends.map(\.kind) == original.backends.map(\.kind), "\(name)")
            #expect(explained.backends.map(\.hashKey) == original.backends.map(\.hashKey), "\(name)")
            #expect(explained.backends.map(\.tls) == original.backends.map(\.tls), "\(name)")
            #expect(explained.auth.count == original.auth.count, "\(name)")
            #expect(explained.tracing == original.tracing, "\(name)")
        }
    }

    /// A listener's TLS settings without the position `client_auth` was written at.
    static func tlsSettings(_ listener: ListenerConfig) -> ListenerTLSConfig? {
        var tls = listener.tls
        tls?.clientAuth?.position = ConfigPosition(file: "", line: 0, column: 0)
        return tls
    }

    @Test func theExplainedYAMLValidatesAgainstTheSchema() throws {
        let validator = try ConfigSchemaTests.validator()
        for (name, yaml) in try Self.corpus {
            let explained = try Self.explain(yaml)
            #expect(validator.errors(try ConfigSchemaJSON.fromYAML(explained)) == [], "\(name):\n\(explained)")
        }
    }

    @Test func defaultsAreFilledIn() throws {
        let text = try Self.explain(TestConfig.echo())
        for line in [
            "handshake_timeout: 10s", "keepalive_interval: 30s", "close_timeout: 5s", "idle_timeout: 0",
            "buffer_bytes: 64KiB", "max_head_bytes: 16KiB", "max_frame_bytes: unlimited", "messages_per_second: unlimited",
            "scope: local", "level: info", "format: text", "access_log: true", "queue_bytes: 4MiB", "drain_timeout: 10s",
            "compression: inspect", "forward_token: false", "enforce_expiry: true", "max_concurrent_streams: 100",
        ] {
            #expect(text.contains("\n    " + line) || text.contains("\n  " + line) || text.contains("\n      " + line), "\(line)\n\(text)")
        }
        let rich = try Self.explain(Self.otherProviders)
        for line in [
            "balance: round_robin", "slow_start: 0", "drain_rate: 10", "resolve_interval: 30s", "passive:",
            "failures: 5", "window: 10s", "eject: 30s", "connect_timeout: 2s", "response_timeout: 10s",
            "jwks_refresh_min: 1m", "jwks_refresh_max: 1h", "jwks_timeout: 5s", "jwks_max_bytes: 1MiB", "leeway: 0",
            "require_exp: true", "negative_cache_ttl: 10s", "cache_size: 10000", "max_response_bytes: 64KiB",
            "on_error: unauthorized", "idle_timeout: 1500ms", "max_frame_bytes: 65537", "socket_mode: \"0660\"",
            "balance: hash", "max_connections_per_subject: 3", "sample_ratio: 0.25", "protocol: \"http/json\"", "token_sources: [\"query\", \"cookie:s\"]",
        ] {
            #expect(rich.contains(line), "\(line)\n\(rich)")
        }
    }

    /// A route without `auth` inherits no per-subject limit, and writing one there would be an error.
    @Test func aRouteWithoutAuthGetsNoSubjectLimit() throws {
        let text = try Self.explain(Self.otherProviders)
        let echoRoute = try #require(text.components(separatedBy: "  - name: \"echo\"\n    # host: any\n").last)
        let echoLimits = echoRoute.components(separatedBy: "\nauth:").first ?? ""
        #expect(echoLimits.contains("handshakes_per_ip_per_second: unlimited"))
        #expect(!echoLimits.contains("max_connections_per_subject"))
        #expect(text.contains("max_connections_per_subject: 10"))
    }

    /// Variable names are configuration; their values never appear.
    @Test func secretValuesAreNeverPrinted() throws {
        let text = try Self.explain(Self.otherProviders)
        #expect(text.contains("secret_env: \"HS_SECRET\""))
        #expect(text.contains("client_secret_env: \"SECRET_VAR\""))
        setenv("HS_SECRET", "explain-test-secret-value-0123456789abcdef", 1)
        defer { unsetenv("HS_SECRET") }
        #expect(!(try Self.explain(Self.otherProviders)).contains("explain-test-secret-value"))
    }

    @Test func valuesAreWrittenInTheConfigurationSyntax() {
        #expect(ConfigExplainer.duration(.zero) == "0")
        #expect(ConfigExplainer.duration(.milliseconds(500)) == "500ms")
        #expect(ConfigExplainer.duration(.milliseconds(1500)) == "1500ms")
        #expect(ConfigExplainer.duration(.seconds(90)) == "90s")
        #expect(ConfigExplainer.duration(.seconds(120)) == "2m")
        #expect(ConfigExplainer.duration(.seconds(7200)) == "2h")
        #expect(ConfigExplainer.size(65536) == "64KiB")
        #expect(ConfigExplainer.size(1000) == "1000")
        #expect(ConfigExplainer.octal(0o600) == "0600")
        #expect(ConfigExplainer.quote("a\"b\\c\nd\u{2028}") == "\"a\\\"b\\\\c\\u000Ad\\u2028\"")
    }

    @Test func theCommandPrintsItAndExitsZero() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-explain-\(UUID().uuidString).yaml").path
        try TestConfig.echo().write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try await ExternalProcess.run([CLITests.binary, "check", "--explain", path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("handshake_timeout: 10s"))
        #expect(!result.output.contains(": OK ("))
        let config = try ProxyConfig.parse(yaml: result.output, file: path)
        #expect(ConfigExplainer.yaml(for: config) == result.output)
    }
}
