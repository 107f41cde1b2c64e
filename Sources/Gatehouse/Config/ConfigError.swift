import Yams

/// A problem found in a configuration file, positioned at the line and column that caused it.
///
/// Its description is the conventional `file:line:col: message`, so editors and CI logs link to it.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file the problem is in, as the operator named it.
    public var file: String
    /// 1-based line, or 0 when the problem concerns the file as a whole.
    public var line: Int
    /// 1-based column, or 0 when the problem concerns the file as a whole.
    public var column: Int
    /// One line saying what is wrong.
    public var message: String

    /// Creates an error at a position in `file`.
    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        "\(self.file):\(self.line):\(self.column): \(self.message)"
    }
}

/// Where a configuration value came from, carried with every parsed value that a later check may blame.
public struct ConfigPosition: Sendable, Hashable, CustomStringConvertible {
    /// The configuration file's path as given.
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column.
    public var column: Int

    /// Creates a position.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// An error located here.
    public func error(_ message: String) -> ConfigError {
        ConfigError(file: self.file, line: self.line, column: self.column, message: message)
    }

    public var description: String { "\(self.file):\(self.line):\(self.column)" }
}

extension ConfigError {
    /// Translates a libyaml error into a positioned configuration error.
    static func fromYAML(_ error: Error, file: String) -> ConfigError {
        guard let yamlError = error as? YamlError else {
            return ConfigError(file: file, line: 0, column: 0, message: "\(error)")
        }
        switch yamlError {
        case .scanner(_, let problem, let mark, _),
            .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, column: mark.column, message: "invalid YAML: \(problem)")
        case .reader(let problem, _, _, _):
            return ConfigError(file: file, line: 1, column: 1, message: "unreadable YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(
                file: file,
                line: context.mark.line,
                column: context.mark.column,
                message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in mapping"
            )
        default:
            return ConfigError(file: file, line: 1, column: 1, message: "invalid YAML: \(yamlError)")
        }
    }
}
