/// How text from the network is made safe to log: cut to a size, and every character that could break a line,
/// fake a record or drive a terminal written as an escape.
///
/// Escaped: C0 controls, DEL, C1 controls, U+2028/U+2029, format characters (bidi overrides, zero-width) and U+FFFD
/// (bytes that were not UTF-8 were replaced by it when decoded, so it is shown rather than passed on silently).
enum LogEscaping {
    /// Where a truncated value says so.
    static let truncationMarker = "...[truncated]"

    /// `text` cut to at most `maxBytes` UTF-8 bytes (on a character boundary) plus the marker.
    static func truncated(_ text: String, maxBytes: Int) -> String {
        guard text.utf8.count > maxBytes else { return text }
        var end = text.startIndex
        var bytes = 0
        for index in text.unicodeScalars.indices {
            let size = text.unicodeScalars[index].utf8.count
            if bytes + size > maxBytes { break }
            bytes += size
            end = text.unicodeScalars.index(after: index)
        }
        return String(text.unicodeScalars[..<end]) + Self.truncationMarker
    }

    /// Whether `scalar` is written as an escape in either format.
    static func mustEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0xFFFD: return true
        case 0x20..<0x7F: return false
        default: return scalar.properties.generalCategory == .format
        }
    }

    /// The body of a JSON string (without the quotes): `"` and `\` escaped, the characters above as `\uXXXX`.
    static func json(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Self.mustEscape(scalar) { Self.appendUnicodeEscape(scalar, to: &out) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// A `key=value` value: as is when plain, else in quotes with the same escapes as JSON, so it stays one
    /// field on one line.
    static func textValue(_ text: String) -> String {
        if text.isEmpty { return "\"\"" }
        let plain = text.unicodeScalars.allSatisfy { scalar in
            scalar != " " && scalar != "\"" && scalar != "=" && scalar != "\\" && !Self.mustEscape(scalar)
        }
        return plain ? text : "\"" + Self.json(text) + "\""
    }

    /// Free text (a message) kept readable: spaces stay, `\` and the characters above are escaped.
    static func textMessage(_ text: String) -> String {
        let plain = text.unicodeScalars.allSatisfy { $0 != "\\" && !Self.mustEscape($0) }
        if plain { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Self.mustEscape(scalar) { Self.appendUnicodeEscape(scalar, to: &out) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// `\uXXXX`, as a surrogate pair above the BMP (valid JSON either way).
    private static func appendUnicodeEscape(_ scalar: Unicode.Scalar, to out: inout String) {
        func hex4(_ value: UInt32) -> String {
            let digits = String(value, radix: 16, uppercase: true)
            return "\\u" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        }
        let value = scalar.value
        if value <= 0xFFFF {
            out += hex4(value)
        } else {
            let offset = value - 0x10000
            out += hex4(0xD800 + (offset >> 10))
            out += hex4(0xDC00 + (offset & 0x3FF))
        }
    }
}
