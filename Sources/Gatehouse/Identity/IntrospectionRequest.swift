import Foundation

/// The pieces of an RFC 7662 request: the form body and the HTTP Basic credentials.
enum IntrospectionRequest {
    /// `token=…&token_type_hint=access_token`, form-urlencoded.
    static func body(token: String) -> String {
        "token=\(Self.formEncode(token))&token_type_hint=access_token"
    }

    /// `Basic base64(id ":" secret)` with id and secret form-urlencoded first, as RFC 6749 §2.3.1 requires (so a
    /// colon in the id cannot move the split).
    static func basicAuthorization(clientID: String, clientSecret: String) -> String {
        let pair = "\(Self.formEncode(clientID)):\(Self.formEncode(clientSecret))"
        return "Basic " + Data(pair.utf8).base64EncodedString()
    }

    /// application/x-www-form-urlencoded (WHATWG): ASCII letters, digits and `*-._` as they are, space as `+`,
    /// every other UTF-8 byte as `%XX`.
    static func formEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "*"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                out.append(byte)
            case UInt8(ascii: " "):
                out.append(UInt8(ascii: "+"))
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
