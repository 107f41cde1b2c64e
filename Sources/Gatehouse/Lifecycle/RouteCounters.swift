import Synchronization

/// Connection counts of one route, kept across reloads so limits stay true while the configuration changes.
///
/// Atomics, not locks: every event loop admits connections concurrently.
final class RouteCounters: Sendable {
    /// Connections currently relayed on the route.
    let active = Atomic<Int>(0)

    init() {}
}
