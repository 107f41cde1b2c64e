/// What subscribing a connection to a channel (or unsubscribing it) did.
enum SubscriptionChange: String, Equatable, Sendable {
    /// The connection's channels changed.
    case changed
    /// It already was (or was not) subscribed.
    case unchanged
    /// No live connection has that id.
    case noSuchConnection = "no_such_connection"
    /// The connection is at ``ChannelName/maxPerConnection`` channels already.
    case tooManyChannels = "too_many_channels"
}
