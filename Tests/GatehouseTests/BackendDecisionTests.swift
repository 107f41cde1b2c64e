import NIOCore
import Testing

@testable import Gatehouse

/// The pure decisions behind backend balancing, health and draining.
@Suite("Backend decisions")
struct BackendDecisionTests {
    static let keys = (0..<20_000).map { "user-\($0)" }

    @Test func maglevSpreadsKeysEvenlyAndByWeight() throws {
        let table = MaglevTable(servers: ["a:1", "b:1", "c:1", "d:1"], weights: [1, 1, 1, 1])
        var counts = [0, 0, 0, 0]
        for key in Self.keys { counts[try #require(table.server(for: key))] += 1 }
        for count in counts { #expect(abs(count - 5_000) < 600, "\(counts)") }

        let weighted = MaglevTable(servers: ["a:1", "b:1"], weights: [3, 1])
        var shares = [0, 0]
        for key in Self.keys { shares[try #require(weighted.server(for: key))] += 1 }
        #expect(abs(Double(shares[0]) / Double(Self.keys.count) - 0.75) < 0.03, "\(shares)")
    }

    @Test func removingOneServerOfFourMovesAboutAQuarterOfTheKeys() throws {
        let servers = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"]
        let before = MaglevTable(servers: servers, weights: [1, 1, 1, 1])
        let remaining = Array(servers.dropLast())
        let after = MaglevTable(servers: remaining, weights: [1, 1, 1])
        var moved = 0
        var movedFromKept = 0
        for key in Self.keys {
            let old = servers[try #require(before.server(for: key))]
            let new = remaining[try #require(after.server(for: key))]
            if old != new {
                moved += 1
                if old != servers[3] { movedFromKept += 1 }
            }
        }
        let share = Double(moved) / Double(Self.keys.count)
        #expect(share > 0.2 && share < 0.32, "moved \(share)")
        // Keys of the servers that stayed mostly stay (Maglev's small disruption).
        #expect(Double(movedFromKept) / Double(Self.keys.count) < 0.06, "\(movedFromKept)")
        // The table is the same on every node: FNV, not a per-process seed.
        #expect(MaglevTable(servers: servers, weights: [1, 1, 1, 1]) == before)
    }

    @Test func healthNeedsFallFailuresToEjectAndRiseSuccessesToReadmit() {
        var health = HealthCounter(rise: 2, fall: 3)
        var changes: [Bool?] = []
        for passed in [false, false, true, false, false, false] { changes.append(health.record(passed: passed)) }
        // The success in the middle starts the streak over: only the third failure in a row ejects.
        #expect(changes == [nil, nil, nil, nil, nil, false])
        #expect(!health.up)
        let first = health.record(passed: true)
        let second = health.record(passed: true)
        #expect(first == nil && second == true)
        #expect(health.up)
    }

    @Test func passiveHealthEjectsAfterFailuresWithinTheWindowForEject() {
        var passive = PassiveHealth(failures: 3, window: .seconds(10), eject: .seconds(30))
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        var ejections: [Bool] = []
        // The first failure leaves the window before the third arrives.
        for second in [0, 11, 12, 13] { ejections.append(passive.failed(at: t0 + .seconds(Int64(second)))) }
        #expect(ejections == [false, false, false, true])
        #expect(passive.isEjected(at: t0 + .seconds(42)))
        #expect(!passive.isEjected(at: t0 + .seconds(43)))
        passive.succeeded()
        let later = passive.failed(at: t0 + .seconds(50))
        #expect(!later)
    }

    @Test func drainPacingFollowsTheRateWithBoundedJitter() {
        let pacer = DrainPacer(rate: 10)
        let flat = pacer.delays(count: 50) { _ in 0.5 }
        #expect(flat.first == .zero)
        #expect(flat.last == .milliseconds(4_900))
        let jittered = pacer.delays(count: 50) { index in Double((index * 7919) % 100) / 100 }
        #expect(jittered == jittered.sorted())
        #expect(jittered.last.map { $0 <= .milliseconds(4_950) && $0 >= .milliseconds(4_850) } == true)
        #expect(Set(jittered).count > 40)
    }
}
