/// The explorer's whole URL space. A request target is matched byte for byte against these
/// paths, undecoded: no URL is ever turned into a file path, and anything else is not found,
/// whatever it decodes to (`..`, `%2e%2e`, `..%2f`, doubled encodings, absolute paths and
/// absolute-form targets, NUL bytes, backslashes). `%` itself never matches.
public enum ExplorerRoute: Equatable, Sendable {
    /// `/` and `/index.html`: the page.
    case page
    /// `/app.js`, `/style.css`, `/favicon.svg`: the page's bundled assets, by name.
    case asset(String)
    /// `/api/run`: the run's facts and the steps analysed so far.
    case run
    /// `/api/events`: Server-Sent Events, one `checkpoint` event per analysed step.
    case events
    /// `/api/checkpoints/<step>/points`: the aligned display coordinates, float32 little-endian.
    case points(step: Int)
    /// `/api/checkpoints/<step>/scores`: leaderboards and label agreement, JSON.
    case scores(step: Int)

    /// Longer targets are refused before they are looked at.
    public static let maximumTargetLength = 512

    /// The route of a raw request target (path and optional query, as received), or nil.
    /// The query is ignored; the path must be one of the routes exactly, a step in canonical
    /// decimal (no sign, no leading zero, at most 16 digits).
    public static func match(target: String) -> ExplorerRoute? {
        let bytes = Array(target.utf8)
        guard bytes.count <= maximumTargetLength else { return nil }
        let pathBytes = bytes.prefix { $0 != UInt8(ascii: "?") }
        // Only unreserved characters and '/': no '%', '\', ':', NUL or anything else to decode.
        guard pathBytes.allSatisfy(isPathByte) else { return nil }
        let path = String(decoding: pathBytes, as: UTF8.self)
        switch path {
        case "/", "/index.html": return .page
        case "/app.js", "/style.css", "/favicon.svg": return .asset(String(path.dropFirst()))
        case "/api/run": return .run
        case "/api/events": return .events
        default: break
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "api", parts[2] == "checkpoints",
              let step = canonicalStep(parts[3]) else { return nil }
        switch parts[4] {
        case "points": return .points(step: step)
        case "scores": return .scores(step: step)
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

    private static func canonicalStep(_ text: Substring) -> Int? {
        guard (1...16).contains(text.count), text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              text == "0" || !text.hasPrefix("0") else { return nil }
        return Int(text)
    }
}
