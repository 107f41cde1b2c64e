import Foundation
import Logging

/// A swift-log handler writing `text` or `json` lines through the background ``LogWriter``; level, format and the
/// queue budget come from a ``LogControl``, so a reload changes them.
///
/// Every record is one line whatever the values hold: they are cut at ``maxValueBytes`` and escaped by
/// ``LogEscaping`` (a `json` line is always valid JSON).
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

    /// Longest message or metadata value written, in UTF-8 bytes; longer ones are cut with a marker.
    static let maxValueBytes = 4096

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let timestamp = Self.timestamp()
        let message = "\(event.message)"
        var line: String
        switch self.control.format {
        case .text:
            let text = LogEscaping.textMessage(LogEscaping.truncated(message, maxBytes: Self.maxValueBytes))
            line = "\(timestamp) \(event.level) \(LogEscaping.textMessage(self.label)): \(text)"
            for key in merged.keys.sorted() {
                let value = LogEscaping.truncated(merged[key].map { "\($0)" } ?? "", maxBytes: Self.maxValueBytes)
                line += " \(LogEscaping.textMessage(key))=\(LogEscaping.textValue(value))"
            }
        case .json:
            var fields: [String: Logger.MetadataValue] = merged
            fields["ts"] = .string(timestamp)
            fields["level"] = .string(event.level.rawValue)
            fields["logger"] = .string(self.label)
            fields["msg"] = .string(message)
            line = ""
            Self.appendJSON(.dictionary(fields), to: &line, depth: 0)
        }
        self.writer.write(line, budget: self.control.queueBytes)
    }

    /// Writes `value` as JSON: sorted keys, every string escaped by ``LogEscaping/json(_:)``, integers (canonical
    /// ones only, so `007` stays a string) and finite doubles as numbers. Nesting beyond a few levels is cut.
    private static func appendJSON(_ value: Logger.MetadataValue, to out: inout String, depth: Int) {
        switch value {
        case .string(let string):
            if let number = Int(string), String(number) == string {
                out += string
            } else {
                Self.appendJSONString(string, to: &out)
            }
        case .stringConvertible(let convertible):
            if let number = convertible as? Int {
                out += String(number)
            } else if let number = convertible as? Double, number.isFinite {
                out += "\(number)"
            } else {
                Self.appendJSONString("\(convertible)", to: &out)
            }
        case .array(let array):
            guard depth < 8 else { return Self.appendJSONString("[...]", to: &out) }
            out += "["
            for (index, element) in array.enumerated() {
                if index > 0 { out += "," }
                Self.appendJSON(element, to: &out, depth: depth + 1)
            }
            out += "]"
        case .dictionary(let dictionary):
            guard depth < 8 else { return Self.appendJSONString("{...}", to: &out) }
            out += "{"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                Self.appendJSONString(key, to: &out)
                out += ":"
                if let element = dictionary[key] { Self.appendJSON(element, to: &out, depth: depth + 1) }
            }
            out += "}"
        }
    }

    private static func appendJSONString(_ string: String, to out: inout String) {
        out += "\""
        out += LogEscaping.json(LogEscaping.truncated(string, maxBytes: Self.maxValueBytes))
        out += "\""
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
