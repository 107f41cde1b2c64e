"""A minimal OTLP/HTTP+JSON trace receiver for TracingTests.

Prints "listening PORT", then one line per received span: "SPAN <name> <json>" where the JSON holds the trace id
and parent span id in hex and the attributes as a flat object. Stdlib only; loopback only.
"""
import base64
import binascii
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def hex_id(value):
    # The OTLP JSON mapping says hex; protobuf's JSON mapping says base64: accept both.
    if not value:
        return ""
    if all(c in "0123456789abcdefABCDEF" for c in value) and len(value) in (16, 32):
        return value.lower()
    return binascii.hexlify(base64.b64decode(value)).decode()


def plain(value):
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    return None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = min(int(self.headers.get("Content-Length", "0")), 10_000_000)
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except ValueError:
            print("BAD %s %r" % (self.headers.get("Content-Type"), body[:200]), flush=True)
            self.send_response(400)
            self.end_headers()
            return
        for resource in payload.get("resourceSpans", []):
            resource_attributes = {a["key"]: plain(a.get("value", {})) for a in resource.get("resource", {}).get("attributes", [])}
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    attributes = {a["key"]: plain(a.get("value", {})) for a in span.get("attributes", [])}
                    record = {
                        "path": self.path,
                        "trace": hex_id(span.get("traceId")),
                        "span": hex_id(span.get("spanId")),
                        "parent": hex_id(span.get("parentSpanId")),
                        "attributes": attributes,
                        "service": resource_attributes.get("service.name"),
                    }
                    print("SPAN %s %s" % (span.get("name"), json.dumps(record)), flush=True)
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print("listening %d" % server.server_address[1], flush=True)
server.serve_forever()
