/// Identifies a listener socket across reloads: its address, or for an ephemeral port also its name.
enum ListenerKey {
    static func of(_ listener: ListenerConfig) -> String {
        listener.bind.port == 0 ? "\(listener.name)@\(listener.bind)" : listener.bind.description
    }
}
