import Foundation
import GatehouseCluster
import Testing

@Suite("Revocation set")
struct RevocationSetTests {
    static let now = Date(timeIntervalSince1970: 1_750_000_000)
    static let later = now.addingTimeInterval(3600)

    static func revocation(
        _ id: Int64, subject: String? = nil, jti: String? = nil, issuedBefore: Date? = nil, expires: Date = later
    ) -> Revocation {
        Revocation(id: id, subject: subject, jti: jti, issuedBefore: issuedBefore, expires: expires, created: now)
    }

    /// A token's claims and the id of the revocation it must match (nil: none).
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var subject: String?
        var jti: String?
        var issuedAt: Date?
        var expected: Int64?
        var testDescription: String { self.name }
    }

    static let cutoff = now.addingTimeInterval(-600)

    /// 1: every token of bob; 2: token id "t-1"; 3: carol's tokens issued before the cutoff; 4: dave's token "t-9"
    /// (both must match); 5: expired (erin).
    static let table = [
        revocation(1, subject: "bob"),
        revocation(2, jti: "t-1"),
        revocation(3, subject: "carol", issuedBefore: cutoff),
        revocation(4, subject: "dave", jti: "t-9"),
        revocation(5, subject: "erin", expires: now),
    ]

    @Test(arguments: [
        Case(name: "subject matches", subject: "bob", jti: nil, issuedAt: nil, expected: 1),
        Case(name: "subject matches whatever the jti", subject: "bob", jti: "x", issuedAt: now, expected: 1),
        Case(name: "other subject", subject: "bobby", jti: nil, issuedAt: nil, expected: nil),
        Case(name: "no subject", subject: nil, jti: "x", issuedAt: nil, expected: nil),
        Case(name: "jti matches whatever the subject", subject: "zed", jti: "t-1", issuedAt: nil, expected: 2),
        Case(name: "jti matches without subject", subject: nil, jti: "t-1", issuedAt: nil, expected: 2),
        Case(name: "other jti", subject: "zed", jti: "t-2", issuedAt: nil, expected: nil),
        Case(name: "issued before the cutoff", subject: "carol", jti: nil, issuedAt: cutoff.addingTimeInterval(-1), expected: 3),
        Case(name: "issued at the cutoff", subject: "carol", jti: nil, issuedAt: cutoff, expected: nil),
        Case(name: "issued after the cutoff", subject: "carol", jti: nil, issuedAt: now, expected: nil),
        Case(name: "no iat matches issued_before", subject: "carol", jti: nil, issuedAt: nil, expected: 3),
        Case(name: "subject and jti both match", subject: "dave", jti: "t-9", issuedAt: nil, expected: 4),
        Case(name: "subject without the jti", subject: "dave", jti: "t-8", issuedAt: nil, expected: nil),
        Case(name: "jti without the subject", subject: "eve", jti: "t-9", issuedAt: nil, expected: nil),
        Case(name: "expired revocation", subject: "erin", jti: nil, issuedAt: nil, expected: nil),
    ])
    func matching(_ test: Case) {
        var set = RevocationSet()
        set.replaceAll(Self.table)
        let match = set.matches(subject: test.subject, jti: test.jti, issuedAt: test.issuedAt, now: Self.now)
        #expect(match?.id == test.expected)
    }

    @Test func expiryAndPruning() {
        var set = RevocationSet()
        set.replaceAll(Self.table)
        #expect(set.matches(subject: "bob", jti: nil, issuedAt: nil, now: Self.later.addingTimeInterval(-1))?.id == 1)
        #expect(set.matches(subject: "bob", jti: nil, issuedAt: nil, now: Self.later) == nil)
        #expect(set.count == 5)
        let prunedNow = set.pruneExpired(now: Self.now)
        #expect(prunedNow == 1)
        #expect(set.all.map(\.id) == [1, 2, 3, 4])
        let prunedLater = set.pruneExpired(now: Self.later)
        #expect(prunedLater == 4)
        #expect(set.count == 0)
    }

    @Test func insertReplaceAndRemove() {
        var set = RevocationSet()
        let inserted = set.insert(Self.revocation(7, subject: "bob"))
        #expect(inserted)
        #expect(set.matches(subject: "bob", jti: nil, issuedAt: nil, now: Self.now)?.id == 7)
        // Same id, now a jti revocation: the subject index must forget it.
        let replaced = set.insert(Self.revocation(7, jti: "t-1"))
        #expect(replaced)
        #expect(set.count == 1)
        #expect(set.matches(subject: "bob", jti: nil, issuedAt: nil, now: Self.now) == nil)
        #expect(set.matches(subject: nil, jti: "t-1", issuedAt: nil, now: Self.now)?.id == 7)
        let removed = set.remove(id: 7)
        #expect(removed?.jti == "t-1")
        let removedAgain = set.remove(id: 7)
        #expect(removedAgain == nil)
        #expect(set.matches(subject: nil, jti: "t-1", issuedAt: nil, now: Self.now) == nil)
        #expect(set.count == 0)
    }

    @Test func revocationsThatWouldMatchEverythingAreRefused() {
        var set = RevocationSet()
        let acceptedNeither = set.insert(Self.revocation(1))
        #expect(!acceptedNeither)
        let acceptedOnlyTime = set.insert(Self.revocation(2, issuedBefore: Self.now))
        #expect(!acceptedOnlyTime)
        let acceptedEmptySubject = set.insert(Self.revocation(3, subject: ""))
        #expect(!acceptedEmptySubject)
        let acceptedEmptyJTI = set.insert(Self.revocation(4, subject: "bob", jti: ""))
        #expect(!acceptedEmptyJTI)
        let leftOut = set.replaceAll([Self.revocation(5), Self.revocation(6, subject: "bob")])
        #expect(leftOut == 1)
        #expect(set.all.map(\.id) == [6])
        #expect(set.matches(subject: nil, jti: nil, issuedAt: nil, now: Self.now) == nil)
    }

    @Test func lowestIDWinsAmongSeveralMatches() {
        var set = RevocationSet()
        set.replaceAll([Self.revocation(9, subject: "bob"), Self.revocation(3, jti: "t-1"), Self.revocation(5, subject: "bob", jti: "t-1")])
        #expect(set.matches(subject: "bob", jti: "t-1", issuedAt: nil, now: Self.now)?.id == 3)
        set.remove(id: 3)
        #expect(set.matches(subject: "bob", jti: "t-1", issuedAt: nil, now: Self.now)?.id == 5)
        #expect(set.matches(subject: "bob", jti: nil, issuedAt: nil, now: Self.now)?.id == 9)
    }

    @Test func capacityIsABound() {
        var set = RevocationSet()
        let full = (1...Int64(RevocationSet.capacity)).map { Self.revocation($0, jti: "t-\($0)") }
        let leftOutOfFull = set.replaceAll(full)
        #expect(leftOutOfFull == 0)
        #expect(set.count == RevocationSet.capacity)
        let acceptedBeyond = set.insert(Self.revocation(0, subject: "one-too-many"))
        #expect(!acceptedBeyond)
        #expect(set.matches(subject: "one-too-many", jti: nil, issuedAt: nil, now: Self.now) == nil)
        // Replacing an entry in place is not growth.
        let replacedInPlace = set.insert(Self.revocation(1, subject: "bob"))
        #expect(replacedInPlace)
        #expect(set.count == RevocationSet.capacity)
        let leftOutBeyond = set.replaceAll(full + [Self.revocation(Int64(RevocationSet.capacity) + 1, subject: "x")])
        #expect(leftOutBeyond == 1)
        set.remove(id: 1)
        let acceptedAfterRemoval = set.insert(Self.revocation(0, subject: "fits-now"))
        #expect(acceptedAfterRemoval)
    }

    @Test func manyEntriesStayFast() {
        var set = RevocationSet()
        // 50,000 revocations spread over jtis and subjects; lookups must not scan them.
        for id in 1...Int64(50_000) {
            set.insert(id % 2 == 0 ? Self.revocation(id, jti: "jti-\(id)") : Self.revocation(id, subject: "user-\(id)", issuedBefore: Self.now))
        }
        let clock = ContinuousClock()
        var hits = 0
        let elapsed = clock.measure {
            for id in 1...Int64(20_000) {
                if set.matches(subject: "user-\(id)", jti: "jti-\(id)", issuedAt: Self.cutoff, now: Self.now) != nil { hits += 1 }
            }
        }
        #expect(hits == 20_000)
        // A scan would take 20,000 × 50,000 comparisons (minutes in a debug build); indexed, well under a second.
        #expect(elapsed < .seconds(5), "\(elapsed)")
        #expect(set.matches(subject: "user-2", jti: "jti-1", issuedAt: nil, now: Self.now) == nil)
    }
}
