import Foundation
import GatehouseCluster
import NIOCore

/// What the handshake and the relay tell cluster mode and ask of it. ``ClusterNode`` implements it;
/// `ProxyEngine.cluster` is nil without a `cluster:` section, and every call site skips it then.
///
/// Every method is cheap and never waits for the store, except ``acquireLease(_:on:)``, which is only called for
/// routes whose limits have `scope: cluster`, once per handshake.
protocol ClusterHooks: AnyObject, Sendable {
    /// This node's name (the prefix of cluster-unique connection ids).
    var node: String { get }

    /// Whether a token carrying `identity` is revoked, from the in-memory revocation set.
    func isRevoked(_ identity: AuthIdentity, now: Date) -> Bool

    /// Takes a fleet-wide connection slot for `request`, or fails with a ``HandshakeRefusal`` (429/503 with
    /// `Retry-After`). When the store is unreachable, `on_store_error` decides: succeed on local counts, or 503.
    /// A granted lease is released by ``released(connectionID:)``.
    func acquireLease(_ request: LeaseRequest, on eventLoop: EventLoop) -> EventLoopFuture<Void>

    /// A relayed connection started (its registry row is published with the next batch).
    func opened(_ row: RegistryRow)

    /// A connection (or an admitted handshake that never became one) ended: its row and lease go with the next batch.
    func released(connectionID: UInt64)

    /// A connection's channel subscriptions changed.
    func channelsChanged(connectionID: UInt64, channels: [String])
}

extension ClusterHooks {
    /// The cluster-unique form of a local connection id.
    func clusterID(_ local: UInt64) -> String {
        "\(self.node):\(local)"
    }
}
