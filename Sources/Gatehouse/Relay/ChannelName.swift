/// Channel names and the `Gatehouse-Channels` header a backend may answer its 101 with.
///
/// A name is 1–128 bytes of `A-Z a-z 0-9 . _ : @ -`: safe in a URL path segment, a header list and a log line
/// without escaping, and never containing the list separator.
enum ChannelName {
    /// Longest name, in bytes.
    static let maxBytes = 128
    /// Channels one connection may be subscribed to.
    static let maxPerConnection = 64
    /// The header a backend's 101 carries (stripped before the client sees the answer; a client's copy is dropped).
    static let header = "gatehouse-channels"

    static func isValid(_ name: String) -> Bool {
        self.problem(name) == nil
    }

    /// Why `name` is not a channel name, or nil when it is one.
    static func problem(_ name: String) -> String? {
        let bytes = name.utf8
        if bytes.isEmpty { return "a channel name is 1 to \(self.maxBytes) bytes; this one is empty" }
        if bytes.count > self.maxBytes { return "a channel name is 1 to \(self.maxBytes) bytes; this one has \(bytes.count)" }
        if let bad = bytes.first(where: { !Self.isAllowed($0) }) {
            let shown = bad >= 0x21 && bad < 0x7F ? "'\(Character(Unicode.Scalar(bad)))'" : "byte 0x" + String(bad, radix: 16, uppercase: true)
            return "a channel name holds only A-Z a-z 0-9 . _ : @ -; this one has \(shown)"
        }
        return nil
    }

    @inline(__always)
    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// What the `Gatehouse-Channels` values of a backend's 101 ask for: comma-separated names over any number of
    /// header lines, spaces around names ignored, duplicates merged. `channels` keeps the first
    /// ``maxPerConnection`` valid names in order; `ignored` says what was left out and why (for a warning).
    static func parseHeader(_ values: [String]) -> (channels: [String], ignored: [String]) {
        var channels: [String] = []
        var seen: Set<String> = []
        var ignored: [String] = []
        for value in values {
            for element in value.split(separator: ",") {
                let name = String(element.trimmingSpaces())
                if name.isEmpty || seen.contains(name) { continue }
                if let problem = Self.problem(name) {
                    ignored.append("\(String(name.prefix(64)).debugDescription): \(problem)")
                    continue
                }
                if channels.count == Self.maxPerConnection {
                    ignored.append("\(name): over \(Self.maxPerConnection) channels")
                    continue
                }
                seen.insert(name)
                channels.append(name)
            }
        }
        return (channels, ignored)
    }
}
