import Foundation
import Testing
import Yams

@testable import Gatehouse

/// `proxy.schema.json` (what editors check `proxy.yaml` with) must never drift from the parser or the README: every
/// README key is in the schema and every schema key in the README, defaults agree, configurations the parser takes
/// validate, and what the schema refuses the parser refuses too.
@Suite("Config schema")
struct ConfigSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func text(_ name: String) throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent(name), encoding: .utf8)
    }

    static func validator() throws -> ConfigSchemaValidator {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("proxy.schema.json"))
        return ConfigSchemaValidator(root: try JSONDecoder().decode(ConfigSchemaJSON.self, from: data))
    }

    static func reference() throws -> [ConfigReferenceRow] {
        let rows = ConfigReferenceRow.parse(readme: try Self.text("README.md"))
        // A README reshaped so that no row is found must not pass every test below vacuously.
        guard rows.count >= 100 else { throw TestError("only \(rows.count) rows in the README's configuration reference") }
        return rows
    }

    // MARK: The schema and the README

    @Test func theSchemaUsesOnlyKeywordsTheTestValidatorChecks() throws {
        let validator = try Self.validator()
        #expect(validator.root["$schema"] == .string("https://json-schema.org/draft/2020-12/schema"))
        #expect(validator.unsupportedKeywords() == [])
    }

    @Test func everyReadmeKeyIsInTheSchemaAtItsPlace() throws {
        let validator = try Self.validator()
        for row in try Self.reference() {
            let sections = ConfigReferenceRow.sectionPaths(row.section)
            // "`defaults.limits` only": present there, absent from the other paths of the table.
            let onlyIn = sections.filter { row.meaning.contains("`\(ConfigReferenceRow.spell($0))` only") }
            for section in sections {
                let path = section + row.key.split(separator: ".").map(String.init)
                let present = !validator.schemas(at: path).isEmpty
                #expect(present == (onlyIn.isEmpty || onlyIn == [section]), "\(ConfigReferenceRow.spell(path))")
            }
        }
    }

    @Test func everySchemaKeyIsInTheReadme() throws {
        let validator = try Self.validator()
        let rows = try Self.reference()
        let sections = Set(rows.flatMap { ConfigReferenceRow.sectionPaths($0.section) })
        for heading in Set(rows.map(\.section)) {
            let documented = Set(rows.filter { $0.section == heading }.map(\.key))
            for section in ConfigReferenceRow.sectionPaths(heading) {
                let keys = validator.leafKeys(at: section, stoppingAt: sections)
                #expect(!keys.isEmpty, "\(heading)")
                for key in keys.sorted() where !documented.contains(key) {
                    Issue.record("\(ConfigReferenceRow.spell(section + [key])) is in the schema but not in README \(heading)")
                }
            }
        }
    }

    @Test func schemaDefaultsAreTheReadmeDefaults() throws {
        let validator = try Self.validator()
        // Defaults the README writes as code that no JSON value can be: the machine's name, another section.
        let computed: Set<String> = ["`cluster` node", "`routes[]` limits"]
        var compared = 0
        for row in try Self.reference() where !computed.contains("\(row.section) \(row.key)") {
            guard let written = row.literalDefault else { continue }
            for section in ConfigReferenceRow.sectionPaths(row.section) {
                let schemas = validator.schemas(at: section + row.key.split(separator: ".").map(String.init))
                guard !schemas.isEmpty else { continue }
                let value = schemas.compactMap { $0["default"] }.first
                #expect(value?.rendered == written, "\(row.section) \(row.key): schema \(String(describing: value))")
                compared += 1
            }
        }
        #expect(compared >= 60)
    }

    @Test func everySchemaDefaultValidatesAgainstItsOwnSchema() throws {
        let validator = try Self.validator()
        let withDefaults = validator.allSchemas().filter { $0["default"] != nil }
        #expect(withDefaults.count >= 60)
        for schema in withDefaults {
            guard let value = schema["default"] else { continue }
            #expect(validator.errors(value, schema) == [], "\(value)")
        }
    }

    // MARK: Configurations

    @Test func yamlBecomesJSONWithYAML12Types() throws {
        let value = try ConfigSchemaJSON.fromYAML("a: off\nb: 0\nc: \"1.2\"\nd: 1.5\ne: true\nf: [x, ~]\ng: 64KiB\n")
        #expect(value == .object([
            "a": .string("off"), "b": .int(0), "c": .string("1.2"), "d": .double(1.5), "e": .bool(true),
            "f": .array([.string("x"), .null]), "g": .string("64KiB"),
        ]))
    }

    static var validCorpus: [(String, String)] {
        get throws {
            [
                ("proxy.yaml", try Self.text("proxy.yaml")),
                ("ConfigTests.valid", ConfigTests.valid),
                ("OperationsTests.base", OperationsTests.base),
                ("every section", Self.everySection),
                ("the other spellings", Self.otherSpellings),
            ]
        }
    }

    @Test func theShippedConfigurationNamesTheSchema() throws {
        #expect(try Self.text("proxy.yaml").hasPrefix("# yaml-language-server: $schema=./proxy.schema.json\n"))
    }

    @Test func validConfigurationsPassTheSchemaAndTheParser() throws {
        let validator = try Self.validator()
        for (name, yaml) in try Self.validCorpus {
            #expect(validator.errors(try ConfigSchemaJSON.fromYAML(yaml)) == [], "\(name)")
            #expect(throws: Never.self, "\(name)") { _ = try ProxyConfig.parse(yaml: yaml, file: "/etc/gatehouse/proxy.yaml") }
        }
    }

    @Test(arguments: ConfigSchemaTests.invalidEdits)
    func invalidConfigurationsAreRefusedByBoth(_ edit: InvalidEdit) throws {
        let validator = try Self.validator()
        let base = Self.everySection
        // Each edit must change exactly one place of a configuration both accept, or it proves nothing.
        #expect(validator.errors(try ConfigSchemaJSON.fromYAML(base)) == [])
        #expect(base.components(separatedBy: edit.find).count == 2, "'\(edit.find)' must occur once")
        let yaml = base.replacingOccurrences(of: edit.find, with: edit.replace)
        #expect(!validator.errors(try ConfigSchemaJSON.fromYAML(yaml)).isEmpty, "the schema takes \(edit.name)")
        #expect(throws: ConfigError.self, "the parser takes \(edit.name)") {
            _ = try ProxyConfig.parse(yaml: yaml, file: "/etc/gatehouse/proxy.yaml")
        }
    }

    struct InvalidEdit: Sendable, CustomTestStringConvertible {
        let name: String
        let find: String
        let replace: String
        var testDescription: String { self.name }
    }

    static let invalidEdits: [InvalidEdit] = [
        .init(name: "unknown top-level key", find: "threads: 4", replace: "threads: 4\ncolour: blue"),
        .init(name: "threads out of range", find: "threads: 4", replace: "threads: 0"),
        .init(name: "threads not a number", find: "threads: 4", replace: "threads: many"),
        .init(name: "unknown listener key", find: "    max_concurrent_streams: 200", replace: "    max_concurrent_stream: 200"),
        .init(name: "unknown tls key", find: "      min_version: \"1.2\"", replace: "      min_versions: \"1.2\""),
        .init(name: "old TLS", find: "      min_version: \"1.2\"", replace: "      min_version: \"1.1\""),
        .init(name: "unknown ALPN", find: "alpn: [h2, http/1.1]", replace: "alpn: [h3]"),
        .init(name: "unknown certificate key", find: "key: certs/api-key.pem }", replace: "key: certs/api-key.pem, chain: c.pem }"),
        .init(name: "client_auth mode", find: "mode: optional", replace: "mode: sometimes"),
        .init(name: "unknown server key", find: "weight: 3 }", replace: "wieght: 3 }"),
        .init(name: "builtin other than echo", find: "builtin: echo", replace: "builtin: ping"),
        .init(name: "balance", find: "balance: least_connections", replace: "balance: random"),
        .init(name: "hash key", find: "key: \"header:X-Room\"", replace: "key: body"),
        .init(name: "unknown health key", find: "path: /healthz-ws }", replace: "paht: /healthz-ws }"),
        .init(name: "health rise out of range", find: "rise: 2,", replace: "rise: 101,"),
        .init(name: "unknown passive key", find: "passive: { failures: 3,", replace: "passive: { failure: 3,"),
        .init(name: "passive as a boolean", find: "passive: off", replace: "passive: false"),
        .init(name: "unknown route key", find: "    forward_token: true", replace: "    forward_tokens: true"),
        .init(name: "boolean as a string", find: "    forward_token: true", replace: "    forward_token: \"yes\""),
        .init(name: "boolean as a number", find: "enforce_expiry: false", replace: "enforce_expiry: 0"),
        .init(name: "unknown route auth key", find: "      scopes: [\"chat:write\"]", replace: "      scope: [\"chat:write\"]"),
        .init(name: "token source", find: "query, \"cookie:session\"]", replace: "query, body]"),
        .init(name: "origins as a string", find: "origins: [\"null\"]", replace: "origins: \"null\""),
        .init(name: "route without origins", find: "    origins: [\"null\"]\n", replace: ""),
        .init(name: "compression", find: "compression: passthrough", replace: "compression: gzip"),
        .init(name: "unknown limits key", find: "      max_connections: 1000", replace: "      max_conections: 1000"),
        .init(name: "connection-level limit in a route", find: "      close_timeout: 2s", replace: "      handshake_timeout: 2s"),
        .init(name: "limit scope", find: "scope: cluster", replace: "scope: global"),
        .init(name: "unknown defaults key", find: "  limits:\n    buffer_bytes", replace: "  limit:\n    buffer_bytes"),
        .init(name: "decimal size unit", find: "buffer_bytes: 65536", replace: "buffer_bytes: 64KB"),
        .init(name: "pending connections out of range", find: "max_pending_connections: 5000", replace: "max_pending_connections: 0"),
        .init(name: "limit neither a count nor unlimited", find: "messages_per_second: unlimited", replace: "messages_per_second: lots"),
        .init(name: "key of another provider type", find: "    jwks_file: keys/jwks.json", replace: "    jwks_file: keys/jwks.json\n    tokens_file: t.txt"),
        .init(name: "provider type", find: "type: static", replace: "type: oauth"),
        .init(name: "algorithm", find: "algorithms: [HS256]", replace: "algorithms: [none]"),
        .init(name: "introspection on_error", find: "on_error: unauthorized", replace: "on_error: ignore"),
        .init(name: "mtls subject source", find: "subject_from: [uri, cn]", replace: "subject_from: [uri, ip]"),
        .init(name: "unknown admin key", find: "  drain_timeout: 20s", replace: "  drain_timeouts: 20s"),
        .init(name: "duration without unit", find: "  drain_timeout: 20s", replace: "  drain_timeout: 20"),
        .init(name: "socket_mode not octal", find: "socket_mode: \"0660\"", replace: "socket_mode: \"0999\""),
        .init(name: "log level", find: "level: notice", replace: "level: verbose"),
        .init(name: "log format", find: "format: json", replace: "format: xml"),
        .init(name: "access_log as a number", find: "access_log: false", replace: "access_log: 1"),
        .init(name: "unknown cluster key", find: "  heartbeat: 500ms", replace: "  heart_beat: 500ms"),
        .init(name: "unknown postgres key", find: "{ url_env: GATEHOUSE_DB }", replace: "{ url: GATEHOUSE_DB }"),
        .init(name: "cluster node name", find: "node: edge-1", replace: "node: \"edge:1\""),
        .init(name: "on_store_error", find: "on_store_error: closed", replace: "on_store_error: maybe"),
    ]

    /// Every section and nearly every key (paths are only parsed: no file is read).
    static let everySection = """
        threads: 4
        listeners:
          - name: public
            bind: "0.0.0.0:8443"
            max_concurrent_streams: 200
            tls:
              certificates:
                - { cert: certs/chat.pem, key: certs/chat-key.pem }
                - { cert: certs/api.pem, key: certs/api-key.pem }
              min_version: "1.2"
              alpn: [h2, http/1.1]
              ciphers: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]
              client_auth:
                ca: certs/clients-ca.pem
                mode: optional
          - name: plain
            bind: "[::1]:8080"
        backends:
          - name: chat
            servers:
              - "10.0.0.5:9001"
              - { address: "10.0.0.6:9001", weight: 3 }
              - "chat.internal:9001"
            connect_timeout: 500ms
            response_timeout: 5s
            tls: { ca: certs/internal-ca.pem, server_name: chat.internal }
            balance: least_connections
            slow_start: 30s
            drain_rate: 50
            resolve_interval: 10s
            health: { interval: 5s, timeout: 1s, rise: 2, fall: 3, path: /healthz-ws }
            passive: { failures: 3, window: 10s, eject: 30s }
          - name: rooms
            servers: ["10.0.1.5:9002", "10.0.1.6:9002"]
            balance: hash
            hash: { key: "header:X-Room" }
            passive: off
          - name: demo
            builtin: echo
            max_frame_bytes: 64KiB
        routes:
          - name: chat
            host: "chat.example"
            path: "/ws/chat"
            backend: chat
            origins: ["https://chat.example", "https://*.chat.example"]
            auth:
              providers: [main, hmac, oidc, bots, idp, certs]
              token_sources: [header, subprotocol, query, "cookie:session"]
              scopes: ["chat:write"]
            forward_token: true
            enforce_expiry: false
            allow_underscore_headers: true
            compression: passthrough
            limits:
              buffer_bytes: 128KiB
              max_frame_bytes: 64KiB
              max_message_bytes: 1MiB
              messages_per_second: 50
              keepalive_interval: 0
              idle_timeout: 5m
              close_timeout: 2s
              max_connections: 1000
              max_connections_per_ip: 20
              max_connections_per_subject: 5
              handshakes_per_ip_per_second: 10
              scope: cluster
          - name: rooms
            host: "*.rooms.example"
            path: "/rooms/*"
            backend: rooms
            origins: ["*"]
            compression: strip
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["null"]
        auth:
          - name: main
            type: jwt
            algorithms: [RS256, ES256, EdDSA]
            jwks_file: keys/jwks.json
            issuer: "https://auth.example"
            audience: ws-api
            leeway: 10s
            require_exp: true
          - name: hmac
            type: jwt
            algorithms: [HS256]
            secret_env: GATEHOUSE_HMAC
            leeway: 0
            require_exp: false
          - name: oidc
            type: jwt
            algorithms: [RS256]
            oidc_issuer: "https://idp.example/realms/x"
            ca: keys/idp-ca.pem
            jwks_refresh_min: 1m
            jwks_refresh_max: 1h
            jwks_refetch_min: 30s
            jwks_timeout: 5s
            jwks_max_bytes: 256KiB
          - name: bots
            type: static
            tokens_file: keys/tokens.txt
          - name: idp
            type: introspection
            endpoint: "https://idp.example/introspect"
            client_id_env: GATEHOUSE_ID
            client_secret_env: GATEHOUSE_SECRET
            ca: keys/idp-ca.pem
            cache_ttl: 30s
            negative_cache_ttl: 0
            cache_size: 5000
            max_concurrent: 16
            timeout: 2s
            max_response_bytes: 32KiB
            on_error: unauthorized
            issuer: "https://idp.example"
            audience: ws-api
          - name: certs
            type: mtls
            subject_from: [uri, cn]
            forward_certificate: true
        defaults:
          limits:
            buffer_bytes: 65536
            max_head_bytes: 8KiB
            handshake_timeout: 5s
            max_pending_connections: 5000
            max_pending_connections_per_ip: 64
            max_handshakes_per_connection: 8
            max_frame_bytes: unlimited
            max_message_bytes: 4MiB
            messages_per_second: unlimited
            keepalive_interval: 30s
            idle_timeout: 0
            close_timeout: 5s
            max_connections: unlimited
            max_connections_per_ip: unlimited
            max_connections_per_subject: 10
            handshakes_per_ip_per_second: unlimited
            scope: local
        admin:
          bind: "unix:/run/gatehouse/admin.sock"
          socket_mode: "0660"
          drain_timeout: 20s
          pid_file: /run/gatehouse/gatehouse.pid
        log:
          level: notice
          format: json
          access_log: false
          queue_bytes: 8MiB
        cluster:
          node: edge-1
          postgres: { url_env: GATEHOUSE_DB }
          heartbeat: 500ms
          on_store_error: closed
          store_timeout: 2s
        """

    /// The other forms some keys take: ciphers as one string, TLS 1.3 only, remote keys, a TCP admin with a token.
    static let otherSpellings = """
        listeners:
          - name: modern
            bind: "127.0.0.1:0"
            tls: { self_signed: true, min_version: "1.3", alpn: [http/1.1] }
          - name: legacy
            bind: "localhost:0"
            tls:
              certificates: [{ cert: a.pem, key: a-key.pem }]
              ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
              client_auth: { ca: ca.pem }
        backends:
          - name: api
            servers: ["127.0.0.1:9001"]
            balance: round_robin
            passive: off
        routes:
          - name: api
            path: "/api"
            backend: api
            origins: ["https://app.example"]
            auth: { providers: [remote, certs] }
        auth:
          - name: remote
            type: jwt
            algorithms: [ES384, PS256]
            jwks_url: "https://idp.example/jwks.json"
          - name: certs
            type: mtls
        admin:
          bind: "0.0.0.0:9901"
          token_env: GATEHOUSE_ADMIN_TOKEN
          pid_file: run/gatehouse.pid
        cluster:
          postgres: { url_env: DATABASE_URL }
        """
}

// MARK: - The README's reference tables

/// One row of a table under "## Configuration reference".
struct ConfigReferenceRow {
    /// The `###` heading, e.g. "`backends[]`".
    let section: String
    /// First column, dotted (`health.interval`).
    let key: String
    let defaultText: String
    let meaning: String

    static func parse(readme: String) -> [ConfigReferenceRow] {
        guard let start = readme.range(of: "\n## Configuration reference\n") else { return [] }
        var rows: [ConfigReferenceRow] = []
        var section: String?
        for line in readme[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { break }
            if line.hasPrefix("### ") {
                section = String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces)
            } else if let section, line.hasPrefix("| `") {
                let cells = line.dropFirst().split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                guard cells.count == 3, cells[2].hasSuffix("|") else { continue }
                rows.append(.init(section: section, key: cells[0].replacingOccurrences(of: "`", with: ""),
                                  defaultText: cells[1],
                                  meaning: String(cells[2].dropLast()).trimmingCharacters(in: .whitespaces)))
            }
        }
        return rows
    }

    /// Where a heading's table lives in the configuration: "Top level" is the root; "`routes[].limits`" is
    /// `["routes", "[]", "limits"]`; "`a` and `b`" names two places.
    static func sectionPaths(_ heading: String) -> [[String]] {
        if heading == "Top level" { return [[]] }
        return heading.replacingOccurrences(of: "`", with: "").components(separatedBy: " and ").map { place in
            place.split(separator: ".").flatMap { step in
                step.hasSuffix("[]") ? [String(step.dropLast(2)), "[]"] : [String(step)]
            }
        }
    }

    static func spell(_ path: [String]) -> String {
        path.joined(separator: ".").replacingOccurrences(of: ".[]", with: "[]")
    }

    /// The default when the README writes it as one code span (`10s`, `"1.2"`, `[h2, http/1.1]`), quotes removed;
    /// nil for prose ("number of cores"), mappings and absences.
    var literalDefault: String? {
        let text = self.defaultText
        guard text.hasPrefix("`"), let end = text.dropFirst().firstIndex(of: "`") else { return nil }
        let rest = text[text.index(after: end)...]
        guard rest.isEmpty || rest.hasPrefix(" (") else { return nil }
        let code = String(text[text.index(after: text.startIndex)..<end])
        if code.hasPrefix("{") { return nil }
        return code.hasPrefix("\"") && code.hasSuffix("\"") && code.count >= 2 ? String(code.dropFirst().dropLast()) : code
    }
}

// MARK: - JSON and a validator of the JSON Schema subset the schema uses

/// A JSON value: the schema, and configurations converted from YAML.
enum ConfigSchemaJSON: Sendable, Equatable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([ConfigSchemaJSON])
    case object([String: ConfigSchemaJSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ConfigSchemaJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ConfigSchemaJSON].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    subscript(key: String) -> ConfigSchemaJSON? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var object: [String: ConfigSchemaJSON]? {
        if case .object(let object) = self { return object }
        return nil
    }

    /// The way the README writes a default: `10s`, `true`, `[h2, http/1.1]`.
    var rendered: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return String(value)
        case .int(let value): return String(value)
        case .double(let value): return String(value)
        case .string(let value): return value
        case .array(let values): return "[" + values.map(\.rendered).joined(separator: ", ") + "]"
        case .object(let object): return "{" + object.keys.sorted().map { "\($0): \(object[$0]?.rendered ?? "")" }.joined(separator: ", ") + "}"
        }
    }

    var description: String { self.rendered }

    /// YAML read with the YAML 1.2 core schema, as yaml-language-server reads it (`off` and `yes` are strings, not
    /// booleans), then through JSON text and back: what is validated is what a JSON Schema tool would see.
    static func fromYAML(_ yaml: String) throws -> ConfigSchemaJSON {
        let resolver = try Resolver.basic
            .appending(.bool, "^(?:true|True|TRUE|false|False|FALSE)$")
            .appending(.int, "^(?:[-+]?[0-9]+)$")
            .appending(.float, "^(?:[-+]?(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)$")
            .appending(.null, "^(?:~|null|Null|NULL|)$")
            .appending(.merge, "^(?:<<)$")
        let value = try Self(yaml: try Yams.load(yaml: yaml, resolver))
        return try JSONDecoder().decode(Self.self, from: try JSONEncoder().encode(value))
    }

    private init(yaml: Any?) throws {
        switch yaml {
        case nil, is NSNull: self = .null
        case let value as Bool: self = .bool(value)
        case let value as Int: self = .int(value)
        case let value as Double: self = .double(value)
        case let value as String: self = .string(value)
        case let values as [Any]: self = .array(try values.map { try Self(yaml: $0) })
        case let mapping as [AnyHashable: Any]:
            var object: [String: ConfigSchemaJSON] = [:]
            for (key, value) in mapping {
                guard let key = key.base as? String else { throw TestError("a YAML key that is not a string: \(key)") }
                object[key] = try Self(yaml: value)
            }
            self = .object(object)
        case let yaml?:
            throw TestError("a YAML value with no JSON form: \(type(of: yaml))")
        }
    }
}

/// Validates against the subset of JSON Schema 2020-12 that `proxy.schema.json` uses; any other keyword is reported
/// (``unsupportedKeywords()``), so the schema cannot lean on a keyword this validator would silently skip.
struct ConfigSchemaValidator {
    let root: ConfigSchemaJSON

    static let keywords: Set<String> = [
        "type", "properties", "additionalProperties", "required", "enum", "const", "pattern", "minLength", "items",
        "minItems", "uniqueItems", "minimum", "maximum", "anyOf", "oneOf", "$ref",
    ]
    static let annotations: Set<String> = ["$schema", "$defs", "$comment", "title", "description", "default", "examples"]
    static let maxDepth = 64

    /// Problems of `value` against `schema` (the whole schema when nil); empty when valid.
    func errors(_ value: ConfigSchemaJSON, _ schema: ConfigSchemaJSON? = nil, at path: String = "", depth: Int = 0) -> [String] {
        let schema = schema ?? self.root
        let here = path.isEmpty ? "(root)" : path
        guard depth < Self.maxDepth else { return ["\(here): schema nested too deeply"] }
        switch schema {
        case .bool(true): return []
        case .bool(false): return ["\(here): not allowed"]
        case .object: break
        default: return ["\(here): a schema must be an object or a boolean"]
        }
        let keys = schema.object ?? [:]
        var errors: [String] = []
        for (keyword, argument) in keys.sorted(by: { $0.key < $1.key }) {
            if Self.annotations.contains(keyword) { continue }
            switch (keyword, argument, value) {
            case ("$ref", .string(let reference), _):
                guard let target = self.resolve(reference) else { errors.append("\(here): unresolved \(reference)"); continue }
                errors += self.errors(value, target, at: path, depth: depth + 1)
            case ("type", _, _):
                let types: [String]
                switch argument {
                case .string(let name): types = [name]
                case .array(let names): types = names.compactMap { if case .string(let n) = $0 { n } else { nil } }
                default: types = []
                }
                if !types.contains(where: { Self.has(value, type: $0) }) {
                    errors.append("\(here): \(value) is not of type \(types.joined(separator: "|"))")
                }
            case ("enum", .array(let allowed), _):
                if !allowed.contains(value) { errors.append("\(here): \(value) is not one of \(argument)") }
            case ("const", _, _):
                if value != argument { errors.append("\(here): \(value) is not \(argument)") }
            case ("pattern", .string(let pattern), .string(let text)):
                guard let regex = try? NSRegularExpression(pattern: pattern) else {
                    errors.append("\(here): bad pattern \(pattern)")
                    continue
                }
                if regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil {
                    errors.append("\(here): '\(text)' does not match \(pattern)")
                }
            case ("minLength", .int(let minimum), .string(let text)):
                if text.unicodeScalars.count < minimum { errors.append("\(here): shorter than \(minimum)") }
            case ("minimum", _, _), ("maximum", _, _):
                guard let bound = Self.number(argument), let number = Self.number(value) else { continue }
                if keyword == "minimum" ? number < bound : number > bound {
                    errors.append("\(here): \(value) is out of range (\(keyword) \(argument))")
                }
            case ("items", _, .array(let items)):
                for (index, item) in items.enumerated() {
                    errors += self.errors(item, argument, at: "\(path)[\(index)]", depth: depth + 1)
                }
            case ("minItems", .int(let minimum), .array(let items)):
                if items.count < minimum { errors.append("\(here): fewer than \(minimum) items") }
            case ("uniqueItems", .bool(true), .array(let items)):
                for (index, item) in items.enumerated() where items[..<index].contains(item) {
                    errors.append("\(here): \(item) is listed twice")
                }
            case ("properties", .object(let properties), .object(let object)):
                for (name, subschema) in properties.sorted(by: { $0.key < $1.key }) {
                    guard let member = object[name] else { continue }
                    errors += self.errors(member, subschema, at: path.isEmpty ? name : "\(path).\(name)", depth: depth + 1)
                }
            case ("additionalProperties", _, .object(let object)):
                let known = keys["properties"]?.object ?? [:]
                for (name, member) in object.sorted(by: { $0.key < $1.key }) where known[name] == nil {
                    if argument == .bool(false) {
                        errors.append("\(here): unknown key '\(name)'")
                    } else {
                        errors += self.errors(member, argument, at: path.isEmpty ? name : "\(path).\(name)", depth: depth + 1)
                    }
                }
            case ("required", .array(let names), .object(let object)):
                for case .string(let name) in names where object[name] == nil {
                    errors.append("\(here): missing required key '\(name)'")
                }
            case ("anyOf", .array(let branches), _):
                let results = branches.map { self.errors(value, $0, at: path, depth: depth + 1) }
                if !results.contains(where: \.isEmpty) {
                    errors.append("\(here): matches no branch of anyOf (\(results.flatMap { $0 }.joined(separator: "; ")))")
                }
            case ("oneOf", .array(let branches), _):
                let results = branches.map { self.errors(value, $0, at: path, depth: depth + 1) }
                let matches = results.filter(\.isEmpty).count
                if matches != 1 {
                    errors.append("\(here): matches \(matches) branches of oneOf, not exactly one (\(results.flatMap { $0 }.joined(separator: "; ")))")
                }
            case _ where Self.keywords.contains(keyword):
                continue  // a keyword that does not apply to this kind of value
            default:
                errors.append("\(here): unsupported keyword '\(keyword)'")
            }
        }
        return errors
    }

    private static func has(_ value: ConfigSchemaJSON, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("integer", .int), ("number", .int), ("number", .double),
            ("string", .string), ("array", .array), ("object", .object):
            return true
        case ("integer", .double(let number)):
            return number == number.rounded()
        default:
            return false
        }
    }

    private static func number(_ value: ConfigSchemaJSON) -> Double? {
        switch value {
        case .int(let number): return Double(number)
        case .double(let number): return number
        default: return nil
        }
    }

    /// `#/$defs/NAME` only: the schema keeps every shared definition there.
    func resolve(_ reference: String) -> ConfigSchemaJSON? {
        guard reference.hasPrefix("#/$defs/") else { return nil }
        return self.root["$defs"]?[String(reference.dropFirst("#/$defs/".count))]
    }

    /// A schema and every schema it defers to through `$ref`, `anyOf` and `oneOf`.
    func expand(_ schema: ConfigSchemaJSON, depth: Int = 0) -> [ConfigSchemaJSON] {
        guard depth < Self.maxDepth else { return [] }
        var result = [schema]
        if case .string(let reference)? = schema["$ref"], let target = self.resolve(reference) {
            result += self.expand(target, depth: depth + 1)
        }
        for keyword in ["anyOf", "oneOf"] {
            if case .array(let branches)? = schema[keyword] {
                result += branches.flatMap { self.expand($0, depth: depth + 1) }
            }
        }
        return result
    }

    /// The schemas of a place in the configuration: property names, `[]` for the items of a list.
    func schemas(at path: [String]) -> [ConfigSchemaJSON] {
        path.reduce([self.root]) { schemas, step in
            schemas.flatMap { self.expand($0) }.compactMap { step == "[]" ? $0["items"] : $0["properties"]?[step] }
        }
    }

    /// Dotted names of the keys under `path` whose values have no keys of their own, not entering lists nor the
    /// places in `stops` (tables of their own in the README).
    func leafKeys(at path: [String], stoppingAt stops: Set<[String]>) -> Set<String> {
        var keys: Set<String> = []
        func walk(_ schemas: [ConfigSchemaJSON], path: [String], prefix: [String]) {
            guard prefix.count < Self.maxDepth else { return }
            var members: [String: [ConfigSchemaJSON]] = [:]
            for schema in schemas.flatMap({ self.expand($0) }) {
                for (name, subschema) in schema["properties"]?.object ?? [:] { members[name, default: []].append(subschema) }
            }
            for (name, subschemas) in members where !stops.contains(path + [name]) {
                if subschemas.flatMap({ self.expand($0) }).contains(where: { $0["properties"] != nil }) {
                    walk(subschemas, path: path + [name], prefix: prefix + [name])
                } else {
                    keys.insert((prefix + [name]).joined(separator: "."))
                }
            }
        }
        walk(self.schemas(at: path), path: path, prefix: [])
        return keys
    }

    /// Every schema object in the document.
    func allSchemas() -> [ConfigSchemaJSON] {
        var result: [ConfigSchemaJSON] = []
        func walk(_ schema: ConfigSchemaJSON, depth: Int) {
            guard depth < Self.maxDepth, let object = schema.object else { return }
            result.append(schema)
            for keyword in ["$defs", "properties"] {
                for (_, subschema) in object[keyword]?.object ?? [:] { walk(subschema, depth: depth + 1) }
            }
            for keyword in ["items", "additionalProperties"] { if let subschema = object[keyword] { walk(subschema, depth: depth + 1) } }
            for keyword in ["anyOf", "oneOf"] {
                if case .array(let branches)? = object[keyword] { branches.forEach { walk($0, depth: depth + 1) } }
            }
        }
        walk(self.root, depth: 0)
        return result
    }

    /// Keywords of the document that ``errors(_:_:at:depth:)`` does not check.
    func unsupportedKeywords() -> [String] {
        self.allSchemas().flatMap { schema in
            (schema.object ?? [:]).keys.filter { !Self.keywords.contains($0) && !Self.annotations.contains($0) }
        }.sorted()
    }
}
