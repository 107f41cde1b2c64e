import Crypto
import Foundation

/// Opaque bearer tokens listed by their SHA-256 in a file (`NAME SHA256HEX` per line); the tokens themselves are
/// never stored. Every listed hash is compared, in constant time, on every check.
final class StaticTokenProvider: AuthProvider {
    let name: String
    private let entries: [(name: String, digest: [UInt8])]

    init(name: String, entries: [(name: String, digest: [UInt8])]) {
        self.name = name
        self.entries = entries
    }

    func verify(_ token: String, now: Date) async -> AuthVerdict {
        let digest = Array(SHA256.hash(data: Array(token.utf8)))
        var matched: String?
        for entry in self.entries {
            var difference: UInt8 = 0
            for index in 0..<32 { difference |= entry.digest[index] ^ digest[index] }
            if difference == 0 && matched == nil { matched = entry.name }
        }
        guard let matched else { return .notApplicable }
        return .accepted(AuthIdentity(subject: matched, scopes: [], provider: self.name, expiresAt: nil))
    }

    /// Reads the tokens file. Errors point at the offending line of that file.
    static func load(path: String, name: String, position: ConfigPosition) throws(ConfigError) -> StaticTokenProvider {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw position.error("cannot read tokens file \(path): \(ConfigLoader.describe(error))")
        }
        var entries: [(name: String, digest: [UInt8])] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingSpaces()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let here = ConfigPosition(file: path, line: index + 1, column: 1)
            guard fields.count == 2 else { throw here.error("expected 'NAME SHA256HEX'") }
            guard let digest = Self.hex(fields[1]), digest.count == 32 else {
                throw here.error("'\(fields[1].prefix(16))…' is not a SHA-256 in hex (64 hex digits)")
            }
            entries.append((String(fields[0]), digest))
        }
        return StaticTokenProvider(name: name, entries: entries)
    }

    private static func hex(_ text: Substring) -> [UInt8]? {
        guard text.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
