import SwiftASN1
import X509

/// Distinguished names as RFC 4514 text that is safe as an HTTP field value.
///
/// RDNs are written last first (RFC 4514 §2.1), attribute types by their short names or dotted OIDs, string
/// values escaped as §2.4 requires; non-string values as `#` and the hex of their DER. Every byte outside printable
/// ASCII (controls, DEL, UTF-8 of non-ASCII characters) is written as `\XX`, which §2.4 allows for any character:
/// the text cannot carry CR or LF into a header and reads back to the same name.
enum ClientCertificateName {
    /// Short names RFC 4514 §3 lists.
    private static let shortNames: [ASN1ObjectIdentifier: String] = [
        .RDNAttributeType.commonName: "CN",
        .RDNAttributeType.localityName: "L",
        .RDNAttributeType.stateOrProvinceName: "ST",
        .RDNAttributeType.organizationName: "O",
        .RDNAttributeType.organizationalUnitName: "OU",
        .RDNAttributeType.countryName: "C",
        .RDNAttributeType.streetAddress: "STREET",
        .RDNAttributeType.domainComponent: "DC",
        [0, 9, 2342, 19_200_300, 100, 1, 1]: "UID",
    ]

    static func rfc4514(_ name: DistinguishedName) -> String {
        name.reversed().map { rdn in
            rdn.map { attribute in
                let type = Self.shortNames[attribute.type] ?? attribute.type.description
                return type + "=" + Self.value(attribute.value)
            }.joined(separator: "+")
        }.joined(separator: ",")
    }

    /// The first CN of `name`, as it is written (nil when there is none or it is not a string).
    static func firstCommonName(_ name: DistinguishedName) -> String? {
        for rdn in name {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value)
            }
        }
        return nil
    }

    /// One attribute value, escaped.
    static func value(_ value: RelativeDistinguishedName.Attribute.Value) -> String {
        guard let text = String(value) else {
            var serializer = DER.Serializer()
            guard (try? serializer.serialize(ASN1Any(value))) != nil else { return "#" }
            return "#" + serializer.serializedBytes.map { Self.hex($0) }.joined()
        }
        return Self.escape(text)
    }

    /// RFC 4514 §2.4 escaping, plus `\XX` for every byte outside printable ASCII.
    static func escape(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var result = ""
        result.reserveCapacity(bytes.count)
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "<"),
                UInt8(ascii: ">"), UInt8(ascii: "\\"):
                result += "\\" + String(UnicodeScalar(byte))
            case UInt8(ascii: "#") where index == 0:
                result += "\\#"
            case UInt8(ascii: " ") where index == 0 || index == bytes.count - 1:
                result += "\\ "
            case 0x21...0x7E, UInt8(ascii: " "):
                result.unicodeScalars.append(UnicodeScalar(byte))
            default:
                result += "\\" + Self.hex(byte).uppercased()
            }
        }
        return result
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}
