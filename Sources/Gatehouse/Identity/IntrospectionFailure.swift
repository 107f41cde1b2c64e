/// Why an introspection request gave no usable answer, from a fixed set: the text goes into 503 answers,
/// `GET /auth` and logs, so it never carries the endpoint's own words.
enum IntrospectionFailure: String, Error, Sendable, Equatable {
    case timeout = "introspection endpoint timed out"
    case unreachable = "introspection endpoint unreachable"
    /// 401 or 403: the endpoint refused the proxy's client credentials.
    case credentialsRefused = "introspection endpoint refused the client credentials"
    case errorStatus = "introspection endpoint answered an error status"
    case tooLarge = "introspection answer too large"
    case malformed = "introspection answer malformed"
    /// `max_concurrent` requests in flight and the waiting queue full.
    case busy = "too many introspection requests waiting"
    /// Only in `gatehouse check`, where nothing is fetched.
    case notStarted = "introspection not started"
}
