/// Active health of one server: `fall` consecutive failed checks eject it, `rise` consecutive passed checks
/// readmit it (HAProxy's rise/fall). Pure; the checker feeds it results.
struct HealthCounter: Sendable, Equatable {
    let rise: Int
    let fall: Int
    private(set) var up: Bool
    private var streak = 0

    /// A new server starts up (it is in the configuration) unless `startUp` says otherwise.
    init(rise: Int, fall: Int, startUp: Bool = true) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.up = startUp
    }

    /// Records one check; returns the new state when it changed.
    mutating func record(passed: Bool) -> Bool? {
        if passed == self.up {
            self.streak = 0
            return nil
        }
        self.streak += 1
        guard self.streak >= (self.up ? self.fall : self.rise) else { return nil }
        self.up = passed
        self.streak = 0
        return self.up
    }
}
