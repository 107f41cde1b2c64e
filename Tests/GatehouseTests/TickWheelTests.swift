import NIOCore
import Testing
@testable import Gatehouse

/// The per-loop tick deadlines: pure, time passed in.
@Suite("Tick wheel")
struct TickWheelTests {
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test func deadlinesAreRoundedUpNeverEarly() {
        var wheel = TickWheel(resolution: .milliseconds(10))
        wheel.schedule(1, at: Self.t0 + .milliseconds(3), now: Self.t0)
        wheel.schedule(2, at: Self.t0 + .milliseconds(10), now: Self.t0)
        #expect(wheel.earliest() == Self.t0 + .milliseconds(10))
        #expect(wheel.due(now: Self.t0 + .milliseconds(9)).isEmpty)
        #expect(Set(wheel.due(now: Self.t0 + .milliseconds(10))) == [1, 2])
        #expect(wheel.count == 0)
        #expect(wheel.earliest() == nil)
    }

    @Test func dueReturnsEarliestSlotsFirstAndLeavesLaterOnes() {
        var wheel = TickWheel(resolution: .milliseconds(10))
        wheel.schedule(3, at: Self.t0 + .seconds(3), now: Self.t0)
        wheel.schedule(1, at: Self.t0 + .seconds(1), now: Self.t0)
        wheel.schedule(2, at: Self.t0 + .seconds(2), now: Self.t0)
        #expect(wheel.due(now: Self.t0 + .milliseconds(2_500)) == [1, 2])
        #expect(wheel.earliest() == Self.t0 + .seconds(3))
        #expect(wheel.due(now: Self.t0 + .seconds(10)) == [3])
    }

    @Test func reschedulingMovesAConnectionAndCancelForgetsIt() {
        var wheel = TickWheel(resolution: .milliseconds(10))
        wheel.schedule(1, at: Self.t0 + .seconds(1), now: Self.t0)
        wheel.schedule(1, at: Self.t0 + .seconds(5), now: Self.t0)
        wheel.schedule(2, at: Self.t0 + .seconds(2), now: Self.t0)
        #expect(wheel.count == 2)
        // The emptied first slot is dropped on the way to the earliest one.
        #expect(wheel.earliest() == Self.t0 + .seconds(2))
        wheel.cancel(2)
        wheel.cancel(2)
        #expect(wheel.earliest() == Self.t0 + .seconds(5))
        #expect(wheel.due(now: Self.t0 + .seconds(4)).isEmpty)
        #expect(wheel.due(now: Self.t0 + .seconds(5)) == [1])
    }

    @Test func farDeadlinesArePulledInToTheHorizon() {
        var wheel = TickWheel(resolution: .milliseconds(10), horizon: .seconds(300))
        wheel.schedule(1, at: Self.t0 + .hours(20), now: Self.t0)
        #expect(wheel.earliest() == Self.t0 + .seconds(300))
        #expect(wheel.due(now: Self.t0 + .seconds(300)) == [1])
    }

    @Test func churnCannotGrowTheSlotsPastTheHorizon() {
        // An attacker opening and closing connections with ever different far-away deadlines (token expiries).
        var wheel = TickWheel(resolution: .milliseconds(10), horizon: .seconds(1))
        for id in UInt64(0)..<50_000 {
            wheel.schedule(id, at: Self.t0 + .seconds(Int64(id)), now: Self.t0)
            wheel.cancel(id)
        }
        #expect(wheel.count == 0)
        #expect(wheel.slotCount <= 101)
        #expect(wheel.earliest() == nil)
        #expect(wheel.slotCount == 0)
    }
}
