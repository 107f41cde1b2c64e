/// Parsers for the value syntaxes of the configuration file: durations and byte sizes.
public enum ConfigValueParser {
    /// Parses `500ms`, `30s`, `5m`, `1h` (an integer and a unit) or a bare `0`.
    public static func duration(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        let units: [(suffix: String, make: (Int64) -> Duration)] = [
            ("ms", { .milliseconds($0) }),
            ("s", { .seconds($0) }),
            ("m", { .seconds($0 * 60) }),
            ("h", { .seconds($0 * 3600) }),
        ]
        for unit in units where text.hasSuffix(unit.suffix) {
            let number = text.dropLast(unit.suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int64(number), value <= 10_000_000
            else { return nil }
            return unit.make(value)
        }
        return nil
    }

    /// Parses `65536`, `512B`, `64KiB`, `1MiB`, `1GiB` (binary multiples; `KB`-style decimal units are refused
    /// because operators rarely mean them).
    public static func byteSize(_ text: String) -> Int? {
        let units: [(suffix: String, factor: Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("B", 1)]
        var number = Substring(text)
        var factor = 1
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(number),
            value <= (1 << 40) / factor
        else { return nil }
        return value * factor
    }
}

/// Formats byte counts the way the configuration spells them.
enum ByteSizeFormatter {
    static func format(_ bytes: Int) -> String {
        for (suffix, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes >= factor && bytes % factor == 0 {
            return "\(bytes / factor)\(suffix)"
        }
        return "\(bytes)"
    }
}
