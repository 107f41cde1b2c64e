import GatehouseCluster
import NIOCore

/// How many connections a pushed or broadcast message reached.
struct DeliveryCount: Sendable, Equatable {
    /// Connections whose queue took the message.
    var delivered: Int
    /// Connections that matched but whose queue was full.
    var full: Int

    init(delivered: Int = 0, full: Int = 0) {
        self.delivered = delivered
        self.full = full
    }

    mutating func count(_ outcome: PushOutcome) {
        switch outcome {
        case .queued: self.delivered += 1
        case .full: self.full += 1
        case .closed: break  // closing: as if it had already gone
        }
    }

    mutating func add(_ other: DeliveryCount) {
        self.delivered += other.delivered
        self.full += other.full
    }
}

/// What one of the admin API's message and channel operations came to: a value, or a reason it could not be done
/// (cluster mode with the store unreachable: the admin API answers 503).
enum MessagesAnswer<Value: Sendable & Equatable>: Sendable, Equatable {
    case done(Value)
    case unavailable(String)
}

typealias DeliveryAnswer = MessagesAnswer<DeliveryCount>

/// A subscription change and, when the connection is local, its channels afterwards.
struct SubscriptionResult: Sendable, Equatable {
    var change: SubscriptionChange
    /// Sorted; nil when not known here (a connection on another node).
    var channels: [String]?
}

/// Pushes, broadcasts and subscriptions on this node's connections, each carried out on the connections' own
/// loops (all loops at once). The seams at the end are what the admin API calls; cluster mode widens them to the
/// fleet.
extension GatehouseServer {
    /// The local number of a connection id: `42`, or `NODE:42` with this node's name; nil otherwise.
    func localConnectionID(_ id: String) -> UInt64? {
        ConnectionSelector.localNumber(of: id, node: self.engine.cluster?.node)
    }

    /// Delivers `message` to the local connections `selector` matches (its id as `42` or `NODE:42`, subject and
    /// route exactly; nil fields match anything).
    func pushLocal(_ selector: ConnectionSelector, _ message: PushMessage) async -> DeliveryCount {
        var id: UInt64?
        if let text = selector.id {
            guard let local = self.localConnectionID(text) else { return DeliveryCount() }
            id = local
        }
        let wanted = id
        return await self.sumOverLoops { loop in
            var count = DeliveryCount()
            if let wanted {
                if let connection = loop.connections[wanted], Self.matches(connection.record, selector) {
                    count.count(connection.push(message))
                }
                return count
            }
            for connection in loop.connections.values where Self.matches(connection.record, selector) {
                count.count(connection.push(message))
            }
            return count
        }
    }

    /// Delivers `message` to every local connection subscribed to `channel`.
    func broadcastLocal(channel: String, _ message: PushMessage) async -> DeliveryCount {
        await self.sumOverLoops { loop in
            var count = DeliveryCount()
            for connection in loop.connections.values where connection.channels.contains(channel) {
                count.count(connection.push(message))
            }
            return count
        }
    }

    /// Subscribes (or unsubscribes) local connection `connectionID` to `channel` (a valid ``ChannelName``).
    func setSubscriptionLocal(connectionID: UInt64, channel: String, subscribed: Bool) async -> SubscriptionChange {
        await self.changeSubscriptionLocal(connectionID: connectionID, channel: channel, subscribed: subscribed).change
    }

    /// Local connections subscribed to `channel`.
    func subscriberCountLocal(channel: String) async -> Int {
        await self.sumOverLoops { loop in
            DeliveryCount(delivered: loop.connections.values.reduce(0) { $0 + ($1.channels.contains(channel) ? 1 : 0) })
        }.delivered
    }

    private func changeSubscriptionLocal(connectionID: UInt64, channel: String, subscribed: Bool) async -> SubscriptionResult {
        let futures = self.engine.allLoops.map { loop in
            loop.eventLoop.submit { () -> SubscriptionResult? in
                guard let connection = loop.connections[connectionID] else { return nil }
                let change = subscribed ? connection.subscribe(channel) : connection.unsubscribe(channel)
                return SubscriptionResult(change: change, channels: connection.channels.sorted())
            }
        }
        var result = SubscriptionResult(change: .noSuchConnection, channels: nil)
        for future in futures {
            if let found = try? await future.get() { result = found }
        }
        return result
    }

    /// Runs `body` on every loop at once and adds up what each returns.
    private func sumOverLoops(_ body: @escaping @Sendable (LoopRuntime) -> DeliveryCount) async -> DeliveryCount {
        let futures = self.engine.allLoops.map { loop in loop.eventLoop.submit { body(loop) } }
        var total = DeliveryCount()
        for future in futures {
            if let count = try? await future.get() { total.add(count) }
        }
        return total
    }

    private static func matches(_ record: ConnectionRecord, _ selector: ConnectionSelector) -> Bool {
        if let subject = selector.subject, record.subject != subject { return false }
        if let route = selector.route, record.route != route { return false }
        return true
    }

    // MARK: Seams of the admin API

    /// Delivers `message` to the connections `selector` matches.
    func push(to selector: ConnectionSelector, message: PushMessage) async -> DeliveryAnswer {
        guard let cluster = self.clusterNode else { return .done(await self.pushLocal(selector, message)) }
        do {
            let report = try await cluster.push(selector, message)
            return .done(DeliveryCount(delivered: report.count, full: report.full))
        } catch {
            return .unavailable(error.description)
        }
    }

    /// Delivers `message` to every connection subscribed to `channel`.
    func broadcast(channel: String, message: PushMessage) async -> DeliveryAnswer {
        guard let cluster = self.clusterNode else { return .done(await self.broadcastLocal(channel: channel, message)) }
        do {
            let report = try await cluster.broadcast(channel: channel, message)
            return .done(DeliveryCount(delivered: report.count, full: report.full))
        } catch {
            return .unavailable(error.description)
        }
    }

    /// Subscribes (or unsubscribes) connection `id` (`42` or `NODE:42`) to `channel`.
    func subscribe(connection id: String, channel: String, subscribed: Bool) async -> MessagesAnswer<SubscriptionResult> {
        guard let local = self.localConnectionID(id) else {
            guard let cluster = self.clusterNode, ConnectionSelector.node(of: id) != nil else {
                return .done(SubscriptionResult(change: .noSuchConnection, channels: nil))
            }
            do {
                let report = try await cluster.remoteSubscription(connection: id, channel: channel, subscribed: subscribed)
                let change = report.outcome.flatMap(SubscriptionChange.init(rawValue:)) ?? .noSuchConnection
                return .done(SubscriptionResult(change: change, channels: nil))
            } catch {
                return .unavailable(error.description)
            }
        }
        return .done(await self.changeSubscriptionLocal(connectionID: local, channel: channel, subscribed: subscribed))
    }

    /// Connections subscribed to `channel`.
    func subscriberCount(channel: String) async -> MessagesAnswer<Int> {
        guard let cluster = self.clusterNode else { return .done(await self.subscriberCountLocal(channel: channel)) }
        do {
            return .done(try await cluster.subscribers(channel: channel))
        } catch {
            return .unavailable(error.description)
        }
    }
}
