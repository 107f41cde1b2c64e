/// The one normalisation every request target goes through before routing, whichever HTTP version carried it.
/// The backend receives exactly the target returned here, so no form can be routed as one path and read as another.
///
/// Each character of the path has one spelling after normalisation: escapes of characters that mean nothing to a
/// path (unreserved, sub-delims but `;`, `:`, `@`) are decoded, the other escapes are kept in upper-case hex, raw
/// characters that must be escaped are escaped, and runs of `/` are merged. What cannot be normalised without
/// guessing how the backend reads it is refused: dot segments, `;` path parameters, encoded `/`, `\`, `%` or
/// control characters, raw `\`, fragments, bytes outside visible ASCII, malformed escapes and escaped bytes that
/// are not UTF-8. The query is kept as sent. One pass over at most ``maxBytes`` bytes.
enum RequestTarget {
    /// The longest target accepted.
    static let maxBytes = 8192

    /// The normalised target (path and query), or the refusal (400) for a target that cannot be normalised safely.
    static func normalize(_ target: String) -> Result<String, HandshakeRefusal> {
        let utf8 = target.utf8
        guard utf8.count <= Self.maxBytes else {
            return .failure(.badRequest("the request target is longer than \(Self.maxBytes) bytes"))
        }
        guard utf8.first == UInt8(ascii: "/") else {
            return .failure(.badRequest("the request target must be a path starting with '/'"))
        }
        let bytes = Array(utf8)
        let question = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.endIndex
        let query = bytes[question...]
        for byte in query where !Self.isQueryByte(byte) {
            return .failure(Self.refusal(forRaw: byte))
        }
        switch Self.normalizePath(bytes[..<question]) {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(var path):
            path.append(contentsOf: query)
            return .success(String(decoding: path, as: UTF8.self))
        }
    }

    /// Whether `path` (no query) is already in normalised form, as a route's `path:` must be to ever match.
    static func isNormalizedPath(_ path: String) -> Bool {
        guard !path.utf8.contains(UInt8(ascii: "?")) else { return false }
        return Self.normalize(path) == .success(path)
    }

    // MARK: Path

    private static func normalizePath(_ path: ArraySlice<UInt8>) -> Result<[UInt8], HandshakeRefusal> {
        var output: [UInt8] = []
        output.reserveCapacity(path.count)
        var segmentStart = 0  // index in `output` of the current segment's first byte
        var utf8 = UTF8Check()
        var index = path.startIndex
        while index != path.endIndex {
            let byte = path[index]
            index += 1
            if byte == UInt8(ascii: "%") {
                guard let high = Self.hexValue(path, at: index), let low = Self.hexValue(path, at: index + 1) else {
                    return .failure(.badRequest("the request path has a malformed percent-escape"))
                }
                index += 2
                let decoded = high << 4 | low
                if Self.isPathCharacter(decoded) {
                    guard utf8.isComplete else { return .failure(Self.notUTF8) }
                    output.append(decoded)
                } else if decoded >= 0x80 {
                    guard utf8.accept(decoded) else { return .failure(Self.notUTF8) }
                    Self.appendEscape(decoded, to: &output)
                } else if let refusal = Self.refusal(forEscaped: decoded) {
                    return .failure(refusal)
                } else {
                    guard utf8.isComplete else { return .failure(Self.notUTF8) }
                    Self.appendEscape(decoded, to: &output)
                }
                continue
            }
            guard utf8.isComplete else { return .failure(Self.notUTF8) }
            if byte == UInt8(ascii: "/") {
                if let refusal = Self.dotSegmentRefusal(output[segmentStart...]) { return .failure(refusal) }
                if output.last == UInt8(ascii: "/") { continue }  // "//" names nothing a backend reads alike
                output.append(byte)
                segmentStart = output.count
            } else if Self.isPathCharacter(byte) {
                output.append(byte)
            } else if Self.isEscapedVisible(byte) {
                Self.appendEscape(byte, to: &output)
            } else {
                return .failure(Self.refusal(forRaw: byte))
            }
        }
        guard utf8.isComplete else { return .failure(Self.notUTF8) }
        if let refusal = Self.dotSegmentRefusal(output[segmentStart...]) { return .failure(refusal) }
        return .success(output)
    }

    private static let notUTF8 = HandshakeRefusal.badRequest("percent-encoded bytes in the request path must be UTF-8")

    /// `.` and `..` segments, literal or decoded from `%2e`: a backend would resolve them against the path.
    private static func dotSegmentRefusal(_ segment: ArraySlice<UInt8>) -> HandshakeRefusal? {
        guard (segment.count == 1 || segment.count == 2), segment.allSatisfy({ $0 == UInt8(ascii: ".") }) else { return nil }
        return .badRequest("the request path must not contain '.' or '..' segments")
    }

    /// Characters a path holds raw, with no other spelling after normalisation: unreserved, sub-delims but `;`,
    /// `:` and `@` (RFC 3986 `pchar` without escapes and `;`).
    private static func isPathCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"):
            return true
        default:
            return false
        }
    }

    /// Visible characters that have no meaning in a path but must be escaped there (clients send some raw).
    private static func isEscapedVisible(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "^"),
            UInt8(ascii: "`"), UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"):
            return true
        default:
            return false
        }
    }

    /// Why an escaped ASCII character other than a path character is refused; nil keeps it escaped.
    private static func refusal(forEscaped byte: UInt8) -> HandshakeRefusal? {
        switch byte {
        case UInt8(ascii: "/"), UInt8(ascii: "\\"):
            return .badRequest("the request path must not contain encoded slashes or backslashes")
        case UInt8(ascii: "%"):
            return .badRequest("the request path must not contain '%25' (double encoding)")
        case UInt8(ascii: ";"):
            return .badRequest("the request path must not contain ';' (path parameters)")
        case 0x00..<0x20, 0x7F:
            return .badRequest("the request path must not contain encoded control characters")
        default:
            return nil
        }
    }

    /// Why a raw byte the target cannot hold is refused.
    private static func refusal(forRaw byte: UInt8) -> HandshakeRefusal {
        switch byte {
        case UInt8(ascii: "\\"):
            return .badRequest("the request path must not contain encoded slashes or backslashes")
        case UInt8(ascii: ";"):
            return .badRequest("the request path must not contain ';' (path parameters)")
        case UInt8(ascii: "#"):
            return .badRequest("the request target must not contain a fragment ('#')")
        default:
            return .badRequest("the request target has characters that must be percent-encoded")
        }
    }

    /// Query bytes are kept as sent: visible ASCII but `#`.
    private static func isQueryByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "#")
    }

    private static func hexValue(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt8? {
        guard index < bytes.endIndex else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return bytes[index] - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return bytes[index] - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return bytes[index] - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func appendEscape(_ byte: UInt8, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "%"))
        output.append(Self.hexDigits[Int(byte >> 4)])
        output.append(Self.hexDigits[Int(byte & 0x0F)])
    }
}

/// Checks that the escaped bytes ≥ 0x80 of a path, read in order, are well-formed UTF-8 (RFC 3629): no overlong
/// forms such as `%C0%AE` for `.`, no surrogates, nothing past U+10FFFF, and no sequence cut by another character.
private struct UTF8Check {
    private var pending = 0
    private var nextRange: ClosedRange<UInt8> = 0x80...0xBF

    /// Whether no multi-byte sequence is open.
    var isComplete: Bool { self.pending == 0 }

    /// Takes the next escaped byte (≥ 0x80); false when it cannot continue or start a sequence.
    mutating func accept(_ byte: UInt8) -> Bool {
        if self.pending > 0 {
            guard self.nextRange.contains(byte) else { return false }
            self.pending -= 1
            self.nextRange = 0x80...0xBF
            return true
        }
        switch byte {
        case 0xC2...0xDF: (self.pending, self.nextRange) = (1, 0x80...0xBF)
        case 0xE0: (self.pending, self.nextRange) = (2, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (self.pending, self.nextRange) = (2, 0x80...0xBF)
        case 0xED: (self.pending, self.nextRange) = (2, 0x80...0x9F)
        case 0xF0: (self.pending, self.nextRange) = (3, 0x90...0xBF)
        case 0xF1...0xF3: (self.pending, self.nextRange) = (3, 0x80...0xBF)
        case 0xF4: (self.pending, self.nextRange) = (3, 0x80...0x8F)
        default: return false
        }
        return true
    }
}
