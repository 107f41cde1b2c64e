/// Resolves paths written in a configuration file against the file's own directory.
struct ConfigPaths: Sendable {
    /// Directory of the configuration file (absolute or relative to the working directory).
    let directory: String

    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        if self.directory.isEmpty || self.directory == "." { return path }
        return self.directory.hasSuffix("/") ? self.directory + path : self.directory + "/" + path
    }
}
