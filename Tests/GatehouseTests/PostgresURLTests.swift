import Foundation
import Testing
@testable import GatehouseCluster

/// `cluster.url` parsing: what `PostgresClient` gets, libpq's defaults, precise errors that never quote the password.
@Suite("PostgresURL")
struct PostgresURLTests {
    struct Valid: CustomTestStringConvertible, Sendable {
        var text: String
        var expected: PostgresURL
        var testDescription: String { self.text }
    }

    static let valid: [Valid] = [
        Valid(
            text: "postgres://gh:secret@db.example.com/cluster",
            expected: PostgresURL(
                host: "db.example.com", username: "gh", password: "secret", database: "cluster", sslMode: .verifyFull)),
        Valid(
            text: "postgresql://gh:secret@10.0.0.5:6432/cluster?sslmode=require",
            expected: PostgresURL(
                host: "10.0.0.5", port: 6432, username: "gh", password: "secret", database: "cluster", sslMode: .require)),
        Valid(
            text: "POSTGRES://gh@localhost",
            expected: PostgresURL(host: "localhost", username: "gh", password: nil, database: "gh")),
        Valid(
            text: "postgres://gh:@localhost/",
            expected: PostgresURL(host: "localhost", username: "gh", password: "", database: "gh")),
        Valid(
            text: "postgres://g%68:s%40c%3Aret%2F%3F%23@[::1]:5433/my%20db?sslmode=disable",
            expected: PostgresURL(
                host: "::1", port: 5433, username: "gh", password: "s@c:ret/?#", database: "my db", sslMode: .disable)),
        Valid(
            text: "postgres://gh:p@ss:w?rd@[fe80::1:2]/db?application_name=node%201",
            expected: PostgresURL(
                host: "fe80::1:2", username: "gh", password: "p@ss:w?rd", database: "db", sslMode: .verifyFull,
                applicationName: "node 1")),
        Valid(
            text: "postgres://gh:x@db?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem",
            expected: PostgresURL(
                host: "db", username: "gh", password: "x", database: "gh", sslMode: .verifyFull,
                sslRootCert: "/etc/ssl/ca.pem")),
        Valid(
            text: "postgres://gh:x@db/d?sslmode=verify-ca",
            expected: PostgresURL(host: "db", username: "gh", password: "x", database: "d", sslMode: .verifyCA)),
    ]

    @Test(arguments: Self.valid)
    func parses(_ valid: Valid) throws {
        #expect(try PostgresURL(valid.text) == valid.expected)
    }

    /// libpq's, but for `sslmode`: verified TLS unless the database is on loopback.
    @Test func defaultsAreLibpqsButVerifiedTLSAwayFromLoopback() throws {
        let url = try PostgresURL("postgres://gh:pw@host")
        #expect(url.port == 5432)
        #expect(url.sslMode == .verifyFull)
        for loopback in ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"] {
            #expect(try PostgresURL("postgres://gh:pw@\(loopback)").sslMode == .prefer, "\(loopback)")
        }
        #expect(url.database == "gh")
        #expect(url.sslRootCert == nil)
    }

    static let secret = "Hunter2-SECRET"

    struct Invalid: CustomTestStringConvertible, Sendable {
        var text: String
        var error: PostgresURLError
        var testDescription: String { self.text.replacingOccurrences(of: PostgresURLTests.secret, with: "***") }
    }

    static let invalid: [Invalid] = [
        Invalid(text: "mysql://gh:\(secret)@db/x", error: .scheme),
        Invalid(text: "gh:\(secret)@db/x", error: .scheme),
        Invalid(text: "postgres://db/x", error: .missingUser),
        Invalid(text: "postgres://:\(secret)@db/x", error: .missingUser),
        Invalid(text: "postgres://gh:\(secret)@/x", error: .missingHost),
        Invalid(text: "postgres://gh:\(secret)@:5432/x", error: .missingHost),
        Invalid(text: "postgres://gh:\(secret)@db:0/x", error: .invalidPort),
        Invalid(text: "postgres://gh:\(secret)@db:65536/x", error: .invalidPort),
        Invalid(text: "postgres://gh:\(secret)@db:54a/x", error: .invalidPort),
        Invalid(text: "postgres://gh:\(secret)@db:/x", error: .invalidPort),
        Invalid(text: "postgres://gh:\(secret)@[::1/x", error: .invalidHost),
        Invalid(text: "postgres://gh:\(secret)@[db]/x", error: .invalidHost),
        Invalid(text: "postgres://gh:\(secret)@[::1]5432/x", error: .invalidHost),
        Invalid(text: "postgres://gh:\(secret)@d b/x", error: .invalidHost),
        // A '/' in the password, not encoded: refused without quoting what follows it as a host or database.
        Invalid(text: "postgres://gh:Hunter2/\(secret)@db/x", error: .unencodedUserInfo),
        Invalid(text: "postgres://gh:\(secret)%zz@db/x", error: .encoding(.password)),
        Invalid(text: "postgres://gh:\(secret)%C3@db/x", error: .encoding(.password)),
        Invalid(text: "postgres://g%@db/x", error: .encoding(.user)),
        Invalid(text: "postgres://gh:\(secret)@db/x%2", error: .encoding(.database)),
        Invalid(text: "postgres://gh:\(secret)@db/x/y", error: .invalidDatabase),
        Invalid(text: "postgres://gh:\(secret)@db/x#frag", error: .fragment),
        Invalid(text: "postgres://gh:\(secret)@db/x?sslmod=disable", error: .unknownParameter("sslmod")),
        Invalid(text: "postgres://gh:\(secret)@db/x?connect_timeout=5", error: .unknownParameter("connect_timeout")),
        Invalid(text: "postgres://gh:\(secret)@db/x?sslmode=allow", error: .sslMode("allow")),
        Invalid(text: "postgres://gh:\(secret)@db/x?sslmode=REQUIRE", error: .sslMode("REQUIRE")),
        Invalid(text: "postgres://gh:\(secret)@db/x?sslmode=", error: .emptyParameter("sslmode")),
        Invalid(text: "postgres://gh:\(secret)@db/x?sslmode", error: .emptyParameter("sslmode")),
        Invalid(text: "postgres://gh:\(secret)@db/x?sslmode=disable&sslmode=require", error: .duplicateParameter("sslmode")),
        Invalid(text: "postgres://gh:\(secret)@db/x?sslmode=require&sslrootcert=/ca.pem", error: .rootCertWithoutVerification),
        Invalid(text: "postgres://gh:\(secret)@127.0.0.1/x?sslrootcert=/ca.pem", error: .rootCertWithoutVerification),
    ]

    @Test(arguments: Self.invalid)
    func refuses(_ invalid: Invalid) {
        #expect(throws: invalid.error) { try PostgresURL(invalid.text) }
        do {
            _ = try PostgresURL(invalid.text)
        } catch {
            #expect(!error.description.contains(Self.secret))
            #expect(!error.description.contains("Hunter2"))
            #expect(!String(reflecting: error).contains("Hunter2"))
        }
    }

    @Test func errorsSayWhatIsWrong() {
        #expect(PostgresURLError.sslMode("allow").description.contains("verify-full"))
        #expect(PostgresURLError.unknownParameter("sslmod").description.contains("'sslmod'"))
        #expect(PostgresURLError.encoding(.password).description.contains("password"))
    }

    @Test func printedFormsHideThePassword() throws {
        let url = try PostgresURL("postgres://gh:\(Self.secret)@[::1]:5433/db?sslmode=verify-full&sslrootcert=/ca.pem")
        #expect(url.redacted == "postgres://gh:***@[::1]:5433/db?sslmode=verify-full&sslrootcert=%2Fca.pem")
        #expect("\(url)" == url.redacted)
        for text in [String(describing: url), String(reflecting: url), "\([url])", "\(Optional(url) as Any)"] {
            #expect(!text.contains(Self.secret), "\(text)")
        }
        var dumped = ""
        dump(url, to: &dumped)
        #expect(!dumped.contains(Self.secret))
        let withoutPassword = try PostgresURL("postgres://gh@db")
        #expect(withoutPassword.redacted == "postgres://gh@db:5432/gh?sslmode=verify-full")
    }

    @Test func redactedFormParsesBack() throws {
        let url = try PostgresURL("postgres://g%20h:pw@db:6000/my%2Fdb?sslmode=require&application_name=a%26b")
        #expect(url.database == "my/db")
        let again = try PostgresURL(url.redacted)
        #expect(again.username == "g h")
        #expect(again.database == "my/db")
        #expect(again.applicationName == "a&b")
        #expect(again.sslMode == .require)
        #expect(again.port == 6000)
    }
}
