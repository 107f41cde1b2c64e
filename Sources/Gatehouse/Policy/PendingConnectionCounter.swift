import NIOConcurrencyHelpers
import Synchronization

/// Counts accepted connections that carry no WebSocket yet, in total and per client IP, so a flood of idle or
/// stalling connections is refused at accept (before any TLS work) instead of being held until
/// `handshake_timeout`.
///
/// Shared by every event loop: the total is an atomic, the per-IP counts are split over locked shards (touched
/// once when a connection is accepted and once when it upgrades or closes, never per frame). An IP's entry goes
/// when its count drops to zero, so the maps never hold more entries than there are pending connections.
final class PendingConnectionCounter: Sendable {
    /// A new connection over `max_pending_connections` or `max_pending_connections_per_ip`: closed at accept.
    struct Exceeded: Error {}

    private let total = Atomic<Int>(0)
    private let shards: [NIOLockedValueBox<[String: Int]>]

    private static let shardCount = 16

    init() {
        self.shards = (0..<Self.shardCount).map { _ in NIOLockedValueBox([:]) }
    }

    /// Pending connections over all clients.
    var count: Int { self.total.load(ordering: .relaxed) }

    /// Pending connections of `ip`.
    func count(of ip: String) -> Int {
        self.shard(for: ip).withLockedValue { $0[ip] ?? 0 }
    }

    /// Takes a slot for a new connection from `ip` (nil: address unknown, only the total applies), or nil when
    /// either limit is reached.
    func admit(ip: String?, maxTotal: Int, maxPerIP: Int) -> PendingTicket? {
        var current = self.total.load(ordering: .relaxed)
        while true {
            guard current < maxTotal else { return nil }
            let (exchanged, original) = self.total.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        if let ip {
            let admitted = self.shard(for: ip).withLockedValue { clients -> Bool in
                let count = clients[ip] ?? 0
                guard count < maxPerIP else { return false }
                clients[ip] = count + 1
                return true
            }
            guard admitted else {
                self.total.subtract(1, ordering: .relaxed)
                return nil
            }
        }
        return PendingTicket(counter: self, ip: ip)
    }

    fileprivate func release(ip: String?) {
        self.total.subtract(1, ordering: .relaxed)
        guard let ip else { return }
        self.shard(for: ip).withLockedValue { clients in
            let count = (clients[ip] ?? 1) - 1
            clients[ip] = count > 0 ? count : nil
        }
    }

    private func shard(for ip: String) -> NIOLockedValueBox<[String: Int]> {
        var hasher = Hasher()
        hasher.combine(ip)
        return self.shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))]
    }
}

/// A pending connection's slot, given back exactly once: when its first WebSocket is relayed or it closes.
final class PendingTicket: Sendable {
    private let counter: PendingConnectionCounter
    private let ip: String?
    private let released = Atomic<Bool>(false)

    fileprivate init(counter: PendingConnectionCounter, ip: String?) {
        self.counter = counter
        self.ip = ip
    }

    func release() {
        guard !self.released.exchange(true, ordering: .relaxed) else { return }
        self.counter.release(ip: self.ip)
    }

    deinit {
        self.release()
    }
}
