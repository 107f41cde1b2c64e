import Logging
import NIOCore
import Synchronization

/// What every loop and connection shares: logging, the access log, metrics, the pending-connection counter,
/// connection ids, the drain flag, and the ``LoopRuntime`` of each event loop.
final class ProxyEngine: Sendable {
    let logger: Logger
    let accessLog: AccessLog
    let metrics: ProxyMetrics
    /// Connections not carrying a WebSocket yet, over every listener and loop.
    let pending = PendingConnectionCounter()
    /// Cluster mode, when `cluster:` is configured.
    let cluster: ClusterHooks?
    private let loops: [ObjectIdentifier: LoopRuntime]
    private let nextID = Atomic<UInt64>(1)
    private let drainingFlag = Atomic<Bool>(false)

    init(loops: [LoopRuntime], logger: Logger, accessLog: AccessLog, metrics: ProxyMetrics, cluster: ClusterHooks? = nil) {
        self.cluster = cluster
        self.loops = Dictionary(uniqueKeysWithValues: loops.map { (ObjectIdentifier($0.eventLoop), $0) })
        self.logger = logger
        self.accessLog = accessLog
        self.metrics = metrics
    }

    /// The runtime of the loop a connection runs on.
    func loop(_ eventLoop: EventLoop) -> LoopRuntime {
        guard let runtime = self.loops[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("connection on an event loop the proxy does not own")
        }
        return runtime
    }

    /// Every loop's runtime.
    var allLoops: [LoopRuntime] { Array(self.loops.values) }

    /// A new process-unique connection id.
    func makeConnectionID() -> UInt64 {
        self.nextID.add(1, ordering: .relaxed).oldValue
    }

    /// Whether the proxy is draining: new handshakes get 503.
    var isDraining: Bool {
        get { self.drainingFlag.load(ordering: .relaxed) }
    }

    func startDraining() {
        self.drainingFlag.store(true, ordering: .relaxed)
    }

    /// Logs and counts a refused handshake (both HTTP versions' handlers answer refusals themselves).
    func refused(_ refusal: HandshakeRefusal, request: UpgradeRequest?, listener: String, client: String, route: String?, backend: String? = nil) {
        (route.map { self.metrics.route($0) } ?? self.metrics.noRoute).handshake(status: refusal.status.code)
        self.accessLog.refused(refusal, request: request, listener: listener, client: client, route: route, backend: backend)
    }
}
