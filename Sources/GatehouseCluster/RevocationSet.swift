import Foundation

/// The revocations a node keeps in memory, so that checking a token at the handshake costs no store round trip.
///
/// A revocation matches a token when every field it sets matches (see ``Revocation``); expired revocations never
/// match. Lookups go through two indexes: a revocation that names a `jti` is filed under it (it can only match
/// tokens carrying that `jti`), one that names only a subject under the subject. A token is then checked against
/// the few revocations filed under its own `jti` and subject, whatever the size of the set.
///
/// Bounded: at most ``capacity`` revocations; ``insert(_:)`` refuses more.
public struct RevocationSet: Sendable, Equatable {
    /// Most revocations held.
    public static let capacity = 100_000

    private var byID: [Int64: Revocation] = [:]
    private var bySubject: [String: Set<Int64>] = [:]
    private var byJTI: [String: Set<Int64>] = [:]

    public init() {}

    /// Revocations held (expired ones included until ``pruneExpired(now:)``).
    public var count: Int { self.byID.count }

    /// Every revocation, by increasing id.
    public var all: [Revocation] {
        self.byID.values.sorted { $0.id < $1.id }
    }

    /// Whether a revocation may be held: it names a subject or a jti (one with neither would revoke every
    /// token), and neither is empty.
    public static func isValid(_ revocation: Revocation) -> Bool {
        guard revocation.subject != nil || revocation.jti != nil else { return false }
        return revocation.subject?.isEmpty != true && revocation.jti?.isEmpty != true
    }

    /// Replaces the whole set (a reload from the store); returns how many were left out, as invalid or beyond
    /// ``capacity``.
    @discardableResult
    public mutating func replaceAll(_ revocations: [Revocation]) -> Int {
        self = RevocationSet()
        var leftOut = 0
        for revocation in revocations where !self.insert(revocation) { leftOut += 1 }
        return leftOut
    }

    /// Adds a revocation, or replaces the one with its id. False (and nothing changes) when it sets neither
    /// subject nor jti (or names an empty one), or when the set is full.
    @discardableResult
    public mutating func insert(_ revocation: Revocation) -> Bool {
        guard Self.isValid(revocation) else { return false }
        if self.byID[revocation.id] != nil {
            self.remove(id: revocation.id)
        } else if self.byID.count >= Self.capacity {
            return false
        }
        self.byID[revocation.id] = revocation
        if let jti = revocation.jti {
            self.byJTI[jti, default: []].insert(revocation.id)
        } else if let subject = revocation.subject {
            self.bySubject[subject, default: []].insert(revocation.id)
        }
        return true
    }

    /// Removes a revocation; returns it, or nil when there was none with that id.
    @discardableResult
    public mutating func remove(id: Int64) -> Revocation? {
        guard let revocation = self.byID.removeValue(forKey: id) else { return nil }
        if let jti = revocation.jti {
            Self.unfile(id, under: jti, in: &self.byJTI)
        } else if let subject = revocation.subject {
            Self.unfile(id, under: subject, in: &self.bySubject)
        }
        return revocation
    }

    /// The revocation (lowest id first) that a token with these claims matches at `now`, or nil.
    /// `issuedAt` is the token's `iat`; a token without one matches any `issuedBefore`.
    public func matches(subject: String?, jti: String?, issuedAt: Date?, now: Date) -> Revocation? {
        var best: Revocation?
        if let jti, let ids = self.byJTI[jti] {
            best = self.first(of: ids, subject: subject, jti: jti, issuedAt: issuedAt, now: now, before: best)
        }
        if let subject, let ids = self.bySubject[subject] {
            best = self.first(of: ids, subject: subject, jti: jti, issuedAt: issuedAt, now: now, before: best)
        }
        return best
    }

    /// Drops revocations expired at `now`; returns how many.
    @discardableResult
    public mutating func pruneExpired(now: Date) -> Int {
        let expired = self.byID.values.filter { $0.expires <= now }.map(\.id)
        for id in expired { self.remove(id: id) }
        return expired.count
    }

    /// Whether `revocation` matches a token with these claims at `now`.
    public static func revocation(_ revocation: Revocation, matchesSubject subject: String?, jti: String?, issuedAt: Date?, now: Date) -> Bool {
        guard revocation.expires > now else { return false }
        if let revoked = revocation.subject, revoked != subject { return false }
        if let revoked = revocation.jti, revoked != jti { return false }
        if let before = revocation.issuedBefore, let issuedAt, issuedAt >= before { return false }
        return true
    }

    private func first(of ids: Set<Int64>, subject: String?, jti: String?, issuedAt: Date?, now: Date, before best: Revocation?) -> Revocation? {
        var best = best
        for id in ids {
            guard let revocation = self.byID[id], id < (best?.id ?? .max),
                Self.revocation(revocation, matchesSubject: subject, jti: jti, issuedAt: issuedAt, now: now)
            else { continue }
            best = revocation
        }
        return best
    }

    private static func unfile(_ id: Int64, under key: String, in index: inout [String: Set<Int64>]) {
        guard var ids = index[key] else { return }
        ids.remove(id)
        index[key] = ids.isEmpty ? nil : ids
    }
}
