import Testing
@testable import Gatehouse

/// The proxy driven by peers that share no code with it.
@Suite("Independent clients")
struct IndependentClientTests {
    @Test func pythonWebsocketsEchoesOverWsAndWss() async throws {
        try await TestProxy.with(EchoRelayTests.config) { proxy in
            let result = try await ExternalProcess.run(
                [
                    "python3", ExternalProcess.peerScript("ws_echo_client.py"),
                    "ws://127.0.0.1:\(try proxy.port("plain"))/echo", "wss://127.0.0.1:\(try proxy.port("secure"))/echo",
                ],
                timeout: 120
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("ok ws://"))
            #expect(result.output.contains("ok wss://"))
        }
    }

    @Test func opensslSClientNegotiatesTLS12OrNewerAndUpgrades() async throws {
        try await TestProxy.with(EchoRelayTests.config) { proxy in
            let port = try proxy.port("secure")
            // The upgrade, then a close frame: the echo answers it and closes, so s_client sees the end.
            let request = Array(TestClient.upgradeRequest(path: "/echo", host: "localhost").utf8)
                + TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
            let modern = try await ExternalProcess.run(
                ["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-quiet", "-alpn", "http/1.1"],
                timeout: 20, stdin: request
            )
            #expect(modern.output.contains("HTTP/1.1 101 Switching Protocols"), "\(modern.output)")
            let old = try await ExternalProcess.run(
                ["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                timeout: 20, stdin: request
            )
            #expect(old.status != 0)
            #expect(!old.output.contains("101 Switching Protocols"))
        }
    }
}
