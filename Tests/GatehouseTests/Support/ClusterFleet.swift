import Crypto
import Foundation
import Gatehouse
import NIOHTTP1

/// One `gatehouse` process of a test fleet, with the ports it announced.
struct FleetNode {
    let name: String
    let child: ChildProcess
    let port: Int
    let adminPort: Int

    func admin(_ method: HTTPMethod, _ path: String, body: [UInt8] = [], contentType: String? = nil) async throws -> (status: UInt, body: String) {
        try await AdminClient.request(
            method, path, address: BindAddress(host: "127.0.0.1", port: self.adminPort), token: nil, body: body,
            contentType: contentType, timeout: .seconds(15)
        )
    }

    /// The admin answer's JSON (a list or an object).
    func adminJSON(_ method: HTTPMethod, _ path: String, body: [UInt8] = [], contentType: String? = nil) async throws -> (UInt, Any) {
        let (status, text) = try await self.admin(method, path, body: body, contentType: contentType)
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { throw TestError("\(method) \(path): \(status) \(text)") }
        return (status, object)
    }

    /// Opens a WebSocket through this node with a bearer token; returns the client after the 101.
    func connect(path: String = "/chat", token: String?, extra: [(String, String)] = []) async throws -> TestClient {
        let client = try await TestClient.connect(port: self.port)
        var headers = extra
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        try await client.sendUpgrade(path: path, extra: headers)
        let head = try await client.readHead()
        guard head.status == 101 else {
            await client.close()
            throw FleetRefusal(status: head.status)
        }
        return client
    }

    /// The status of a refused upgrade (throws if it was accepted).
    func refusal(path: String = "/chat", token: String?) async throws -> Int {
        do {
            let client = try await self.connect(path: path, token: token)
            await client.close()
            throw TestError("the upgrade through \(self.name) was accepted")
        } catch let refusal as FleetRefusal {
            return refusal.status
        }
    }
}

struct FleetRefusal: Error {
    let status: Int
}

/// Several real `gatehouse` processes sharing one PostgreSQL database, each with a listener, an admin endpoint and
/// a route `/chat` (HS256 tokens) to a shared backend. Every process is killed when the test ends.
final class ClusterFleet: @unchecked Sendable {
    let databaseURL: String
    let directory: URL
    private(set) var nodes: [String: FleetNode] = [:]
    private let config: (String) -> String

    static let secret = TestKeys.secret

    init(
        databaseURL: String, backendPort: Int, heartbeat: String = "500ms", routeLimits: String = "", clusterExtra: String = "",
        nodeExtra: [String: String] = [:]
    ) throws {
        self.databaseURL = databaseURL
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-fleet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.config = { node in
            """
            listeners:
              - name: plain
                bind: "127.0.0.1:0"
            backends:
              - name: app
                servers: ["127.0.0.1:\(backendPort)"]
            auth:
              - name: jwt
                type: jwt
                algorithms: [HS256]
                secret_env: GH_FLEET_SECRET
            routes:
              - name: chat
                path: "/chat"
                backend: app
                origins: ["*"]
                auth:
                  providers: [jwt]
            \(routeLimits.isEmpty ? "" : "    limits:\n" + routeLimits.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
            admin:
              bind: "127.0.0.1:0"
            log:
              level: info
            cluster:
              node: "\(node)"
              postgres:
                url_env: GH_FLEET_PG_URL
              heartbeat: \(heartbeat)
            \((nodeExtra[node] ?? clusterExtra).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            """
        }
    }

    /// Starts (or restarts) node `name` and waits until it listens and has joined the fleet.
    @discardableResult
    func start(_ name: String) async throws -> FleetNode {
        let path = self.directory.appendingPathComponent("\(name).yaml").path
        try self.config(name).write(toFile: path, atomically: true, encoding: .utf8)
        let child = try ChildProcess.start(
            CLITests.binary, ["run", "--config", path],
            environment: ["GH_FLEET_SECRET": Self.secret, "GH_FLEET_PG_URL": self.databaseURL]
        )
        do {
            let port = try await Self.port(of: child, containing: "listener=plain tls=false")
            let adminPort = try await Self.port(of: child, containing: "admin listening")
            _ = try await child.waitForLine(containing: "registry and revocations synchronised")
            let node = FleetNode(name: name, child: child, port: port, adminPort: adminPort)
            self.nodes[name] = node
            return node
        } catch {
            child.stop()
            throw TestError("node \(name) did not start: \(error)\n\(child.output.all.joined(separator: "\n"))")
        }
    }

    func startAll(_ names: [String]) async throws -> [FleetNode] {
        var started: [FleetNode] = []
        for name in names { started.append(try await self.start(name)) }
        return started
    }

    subscript(_ name: String) -> FleetNode {
        guard let node = self.nodes[name] else { preconditionFailure("no node \(name)") }
        return node
    }

    /// SIGKILL, as a crash.
    func kill(_ name: String) async throws {
        guard let node = self.nodes.removeValue(forKey: name) else { return }
        node.child.stop()
        _ = try await node.child.waitForExit(seconds: 10)
    }

    /// SIGTERM, then wait for the exit.
    func stop(_ name: String) async throws {
        guard let node = self.nodes.removeValue(forKey: name) else { return }
        node.child.signal(SIGTERM)
        _ = try await node.child.waitForExit(seconds: 20)
    }

    func stopAll() {
        for node in self.nodes.values { node.child.stop() }
        self.nodes = [:]
        try? FileManager.default.removeItem(at: self.directory)
    }

    private static func port(of child: ChildProcess, containing text: String) async throws -> Int {
        let line = try await child.waitForLine(containing: text, timeout: .seconds(60))
        guard let range = line.range(of: #"address=[^ ]*:(\d+)"#, options: .regularExpression),
            let port = line[range].split(separator: ":").last.flatMap({ Int($0.filter(\.isNumber)) })
        else { throw TestError("no port in '\(line)'") }
        return port
    }

    /// An HS256 token for `sub`, with `jti` and `iat`, valid for an hour.
    static func token(sub: String, jti: String = UUID().uuidString, issuedAt: Date = Date()) -> String {
        func encode(_ object: [String: Any]) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return Self.base64URL(data)
        }
        let header = encode(["alg": "HS256", "typ": "JWT"])
        let payload = encode([
            "sub": sub, "jti": jti, "iat": Int(issuedAt.timeIntervalSince1970), "exp": Int(Date().timeIntervalSince1970) + 3600,
        ])
        let input = "\(header).\(payload)"
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(Self.secret.utf8)))
        return "\(input).\(Self.base64URL(Data(mac)))"
    }

    private static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
