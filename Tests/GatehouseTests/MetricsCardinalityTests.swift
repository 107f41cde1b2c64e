import Foundation
import NIOHTTP1
import Testing
@testable import Gatehouse

/// Labels chosen by peers come from bounded sets, so no client can multiply the series.
@Suite("Metrics cardinality")
struct MetricsCardinalityTests {
    func series(_ metrics: ProxyMetrics, _ name: String) -> [String] {
        String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix(name + "{") }.map(String.init)
    }

    @Test func privateCloseCodesShareOneSeriesPerRange() {
        let metrics = ProxyMetrics()
        for code in UInt16(3000)..<3300 { metrics.closed(code: code, by: "client") }
        for code in UInt16(4000)..<4100 { metrics.closed(code: code, by: "client") }
        let series = self.series(metrics, "gatehouse_closes_total")
        #expect(series.count == 2, "\(series)")
        let exposition = Exposition(String(decoding: metrics.exposition(), as: UTF8.self))
        #expect(exposition.value("gatehouse_closes_total", ["code": "3xxx", "by": "client"]) == 300)
        #expect(exposition.value("gatehouse_closes_total", ["code": "4xxx", "by": "client"]) == 100)
    }

    @Test func registeredCodesKeepTheirNumberAndTheRestIsInvalid() {
        let metrics = ProxyMetrics()
        for code: UInt16 in [1000, 1001, 1008, 1009, 1014] { metrics.closed(code: code, by: "proxy") }
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000, 65535] { metrics.closed(code: code, by: "backend") }
        metrics.closed(code: nil, by: "client")
        let exposition = Exposition(String(decoding: metrics.exposition(), as: UTF8.self))
        #expect(exposition.value("gatehouse_closes_total", ["code": "1009", "by": "proxy"]) == 1)
        #expect(exposition.value("gatehouse_closes_total", ["code": "invalid", "by": "backend"]) == 10)
        #expect(exposition.value("gatehouse_closes_total", ["code": "none", "by": "client"]) == 1)
        #expect(self.series(metrics, "gatehouse_closes_total").count == 7)
        #expect(ProxyMetrics.closeCodeLabel(1003) == "1003")
        #expect(ProxyMetrics.closeCodeLabel(1007) == "1007")
        #expect(ProxyMetrics.closeCodeLabel(3999) == "3xxx")
        #expect(ProxyMetrics.closeCodeLabel(4999) == "4xxx")
    }

    @Test func relayedStatusesAreCountedByClass() {
        let metrics = ProxyMetrics()
        let route = metrics.route("chat")
        for status in UInt(100)..<1000 { route.handshake(status: status) }
        let series = self.series(metrics, "gatehouse_handshakes_total").filter { $0.contains("route=\"chat\"") }
        // The statuses the proxy answers itself, five classes and `other`.
        #expect(series.count == RouteMetrics.knownStatuses.count + 6, "\(series)")
        let exposition = Exposition(String(decoding: metrics.exposition(), as: UTF8.self))
        #expect(exposition.value("gatehouse_handshakes_total", ["route": "chat", "status": "403"]) == 1)
        #expect(exposition.value("gatehouse_handshakes_total", ["route": "chat", "status": "4xx"]) == 100 - 8)
        #expect(exposition.value("gatehouse_handshakes_total", ["route": "chat", "status": "other"]) == 400)
    }

    @Test func droppedLogRecordsAreExposed() throws {
        let pipe = try LogHardeningTests.StalledPipe()
        let writer = LogWriter(fileDescriptor: pipe.writeEnd)
        let metrics = ProxyMetrics(logWriter: writer)
        #expect(Exposition(String(decoding: metrics.exposition(), as: UTF8.self)).value("gatehouse_log_dropped_total") == 0)
        for _ in 0..<3 { writer.write(String(repeating: "z", count: 70_000), budget: 64 << 10) }
        #expect(Exposition(String(decoding: metrics.exposition(), as: UTF8.self)).value("gatehouse_log_dropped_total") == 3)
        writer.write(String(repeating: "z", count: 70_000), budget: 64 << 10)
        #expect(Exposition(String(decoding: metrics.exposition(), as: UTF8.self)).value("gatehouse_log_dropped_total") == 4)
        _ = pipe.drain(writer)
    }

    @Test func adminMetricsCarryTheLogDroppedCounter() async throws {
        try await TestProxy.with(TestConfig.echo(extraTop: "admin: { bind: \"127.0.0.1:0\" }")) { proxy in
            let port = try #require(proxy.server.adminAddress?.port)
            let response = try await AdminClient.request(.GET, "/metrics", address: BindAddress(host: "127.0.0.1", port: port), token: nil)
            #expect(response.status == 200)
            #expect(response.body.contains("\ngatehouse_log_dropped_total "), "\(response.body)")
        }
    }
}
