import Foundation
import Logging

/// A swift-log handler writing `text` or `json` lines through the background ``LogWriter``; level and format come
/// from a ``LogControl``, so a reload changes them.
public struct GatehouseLogHandler: LogHandler {
    /// Metadata attached to every record of this logger.
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let control: LogControl
    private let writer: LogWriter

    /// Lowest level written (set through the configuration, not per logger).
    public var logLevel: Logger.Level {
        get { self.control.level }
        set {}
    }

    /// Creates a handler for `label`.
    public init(label: String, control: LogControl = .shared, writer: LogWriter = .standardError) {
        self.label = label
        self.control = control
        self.writer = writer
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let timestamp = Self.timestamp()
        switch self.control.format {
        case .text:
            var line = "\(timestamp) \(event.level) \(self.label): \(event.message)"
            for key in merged.keys.sorted() {
                line += " \(key)=\(Self.quoteIfNeeded(merged[key].map { "\($0)" } ?? ""))"
            }
            self.writer.write(line)
        case .json:
            var object: [String: Any] = ["ts": timestamp, "level": event.level.rawValue, "logger": self.label, "msg": "\(event.message)"]
            for (key, value) in merged { object[key] = Self.jsonValue(value) }
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
                let line = String(data: data, encoding: .utf8)
            {
                self.writer.write(line)
            }
        }
    }

    private static func jsonValue(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let string): return Int(string).map { $0 as Any } ?? string
        case .stringConvertible(let convertible):
            if let number = convertible as? Int { return number }
            if let number = convertible as? Double { return number }
            return "\(convertible)"
        case .array(let array): return array.map(jsonValue)
        case .dictionary(let dictionary): return dictionary.mapValues(jsonValue)
        }
    }

    private static func quoteIfNeeded(_ text: String) -> String {
        if text.isEmpty { return "\"\"" }
        if text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) {
            return "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
        return text
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, now.tv_nsec / 1_000_000
        )
    }
}
