import Foundation
import GatehouseCluster
import NIOHTTP1

/// The admin endpoints of cluster mode: the fleet's registry, kicks on every node, and revocations.
///
/// - `GET /connections?scope=cluster[&subject=S][&route=R][&node=N]`: the fleet's connections from the registry.
/// - `DELETE /connections/{id}` and `DELETE /connections?subject=S[&route=R]`: close on every node (add
///   `scope=local` for this node only); answers once every live node answered, or after one second.
/// - `POST /revocations`, `GET /revocations`, `DELETE /revocations/{id}`.
extension AdminAPI {
    /// Largest number of registry rows one listing returns.
    static let registryLimit = 10_000

    func handleCluster(_ request: AdminRequest) async -> AdminResponse? {
        if request.path == "/revocations" || request.path.hasPrefix("/revocations/") {
            guard let cluster = self.server.clusterNode else {
                return .text(.notFound, "revocations are stored in the cluster database: configure cluster: to use them")
            }
            return await self.handleRevocations(request, cluster: cluster)
        }
        guard let cluster = self.server.clusterNode else {
            if request.query["scope"] == "cluster" { return .text(.badRequest, "scope=cluster needs cluster mode (cluster:)") }
            return nil
        }
        let scope = request.query["scope"] ?? (request.method == .GET ? "local" : "cluster")
        guard scope == "local" || scope == "cluster" else { return .text(.badRequest, "scope is local or cluster, found '\(scope)'") }
        switch (request.method, request.path) {
        case (.GET, "/connections") where scope == "cluster":
            let filter = RegistryFilter(route: request.query["route"], subject: request.query["subject"], node: request.query["node"])
            do {
                let rows = try await cluster.registry(filter, limit: Self.registryLimit)
                return .json(.ok, rows.map(Self.json))
            } catch {
                return Self.unavailable(error)
            }
        case (.DELETE, "/connections") where scope == "cluster":
            guard request.query["subject"] != nil || request.query["route"] != nil else {
                return .text(.badRequest, "give subject= and/or route= (closing every connection is what POST /drain is for)")
            }
            let selector = ConnectionSelector(subject: request.query["subject"], route: request.query["route"])
            return await self.kick(selector, cluster: cluster, single: false)
        case (.DELETE, let path) where path.hasPrefix("/connections/") && !path.dropFirst("/connections/".count).contains("/"):
            let id = String(path.dropFirst("/connections/".count))
            guard Self.isConnectionID(id) else { return .text(.badRequest, "connection ids are numbers or NODE:NUMBER") }
            return await self.kick(ConnectionSelector(id: id), cluster: cluster, single: true)
        default:
            return nil
        }
    }

    private func kick(_ selector: ConnectionSelector, cluster: ClusterNode, single: Bool) async -> AdminResponse {
        do {
            let report = try await cluster.kick(selector, code: .policyViolation, reason: "closed by administrator")
            if single && report.count == 0 && report.silent.isEmpty { return .text(.notFound, "no connection \(selector.id ?? "")") }
            return .json(report.silent.isEmpty ? .ok : .accepted, Self.json(report, verb: "closed"))
        } catch {
            return Self.unavailable(error)
        }
    }

    private func handleRevocations(_ request: AdminRequest, cluster: ClusterNode) async -> AdminResponse {
        switch (request.method, request.path) {
        case (.POST, "/revocations"):
            let revocation: NewRevocation
            switch RevocationRequest.parse(request.body, now: Date()) {
            case .success(let parsed): revocation = parsed
            case .failure(let problem): return .text(.badRequest, problem.message)
            }
            do {
                let stored = try await cluster.revoke(revocation)
                return .json(.created, Self.json(stored))
            } catch {
                return Self.unavailable(error)
            }
        case (.GET, "/revocations"):
            do {
                return .json(.ok, try await cluster.storedRevocations().map(Self.json))
            } catch {
                return Self.unavailable(error)
            }
        case (.DELETE, let path) where path.hasPrefix("/revocations/"):
            guard let id = Int64(path.dropFirst("/revocations/".count)) else { return .text(.badRequest, "revocation ids are numbers") }
            do {
                return try await cluster.deleteRevocation(id: id) ? .json(.ok, ["deleted": id]) : .text(.notFound, "no revocation \(id)")
            } catch {
                return Self.unavailable(error)
            }
        case (_, "/revocations"), (_, _):
            return .text(.methodNotAllowed, "method not allowed")
        }
    }

    static func unavailable(_ error: ClusterUnavailable) -> AdminResponse {
        var response = AdminResponse.text(.serviceUnavailable, error.description)
        response.headers = [("Retry-After", "5")]
        return response
    }

    static func json(_ report: CommandReport, verb: String) -> [String: Any] {
        [verb: report.count, "full": report.full, "nodes": report.answered, "silent_nodes": report.silent]
    }

    static func json(_ row: RegistryRow) -> [String: Any] {
        [
            "id": row.id, "node": row.node, "route": row.route, "listener": row.listener,
            "subject": row.subject as Any? ?? NSNull(), "client_ip": row.clientIP, "transport": row.transport,
            "started": RevocationRequest.format(row.started), "channels": row.channels,
        ]
    }

    static func json(_ revocation: Revocation) -> [String: Any] {
        [
            "id": revocation.id, "subject": revocation.subject as Any? ?? NSNull(), "jti": revocation.jti as Any? ?? NSNull(),
            "issued_before": revocation.issuedBefore.map(RevocationRequest.format) as Any? ?? NSNull(),
            "expires": revocation.expires >= RevocationRequest.never ? NSNull() : RevocationRequest.format(revocation.expires) as Any,
            "created": RevocationRequest.format(revocation.created),
        ]
    }
}
