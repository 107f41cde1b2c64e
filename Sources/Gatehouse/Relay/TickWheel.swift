import HeapModule
import NIOCore

/// The relays' tick deadlines on one event loop (keepalive, idle timeout, token expiry), so that one NIO timer per
/// loop serves them all: a scheduled task per connection held about 440 bytes of every idle connection (its task,
/// promise and closures; `benchmarks/README.md`), an entry here about 40.
///
/// Deadlines are rounded up to ``resolution`` (never early), and pulled in to at most ``horizon`` ahead: an early
/// tick is harmless (the relay finds nothing due and asks again), and it bounds the slots — and so the memory — a
/// stream of far-away deadlines (token expiries) can create. Pure: time is passed in; the loop arms its one timer
/// at ``earliest``.
struct TickWheel {
    /// Granularity of the deadlines, in nanoseconds.
    let resolution: Int64
    /// How far ahead a deadline may lie, in nanoseconds.
    let horizon: Int64
    /// Connections due in each slot (a slot is a multiple of `resolution`). A slot emptied by cancellations stays
    /// until its time, so that each slot enters `order` once.
    private var slots: [Int64: Set<UInt64>] = [:]
    /// The slot of each scheduled connection.
    private var slotOf: [UInt64: Int64] = [:]
    /// Every slot in `slots`, earliest first.
    private var order = Heap<Int64>()

    init(resolution: TimeAmount = .milliseconds(10), horizon: TimeAmount = .seconds(300)) {
        self.resolution = max(1, resolution.nanoseconds)
        self.horizon = max(self.resolution, horizon.nanoseconds)
    }

    /// Connections scheduled.
    var count: Int { self.slotOf.count }

    /// Slots held (at most `horizon / resolution` + 1).
    var slotCount: Int { self.slots.count }

    /// Schedules `id` at `deadline` (replacing its earlier deadline, if any).
    mutating func schedule(_ id: UInt64, at deadline: NIODeadline, now: NIODeadline) {
        let latest = Int64(clamping: now.uptimeNanoseconds) &+ self.horizon
        let wanted = min(Int64(clamping: deadline.uptimeNanoseconds), latest)
        // Rounded up, so a tick never comes before its deadline (except one pulled in to the horizon).
        let slot = wanted / self.resolution + (wanted % self.resolution == 0 ? 0 : 1)
        if let old = self.slotOf[id] {
            if old == slot { return }
            self.slots[old]?.remove(id)
        }
        self.slotOf[id] = slot
        if self.slots[slot]?.insert(id) == nil {
            self.slots[slot] = [id]
            self.order.insert(slot)
        }
    }

    /// Forgets `id`'s deadline.
    mutating func cancel(_ id: UInt64) {
        guard let slot = self.slotOf.removeValue(forKey: id) else { return }
        self.slots[slot]?.remove(id)
    }

    /// When the next connection is due; nil when none is. Drops slots emptied by cancellations on the way.
    mutating func earliest() -> NIODeadline? {
        while let slot = self.order.min {
            if let ids = self.slots[slot], !ids.isEmpty {
                return .uptimeNanoseconds(UInt64(slot) &* UInt64(self.resolution))
            }
            self.order.removeMin()
            self.slots.removeValue(forKey: slot)
        }
        return nil
    }

    /// Removes and returns the connections due at `now`, earliest slot first.
    mutating func due(now: NIODeadline) -> [UInt64] {
        let current = Int64(clamping: now.uptimeNanoseconds) / self.resolution
        var due: [UInt64] = []
        while let slot = self.order.min, slot <= current {
            self.order.removeMin()
            guard let ids = self.slots.removeValue(forKey: slot) else { continue }
            for id in ids {
                self.slotOf.removeValue(forKey: id)
                due.append(id)
            }
        }
        return due
    }
}
