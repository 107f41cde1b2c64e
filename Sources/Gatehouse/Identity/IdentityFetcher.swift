import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL

/// One bounded GET toward an identity provider: no redirects (the shared client refuses them), a body cap, and a
/// deadline over the whole exchange, body included (the client's own deadline covers the response head only, so
/// a provider trickling its body would hold a fetch, and the handshakes waiting for it, for ever).
struct IdentityFetcher: Sendable {
    let client: HTTPClient
    /// Trust for the fetches: nil uses the client's (system roots, full verification).
    let tls: TLSConfiguration?
    let maxBytes: Int

    /// A usable answer.
    enum Answer: Sendable {
        /// 200 with its body, `max-age` and `ETag`.
        case document(body: [UInt8], maxAge: TimeAmount?, etag: String?)
        /// 304 to a conditional request.
        case notModified(maxAge: TimeAmount?)
    }

    /// Why there is no answer; every description comes from a fixed set of texts plus numbers and the URL the
    /// operator configured (or the provider's discovery named), never from a token.
    enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case timeout(TimeAmount)
        case tooLarge(Int)
        case status(UInt)
        case transport(String)
        /// The answer arrived but cannot be used (not JSON, no keys, a discovery document that does not fit).
        case invalid(String)
        /// The answer shows a configuration error (a discovery document for another issuer): refuse to start.
        case misconfigured(String)
        /// The fetch was stopped (the provider left the configuration, or the proxy stops).
        case cancelled

        /// The `result` label of `gatehouse_auth_jwks_fetches_total`.
        var metricResult: String {
            switch self {
            case .timeout: return "timeout"
            case .tooLarge: return "too_large"
            case .status, .transport, .invalid, .misconfigured, .cancelled: return "error"
            }
        }

        var description: String {
            switch self {
            case .timeout(let limit): return "no complete answer within \(Self.format(limit)) (jwks_timeout)"
            case .tooLarge(let limit): return "answer larger than \(limit) bytes (jwks_max_bytes)"
            case .status(let code): return "HTTP status \(code)"
            case .transport(let text): return text
            case .invalid(let text), .misconfigured(let text): return text
            case .cancelled: return "stopped"
            }
        }

        private static func format(_ amount: TimeAmount) -> String {
            let milliseconds = amount.nanoseconds / 1_000_000
            return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
        }
    }

    /// Largest `ETag` kept for the next conditional request.
    static let maxETagBytes = 256

    /// GETs `url` (conditionally when `etag` is given); the caller bounds the time with ``withDeadline(_:_:)``.
    func get(_ url: String, accept: String, etag: String? = nil, timeout: TimeAmount) async throws(Failure) -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: accept)
        request.headers.add(name: "User-Agent", value: "gatehouse/\(GatehouseVersion.string)")
        if let etag { request.headers.add(name: "If-None-Match", value: etag) }
        request.tlsConfiguration = self.tls
        do {
            let response = try await self.client.execute(request, timeout: timeout)
            let maxAge = JWKSCache.maxAge(cacheControl: response.headers["Cache-Control"].joined(separator: ","))
            switch response.status {
            case .ok:
                let body = try await response.body.collect(upTo: self.maxBytes)
                let tag = response.headers.first(name: "ETag").flatMap { $0.utf8.count <= Self.maxETagBytes ? $0 : nil }
                return .document(body: Array(buffer: body), maxAge: maxAge, etag: tag)
            case .notModified where etag != nil:
                return .notModified(maxAge: maxAge)
            default:
                // Read (bounded) so the connection can be reused; the content is not used.
                _ = try? await response.body.collect(upTo: self.maxBytes)
                throw Failure.status(response.status.code)
            }
        } catch let failure as Failure {
            throw failure
        } catch is NIOTooManyBytesError {
            throw .tooLarge(self.maxBytes)
        } catch is CancellationError {
            throw .cancelled
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw .timeout(timeout)
        } catch let error as HTTPClientError where error == .cancelled {
            throw .cancelled
        } catch {
            throw .transport(LogEscaping.truncated("\(error)", maxBytes: 300))
        }
    }

    /// Runs `body` and gives up after `timeout`: whichever finishes first wins and the other is cancelled (the
    /// HTTP request then stops at once).
    static func withDeadline<T: Sendable>(
        _ timeout: TimeAmount, _ body: @escaping @Sendable () async throws(Failure) -> T
    ) async throws(Failure) -> T {
        do {
            return try await withThrowingTaskGroup(of: T.self) { group in
                group.addTask { try await body() }
                group.addTask {
                    try await Task.sleep(nanoseconds: UInt64(max(0, timeout.nanoseconds)))
                    throw Failure.timeout(timeout)
                }
                defer { group.cancelAll() }
                guard let first = try await group.next() else { throw Failure.timeout(timeout) }
                return first
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            // The sleep throws CancellationError only when the caller itself was cancelled.
            throw .cancelled
        }
    }
}
