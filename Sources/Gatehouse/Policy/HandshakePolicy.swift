import Foundation
import GatehouseCluster
import NIOCore
import NIOHTTP1

/// The checks every upgrade goes through once its route is known, whatever HTTP version carried it: Origin,
/// abuse limits, client certificate or bearer token, revocations, scopes, the per-subject limit and, for
/// `scope: cluster` routes, a fleet-wide lease. Produces the ``Admission`` (what to send the backend) or a refusal.
///
/// The ticket taken first is released here on every refusal; once the ``Admission`` exists, its owner releases it.
enum HandshakePolicy {
    /// Headers carrying the identity the proxy established.
    static let subjectHeader = "X-Auth-Subject"
    static let scopesHeader = "X-Auth-Scopes"
    static let providerHeader = "X-Auth-Provider"

    /// `cluster` is the engine's cluster mode (nil without one): revocations are checked against it, and routes
    /// whose limits have `scope: cluster` take a lease from it after every local check passed.
    static func authorize(
        _ request: UpgradeRequest, route: ActiveRoute, connectionID: UInt64, cluster: (any ClusterHooks)?, on eventLoop: EventLoop
    ) -> EventLoopFuture<Admission> {
        let admitted = Self.admit(request, route: route, connectionID: connectionID, cluster: cluster, on: eventLoop)
        guard route.config.limits.scope == .cluster, let cluster else { return admitted }
        return admitted.flatMap { admission in
            Self.lease(for: admission, request: request, cluster: cluster, on: eventLoop)
        }
    }

    /// The local checks: everything but the cluster lease.
    private static func admit(
        _ request: UpgradeRequest, route: ActiveRoute, connectionID: UInt64, cluster: (any ClusterHooks)?, on eventLoop: EventLoop
    ) -> EventLoopFuture<Admission> {
        if let refusal = OriginPolicy.check(request.headers["origin"], patterns: route.config.origins) {
            return eventLoop.makeFailedFuture(refusal)
        }
        let ticket: AdmissionTicket
        switch route.counters.admit(ip: request.clientIP, limits: route.config.limits) {
        case .failure(let refusal): return eventLoop.makeFailedFuture(refusal)
        case .success(let admitted): ticket = admitted
        }
        let dropExtensions: Set<String> = route.config.compression == .strip ? [DeflateParameters.extensionName] : []
        guard let auth = route.auth else {
            let edits = ForwardedRequest.Edits(
                target: request.target, subprotocols: nil, dropAuthorization: false, dropCookies: [], identity: [],
                key: request.transport == .http2 ? WebSocketAccept.randomKey() : nil,
                allowUnderscoreHeaders: route.config.allowUnderscoreHeaders, dropExtensions: dropExtensions
            )
            return eventLoop.makeSucceededFuture(Self.admission(
                request, route: route, connectionID: connectionID, edits: edits, identity: nil, clientSubprotocol: nil, ticket: ticket
            ))
        }
        let extracted = auth.extractor.extract(from: request)
        // A verified client certificate on a route with an mtls provider is the identity, token or not.
        if let certificate = request.clientCertificate, let provider = auth.certificateProviders.first {
            switch provider.identity(for: certificate, now: Date()) {
            case .failure(let refusal):
                ticket.release()
                return eventLoop.makeFailedFuture(auth.invalidCertificate(refusal))
            case .success(let (identity, certificateHeaders)):
                return eventLoop.makeCompletedFuture {
                    try Self.admit(
                        identity, extraHeaders: certificateHeaders, request, route: route, auth: auth, extracted: extracted,
                        connectionID: connectionID, cluster: cluster, ticket: ticket, dropExtensions: dropExtensions
                    )
                }
            }
        }
        guard !auth.tokenProviders.isEmpty else {
            ticket.release()
            return eventLoop.makeFailedFuture(auth.missingCertificate())
        }
        guard let token = extracted.token else {
            ticket.release()
            return eventLoop.makeFailedFuture(auth.missingToken())
        }
        let providers = auth.tokenProviders
        return eventLoop.makeFutureWithTask { () -> AuthVerdict in
            var firstRejection: TokenRejection?
            var unavailable: String?
            let now = Date()
            for provider in providers {
                switch await provider.verify(token, now: now) {
                case .accepted(let identity): return .accepted(identity)
                case .rejected(let reason): firstRejection = firstRejection ?? reason
                case .unavailable(let reason): unavailable = unavailable ?? reason
                case .notApplicable: continue
                }
            }
            // A provider that could not decide outranks "unknown token" from the others, never an acceptance.
            if let unavailable { return .unavailable(unavailable) }
            return .rejected(firstRejection ?? .unknownToken)
        }.flatMapThrowing { verdict -> Admission in
            let identity: AuthIdentity
            switch verdict {
            case .accepted(let accepted): identity = accepted
            case .rejected(let reason):
                ticket.release()
                throw auth.invalidToken(reason)
            case .notApplicable:
                ticket.release()
                throw auth.invalidToken(.unknownToken)
            case .unavailable(let reason):
                ticket.release()
                throw HandshakeRefusal(.serviceUnavailable, "identity provider unavailable: \(reason)", headers: [("Retry-After", "5")])
            }
            return try Self.admit(
                identity, extraHeaders: [], request, route: route, auth: auth, extracted: extracted, connectionID: connectionID,
                cluster: cluster, ticket: ticket, dropExtensions: dropExtensions
            )
        }
    }

    /// The checks after an identity is established (by a token or a client certificate): safe header values,
    /// revocations, scopes, the per-subject limit; then what the backend is sent. Releases `ticket` when it throws.
    private static func admit(
        _ identity: AuthIdentity, extraHeaders: [(String, String)], _ request: UpgradeRequest, route: ActiveRoute, auth: RouteAuth,
        extracted: TokenExtractor.Result, connectionID: UInt64, cluster: (any ClusterHooks)?, ticket: AdmissionTicket,
        dropExtensions: Set<String>
    ) throws -> Admission {
        // Claims become header values toward the backend: a CR or LF in one would forge headers there.
        guard HTTPToken.isFieldValue(identity.subject ?? ""), identity.scopes.allSatisfy({ HTTPToken.isFieldValue($0) }),
            extraHeaders.allSatisfy({ HTTPToken.isFieldValue($0.1) })
        else {
            ticket.release()
            throw auth.invalidToken(.unsafeClaims)
        }
        if let cluster, cluster.isRevoked(identity, now: Date()) {
            ticket.release()
            throw auth.invalidToken(.revoked)
        }
        let missing = auth.scopes.filter { !identity.scopes.contains($0) }
        guard missing.isEmpty else {
            ticket.release()
            throw auth.insufficientScope(missing)
        }
        // A token without a subject is not counted: there is nothing to count it under.
        if let max = route.config.limits.maxConnectionsPerSubject, let subject = identity.subject,
            !ticket.admit(subject: subject, max: max)
        {
            ticket.release()
            throw HandshakeRefusal.tooManyForSubject()
        }
        var headers: [(String, String)] = []
        if let subject = identity.subject { headers.append((Self.subjectHeader, subject)) }
        headers.append((Self.scopesHeader, identity.scopes.joined(separator: " ")))
        headers.append((Self.providerHeader, identity.provider))
        headers += extraHeaders
        // The token is removed from every source the route reads, not only the one it came from: a copy in
        // another source would reach the backend. With a certificate identity the same holds for a token sent
        // beside it: the proxy did not verify it, so the backend must not take it as verified.
        let readsHeader = auth.sources.contains(.header)
        let cookies = Set(auth.sources.compactMap { source -> String? in
            if case .cookie(let name) = source { return name }
            return nil
        })
        let edits = ForwardedRequest.Edits(
            target: extracted.target,
            subprotocols: extracted.remainingSubprotocols,
            dropAuthorization: readsHeader && !route.config.forwardToken,
            dropCookies: cookies,
            identity: headers,
            key: request.transport == .http2 ? WebSocketAccept.randomKey() : nil,
            allowUnderscoreHeaders: route.config.allowUnderscoreHeaders, dropExtensions: dropExtensions
        )
        // A browser that offered only the token entry fails a handshake whose answer selects no protocol:
        // answer it with that entry itself (a token, as RFC 6455 requires, so the answer header is well formed).
        let answerToken = extracted.tokenSubprotocol.map { HTTPToken.isToken($0) } == true
            && extracted.remainingSubprotocols?.isEmpty == true
        return Self.admission(
            request, route: route, connectionID: connectionID, edits: edits, identity: identity,
            clientSubprotocol: answerToken ? extracted.tokenSubprotocol : nil, ticket: ticket
        )
    }

    /// Takes the fleet-wide slot of an admission whose local checks passed; the ticket returns it when released.
    private static func lease(
        for admission: Admission, request: UpgradeRequest, cluster: any ClusterHooks, on eventLoop: EventLoop
    ) -> EventLoopFuture<Admission> {
        let limits = admission.route.config.limits
        let row = RegistryRow(
            id: cluster.clusterID(admission.connectionID), node: cluster.node, route: admission.route.name,
            listener: request.listener, subject: admission.identity?.subject, clientIP: request.clientIP,
            transport: request.transport.rawValue, started: Date()
        )
        let lease = LeaseRequest(
            row: row, maxConnections: limits.maxConnections, maxConnectionsPerIP: limits.maxConnectionsPerIP,
            maxConnectionsPerSubject: limits.maxConnectionsPerSubject
        )
        return cluster.acquireLease(lease, on: eventLoop).map { () -> Admission in
            admission.ticket.attachLease(cluster, connectionID: admission.connectionID)
            return admission
        }.flatMapErrorThrowing { error in
            admission.ticket.release()
            throw error
        }
    }

    private static func admission(
        _ request: UpgradeRequest, route: ActiveRoute, connectionID: UInt64, edits: ForwardedRequest.Edits, identity: AuthIdentity?,
        clientSubprotocol: String?, ticket: AdmissionTicket
    ) -> Admission {
        let head = ForwardedRequest.make(from: request, edits: edits)
        let key = head.headers.first(name: "sec-websocket-key") ?? ""
        return Admission(
            connectionID: connectionID, route: route, backendRequest: head, expectedAccept: WebSocketAccept.value(forKey: key), identity: identity,
            clientSubprotocol: clientSubprotocol, ticket: ticket
        )
    }
}
