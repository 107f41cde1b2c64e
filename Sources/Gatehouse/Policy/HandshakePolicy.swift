import Foundation
import NIOCore
import NIOHTTP1

/// The checks every upgrade goes through once its route is known, whatever HTTP version carried it: Origin,
/// abuse limits, bearer token and scopes. Produces the ``Admission`` (what to send the backend) or a refusal.
enum HandshakePolicy {
    /// Headers carrying the identity the proxy established.
    static let subjectHeader = "X-Auth-Subject"
    static let scopesHeader = "X-Auth-Scopes"
    static let providerHeader = "X-Auth-Provider"

    static func authorize(_ request: UpgradeRequest, route: ActiveRoute, on eventLoop: EventLoop) -> EventLoopFuture<Admission> {
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
            return eventLoop.makeSucceededFuture(Self.admission(request, route: route, edits: edits, identity: nil, clientSubprotocol: nil, ticket: ticket))
        }
        let extracted = auth.extractor.extract(from: request)
        guard let token = extracted.token else {
            ticket.release()
            return eventLoop.makeFailedFuture(auth.missingToken())
        }
        let providers = auth.providers
        return eventLoop.makeFutureWithTask { () -> AuthVerdict in
            var firstRejection: TokenRejection?
            let now = Date()
            for provider in providers {
                switch await provider.verify(token, now: now) {
                case .accepted(let identity): return .accepted(identity)
                case .rejected(let reason): firstRejection = firstRejection ?? reason
                case .notApplicable: continue
                }
            }
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
            }
            // Claims become header values toward the backend: a CR or LF in one would forge headers there.
            guard HTTPToken.isFieldValue(identity.subject ?? ""), identity.scopes.allSatisfy({ HTTPToken.isFieldValue($0) }) else {
                ticket.release()
                throw auth.invalidToken(.unsafeClaims)
            }
            let missing = auth.scopes.filter { !identity.scopes.contains($0) }
            guard missing.isEmpty else {
                ticket.release()
                throw auth.insufficientScope(missing)
            }
            var headers: [(String, String)] = []
            if let subject = identity.subject { headers.append((Self.subjectHeader, subject)) }
            headers.append((Self.scopesHeader, identity.scopes.joined(separator: " ")))
            headers.append((Self.providerHeader, identity.provider))
            // The token is removed from every source the route reads, not only the one it came from: a copy in
            // another source would reach the backend.
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
                request, route: route, edits: edits, identity: identity,
                clientSubprotocol: answerToken ? extracted.tokenSubprotocol : nil, ticket: ticket
            )
        }
    }

    private static func admission(
        _ request: UpgradeRequest, route: ActiveRoute, edits: ForwardedRequest.Edits, identity: AuthIdentity?,
        clientSubprotocol: String?, ticket: AdmissionTicket
    ) -> Admission {
        let head = ForwardedRequest.make(from: request, edits: edits)
        let key = head.headers.first(name: "sec-websocket-key") ?? ""
        return Admission(
            route: route, backendRequest: head, expectedAccept: WebSocketAccept.value(forKey: key), identity: identity,
            clientSubprotocol: clientSubprotocol, ticket: ticket
        )
    }
}
