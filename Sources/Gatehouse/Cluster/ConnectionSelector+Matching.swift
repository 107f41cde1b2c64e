import GatehouseCluster

extension ConnectionSelector {
    /// Whether a connection of node `node` (nil without cluster mode) is selected. An id matches in its cluster
    /// form (`node:42`) or, on the node that holds it, as the bare local number.
    func matches(_ connection: ConnectionSnapshot, node: String?) -> Bool {
        if let id = self.id, !Self.id(id, names: connection.id, node: node) { return false }
        if let subject = self.subject, connection.subject != subject { return false }
        if let route = self.route, connection.route != route { return false }
        return true
    }

    /// The local number an id names on node `node`, or nil when it names another node's connection or nothing.
    static func localNumber(of id: String, node: String?) -> UInt64? {
        guard let colon = id.lastIndex(of: ":") else { return UInt64(id) }
        guard let node, id[..<colon] == node else { return nil }
        return UInt64(id[id.index(after: colon)...])
    }

    /// The node an id in cluster form names (nil for a bare local number).
    static func node(of id: String) -> String? {
        id.lastIndex(of: ":").map { String(id[..<$0]) }
    }

    private static func id(_ id: String, names local: UInt64, node: String?) -> Bool {
        Self.localNumber(of: id, node: node) == local
    }
}
