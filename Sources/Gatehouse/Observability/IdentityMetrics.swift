import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// Metrics of remote key sets, per provider. Provider names come from the configuration and results from a fixed
/// set, so the series are bounded; a provider's series are made once and kept across reloads.
final class IdentityMetrics: Sendable {
    /// One provider's series.
    struct KeySet: Sendable {
        /// `gatehouse_auth_jwks_fetches_total{provider,result}` by result.
        let fetches: [String: Metrics.Counter]
        /// `gatehouse_auth_jwks_keys{provider}`: usable keys held.
        let keys: Metrics.Gauge
        /// `gatehouse_auth_jwks_age_seconds{provider}`: since the last successful fetch (-1 before the first).
        let age: Metrics.Gauge
        /// `gatehouse_auth_jwks_kid_miss_refetches_total{provider}`.
        let kidMissRefetches: Metrics.Counter

        func fetched(_ result: String) {
            (self.fetches[result] ?? self.fetches["error"])?.increment()
        }
    }

    /// Every `result` label value.
    static let fetchResults = ["ok", "not_modified", "error", "too_large", "timeout"]

    private let factory: PrometheusMetricsFactory
    private let keySets = NIOLockedValueBox<[String: KeySet]>([:])

    init(factory: PrometheusMetricsFactory) {
        self.factory = factory
    }

    /// The series of provider `name`.
    func keySet(_ name: String) -> KeySet {
        self.keySets.withLockedValue { sets in
            if let existing = sets[name] { return existing }
            let provider = ("provider", name)
            var fetches: [String: Metrics.Counter] = [:]
            for result in Self.fetchResults {
                fetches[result] = Metrics.Counter(
                    label: "gatehouse_auth_jwks_fetches_total", dimensions: [provider, ("result", result)], factory: self.factory
                )
            }
            let created = KeySet(
                fetches: fetches,
                keys: Metrics.Gauge(label: "gatehouse_auth_jwks_keys", dimensions: [provider], factory: self.factory),
                age: Metrics.Gauge(label: "gatehouse_auth_jwks_age_seconds", dimensions: [provider], factory: self.factory),
                kidMissRefetches: Metrics.Counter(
                    label: "gatehouse_auth_jwks_kid_miss_refetches_total", dimensions: [provider], factory: self.factory
                )
            )
            created.keys.record(0)
            created.age.record(-1)
            sets[name] = created
            return created
        }
    }
}
