import Foundation
import Logging

/// The pid file `gatehouse reload` signals.
enum PidFile {
    static func write(_ path: String?, logger: Logger) {
        guard let path else { return }
        do {
            try "\(getpid())\n".write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            logger.error("cannot write the pid file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    static func remove(_ path: String?) {
        guard let path else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
