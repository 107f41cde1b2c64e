/// How many live connections of a route a lease competes with, and the verdict for a request.
///
/// Counts exclude the requested row itself, so asking again for a lease already held (same id) is not refused by it.
struct LeaseCounts: Sendable, Equatable {
    var route: Int
    var clientIP: Int
    /// Zero when the request has no subject.
    var subject: Int

    /// Refuses with the first full limit, in the order route, client IP, subject; a limit is full when the
    /// connections already counted reach it.
    func outcome(for request: LeaseRequest) -> LeaseOutcome {
        if let max = request.maxConnections, self.route >= max { return .refused(.route) }
        if let max = request.maxConnectionsPerIP, self.clientIP >= max { return .refused(.clientIP) }
        if request.row.subject != nil, let max = request.maxConnectionsPerSubject, self.subject >= max {
            return .refused(.subject)
        }
        return .granted
    }
}
