/// The servers a backend balances over, from its configured entries and what its names resolved to: an
/// IP-literal entry is one server; a named entry is one server per resolved address (with the entry's port and
/// weight), none before its first resolution. An address listed twice keeps the larger weight. Pure.
enum BackendServerSet {
    /// At most this many addresses are taken from one name.
    static let maxAddressesPerName = 64

    static func servers(entries: [BackendServerConfig], resolved: (BindAddress) -> [BindAddress]?) -> [(BindAddress, Int)] {
        var order: [BindAddress] = []
        var weights: [BindAddress: Int] = [:]
        func add(_ address: BindAddress, _ weight: Int) {
            if let current = weights[address] {
                weights[address] = max(current, weight)
            } else {
                weights[address] = weight
                order.append(address)
            }
        }
        for entry in entries {
            if Self.isIPLiteral(entry.address.host) {
                add(entry.address, entry.weight)
            } else {
                for address in (resolved(entry.address) ?? []).prefix(Self.maxAddressesPerName) {
                    add(BindAddress(host: address.host, port: entry.address.port), entry.weight)
                }
            }
        }
        return order.map { ($0, weights[$0] ?? 1) }
    }

    /// Whether `host` is an IPv4 or IPv6 literal (anything else is a name to resolve).
    static func isIPLiteral(_ host: String) -> Bool {
        host.contains(":") || host.split(separator: ".", omittingEmptySubsequences: false).count == 4
            && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
                !part.isEmpty && part.count <= 3 && part.allSatisfy { $0.isASCII && $0.isNumber }
            }
    }
}
