import Logging
import Synchronization

/// Logging settings that a reload may change while the process runs: level, format, whether access records
/// are written and the log queue's byte budget. Read atomically on every record.
public final class LogControl: Sendable {
    /// The settings of this process.
    public static let shared = LogControl()

    /// Settings at their defaults: info, text, access log on.
    public init() {}

    private let levelValue = Atomic<UInt8>(2)
    private let jsonValue = Atomic<Bool>(false)
    private let accessValue = Atomic<Bool>(true)
    private let queueBytesValue = Atomic<Int>(LogConfig.defaultQueueBytes)

    private static let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]

    /// Lowest level written.
    public var level: Logger.Level {
        Self.levels[Int(self.levelValue.load(ordering: .relaxed))]
    }

    /// Line format.
    public var format: LogFormat {
        self.jsonValue.load(ordering: .relaxed) ? .json : .text
    }

    /// Whether access records are written.
    public var accessLog: Bool {
        self.accessValue.load(ordering: .relaxed)
    }

    /// Bytes of records the log writer may hold while its output is slower than the records come.
    public var queueBytes: Int {
        self.queueBytesValue.load(ordering: .relaxed)
    }

    /// Applies a configuration's `log` settings.
    public func apply(_ config: LogConfig) {
        self.levelValue.store(UInt8(Self.levels.firstIndex(of: config.level) ?? 2), ordering: .relaxed)
        self.jsonValue.store(config.format == .json, ordering: .relaxed)
        self.accessValue.store(config.accessLog, ordering: .relaxed)
        self.queueBytesValue.store(config.queueBytes, ordering: .relaxed)
    }
}
