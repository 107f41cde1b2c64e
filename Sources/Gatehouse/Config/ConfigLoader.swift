import Foundation

/// Reads a configuration file from disk. Blocking file I/O: call it off the event loops.
public enum ConfigLoader {
    /// Reads and validates the file at `path`.
    public static func load(path: String) throws(ConfigError) -> ProxyConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, line: 0, column: 0, message: "cannot read the file: \(Self.describe(error))")
        }
        guard data.count <= 4 << 20 else {
            throw ConfigError(file: path, line: 0, column: 0, message: "the file is larger than 4 MiB")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 1, column: 1, message: "the file is not UTF-8 text")
        }
        return try ProxyConfig.parse(yaml: text, file: path)
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? CocoaError, let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError {
            return underlying.localizedDescription
        }
        return (error as NSError).localizedDescription
    }
}
