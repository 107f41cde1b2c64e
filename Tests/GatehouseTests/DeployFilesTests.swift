import Foundation
import NIOHTTP1
import Testing
@testable import Gatehouse

/// The shipped Grafana dashboard and Prometheus alerts (`deploy/`) read only metrics the proxy exports, and the alert
/// rules pass promtool's checks and unit tests.
@Suite("Deploy files", .timeLimit(.minutes(2)))
struct DeployFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let alerts = root.appendingPathComponent("deploy/prometheus/alerts.yml").path
    static let alertTests = root.appendingPathComponent("deploy/prometheus/alerts_test.yml").path
    static let dashboard = root.appendingPathComponent("deploy/grafana/gatehouse.json").path
    static let promtool = "/usr/bin/promtool"

    /// Families a single-node proxy without remote key sets cannot make appear: each is a README metric row.
    static let allowlisted: Set<String> = [
        // README "Cluster metrics": only exported with a `cluster:` section (PostgreSQL).
        "gatehouse_cluster_store_up",
        "gatehouse_cluster_nodes",
        "gatehouse_cluster_bus_lag_seconds",
        // README "Metrics": only with a `jwks_url` / `oidc_issuer` provider, after a background fetch.
        "gatehouse_auth_jwks_fetches_total",
        // README "Metrics": only with an `introspection` provider, after a request.
        "gatehouse_auth_introspection_requests_total",
        // README "Metrics": created at the first failed TLS handshake, which needs a TLS listener and certificates.
        "gatehouse_tls_handshake_failures_total",
    ]

    static var promtoolRequired: Bool { ProcessInfo.processInfo.environment["GATEHOUSE_REQUIRE_PROMTOOL"] == "1" }
    static var promtoolEnabled: Bool { Self.promtoolRequired || FileManager.default.isExecutableFile(atPath: Self.promtool) }

    struct Extracted: Decodable {
        struct Expression: Decodable {
            let source: String
            let expr: String
            let metrics: [String]
        }

        let expressions: [Expression]
        let alerts: [String]
        let tests: [String: [String]]
        let errors: [String]
    }

    /// The PromQL of both files and the metric names each reads, by `Peers/promql_metrics.py`.
    static func extract() async throws -> Extracted {
        let result = try await ExternalProcess.run(
            ["python3", ExternalProcess.peerScript("promql_metrics.py"), Self.alerts, Self.dashboard, Self.alertTests], timeout: 30
        )
        #expect(result.status == 0, "\(result.output)")
        return try JSONDecoder().decode(Extracted.self, from: Data(result.output.utf8))
    }

    /// The family of a series name: histograms are exported as `_bucket`, `_sum` and `_count`.
    static func family(_ name: String) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            return String(name.dropLast(suffix.count))
        }
        return name
    }

    /// Family names in a text exposition (`# TYPE` lines and samples).
    static func families(_ exposition: String) -> Set<String> {
        var names: Set<String> = []
        for line in exposition.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count >= 3 { names.insert(String(parts[2])) }
            } else if !line.hasPrefix("#"), let end = line.firstIndex(where: { $0 == "{" || $0 == " " }) {
                names.insert(Self.family(String(line[..<end])))
            }
        }
        return names
    }

    /// A route to the built-in echo backend, and a route to a server nobody listens on, health-checked, so that
    /// closes, bytes, messages, connect failures, health checks and ejections all get their series.
    static func config(deadPort: Int) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: demo
            builtin: echo
          - name: dead
            servers: ["127.0.0.1:\(deadPort)"]
            health: {interval: 200ms, timeout: 150ms, rise: 1, fall: 1}
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
          - name: dead
            path: "/dead"
            backend: dead
            origins: ["*"]
        admin: { bind: "127.0.0.1:0" }
        """
    }

    /// Scrapes `/metrics` of a proxy that relayed one connection, refused one handshake and ejected a server.
    static func scrapeBusyProxy() async throws -> String {
        let deadPort = try await BackendHealthTests.closedPort()
        return try await TestProxy.with(Self.config(deadPort: deadPort)) { proxy in
            let port = try proxy.port("plain")
            let client = try await TestClient.connect(port: port)
            try await client.sendUpgrade(path: "/echo")
            #expect(try await client.readHead().status == 101)
            try await client.sendFrame(opcode: TestFrame.text, payload: Array("hello".utf8))
            _ = try await client.readFrame()
            try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
            _ = try await client.readFrame()
            _ = try await client.waitForClose()
            await client.close()
            _ = try await proxy.logs.waitForLine(containing: "connection closed")

            let refused = try await TestClient.connect(port: port)
            try await refused.sendUpgrade(path: "/dead")
            #expect(try await refused.readHead().status == 502)
            await refused.close()
            _ = try await proxy.logs.waitForLine(containing: "backend server down: failed its health checks")

            let response = try await BackendHealthTests.admin(proxy, .GET, "/metrics")
            #expect(response.status == 200)
            return response.body
        }
    }

    @Test func everyMetricInTheDeployFilesIsExported() async throws {
        let extracted = try await Self.extract()
        #expect(extracted.errors.isEmpty, "\(extracted.errors)")
        let exported = Self.families(try await Self.scrapeBusyProxy())
        var used: Set<String> = []
        for expression in extracted.expressions {
            #expect(!expression.metrics.isEmpty, "\(expression.source): \(expression.expr)")
            for metric in expression.metrics {
                let family = Self.family(metric)
                used.insert(family)
                #expect(
                    exported.contains(family) || Self.allowlisted.contains(family),
                    "\(expression.source) reads \(metric), which the proxy does not export"
                )
            }
        }
        // The allowlist stays honest: only families the scrape cannot show, all of them used.
        for family in Self.allowlisted {
            #expect(!exported.contains(family), "\(family) is scraped: take it off the allowlist")
            #expect(used.contains(family), "\(family) is allowlisted but no longer used")
        }
        // The alerts' core series really were created by the traffic above (not merely declared).
        for family in ["gatehouse_closes_total", "gatehouse_backend_server_up", "gatehouse_backend_health_checks_total",
                       "gatehouse_backend_ejections_total", "gatehouse_backend_connect_failures_total",
                       "gatehouse_connections_refused_total", "gatehouse_config_reloads_total"] {
            #expect(exported.contains(family), "\(family) missing from the scrape")
        }
    }

    @Test func allowlistedMetricsAreDocumentedInTheReadme() throws {
        let readme = try String(contentsOfFile: Self.root.appendingPathComponent("README.md").path, encoding: .utf8)
        for family in Self.allowlisted {
            #expect(readme.contains("| `\(family)` |"), "\(family) has no row in README.md")
        }
    }

    @Test func theExtractorFindsMetricsAndIgnoresFunctionsLabelsAndKeywords() async throws {
        let extracted = try await Self.extract()
        let refusal = try #require(extracted.expressions.first { $0.source == "alerts.yml:GatehouseRefusalSpike" })
        #expect(Set(refusal.metrics) == ["gatehouse_handshakes_total", "gatehouse_connections_refused_total"])
        let jwks = try #require(extracted.expressions.first { $0.source == "alerts.yml:GatehouseJWKSFetchFailing" })
        #expect(jwks.metrics == ["gatehouse_auth_jwks_fetches_total"])
    }

    @Test func everyAlertHasAFiringAndASilentTestCase() async throws {
        let extracted = try await Self.extract()
        #expect(extracted.alerts.count == 6, "\(extracted.alerts)")
        #expect(Set(extracted.alerts).count == extracted.alerts.count, "duplicate alert names")
        for alert in extracted.alerts {
            let kinds = Set(extracted.tests[alert] ?? [])
            #expect(kinds == ["fires", "silent"], "\(alert) has test cases \(kinds.sorted())")
        }
        for tested in extracted.tests.keys {
            #expect(extracted.alerts.contains(tested), "alerts_test.yml tests \(tested), which alerts.yml lacks")
        }
    }

    @Test func theDashboardIsGrafanaJSONWhosePanelsQueryPrometheus() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.dashboard))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let inputs = try #require(dashboard["__inputs"] as? [[String: Any]])
        #expect(inputs.contains { $0["name"] as? String == "DS_PROMETHEUS" && $0["pluginId"] as? String == "prometheus" })
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        var exprs: [String] = []
        var ids: Set<Int> = []
        for panel in panels {
            if let id = panel["id"] as? Int { #expect(ids.insert(id).inserted, "panel id \(id) repeated") }
            guard panel["type"] as? String != "row" else { continue }
            let datasource = try #require(panel["datasource"] as? [String: Any], "\(panel["title"] ?? "")")
            #expect(datasource["uid"] as? String == "${DS_PROMETHEUS}")
            let targets = try #require(panel["targets"] as? [[String: Any]], "\(panel["title"] ?? "")")
            #expect(!targets.isEmpty)
            for target in targets {
                exprs.append(try #require(target["expr"] as? String))
            }
        }
        // Every target's PromQL is among the expressions whose metrics are checked against the scrape.
        let checked = Set(try await Self.extract().expressions.map(\.expr))
        #expect(exprs.count >= 10)
        for expr in exprs {
            #expect(checked.contains(expr), "\(expr) was not checked")
        }
        let titles = panels.compactMap { $0["title"] as? String }.joined(separator: "\n")
        for family in ["gatehouse_active_connections", "gatehouse_closes_total", "gatehouse_backend_server_up",
                       "gatehouse_config_reloads_total", "gatehouse_cluster_store_up", "gatehouse_auth_jwks_fetches_total"] {
            #expect(exprs.contains { $0.contains(family) }, "no panel reads \(family)\n\(titles)")
        }
    }

    static func runPromtool(_ arguments: [String]) async throws -> ExternalProcess.Result {
        guard FileManager.default.isExecutableFile(atPath: Self.promtool) else {
            throw TestError("GATEHOUSE_REQUIRE_PROMTOOL=1 but \(Self.promtool) is missing (Debian package prometheus)")
        }
        return try await ExternalProcess.run([Self.promtool] + arguments, timeout: 60)
    }

    @Test(.enabled(if: DeployFilesTests.promtoolEnabled, "needs promtool (Debian package prometheus)"))
    func promtoolChecksTheRules() async throws {
        let result = try await Self.runPromtool(["check", "rules", Self.alerts])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("SUCCESS: 6 rules found"), "\(result.output)")
    }

    @Test(.enabled(if: DeployFilesTests.promtoolEnabled, "needs promtool (Debian package prometheus)"))
    func promtoolUnitTestsPass() async throws {
        let result = try await Self.runPromtool(["test", "rules", Self.alertTests])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("SUCCESS"), "\(result.output)")
    }
}
