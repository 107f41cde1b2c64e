/// Character classes of RFC 9110 used when validating header values the proxy interprets.
enum HTTPToken {
    /// Whether `byte` may appear in a `token` (RFC 9110 §5.6.2).
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Whether `text` is a non-empty token.
    static func isToken<S: StringProtocol>(_ text: S) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenCharacter)
    }

    /// Whether `text` may be sent as a header field value: visible characters, spaces, tabs and obs-text, no
    /// CR, LF, NUL or other controls (RFC 9110 §5.5).
    static func isFieldValue<S: StringProtocol>(_ text: S) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }
    }

    /// Splits a comma-separated header value into trimmed, non-empty elements.
    static func list<S: StringProtocol>(_ value: S) -> [Substring] {
        value.split(separator: ",").compactMap { element in
            let trimmed = element.trimmingSpaces()
            return trimmed.isEmpty ? nil : trimmed
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingSpaces() -> Substring {
        let view = self[...]
        guard let first = view.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = view.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return Substring("") }
        return Substring(view[first...last])
    }
}
