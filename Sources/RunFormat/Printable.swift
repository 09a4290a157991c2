/// Text from files and file names made safe to print on one terminal line.
public enum Printable {
    /// Control characters (C0, DEL, C1, and line and paragraph separators) as `\u{..}` escapes:
    /// a file or class name must not move the cursor, clear the screen or forge a second line.
    public static func escaped(_ text: some StringProtocol) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0..<0x20, 0x7F..<0xA0, 0x2028, 0x2029:
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// At most `limit` characters of `text`, escaped, with "…" where it was cut.
    public static func clipped(_ text: some StringProtocol, limit: Int = 80) -> String {
        let prefix = text.prefix(limit)
        return escaped(prefix) + (prefix.endIndex < text.endIndex ? "…" : "")
    }
}
