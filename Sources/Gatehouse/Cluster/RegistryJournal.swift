import GatehouseCluster

/// This node's registry rows as the node knows them, and what the store has not been told yet.
///
/// Pure and bounded by the live connections: a row changed many times between two batches is sent once; a row
/// added and removed between two batches is never sent. When the store was unreachable, ``resynchronise()``
/// gives every row to replace the node's rows wholesale, so nothing older needs to be remembered.
struct RegistryJournal {
    /// Every live connection of this node, by cluster id.
    private(set) var rows: [String: RegistryRow] = [:]
    /// Ids whose row changed since the last batch.
    private var changed: Set<String> = []
    /// Ids the store has and that have ended since the last batch.
    private var removed: Set<String> = []
    /// Ids the store has (published in a batch or by a lease).
    private var published: Set<String> = []

    var isEmpty: Bool { self.changed.isEmpty && self.removed.isEmpty }

    mutating func upsert(_ row: RegistryRow) {
        let leased = self.published.contains(row.id) && self.rows[row.id] == nil
        self.rows[row.id] = row
        self.removed.remove(row.id)
        // A lease wrote the row already (without channels): send it again only if it carries channels.
        if !leased || !row.channels.isEmpty { self.changed.insert(row.id) }
    }

    /// A lease inserted the row in the store directly.
    mutating func leased(_ id: String) {
        self.published.insert(id)
    }

    mutating func remove(_ id: String) {
        self.rows.removeValue(forKey: id)
        self.changed.remove(id)
        if self.published.remove(id) != nil { self.removed.insert(id) }
    }

    mutating func setChannels(_ id: String, _ channels: [String]) {
        guard var row = self.rows[id], row.channels != channels else { return }
        row.channels = channels
        self.rows[id] = row
        self.changed.insert(id)
    }

    /// The changes to send now, at most `limit` of each kind; they count as published.
    mutating func takeBatch(limit: Int) -> RegistryBatch {
        var batch = RegistryBatch()
        for id in self.changed.prefix(limit) {
            self.changed.remove(id)
            guard let row = self.rows[id] else { continue }
            batch.upserts.append(row)
            self.published.insert(id)
        }
        for id in self.removed.prefix(limit) {
            self.removed.remove(id)
            batch.removals.append(id)
        }
        return batch
    }

    /// A batch that could not be sent: the rows are sent again with the next one.
    mutating func restore(_ batch: RegistryBatch) {
        for row in batch.upserts where self.rows[row.id] != nil { self.changed.insert(row.id) }
        for id in batch.removals where self.rows[id] == nil { self.removed.insert(id) }
    }

    /// Every row, to replace what the store holds for this node; afterwards the store has exactly these.
    mutating func resynchronise() -> [RegistryRow] {
        self.changed = []
        self.removed = []
        self.published = Set(self.rows.keys)
        return Array(self.rows.values)
    }
}
