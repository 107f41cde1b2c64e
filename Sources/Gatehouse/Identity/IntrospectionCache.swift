import Crypto
import Foundation
import NIOCore

/// Introspection answers by SHA-256 of the token (the token itself is never kept), for a bounded time and count.
///
/// An active answer is kept until `min(exp, stored + positiveTTL)`, an inactive one for `negativeTTL`. When full,
/// expired answers are dropped (at most one sweep a second), then the oldest stored. Time is passed in, so the
/// rules are tested without waiting.
struct IntrospectionCache {
    typealias Key = SHA256Digest

    private struct Entry {
        let answer: IntrospectionAnswer
        let expires: Date
        /// Insertion number; an `order` item whose number differs is stale (the key was stored again or dropped).
        let sequence: UInt64
    }

    let capacity: Int
    let positiveTTL: TimeInterval
    let negativeTTL: TimeInterval
    private var entries: [Key: Entry] = [:]
    /// Keys in insertion order, for evicting the oldest; compacted when stale items outnumber live ones.
    private var order = CircularBuffer<(key: Key, sequence: UInt64)>()
    private var nextSequence: UInt64 = 0
    private var lastSweep = Date.distantPast

    init(capacity: Int, positiveTTL: TimeInterval, negativeTTL: TimeInterval) {
        self.capacity = max(1, capacity)
        self.positiveTTL = positiveTTL
        self.negativeTTL = negativeTTL
    }

    static func key(for token: String) -> Key {
        SHA256.hash(data: Array(token.utf8))
    }

    /// Answers kept, expired ones not yet dropped included.
    var count: Int { self.entries.count }

    /// The answer kept for `key`, if it has not expired at `now` (an expired one is dropped).
    mutating func lookup(_ key: Key, now: Date) -> IntrospectionAnswer? {
        guard let entry = self.entries[key] else { return nil }
        guard now < entry.expires else {
            self.entries[key] = nil
            return nil
        }
        return entry.answer
    }

    /// Keeps `answer`, received at `now`, for as long as the rules allow (an answer already expired is not kept).
    mutating func store(_ answer: IntrospectionAnswer, for key: Key, now: Date) {
        let expires: Date
        switch answer {
        case .active(let claims):
            let limit = now.addingTimeInterval(self.positiveTTL)
            expires = claims.expiresAt.map { min($0, limit) } ?? limit
        case .inactive:
            expires = now.addingTimeInterval(self.negativeTTL)
        }
        guard expires > now else {
            self.entries[key] = nil
            return
        }
        if self.entries[key] == nil && self.entries.count >= self.capacity {
            self.makeRoom(now: now)
        }
        let sequence = self.nextSequence
        self.nextSequence += 1
        self.entries[key] = Entry(answer: answer, expires: expires, sequence: sequence)
        self.order.append((key, sequence))
        if self.order.count > 2 * self.capacity { self.compact() }
    }

    private mutating func makeRoom(now: Date) {
        if now.timeIntervalSince(self.lastSweep) >= 1 {
            self.lastSweep = now
            self.entries = self.entries.filter { now < $0.value.expires }
        }
        while self.entries.count >= self.capacity, let oldest = self.order.popFirst() {
            if self.entries[oldest.key]?.sequence == oldest.sequence {
                self.entries[oldest.key] = nil
            }
        }
    }

    private mutating func compact() {
        var live = CircularBuffer<(key: Key, sequence: UInt64)>(initialCapacity: self.entries.count)
        for item in self.order where self.entries[item.key]?.sequence == item.sequence {
            live.append(item)
        }
        self.order = live
    }
}
