import Crypto
import Foundation
import NIOHTTP1

/// The admin endpoints. Requests made by web pages are refused (``AdminRequestGuard``), then every request is
/// checked against the admin token when one is configured.
///
/// - `GET /healthz`: the process is alive.
/// - `GET /readyz`: listeners are open and the proxy is not draining.
/// - `GET /metrics`: Prometheus text exposition.
/// - `GET /connections[?route=R&subject=S]`: live connections as JSON.
/// - `DELETE /connections/{id}`, `DELETE /connections?subject=S[&route=R]`: close with 1008 "closed by administrator".
/// - `POST /drain`: graceful drain without exiting.
/// - `POST /reload`: re-read the configuration; the error (`file:line:col: message`) is returned if it fails.
/// - Pushes and channels: see `AdminAPI+Messages.swift`; cluster mode: `AdminAPI+Cluster.swift`; identity
///   providers (`GET /auth`): `AdminAPI+Auth.swift`; backend servers: `AdminAPI+Backends.swift`.
struct AdminAPI: Sendable {
    let server: GatehouseServer
    /// Refuses requests that web pages can make.
    let requestGuard: AdminRequestGuard

    func handle(_ request: AdminRequest) async -> AdminResponse {
        if let reason = self.requestGuard.refusalBeforeAuthentication(request.headers) { return .text(.forbidden, reason) }
        // Read per request: a reload may change the token without rebinding the endpoint.
        let tokenDigest = self.server.adminTokenDigest
        if let refusal = self.authorize(request, expected: tokenDigest) { return refusal }
        if let reason = self.requestGuard.refusalOfStateChange(method: request.method, headers: request.headers, tokenVerified: tokenDigest != nil) {
            return .text(.forbidden, reason)
        }
        // Pushes and channels (AdminAPI+Messages), then what cluster mode adds or widens (AdminAPI+Cluster).
        if let response = await self.handleMessages(request) { return response }
        if let response = await self.handleCluster(request) { return response }
        if let response = await self.handleAuth(request) { return response }
        if let response = await self.handleBackends(request) { return response }
        switch (request.method, request.path) {
        case (.GET, "/healthz"):
            return .text(.ok, "ok")
        case (.GET, "/readyz"):
            if self.server.isDraining { return .text(.serviceUnavailable, "draining") }
            if let reason = self.server.identity.notReadyReason { return .text(.serviceUnavailable, reason) }
            return self.server.listenersOpen ? .text(.ok, "ready") : .text(.serviceUnavailable, "listeners not open")
        case (.GET, "/metrics"):
            await self.server.publishTraffic()
            return AdminResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: self.server.engine.metrics.exposition())
        case (.GET, "/connections"):
            let connections = await self.server.connections().filter { self.matches($0, request.query) }
            let node = self.server.clusterNode?.node
            return .json(.ok, connections.map { Self.json($0, node: node) })
        case (.DELETE, "/connections"):
            guard request.query["subject"] != nil || request.query["route"] != nil else {
                return .text(.badRequest, "give subject= and/or route= (closing every connection is what POST /drain is for)")
            }
            let closed = await self.server.closeConnections { self.matches($0, request.query) }
            return .json(.ok, ["closed": closed])
        case (.DELETE, let path) where path.hasPrefix("/connections/"):
            guard let id = self.server.localConnectionID(String(path.dropFirst("/connections/".count))) else {
                return .text(.badRequest, "connection ids are numbers")
            }
            let closed = await self.server.closeConnections { $0.id == id }
            return closed == 0 ? .text(.notFound, "no connection \(id)") : .json(.ok, ["closed": closed])
        case (.POST, "/drain"):
            let server = self.server
            let timeout = server.config.admin.drainTimeout
            Task { await server.drain(timeout: timeout) }
            return .json(.accepted, ["draining": true])
        case (.POST, "/reload"):
            let systemd = SystemdNotifier()
            systemd.send(.reloading(monotonicMicroseconds: SystemdNotifier.monotonicMicroseconds()))
            defer { systemd.send(.ready(status: "serving")) }
            switch await self.server.reload() {
            case .success(let generation): return .json(.ok, ["reloaded": true, "generation": generation])
            case .failure(let error): return .json(.unprocessableEntity, ["reloaded": false, "error": error.description])
            }
        case (_, "/healthz"), (_, "/readyz"), (_, "/metrics"), (_, "/connections"), (_, "/drain"), (_, "/reload"):
            return .text(.methodNotAllowed, "method not allowed")
        default:
            return .text(.notFound, "no such endpoint")
        }
    }

    private func authorize(_ request: AdminRequest, expected: [UInt8]?) -> AdminResponse? {
        guard let expected else { return nil }
        let presented = request.headers["authorization"].first.flatMap(TokenExtractor.bearer) ?? ""
        let digest = Array(SHA256.hash(data: Array(presented.utf8)))
        var difference: UInt8 = 0
        for index in 0..<32 { difference |= digest[index] ^ expected[index] }
        if difference == 0 && !presented.isEmpty { return nil }
        var response = AdminResponse.text(.unauthorized, "admin token required")
        response.headers = [("WWW-Authenticate", "Bearer realm=\"gatehouse-admin\"")]
        return response
    }

    private func matches(_ connection: ConnectionSnapshot, _ query: [String: String]) -> Bool {
        if let route = query["route"], connection.route != route { return false }
        if let subject = query["subject"], connection.subject != subject { return false }
        return true
    }

    /// One connection; in cluster mode its id is the cluster-wide `NODE:NUMBER` and its node is named.
    static func json(_ connection: ConnectionSnapshot, node: String? = nil) -> [String: Any] {
        var object: [String: Any] = [
            "id": node.map { "\($0):\(connection.id)" } as Any? ?? connection.id, "route": connection.route, "listener": connection.listener, "client": connection.client,
            "subject": connection.subject as Any? ?? NSNull(), "transport": connection.transport, "backend": connection.backend,
            "age_seconds": (connection.ageSeconds * 1000).rounded() / 1000, "bytes_in": connection.bytesFromClient,
            "bytes_out": connection.bytesFromBackend, "messages_in": connection.messagesFromClient,
            "messages_out": connection.messagesFromBackend, "messages_pushed": connection.messagesPushed,
            "channels": connection.channels,
        ]
        if let node { object["node"] = node }
        return object
    }
}
