import Foundation
import GatehouseCluster
import NIOCore

extension ClusterNode {
    /// Acts on one bus message. Commands this node sent were carried out locally already; replies go to the waiter.
    func handle(_ envelope: BusEnvelope) async {
        self.metrics.busMessages.increment()
        let lag = Date().timeIntervalSince(envelope.sent)
        if lag >= 0, lag < 3600 { self.metrics.busLag.recordNanoseconds(Int64(lag * 1e9)) }
        switch envelope.message {
        case .reply(let reply):
            guard reply.to == self.node else { return }
            let collector = self.state.withLock { $0.waiters[reply.request] }
            collector?.add(reply, from: envelope.from)
        case .revoked(let revocation):
            guard envelope.from != self.node else { return }
            await self.applyRevocation(revocation)
        case .revocationDeleted(let id):
            self.state.withLock { _ = $0.revocations.remove(id: id) }
        case .kick(let request, let selector, let code, let reason):
            guard envelope.from != self.node, self.concerns(selector) else { return }
            let closed = await self.closeLocal(selector, code: WebSocketCloseCode(code), reason: reason)
            await self.reply(BusReply(request: request, to: envelope.from, count: closed))
        case .push(let request, let selector, let message):
            guard envelope.from != self.node, self.concerns(selector), let server = self.attachedServer else { return }
            let count = await server.pushLocal(selector, message)
            await self.reply(BusReply(request: request, to: envelope.from, count: count.delivered, full: count.full))
        case .broadcast(let request, let channel, let message):
            guard envelope.from != self.node, let server = self.attachedServer else { return }
            let count = await server.broadcastLocal(channel: channel, message)
            await self.reply(BusReply(request: request, to: envelope.from, count: count.delivered, full: count.full))
        case .subscription(let request, let connection, let channel, let subscribed):
            guard envelope.from != self.node, let server = self.attachedServer,
                let local = ConnectionSelector.localNumber(of: connection, node: self.node)
            else { return }
            let change = await server.setSubscriptionLocal(connectionID: local, channel: channel, subscribed: subscribed)
            await self.reply(BusReply(request: request, to: envelope.from, count: change == .changed ? 1 : 0, outcome: change.rawValue))
        }
    }

    /// Whether a command with `selector` can concern this node's connections (an id names one node only).
    func concerns(_ selector: ConnectionSelector) -> Bool {
        guard let id = selector.id else { return true }
        return ConnectionSelector.localNumber(of: id, node: self.node) != nil
    }

    private func reply(_ reply: BusReply) async {
        do {
            try await self.publish(.reply(reply))
        } catch {
            self.storeFailed(error, during: "bus reply")
        }
    }

    /// Publishes one message from this node, bounded by the store timeout.
    func publish(_ message: BusMessage) async throws {
        let envelope = BusEnvelope(from: self.node, sent: Date(), message: message)
        try await StoreDeadline.run(self.config.storeTimeout) { try await self.store.publish(envelope) }
    }

    /// Closes this node's connections `selector` picks; returns how many.
    func closeLocal(_ selector: ConnectionSelector, code: WebSocketCloseCode, reason: String) async -> Int {
        guard let server = self.attachedServer else { return 0 }
        let node = self.node
        return await server.closeConnections(code: code, reason: reason) { selector.matches($0, node: node) }
    }

    /// Adds a revocation to the in-memory set and closes the connections it matches.
    func applyRevocation(_ revocation: Revocation) async {
        let count = self.state.withLock { state -> Int in
            _ = state.revocations.insert(revocation)
            return state.revocations.count
        }
        self.metrics.revocations.record(count)
        await self.closeRevokedConnections(now: Date())
    }

    /// Closes every live connection whose token a revocation matches, with 1008 "token revoked".
    func closeRevokedConnections(now: Date) async {
        guard let server = self.attachedServer else { return }
        let revocations = self.state.withLock { $0.revocations }
        guard revocations.count > 0 else { return }
        let closed = await server.closeConnections(code: .policyViolation, reason: "token revoked") { connection in
            guard connection.subject != nil || connection.tokenID != nil else { return false }
            return revocations.matches(subject: connection.subject, jti: connection.tokenID, issuedAt: connection.tokenIssuedAt, now: now) != nil
        }
        if closed > 0 { self.logger.notice("closed connections of revoked tokens", metadata: ["connections": "\(closed)"]) }
    }
}
