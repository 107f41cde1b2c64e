import NIOCore

/// Passive health of one server: `failures` failed attempts (connect failures, malformed or 5xx upgrade answers)
/// within `window` eject it for `eject`. Pure, time passed in; remembers at most `failures` instants.
struct PassiveHealth: Sendable, Equatable {
    let failures: Int
    let window: TimeAmount
    let eject: TimeAmount
    private var recent: [NIODeadline] = []
    private(set) var ejectedUntil: NIODeadline?

    init(failures: Int, window: TimeAmount, eject: TimeAmount) {
        self.failures = max(1, failures)
        self.window = window
        self.eject = eject
    }

    /// Whether the server is out at `now`.
    func isEjected(at now: NIODeadline) -> Bool {
        guard let until = self.ejectedUntil else { return false }
        return now < until
    }

    /// Records a failed attempt; returns true when it ejects the server.
    mutating func failed(at now: NIODeadline) -> Bool {
        if self.isEjected(at: now) { return false }
        self.recent.removeAll { now - $0 > self.window }
        self.recent.append(now)
        if self.recent.count > self.failures { self.recent.removeFirst(self.recent.count - self.failures) }
        guard self.recent.count >= self.failures else { return false }
        self.recent.removeAll()
        self.ejectedUntil = now + self.eject
        return true
    }

    /// A successful attempt clears the failures counted so far.
    mutating func succeeded() {
        self.recent.removeAll()
    }
}
