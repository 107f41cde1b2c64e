import NIOCore

/// Picks the server for a new connection and the failover order after it. Pure apart from its own balancing
/// state (smooth weighted round-robin credits, a tie-break cursor, the Maglev table); the caller passes the
/// servers as they are now.
///
/// - Candidates: the eligible servers (up, not ejected, not drained); when none is, all of them (as nginx does:
///   trying a server that may be down beats refusing at once).
/// - `round_robin`: smooth weighted round robin (nginx): over a cycle each server is first `weight` times, spread
///   out rather than in bursts.
/// - `least_connections`: the fewest live (plus pending) connections relative to weight; ties in round-robin order.
/// - `hash`: the Maglev table over the candidates (rebuilt only when they or their weights change); a request
///   without the key falls back to round robin. Slow start does not apply: a key's server must not depend on time.
/// - `slow_start`: a server eligible for less than `slowStart` counts with weight × elapsed / slowStart (at least
///   ``minimumRamp`` of it) in round robin and least connections.
///
/// After the first choice the other candidates follow in configuration order (rotated past it) as failover.
struct ServerSelector: Sendable {
    /// A server as the selector sees it.
    struct Candidate: Sendable, Equatable {
        var address: BindAddress
        var weight: Int
        /// Live relayed plus pending connections.
        var load: Int
        var eligible: Bool
        var eligibleSince: NIODeadline

        init(address: BindAddress, weight: Int, load: Int = 0, eligible: Bool = true, eligibleSince: NIODeadline = .uptimeNanoseconds(0)) {
            self.address = address
            self.weight = weight
            self.load = load
            self.eligible = eligible
            self.eligibleSince = eligibleSince
        }

        init(_ server: BackendRuntime.Server, now: NIODeadline) {
            self.init(
                address: server.address, weight: server.weight, load: server.live + server.pending,
                eligible: server.isEligible(at: now), eligibleSince: server.eligibleSince
            )
        }
    }

    /// Smallest share of its weight a server starting its slow start gets.
    static let minimumRamp = 0.05
    /// Weights are scaled by this so slow-start fractions stay integers.
    static let weightScale = 1000

    /// Smooth weighted round-robin credits by server.
    private var credits: [BindAddress: Int] = [:]
    /// Rotates ties in least connections.
    private var cursor = 0
    /// The Maglev table and the servers and weights it was built for.
    private var ring: (servers: [BindAddress], weights: [Int], table: MaglevTable)?
    /// Slots of the Maglev table (smaller in tests).
    let ringSize: Int

    init(ringSize: Int = MaglevTable.defaultSize) {
        self.ringSize = ringSize
    }

    /// The order to try servers in for one request; empty only when `servers` is.
    mutating func order(
        _ servers: [Candidate], policy: BalancePolicy, key: String?, slowStart: TimeAmount, now: NIODeadline
    ) -> [BindAddress] {
        let eligible = servers.filter(\.eligible)
        let candidates = eligible.isEmpty ? servers : eligible
        guard candidates.count > 1 else { return candidates.map(\.address) }
        let first: Int
        switch policy {
        case .hash where key != nil:
            first = self.hashed(candidates, key: key ?? "")
        case .leastConnections:
            first = self.leastLoaded(candidates, slowStart: slowStart, now: now)
        case .roundRobin, .hash:
            first = self.weightedRoundRobin(candidates, slowStart: slowStart, now: now)
        }
        return (0..<candidates.count).map { candidates[(first + $0) % candidates.count].address }
    }

    /// The weight a server counts with now, scaled by ``weightScale``.
    static func effectiveWeight(_ server: Candidate, slowStart: TimeAmount, now: NIODeadline) -> Int {
        let full = max(1, server.weight) * Self.weightScale
        guard slowStart.nanoseconds > 0 else { return full }
        let elapsed = Double((now - server.eligibleSince).nanoseconds) / Double(slowStart.nanoseconds)
        guard elapsed < 1 else { return full }
        return max(1, Int(Double(full) * max(Self.minimumRamp, elapsed)))
    }

    private mutating func weightedRoundRobin(_ servers: [Candidate], slowStart: TimeAmount, now: NIODeadline) -> Int {
        if self.credits.count > servers.count * 2 {
            // Servers that left keep no credit (bounded by the current set).
            let present = Set(servers.map(\.address))
            self.credits = self.credits.filter { present.contains($0.key) }
        }
        var total = 0
        var best = 0
        var bestCredit = Int.min
        for (index, server) in servers.enumerated() {
            let weight = Self.effectiveWeight(server, slowStart: slowStart, now: now)
            let credit = (self.credits[server.address] ?? 0) + weight
            self.credits[server.address] = credit
            total += weight
            if credit > bestCredit {
                bestCredit = credit
                best = index
            }
        }
        self.credits[servers[best].address] = bestCredit - total
        return best
    }

    private mutating func leastLoaded(_ servers: [Candidate], slowStart: TimeAmount, now: NIODeadline) -> Int {
        let start = self.cursor % servers.count
        self.cursor = (self.cursor &+ 1) & Int(Int32.max)
        var best = start
        var bestWeight = Self.effectiveWeight(servers[start], slowStart: slowStart, now: now)
        for step in 1..<servers.count {
            let index = (start + step) % servers.count
            let weight = Self.effectiveWeight(servers[index], slowStart: slowStart, now: now)
            // load/weight < bestLoad/bestWeight, without division; ties keep the earlier one in rotation order.
            if servers[index].load * bestWeight < servers[best].load * weight {
                best = index
                bestWeight = weight
            }
        }
        return best
    }

    private mutating func hashed(_ servers: [Candidate], key: String) -> Int {
        let addresses = servers.map(\.address)
        let weights = servers.map { max(1, $0.weight) }
        if let ring = self.ring, ring.servers == addresses, ring.weights == weights {
            return ring.table.server(for: key) ?? 0
        }
        let table = MaglevTable(servers: addresses.map(\.description), weights: weights, size: self.ringSize)
        self.ring = (addresses, weights, table)
        return table.server(for: key) ?? 0
    }
}
