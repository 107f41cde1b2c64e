/// Traffic already added to the route's counters.
struct ReportedTraffic {
    var bytesFromClient = 0
    var bytesFromBackend = 0
    var messagesFromClient = 0
    var messagesFromBackend = 0
}

extension RelaySession {
    /// Adds what changed since the last report to the route's counters.
    func reportTraffic() {
        self.trafficDirty = false
        let record = self.record
        if record.bytesFromClient != self.reported.bytesFromClient {
            self.metrics.bytesFromClient.increment(by: record.bytesFromClient - self.reported.bytesFromClient)
            self.reported.bytesFromClient = record.bytesFromClient
        }
        if record.bytesFromBackend != self.reported.bytesFromBackend {
            self.metrics.bytesFromBackend.increment(by: record.bytesFromBackend - self.reported.bytesFromBackend)
            self.reported.bytesFromBackend = record.bytesFromBackend
        }
        if self.fromClient.messages != self.reported.messagesFromClient {
            self.metrics.messagesFromClient.increment(by: self.fromClient.messages - self.reported.messagesFromClient)
            self.reported.messagesFromClient = self.fromClient.messages
        }
        if self.fromBackend.messages != self.reported.messagesFromBackend {
            self.metrics.messagesFromBackend.increment(by: self.fromBackend.messages - self.reported.messagesFromBackend)
            self.reported.messagesFromBackend = self.fromBackend.messages
        }
    }
}
