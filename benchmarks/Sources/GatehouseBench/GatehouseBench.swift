import ArgumentParser

/// `gatehouse-bench`: a loopback-only WebSocket load generator for comparing Gatehouse with other proxies.
@main
struct GatehouseBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse-bench",
        abstract: "WebSocket load generator for Gatehouse benchmarks (loopback targets only).",
        subcommands: [EchoCommand.self, H2EchoCommand.self, IdleCommand.self, HandshakeCommand.self]
    )
}
