/// The permessage-deflate parameters a backend's 101 accepted (RFC 7692 §7.1), as far as inflating needs them.
///
/// Parsing leans to the most permissive inflater: an absent, malformed or out-of-range window size counts as 15
/// (a larger window inflates anything a smaller one produced), and only a `*_no_context_takeover` actually present
/// resets the history between messages.
struct DeflateParameters: Equatable, Sendable {
    /// How one side compresses the messages it sends.
    struct Sender: Equatable, Sendable {
        /// Base-two logarithm of the LZ77 window (9 to 15).
        var windowBits: Int = 15
        /// Each message is compressed on its own (no history carried over).
        var noContextTakeover = false
    }

    /// How the client compresses (`client_*` parameters).
    var client = Sender()
    /// How the server compresses (`server_*` parameters).
    var server = Sender()

    static let extensionName = "permessage-deflate"

    init(client: Sender = Sender(), server: Sender = Sender()) {
        self.client = client
        self.server = server
    }

    /// The parameters of the first `permessage-deflate` element of a `Sec-WebSocket-Extensions` answer (elements
    /// already split at commas); nil when permessage-deflate was not negotiated.
    init?(negotiated elements: [Substring]) {
        guard let element = elements.first(where: { Self.name(of: $0) == Self.extensionName }) else { return nil }
        for parameter in element.split(separator: ";").dropFirst() {
            let parts = parameter.split(separator: "=", maxSplits: 1)
            guard let rawName = parts.first else { continue }
            let name = rawName.trimmingSpaces().lowercased()
            let value = parts.count > 1 ? Self.unquoted(parts[1].trimmingSpaces()) : nil
            switch name {
            case "server_no_context_takeover": self.server.noContextTakeover = true
            case "client_no_context_takeover": self.client.noContextTakeover = true
            case "server_max_window_bits": self.server.windowBits = Self.windowBits(value)
            case "client_max_window_bits": self.client.windowBits = Self.windowBits(value)
            default: continue
            }
        }
    }

    /// The lower-cased name of an extension element (`name; param=value`).
    static func name(of element: Substring) -> String {
        (element.split(separator: ";", maxSplits: 1).first ?? element).trimmingSpaces().lowercased()
    }

    /// A window size parameter as an inflater takes it: zlib's raw deflate never uses a window of 8 bits (it
    /// silently compresses with 9), so 8 becomes 9; anything invalid becomes the permissive 15.
    private static func windowBits(_ value: Substring?) -> Int {
        guard let value, value.utf8.count <= 2, let bits = Int(value), (8...15).contains(bits) else { return 15 }
        return max(9, bits)
    }

    private static func unquoted(_ value: Substring) -> Substring {
        guard value.count >= 2, value.first == "\"", value.last == "\"" else { return value }
        return value.dropFirst().dropLast()
    }
}
