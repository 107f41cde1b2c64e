import Foundation
import GatehouseCluster

/// `gatehouse check` for the `cluster:` section: the URL variable is set and parses, and with `--connect` the
/// database answers.
public enum ClusterCheck {
    /// Returns a line to print when the cluster section is fine, nil without one; throws a precise error otherwise.
    public static func verify(_ config: ProxyConfig, connect: Bool, environment: [String: String]) async throws -> String? {
        guard let cluster = config.cluster else {
            if connect { return "no cluster: section; nothing to connect to" }
            return nil
        }
        let url = try ClusterNode.url(cluster, environment: environment)
        guard connect else {
            return "cluster node '\(cluster.node)': \(cluster.urlEnv) names \(url.redacted) (add --connect to try it)"
        }
        do {
            let version = try await PostgresClusterStore.probe(url, timeout: .seconds(10))
            return "cluster node '\(cluster.node)': \(url.redacted) answers (\(version))"
        } catch {
            throw cluster.position.error("cluster.postgres: \(url.redacted) does not answer: \(error)")
        }
    }
}
