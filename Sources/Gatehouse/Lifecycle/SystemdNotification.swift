/// The sd_notify(3) messages the proxy sends, as text. Pure.
enum SystemdNotification: Equatable, Sendable {
    /// Every listener is bound: the service is up.
    case ready(status: String)
    /// A reload starts; `monotonicMicroseconds` is CLOCK_MONOTONIC now, as systemd 253+ wants with RELOADING=1.
    case reloading(monotonicMicroseconds: UInt64)
    /// Graceful drain has begun.
    case stopping
    /// A one-line status for `systemctl status`.
    case status(String)
    /// The watchdog keep-alive.
    case watchdog

    var text: String {
        switch self {
        case .ready(let status): return "READY=1\nSTATUS=\(Self.line(status))"
        case .reloading(let micros): return "RELOADING=1\nMONOTONIC_USEC=\(micros)"
        case .stopping: return "STOPPING=1\nSTATUS=draining"
        case .status(let status): return "STATUS=\(Self.line(status))"
        case .watchdog: return "WATCHDOG=1"
        }
    }

    /// Status text on one line (a newline would start another assignment).
    private static func line(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 }.prefix(200))
    }

    /// The watchdog period systemd asks for (`WATCHDOG_USEC`, for this process per `WATCHDOG_PID`): keep-alives are sent at
    /// half of it. Nil when there is no watchdog.
    static func watchdogInterval(environment: [String: String], pid: Int32) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let micros = UInt64(text), micros > 0 else { return nil }
        if let owner = environment["WATCHDOG_PID"], Int32(owner) != pid { return nil }
        return .microseconds(Int64(min(micros, UInt64(Int64.max))) / 2)
    }
}
