/// The explorer's whole URL space. A request target is matched byte for byte against these
/// paths, undecoded: no URL is ever turned into a file path, and anything else is not found,
/// whatever it decodes to (`..`, `%2e%2e`, `..%2f`, doubled encodings, absolute paths and
/// absolute-form targets, NUL bytes, backslashes). `%` itself never matches.
public enum ExplorerRoute: Equatable, Sendable {
    /// `/` and `/index.html`: the page.
    case page
    /// `/app.js`, `/style.css`, `/favicon.svg`: the page's bundled assets, by name.
    case asset(String)
    /// `/api/runs`: the runs served (one, or the two of a comparison), by name.
    case runs
    /// `/api/run`: the run's facts and the steps analysed so far.
    case run
    /// `/api/events`: Server-Sent Events, one `checkpoint` event per analysed step.
    case events
    /// `/api/checkpoints/<step>/points`: the aligned display coordinates, float32 little-endian.
    case points(step: Int)
    /// `/api/checkpoints/<step>/scores`: leaderboards and label agreement, JSON.
    case scores(step: Int)
    /// `/api/loss`: the losses logged up to the newest analysed checkpoint, JSON.
    case loss
    /// `/api/samples/<index>`: one sample over every analysed checkpoint, JSON.
    case sample(index: Int)
    /// `/api/samples/<index>/image.png`: the sample's image.
    case sampleImage(index: Int)
    /// `/api/export.csv`: the whole table, as `embedlapse export` writes it.
    case table

    /// Longer targets are refused before they are looked at.
    public static let maximumTargetLength = 512

    /// The route of a raw request target (path and optional query, as received), and the run it
    /// asks about, or nil. `/api/runs/<r>/<rest>` is route `/api/<rest>` of run `r` (0 the left
    /// run of a comparison, 1 the right one); `/api/<rest>` is run 0's. The query is ignored; the
    /// path must be one of the routes exactly, a step, index or run in canonical decimal (no sign,
    /// no leading zero, at most 16 digits).
    public static func match(target: String) -> (run: Int, route: ExplorerRoute)? {
        let bytes = Array(target.utf8)
        guard bytes.count <= maximumTargetLength else { return nil }
        let pathBytes = bytes.prefix { $0 != UInt8(ascii: "?") }
        // Only unreserved characters and '/': no '%', '\', ':', NUL or anything else to decode.
        guard pathBytes.allSatisfy(isPathByte) else { return nil }
        let path = String(decoding: pathBytes, as: UTF8.self)
        if path == "/api/runs" { return (0, .runs) }
        let runPrefix = "/api/runs/"
        if path.hasPrefix(runPrefix) {
            let rest = path.dropFirst(runPrefix.count)
            guard let slash = rest.firstIndex(of: "/"), let run = canonicalNumber(rest[..<slash]),
                  let route = match(path: "/api" + rest[slash...]), route.isRunData else { return nil }
            return (run, route)
        }
        return match(path: path).map { (0, $0) }
    }

    /// Whether the route answers about one run (and so has a `/api/runs/<r>/` form).
    var isRunData: Bool {
        switch self {
        case .page, .asset, .runs: return false
        default: return true
        }
    }

    private static func match(path: String) -> ExplorerRoute? {
        switch path {
        case "/", "/index.html": return .page
        case "/app.js", "/style.css", "/favicon.svg": return .asset(String(path.dropFirst()))
        case "/api/run": return .run
        case "/api/events": return .events
        case "/api/loss": return .loss
        case "/api/export.csv": return .table
        default: break
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].isEmpty, parts[1] == "api", let number = canonicalNumber(parts[3]) else { return nil }
        switch (parts[2], parts.dropFirst(4).first, parts.count) {
        case ("checkpoints", "points", 5): return .points(step: number)
        case ("checkpoints", "scores", 5): return .scores(step: number)
        case ("samples", nil, 4): return .sample(index: number)
        case ("samples", "image.png", 5): return .sampleImage(index: number)
        default: return nil
        }
    }

    private static func isPathByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "/"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    private static func canonicalNumber(_ text: Substring) -> Int? {
        guard (1...16).contains(text.count), text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              text == "0" || !text.hasPrefix("0") else { return nil }
        return Int(text)
    }
}
