import Logging

extension RelaySession {
    /// What the access record adds for the frame layer: how it closed, who closed it, frames and messages each way.
    var accessMetadata: Logger.Metadata {
        var metadata: Logger.Metadata = [
            "frames_in": "\(self.fromClient.frames)",
            "frames_out": "\(self.fromBackend.frames)",
            "messages_in": "\(self.fromClient.messages)",
            "messages_out": "\(self.fromBackend.messages)",
        ]
        if let ending = self.ending {
            metadata["close_code"] = "\(ending.code.map(String.init) ?? "none")"
            metadata["closed_by"] = "\(ending.by)"
            if !ending.reason.isEmpty { metadata["close_reason"] = "\(ending.reason)" }
        } else {
            metadata["close_code"] = "none"
            metadata["closed_by"] = "unknown"
        }
        return metadata
    }
}
