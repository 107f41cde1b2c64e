import Foundation
import GatehouseCluster
import Testing

@testable import Gatehouse

/// What a node tells the store about its connections, and when.
@Suite("Registry journal")
struct RegistryJournalTests {
    static func row(_ id: String, channels: [String] = []) -> RegistryRow {
        RegistryRow(
            id: id, node: "a", route: "r", listener: "l", subject: "s", clientIP: "127.0.0.1", transport: "http/1.1",
            started: Date(timeIntervalSince1970: 0), channels: channels
        )
    }

    @Test func aRowChangedManyTimesIsSentOnceAndARowAddedAndRemovedIsNeverSent() {
        var journal = RegistryJournal()
        journal.upsert(Self.row("a:1"))
        journal.setChannels("a:1", ["x"])
        journal.setChannels("a:1", ["x", "y"])
        journal.upsert(Self.row("a:2"))
        journal.remove("a:2")
        let batch = journal.takeBatch(limit: 100)
        #expect(batch.upserts.map(\.id) == ["a:1"])
        #expect(batch.upserts.first?.channels == ["x", "y"])
        #expect(batch.removals.isEmpty)
        #expect(journal.isEmpty)
        journal.remove("a:1")
        #expect(journal.takeBatch(limit: 100) == RegistryBatch(removals: ["a:1"]))
    }

    @Test func aLeasedRowIsNotSentAgainButItsRemovalIs() {
        var journal = RegistryJournal()
        journal.leased("a:1")
        journal.upsert(Self.row("a:1"))
        #expect(journal.isEmpty)
        journal.leased("a:2")
        journal.upsert(Self.row("a:2", channels: ["room"]))
        #expect(journal.takeBatch(limit: 100).upserts.map(\.id) == ["a:2"])
        journal.remove("a:1")
        // A lease whose handshake failed before a connection existed is removed too.
        journal.leased("a:3")
        journal.remove("a:3")
        #expect(Set(journal.takeBatch(limit: 100).removals) == ["a:1", "a:3"])
    }

    @Test func aFailedBatchIsSentAgainUnlessOvertaken() {
        var journal = RegistryJournal()
        journal.upsert(Self.row("a:1"))
        journal.upsert(Self.row("a:2"))
        let failed = journal.takeBatch(limit: 100)
        journal.remove("a:2")
        journal.restore(failed)
        let retry = journal.takeBatch(limit: 100)
        #expect(retry.upserts.map(\.id) == ["a:1"])
        #expect(retry.removals == ["a:2"])
    }

    @Test func batchesAreBoundedAndResynchronisationGivesEveryLiveRow() {
        var journal = RegistryJournal()
        for index in 0..<25 { journal.upsert(Self.row("a:\(index)")) }
        #expect(journal.takeBatch(limit: 10).upserts.count == 10)
        #expect(journal.takeBatch(limit: 10).upserts.count == 10)
        journal.remove("a:0")
        let all = journal.resynchronise()
        #expect(all.count == 24)
        #expect(journal.isEmpty)
        journal.remove("a:1")
        #expect(journal.takeBatch(limit: 10).removals == ["a:1"])
    }
}
