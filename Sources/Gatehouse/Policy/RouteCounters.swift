import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Admission counters of one route, kept across reloads so limits stay true while the configuration changes:
/// live connections (an atomic), per client IP the live connections and a handshake token bucket, and per token
/// subject the live connections.
///
/// Per-IP and per-subject state is split over shards, each behind its own lock, so event loops admitting different
/// clients do not wait for each other.
final class RouteCounters: Sendable {
    /// Connections currently admitted on the route.
    let active = Atomic<Int>(0)
    private let shards: [NIOLockedValueBox<[String: ClientState]>]
    /// Live connections per subject; a subject leaves its map with its last connection, so the maps hold no more
    /// entries than there are live connections.
    private let subjectShards: [NIOLockedValueBox<[String: Int]>]

    struct ClientState {
        var connections = 0
        var tokens: Double
        var refilled: NIODeadline
    }

    private static let shardCount = 16
    private static let sweepThreshold = 1024

    init() {
        self.shards = (0..<Self.shardCount).map { _ in NIOLockedValueBox([:]) }
        self.subjectShards = (0..<Self.shardCount).map { _ in NIOLockedValueBox([:]) }
    }

    private static func shardIndex(for key: String) -> Int {
        var hasher = Hasher()
        hasher.combine(key)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))
    }

    private func shard(for ip: String) -> NIOLockedValueBox<[String: ClientState]> {
        self.shards[Self.shardIndex(for: ip)]
    }

    /// Admits one connection from `ip` under `limits`, or says why not.
    func admit(ip: String, limits: LimitsConfig, now: NIODeadline = .now()) -> Result<AdmissionTicket, HandshakeRefusal> {
        let tracksIP = limits.maxConnectionsPerIP != nil || limits.handshakesPerIPPerSecond != nil
        if tracksIP {
            let refusal: HandshakeRefusal? = self.shard(for: ip).withLockedValue { clients in
                let rate = Double(limits.handshakesPerIPPerSecond ?? 0)
                var state = clients[ip] ?? ClientState(tokens: rate, refilled: now)
                if rate > 0 {
                    let elapsed = Double((now - state.refilled).nanoseconds) / 1e9
                    state.tokens = min(rate, state.tokens + max(0, elapsed) * rate)
                    state.refilled = now
                    guard state.tokens >= 1 else {
                        clients[ip] = state
                        let wait = Int(((1 - state.tokens) / rate).rounded(.up))
                        return HandshakeRefusal(.tooManyRequests, "too many handshakes from this address", headers: [("Retry-After", String(max(1, wait)))])
                    }
                    state.tokens -= 1
                }
                if let max = limits.maxConnectionsPerIP, state.connections >= max {
                    clients[ip] = state
                    return HandshakeRefusal(.tooManyRequests, "too many connections from this address", headers: [("Retry-After", "5")])
                }
                state.connections += 1
                clients[ip] = state
                if clients.count > Self.sweepThreshold { Self.sweep(&clients, rate: rate, now: now) }
                return nil
            }
            if let refusal { return .failure(refusal) }
        }
        if let max = limits.maxConnections {
            var current = self.active.load(ordering: .relaxed)
            while true {
                guard current < max else {
                    if tracksIP { self.releaseIP(ip) }
                    return .failure(HandshakeRefusal(.serviceUnavailable, "route is at its connection limit", headers: [("Retry-After", "5")]))
                }
                let (exchanged, original) = self.active.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
                if exchanged { break }
                current = original
            }
        } else {
            self.active.add(1, ordering: .relaxed)
        }
        return .success(AdmissionTicket(counters: self, ip: tracksIP ? ip : nil))
    }

    /// Live connections of `ip` on this route (for tests and the admin API).
    func connections(of ip: String) -> Int {
        self.shard(for: ip).withLockedValue { $0[ip]?.connections ?? 0 }
    }

    /// Live connections of `subject` on this route (for tests and the admin API).
    func connections(ofSubject subject: String) -> Int {
        self.subjectShards[Self.shardIndex(for: subject)].withLockedValue { $0[subject] ?? 0 }
    }

    /// Counts one more connection of `subject` unless it already has `max`; the ticket returns it.
    fileprivate func admit(subject: String, max: Int) -> Bool {
        self.subjectShards[Self.shardIndex(for: subject)].withLockedValue { subjects in
            let current = subjects[subject] ?? 0
            guard current < max else { return false }
            subjects[subject] = current + 1
            return true
        }
    }

    fileprivate func release(subject: String) {
        self.subjectShards[Self.shardIndex(for: subject)].withLockedValue { subjects in
            guard let current = subjects[subject] else { return }
            subjects[subject] = current > 1 ? current - 1 : nil
        }
    }

    fileprivate func release(ip: String?) {
        self.active.subtract(1, ordering: .relaxed)
        if let ip { self.releaseIP(ip) }
    }

    private func releaseIP(_ ip: String) {
        self.shard(for: ip).withLockedValue { clients in
            guard var state = clients[ip] else { return }
            state.connections -= 1
            clients[ip] = state
        }
    }

    /// Drops clients with no live connection whose bucket has refilled: they hold no information any more.
    private static func sweep(_ clients: inout [String: ClientState], rate: Double, now: NIODeadline) {
        clients = clients.filter { _, state in
            if state.connections > 0 { return true }
            guard rate > 0 else { return false }
            return state.tokens + Double((now - state.refilled).nanoseconds) / 1e9 * rate < rate
        }
    }
}

/// A connection slot on a route, returned exactly once when the connection ends or is refused later: the route
/// and client-IP counts, and what the handshake attached after the token check (the subject's count, a cluster
/// lease).
final class AdmissionTicket: Sendable {
    private let counters: RouteCounters
    private let ip: String?
    private let state = NIOLockedValueBox(Held())

    /// What the ticket holds beyond the route and IP counts.
    private struct Held {
        var released = false
        var subject: String?
        var lease: Lease?
    }

    /// A fleet-wide slot, returned through the cluster hooks.
    private struct Lease {
        let cluster: any ClusterHooks
        let connectionID: UInt64
    }

    fileprivate init(counters: RouteCounters, ip: String?) {
        self.counters = counters
        self.ip = ip
    }

    /// Counts the connection against `subject`'s limit on the route; false (nothing held) when the subject
    /// already has `max` connections there (or the ticket was released meanwhile). Once per ticket.
    func admit(subject: String, max: Int) -> Bool {
        guard self.counters.admit(subject: subject, max: max) else { return false }
        let kept = self.state.withLockedValue { held in
            guard !held.released else { return false }
            assert(held.subject == nil, "one subject per ticket")
            held.subject = subject
            return true
        }
        if !kept { self.counters.release(subject: subject) }
        return kept
    }

    /// Makes the release of this ticket return the cluster lease of `connectionID` (once). A ticket already
    /// released returns it at once. Once per ticket.
    func attachLease(_ cluster: any ClusterHooks, connectionID: UInt64) {
        let kept = self.state.withLockedValue { held in
            guard !held.released else { return false }
            assert(held.lease == nil, "one lease per ticket")
            held.lease = Lease(cluster: cluster, connectionID: connectionID)
            return true
        }
        if !kept { cluster.released(connectionID: connectionID) }
    }

    func release() {
        let held: Held? = self.state.withLockedValue { held in
            guard !held.released else { return nil }
            held.released = true
            return held
        }
        guard let held else { return }
        self.counters.release(ip: self.ip)
        if let subject = held.subject { self.counters.release(subject: subject) }
        if let lease = held.lease { lease.cluster.released(connectionID: lease.connectionID) }
    }

    deinit {
        self.release()
    }
}
