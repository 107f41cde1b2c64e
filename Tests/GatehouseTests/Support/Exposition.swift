/// A parsed Prometheus text exposition: series (name and sorted labels) to value.
struct Exposition {
    let values: [String: Double]

    init(_ text: String) {
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            if let brace = series.firstIndex(of: "{") {
                let name = series[..<brace]
                let labels = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                    .split(separator: ",").map(String.init).sorted().joined(separator: ",")
                values["\(name){\(labels)}"] = value
            } else {
                values[String(series)] = value
            }
        }
        self.values = values
    }

    /// The value of `name` with exactly these labels (0 when absent).
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double {
        let key = labels.isEmpty ? name : "\(name){\(labels.map { "\($0.key)=\"\($0.value)\"" }.sorted().joined(separator: ","))}"
        return self.values[key] ?? self.values["\(name){}"] ?? 0
    }
}
