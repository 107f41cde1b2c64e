import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// The metrics of one route. The per-read counters are plain atomics behind swift-metrics handles.
final class RouteMetrics: Sendable {
    let route: String
    /// Live connections.
    let active: Metrics.Meter
    /// How long connections lived.
    let connectionDuration: Metrics.Timer
    /// Request head to 101 relayed.
    let handshakeDuration: Metrics.Timer
    let bytesFromClient: Metrics.Counter
    let bytesFromBackend: Metrics.Counter
    let messagesFromClient: Metrics.Counter
    let messagesFromBackend: Metrics.Counter
    private let handshakes: [UInt: Metrics.Counter]
    private let otherHandshakes = NIOLockedValueBox<[String: Metrics.Counter]>([:])
    private let factory: PrometheusMetricsFactory

    /// Statuses the proxy itself answers, created up front so counting them takes no lock.
    static let knownStatuses: [UInt] = [101, 400, 401, 403, 404, 408, 426, 429, 431, 500, 502, 503, 504]

    init(route: String, factory: PrometheusMetricsFactory) {
        self.route = route
        self.factory = factory
        let dimensions = [("route", route)]
        self.active = Metrics.Meter(label: "gatehouse_active_connections", dimensions: dimensions, factory: factory)
        self.connectionDuration = Metrics.Timer(label: "gatehouse_connection_duration_seconds", dimensions: dimensions, factory: factory)
        self.handshakeDuration = Metrics.Timer(label: "gatehouse_handshake_duration_seconds", dimensions: dimensions, factory: factory)
        self.bytesFromClient = Metrics.Counter(label: "gatehouse_bytes_total", dimensions: dimensions + [("direction", "client_to_backend")], factory: factory)
        self.bytesFromBackend = Metrics.Counter(label: "gatehouse_bytes_total", dimensions: dimensions + [("direction", "backend_to_client")], factory: factory)
        self.messagesFromClient = Metrics.Counter(label: "gatehouse_messages_total", dimensions: dimensions + [("direction", "client_to_backend")], factory: factory)
        self.messagesFromBackend = Metrics.Counter(label: "gatehouse_messages_total", dimensions: dimensions + [("direction", "backend_to_client")], factory: factory)
        var handshakes: [UInt: Metrics.Counter] = [:]
        for status in Self.knownStatuses {
            handshakes[status] = Metrics.Counter(label: "gatehouse_handshakes_total", dimensions: dimensions + [("status", String(status))], factory: factory)
        }
        self.handshakes = handshakes
    }

    /// Counts one handshake answered with `status`. A status outside the known set (a backend's answer relayed) is
    /// counted under its class (`4xx`) or `other`, so a backend cannot multiply the series.
    func handshake(status: UInt) {
        if let counter = self.handshakes[status] {
            counter.increment()
            return
        }
        let label = Self.statusLabel(status)
        self.otherHandshakes.withLockedValue { counters in
            if let counter = counters[label] { return counter }
            let counter = Metrics.Counter(label: "gatehouse_handshakes_total", dimensions: [("route", self.route), ("status", label)], factory: self.factory)
            counters[label] = counter
            return counter
        }.increment()
    }

    /// The `status` label: the number for a known status, else its class (`1xx`...`5xx`), else `other`.
    static func statusLabel(_ status: UInt) -> String {
        if Self.knownStatuses.contains(status) { return String(status) }
        switch status {
        case 100...599: return "\(status / 100)xx"
        default: return "other"
        }
    }
}
