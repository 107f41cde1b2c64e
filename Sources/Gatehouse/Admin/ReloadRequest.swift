import Foundation

/// How `gatehouse reload` reaches a running proxy: `POST /reload` on its admin endpoint when it has one (the
/// answer says whether the new configuration was accepted), otherwise SIGHUP to the pid in its pid file.
public enum ReloadRequest {
    /// What happened, as a line to print.
    public enum Outcome: Sendable {
        case success(String)
        case failure(String)
    }

    public static func send(for config: ProxyConfig, environment: [String: String]) async -> Outcome {
        if let bind = config.admin.bind {
            let token = config.admin.tokenEnv.flatMap { environment[$0] }
            do {
                let (status, body) = try await AdminClient.request(.POST, "/reload", to: bind, token: token)
                let text = body.trimmingCharacters(in: .whitespacesAndNewlines)
                return status == 200 ? .success(text) : .failure("reload refused (\(status)): \(text)")
            } catch {
                if config.admin.pidFile == nil { return .failure("cannot reach the admin endpoint \(bind): \(error)") }
            }
        }
        guard let path = config.admin.pidFile else {
            return .failure("the configuration has neither admin.bind nor admin.pid_file: nothing to signal")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1
        else {
            return .failure("\(path) does not hold a pid")
        }
        guard kill(pid, SIGHUP) == 0 else { return .failure("cannot signal pid \(pid): \(String(cString: strerror(errno)))") }
        return .success("sent SIGHUP to \(pid)")
    }
}
