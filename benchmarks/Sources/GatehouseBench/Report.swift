import Foundation

/// Writes a mode's result: a human-readable table, and with `--json` one JSON object on stdout (the table then
/// goes to stderr so a script can capture stdout as it is).
enum Report {
    static func emit<Result: Encodable>(_ result: Result, title: String, rows: [(String, String)], json: Bool) throws {
        let width = rows.map(\.0.count).max() ?? 0
        var table = "\(title)\n"
        for (name, value) in rows {
            table += "  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value + "\n"
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(result)
            Self.write(table, to: FileHandle.standardError)
            Self.write(String(decoding: data, as: UTF8.self) + "\n", to: FileHandle.standardOutput)
        } else {
            Self.write(table, to: FileHandle.standardOutput)
        }
    }

    /// A progress line on stderr, so it never mixes with JSON on stdout.
    static func note(_ text: String) {
        Self.write(text + "\n", to: FileHandle.standardError)
    }

    static func write(_ text: String, to handle: FileHandle) {
        handle.write(Data(text.utf8))
    }

    /// Formats a rate or size with a fixed number of decimals.
    static func decimal(_ value: Double, _ places: Int = 1) -> String {
        String(format: "%.\(places)f", value)
    }
}
