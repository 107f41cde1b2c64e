import Foundation
import Logging
import NIOPosix
import Testing
@testable import Gatehouse

/// The one builder start-up, reload and `gatehouse check` share.
@Suite("Serving state builder")
struct ServingStateBuilderTests {
    static let yaml = TestConfig.echo(listener: """
          - name: secure
            bind: "127.0.0.1:0"
            tls: { self_signed: true }
        """)

    func builder(environment: [String: String] = [:]) -> ServingStateBuilder {
        ServingStateBuilder(
            metrics: ProxyMetrics(), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, environment: environment
        )
    }

    /// A check builds everything (TLS contexts included) but starts nothing: echo backends get a placeholder.
    @Test func aCheckBuildsEverythingButStartsNoEchoServer() async throws {
        let config = try ProxyConfig.parse(yaml: Self.yaml, file: "check.yaml")
        var builder = self.builder()
        let state = try await builder.build(config, generation: 0, echo: .placeholder)
        #expect(builder.echoServer == nil)
        #expect(state.routes.all.first?.backend.servers == [BindAddress(host: "127.0.0.1", port: 1)])
        #expect(state.listenerTLS["secure"] != nil)
    }

    /// A rebuild, as a reload does, keeps the echo server, the self-signed certificate and the route's counters.
    @Test func aRebuildCarriesOverTheEchoServerCertificatesAndCounters() async throws {
        let config = try ProxyConfig.parse(yaml: Self.yaml, file: "serve.yaml")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var builder = self.builder()
        do {
            let first = try await builder.build(config, generation: 1, echo: .start(on: group))
            let echo = try #require(builder.echoServer)
            let certificate = try #require(builder.selfSigned["secure"])
            #expect(first.routes.all.first?.backend.servers.first?.port == echo.localAddress?.port)
            builder.counters = Dictionary(uniqueKeysWithValues: first.routes.all.map { ($0.name, $0.counters) })
            let second = try await builder.build(config, generation: 2, echo: .start(on: group))
            #expect(builder.echoServer === echo)
            #expect(builder.selfSigned["secure"]?.fingerprint == certificate.fingerprint)
            #expect(second.routes.all.first?.counters === first.routes.all.first?.counters)
            #expect(second.generation == 2)
        } catch {
            Issue.record("\(error)")
        }
        await builder.echoServer?.stop()
        try await group.shutdownGracefully()
    }

    /// The admin token is read by the builder: unset, it is an error at the admin key, whoever builds.
    @Test func aMissingAdminTokenIsAConfigErrorAtTheAdminBind() async throws {
        let yaml = TestConfig.echo(extraTop: "admin: { bind: \"127.0.0.1:0\", token_env: GATEHOUSE_TEST_UNSET_TOKEN }")
        let config = try ProxyConfig.parse(yaml: yaml, file: "admin.yaml")
        var builder = self.builder()
        do {
            _ = try await builder.build(config, generation: 0, echo: .placeholder)
            Issue.record("built without the admin token")
        } catch {
            #expect(error.line == config.admin.bindPosition?.line && error.message.contains("GATEHOUSE_TEST_UNSET_TOKEN"), "\(error)")
        }
        var withToken = self.builder(environment: ["GATEHOUSE_TEST_UNSET_TOKEN": "t"])
        let state = try await withToken.build(config, generation: 0, echo: .placeholder)
        #expect(state.adminTokenDigest?.count == 32)
    }
}
