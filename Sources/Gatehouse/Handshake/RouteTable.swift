/// Chooses the route for a request: the most specific host, then the most specific path, then the first declared.
struct RouteTable<Route>: Sendable where Route: Sendable {
    private struct Entry: Sendable {
        let host: HostPattern?
        let path: PathPattern
        let route: Route
    }

    private let entries: [Entry]

    /// Builds the table; `routes` pairs each route's patterns with what the lookup returns.
    init(_ routes: [(host: HostPattern?, path: PathPattern, route: Route)]) {
        let indexed = routes.enumerated().map { (index: $0.offset, entry: Entry(host: $0.element.host, path: $0.element.path, route: $0.element.route)) }
        self.entries = indexed.sorted { a, b in
            let hostA = a.entry.host?.specificity ?? -1
            let hostB = b.entry.host?.specificity ?? -1
            if hostA != hostB { return hostA > hostB }
            if a.entry.path.specificity != b.entry.path.specificity {
                return a.entry.path.specificity > b.entry.path.specificity
            }
            return a.index < b.index
        }.map(\.entry)
    }

    /// Every route, most specific first.
    var all: [Route] { self.entries.map(\.route) }

    /// The route for a lowercased host without port (nil when the request had none) and a path.
    func match(host: String?, path: Substring) -> Route? {
        for entry in self.entries {
            if let pattern = entry.host {
                guard let host, pattern.matches(host) else { continue }
            }
            if entry.path.matches(path) { return entry.route }
        }
        return nil
    }
}
