import Canvas

/// Class colours: Paul Tol's "muted" scheme, designed to stay distinguishable with
/// colour-vision deficiencies, with a medium grey as the tenth colour. Cycles past ten classes.
public enum Palette {
    public static let classes: [Color] = [
        0x332288, 0x88CCEE, 0x44AA99, 0x117733, 0x999933,
        0xDDCC77, 0xCC6677, 0x882255, 0xAA4499, 0x888888,
    ].map { Color(hex: $0) }

    public static func color(forClass label: Int) -> Color {
        classes[((label % classes.count) + classes.count) % classes.count]
    }

    static let ink = Color(hex: 0x222222)
    static let secondaryInk = Color(hex: 0x666666)
    static let faintInk = Color(hex: 0x999999)
    static let rule = Color(hex: 0xD0D0D0)
    static let grid = Color(hex: 0xEBEBEB)
    static let panel = Color(hex: 0xFAFAFA)
    static let loss = Color(hex: 0x0072B2)
    static let evaluationLoss = Color(hex: 0xD55E00)
    static let highlight = Color(hex: 0xD55E00)
    /// Behind a comparison panel's state when it is not the current checkpoint.
    static let badge = Color(hex: 0xECECEC)

    /// A comparison's runs in the loss chart and the panel headers: Okabe and Ito's blue and
    /// vermillion, then ink; none of them a class colour.
    static let runs: [Color] = [0x0072B2, 0xD55E00, 0x222222].map { Color(hex: $0) }

    static func color(forRun run: Int) -> Color { runs[min(max(run, 0), runs.count - 1)] }
}
