/// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table in which every server owns a share of
/// slots proportional to its weight, filled so that adding or removing one server moves only about its own share
/// of keys.
///
/// Hashes are FNV-1a 64 of the bytes, not Swift's `Hasher` (seeded per process): every node of a fleet must send a
/// key to the same server.
struct MaglevTable: Sendable, Equatable {
    /// A prime well above the server count, so each permutation visits every slot.
    static let defaultSize = 65_537

    /// Server index for each slot; empty when there are no servers.
    private(set) var slots: [Int]

    /// Builds the table for `servers` (names, e.g. `host:port`, hashed to place them) with positive `weights`.
    init(servers: [String], weights: [Int], size: Int = MaglevTable.defaultSize) {
        precondition(servers.count == weights.count)
        guard !servers.isEmpty, size > 0 else {
            self.slots = []
            return
        }
        let offsets = servers.map { Int(Self.hash($0, seed: 0xcbf2_9ce4_8422_2325) % UInt64(size)) }
        let skips = servers.map { Int(Self.hash($0, seed: 0x8422_2325_cbf2_9ce4) % UInt64(size - 1)) + 1 }
        var next = [Int](repeating: 0, count: servers.count)
        var slots = [Int](repeating: -1, count: size)
        var filled = 0
        let heaviest = max(1, weights.max() ?? 1)
        // Weighted round: each pass, a server takes a slot with probability weight/heaviest (deterministically, by a
        // running credit), so shares follow weights and the fill stays in Maglev's preference order.
        var credit = [Int](repeating: 0, count: servers.count)
        while filled < size {
            for index in servers.indices {
                credit[index] += max(1, weights[index])
                guard credit[index] >= heaviest else { continue }
                credit[index] -= heaviest
                var slot = (offsets[index] + next[index] * skips[index]) % size
                while slots[slot] >= 0 {
                    next[index] += 1
                    slot = (offsets[index] + next[index] * skips[index]) % size
                }
                slots[slot] = index
                next[index] += 1
                filled += 1
                if filled == size { break }
            }
        }
        self.slots = slots
    }

    /// The server index for `key`, nil without servers.
    func server(for key: String) -> Int? {
        guard !self.slots.isEmpty else { return nil }
        return self.slots[Int(Self.hash(key, seed: 0xcbf2_9ce4_8422_2325) % UInt64(self.slots.count))]
    }

    /// FNV-1a 64 over the UTF-8 bytes, then a final mix so nearby keys spread over the table.
    static func hash(_ text: String, seed: UInt64) -> UInt64 {
        var hash = seed
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }
}
