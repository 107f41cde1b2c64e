import GatehouseCluster
import Logging

extension ClusterNode {
    /// The node for a `cluster:` section: the database URL comes from the environment variable it names, and any
    /// error names that variable and the part that is wrong, never the URL itself (it carries the password).
    static func make(_ config: ClusterConfig, environment: [String: String], logger: Logger, metrics: ProxyMetrics) throws(ConfigError) -> ClusterNode {
        let url = try Self.url(config, environment: environment)
        let store: PostgresClusterStore
        do {
            store = try PostgresClusterStore(url: url, logger: logger)
        } catch {
            throw config.position.error("cluster.postgres: \(error)")
        }
        return ClusterNode(config: config, store: store, logger: logger, metrics: ClusterMetrics(factory: metrics.factory))
    }

    static func url(_ config: ClusterConfig, environment: [String: String]) throws(ConfigError) -> PostgresURL {
        guard let text = environment[config.urlEnv], !text.isEmpty else {
            throw config.position.error("cluster.postgres.url_env: the environment variable \(config.urlEnv) is not set")
        }
        do {
            return try PostgresURL(text)
        } catch {
            throw config.position.error("cluster.postgres.url_env: \(config.urlEnv) is not a usable PostgreSQL URL: \(error)")
        }
    }
}
