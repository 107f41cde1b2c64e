import Logging

/// Logging settings (`log:`).
public struct LogConfig: Sendable, Equatable {
    /// Lowest level written.
    public var level: Logger.Level
    /// Line format of every record, access records included.
    public var format: LogFormat
    /// Write one access record per connection and per refused handshake.
    public var accessLog: Bool
    /// Bytes of records held while the output (standard error) is slower than records come; beyond it records are
    /// dropped and counted (`gatehouse_log_dropped_total`).
    public var queueBytes: Int = LogConfig.defaultQueueBytes

    /// 4 MiB.
    public static let defaultQueueBytes = 4 << 20

    /// `info`, text, access log on.
    public static let standard = LogConfig(level: .info, format: .text, accessLog: true)
}

/// How log records are written.
public enum LogFormat: String, Sendable, Equatable {
    /// `key=value` text after a timestamp and level.
    case text
    /// One JSON object per line.
    case json
}

extension LogConfig {
    init(node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping("log")
        self = .standard
        if let levelNode = map.optional("level") {
            let text = try levelNode.string("level")
            guard let level = Logger.Level(rawValue: text) else {
                throw levelNode.error("level must be trace, debug, info, notice, warning, error or critical, found '\(text)'")
            }
            self.level = level
        }
        if let formatNode = map.optional("format") {
            let text = try formatNode.string("format")
            guard let format = LogFormat(rawValue: text) else {
                throw formatNode.error("format must be text or json, found '\(text)'")
            }
            self.format = format
        }
        self.accessLog = try map.optional("access_log")?.bool("access_log") ?? true
        self.queueBytes = try map.optional("queue_bytes")?.byteSize("queue_bytes", in: (64 << 10)...(1 << 30)) ?? Self.defaultQueueBytes
        try map.finish()
    }
}
