import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// Sends one introspection request on the shared HTTP client and reads the answer within the limits.
///
/// The client's deadline covers only the answer's head, so ``introspect(_:)`` races the whole exchange (the wait
/// for a ``IntrospectionLimiter`` slot and the body included) against `timeout`; losing the race cancels it. A custom CA is passed per request
/// (`tlsConfiguration`), so the shared client serves every provider and no client has to be shut down per provider
/// or per reload; requests with different TLS settings use different pooled connections. Redirects are refused by
/// the shared client's configuration: a 3xx is an error status here.
struct IntrospectionClient: Sendable {
    let httpClient: HTTPClient
    let endpoint: String
    /// The `Authorization` value; never logged (the client's logger is disabled, and nothing here logs).
    let authorization: String
    /// TLS 1.2 at least; trusts `ca` when set, else the system roots.
    let tls: TLSConfiguration
    let timeout: Duration
    let maxResponseBytes: Int
    let limiter: IntrospectionLimiter

    /// The endpoint's answer on `token`.
    func introspect(_ token: String) async throws(IntrospectionFailure) -> IntrospectionAnswer {
        let timeout = self.timeout
        let result = await withTaskGroup(of: Result<IntrospectionAnswer, IntrospectionFailure>?.self) { group in
            group.addTask {
                do {
                    try await self.limiter.acquire()
                } catch is IntrospectionLimiter.Busy {
                    return .failure(.busy)
                } catch {
                    return nil
                }
                defer { self.limiter.release() }
                return await self.exchange(token)
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let result else { throw .timeout }
        return try result.get()
    }

    private func exchange(_ token: String) async -> Result<IntrospectionAnswer, IntrospectionFailure> {
        var request = HTTPClientRequest(url: self.endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "Authorization", value: self.authorization)
        request.headers.add(name: "User-Agent", value: "gatehouse/\(GatehouseVersion.string)")
        request.body = .bytes(ByteBuffer(string: IntrospectionRequest.body(token: token)))
        request.tlsConfiguration = self.tls
        do {
            let response = try await self.httpClient.execute(request, deadline: .now() + TimeAmount(self.timeout))
            switch response.status.code {
            case 200: break
            case 401, 403: return .failure(.credentialsRefused)
            default: return .failure(.errorStatus)
            }
            let body = try await response.body.collect(upTo: self.maxResponseBytes)
            guard let answer = IntrospectionResponse.parse(body.readableBytesView) else { return .failure(.malformed) }
            return .success(answer)
        } catch is NIOTooManyBytesError {
            return .failure(.tooLarge)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return .failure(.timeout)
        } catch {
            return .failure(.unreachable)
        }
    }
}
