import Yams

/// A node of the composed YAML tree with the position it came from, read with the types the schema expects.
///
/// Every accessor throws a ``ConfigError`` located at the node, so a wrong type is reported where it was written.
struct ConfigNode {
    let node: Node
    let file: String

    var position: ConfigPosition {
        let mark = self.node.mark
        return ConfigPosition(file: self.file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func error(_ message: String) -> ConfigError {
        self.position.error(message)
    }

    private var kindName: String {
        switch self.node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if Self.isNull(scalar) { return "nothing (null)" }
            return "'\(scalar.string)'"
        }
    }

    /// Whether a scalar is YAML's null (an empty plain value, `~` or `null`).
    static func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// The node as a mapping whose keys must all be consumed before ``ConfigMapping/finish()``.
    func mapping(_ what: String) throws(ConfigError) -> ConfigMapping {
        guard case .mapping(let mapping) = self.node else {
            throw self.error("\(what) must be a mapping, found \(self.kindName)")
        }
        var entries: [(key: String, keyNode: ConfigNode, value: ConfigNode)] = []
        for (key, value) in mapping {
            let keyNode = ConfigNode(node: key, file: self.file)
            guard case .scalar(let scalar) = key else {
                throw keyNode.error("keys of \(what) must be plain names")
            }
            entries.append((scalar.string, keyNode, ConfigNode(node: value, file: self.file)))
        }
        return ConfigMapping(what: what, node: self, entries: entries)
    }

    /// The node as a list.
    func sequence(_ what: String) throws(ConfigError) -> [ConfigNode] {
        guard case .sequence(let sequence) = self.node else {
            throw self.error("\(what) must be a list, found \(self.kindName)")
        }
        return sequence.map { ConfigNode(node: $0, file: self.file) }
    }

    /// The node as a non-empty string.
    func string(_ what: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = self.node, !Self.isNull(scalar) else {
            throw self.error("\(what) must be a string, found \(self.kindName)")
        }
        guard !scalar.string.isEmpty else {
            throw self.error("\(what) must not be empty")
        }
        return scalar.string
    }

    /// The node as a list of strings (a single string is not accepted: lists stay lists).
    func strings(_ what: String) throws(ConfigError) -> [String] {
        var result: [String] = []
        for item in try self.sequence(what) {
            result.append(try item.string("each entry of \(what)"))
        }
        return result
    }

    /// The node as `true` or `false` (YAML 1.1 spellings such as `yes` are refused as ambiguous).
    func bool(_ what: String) throws(ConfigError) -> Bool {
        guard case .scalar(let scalar) = self.node else {
            throw self.error("\(what) must be true or false, found \(self.kindName)")
        }
        switch scalar.string {
        case "true": return true
        case "false": return false
        default: throw self.error("\(what) must be true or false, found '\(scalar.string)'")
        }
    }

    /// The node as an integer within `range`.
    func int(_ what: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard case .scalar(let scalar) = self.node, let value = Int(scalar.string) else {
            throw self.error("\(what) must be an integer, found \(self.kindName)")
        }
        guard range.contains(value) else {
            throw self.error("\(what) must be between \(range.lowerBound) and \(range.upperBound), found \(value)")
        }
        return value
    }

    /// The node as a duration such as `500ms`, `30s`, `5m` or `1h`; a bare `0` means zero.
    func duration(_ what: String, allowZero: Bool = false) throws(ConfigError) -> Duration {
        let text = try self.string(what)
        guard let value = ConfigValueParser.duration(text) else {
            throw self.error("\(what) must be a duration like 500ms, 30s, 5m or 1h, found '\(text)'")
        }
        if value == .zero && !allowZero {
            throw self.error("\(what) must be greater than zero")
        }
        return value
    }

    /// The node as a byte size such as `65536`, `64KiB` or `1MiB`, within `range`.
    func byteSize(_ what: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try self.string(what)
        guard let value = ConfigValueParser.byteSize(text) else {
            throw self.error("\(what) must be a size like 65536, 64KiB or 1MiB, found '\(text)'")
        }
        guard range.contains(value) else {
            throw self.error(
                "\(what) must be between \(ByteSizeFormatter.format(range.lowerBound)) and "
                    + "\(ByteSizeFormatter.format(range.upperBound)), found '\(text)'"
            )
        }
        return value
    }
}

/// A mapping being read: keys are taken one by one and ``finish()`` refuses any key nobody took.
///
/// Unknown keys are errors, not warnings: a typo in a security key must not silently disable it.
final class ConfigMapping {
    let what: String
    let node: ConfigNode
    private let entries: [(key: String, keyNode: ConfigNode, value: ConfigNode)]
    private var taken: Set<String> = []

    init(what: String, node: ConfigNode, entries: [(key: String, keyNode: ConfigNode, value: ConfigNode)]) {
        self.what = what
        self.node = node
        self.entries = entries
    }

    /// The value of an optional key.
    func optional(_ key: String) -> ConfigNode? {
        self.taken.insert(key)
        return self.entries.first { $0.key == key }?.value
    }

    /// The value of a key that must be present.
    func required(_ key: String) throws(ConfigError) -> ConfigNode {
        guard let value = self.optional(key) else {
            throw self.node.error("\(self.what) is missing the required key '\(key)'")
        }
        return value
    }

    /// The position of a key (for errors that concern the key rather than its value).
    func keyPosition(_ key: String) -> ConfigPosition? {
        self.entries.first { $0.key == key }?.keyNode.position
    }

    /// Refuses keys that were never taken, suggesting the nearest known one.
    func finish() throws(ConfigError) {
        for entry in self.entries where !self.taken.contains(entry.key) {
            var message = "unknown key '\(entry.key)' in \(self.what)"
            if let suggestion = Self.nearest(to: entry.key, among: self.taken) {
                message += " (did you mean '\(suggestion)'?)"
            }
            throw entry.keyNode.error(message)
        }
    }

    private static func nearest(to key: String, among candidates: Set<String>) -> String? {
        var best: (name: String, distance: Int)?
        for candidate in candidates.sorted() {
            let distance = editDistance(Array(key.lowercased().utf8), Array(candidate.utf8))
            if distance <= max(2, candidate.utf8.count / 3), distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.name
    }

    private static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
