internal import CCairo

/// An sRGB colour with straight (not premultiplied) alpha, components in 0...1.
public struct Color: Sendable, Equatable {
    public var red, green, blue, alpha: Double

    public init(red: Double, green: Double, blue: Double, alpha: Double = 1) {
        self.red = red
        self.green = green
        self.blue = blue
        self.alpha = alpha
    }

    /// `0xRRGGBB`.
    public init(hex: UInt32, alpha: Double = 1) {
        self.init(red: Double(hex >> 16 & 0xFF) / 255, green: Double(hex >> 8 & 0xFF) / 255,
                  blue: Double(hex & 0xFF) / 255, alpha: alpha)
    }

    public func withAlpha(_ alpha: Double) -> Color { Color(red: red, green: green, blue: blue, alpha: alpha) }

    public static let white = Color(hex: 0xFFFFFF)
}

public struct Rect: Sendable, Equatable {
    public var x, y, width, height: Double

    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var maxX: Double { x + width }
    public var maxY: Double { y + height }
}

public enum FontWeight: Sendable { case regular, bold }
public enum TextAnchor: Sendable { case left, center, right }

/// An owned Cairo drawing context on an `ImageSurface` (`cairo_create`).
public final class GraphicsContext {
    let handle: OpaquePointer
    private let surface: ImageSurface  // keeps the target alive
    /// The font family, resolved by fontconfig.
    public var fontFamily = "DejaVu Sans"

    public init(_ surface: ImageSurface) throws(CanvasError) {
        let context = cairo_create(surface.handle)!
        let status = cairo_status(context)
        guard status == CAIRO_STATUS_SUCCESS else {
            cairo_destroy(context)
            throw CanvasError("cairo_create", status)
        }
        handle = context
        self.surface = surface
    }

    deinit { cairo_destroy(handle) }

    /// Cairo's status is sticky: one check after a frame catches any failed call in it.
    public func checkStatus() throws(CanvasError) {
        let status = cairo_status(handle)
        guard status == CAIRO_STATUS_SUCCESS else { throw CanvasError("drawing", status) }
    }

    public func setColor(_ c: Color) { cairo_set_source_rgba(handle, c.red, c.green, c.blue, c.alpha) }
    public func setLineWidth(_ width: Double) { cairo_set_line_width(handle, width) }
    public func setDash(_ pattern: [Double]) { cairo_set_dash(handle, pattern, Int32(pattern.count), 0) }

    public func fill(_ rect: Rect, _ color: Color) {
        setColor(color)
        cairo_rectangle(handle, rect.x, rect.y, rect.width, rect.height)
        cairo_fill(handle)
    }

    public func strokeRect(_ rect: Rect, _ color: Color, width: Double) {
        setColor(color)
        setLineWidth(width)
        cairo_rectangle(handle, rect.x, rect.y, rect.width, rect.height)
        cairo_stroke(handle)
    }

    public func line(from a: (Double, Double), to b: (Double, Double), _ color: Color, width: Double) {
        setColor(color)
        setLineWidth(width)
        cairo_move_to(handle, a.0, a.1)
        cairo_line_to(handle, b.0, b.1)
        cairo_stroke(handle)
    }

    /// Strokes a polyline through `points`.
    public func polyline(_ points: [(Double, Double)], _ color: Color, width: Double) {
        guard let first = points.first else { return }
        setColor(color)
        setLineWidth(width)
        cairo_set_line_join(handle, CAIRO_LINE_JOIN_ROUND)
        cairo_move_to(handle, first.0, first.1)
        for p in points.dropFirst() { cairo_line_to(handle, p.0, p.1) }
        cairo_stroke(handle)
    }

    public func circle(center: (Double, Double), radius: Double, fill: Color? = nil, stroke: Color? = nil, lineWidth: Double = 1) {
        cairo_new_sub_path(handle)
        cairo_arc(handle, center.0, center.1, radius, 0, 2 * Double.pi)
        if let fill {
            setColor(fill)
            if stroke != nil { cairo_fill_preserve(handle) } else { cairo_fill(handle) }
        }
        if let stroke {
            setColor(stroke)
            setLineWidth(lineWidth)
            cairo_stroke(handle)
        }
    }

    private func selectFont(size: Double, weight: FontWeight) {
        cairo_select_font_face(handle, fontFamily, CAIRO_FONT_SLANT_NORMAL,
                               weight == .bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(handle, size)
    }

    /// The most Unicode scalars a drawn text has, ellipsis included: more than fit across the
    /// widest frame at any legible size, and a bound on the work of measuring any input.
    public static let characterLimit = 400

    /// The advance width of `text` as `text(_:x:y:...)` draws it (without a `maxWidth`).
    public func textWidth(_ text: String, size: Double, weight: FontWeight = .regular) -> Double {
        fit(text, keeping: "", maxWidth: .infinity, size: size, weight: weight).width
    }

    /// The advance width of text already made `drawable`.
    private func measure(_ text: String, size: Double, weight: FontWeight) -> Double {
        selectFont(size: size, weight: weight)
        var extents = cairo_text_extents_t()
        cairo_text_extents(handle, text, &extents)
        return extents.x_advance
    }

    /// Draws `text` with its baseline at `y`, anchored at `x`; returns the width drawn. Text wider
    /// than `maxWidth` is cut short with an ellipsis, before `keeping`, which stays whole if it fits.
    @discardableResult
    public func text(_ text: String, keeping suffix: String = "", x: Double, y: Double, size: Double,
                     weight: FontWeight = .regular, color: Color, anchor: TextAnchor = .left,
                     maxWidth: Double = .infinity) -> Double {
        let (shown, width) = fit(text, keeping: suffix, maxWidth: maxWidth, size: size, weight: weight)
        let left: Double
        switch anchor {
        case .left: left = x
        case .center: left = x - width / 2
        case .right: left = x - width
        }
        setColor(color)
        cairo_move_to(handle, left, y)
        cairo_show_text(handle, shown)
        return width
    }

    /// Draws `text` rotated a quarter turn counter-clockwise, centred on (x, y): a vertical axis label.
    public func verticalText(_ text: String, x: Double, y: Double, size: Double, color: Color) {
        cairo_save(handle)
        cairo_translate(handle, x, y)
        cairo_rotate(handle, -Double.pi / 2)
        self.text(text, x: 0, y: 0, size: size, color: color, anchor: .center)
        cairo_restore(handle)
    }

    /// `text + suffix` as drawn: made `drawable`, then `text` cut short with an ellipsis until the
    /// whole fits in `maxWidth` ("" if nothing does). `suffix` is kept whole unless it alone is too wide.
    ///
    /// The work is bounded whatever the input: at most `characterLimit` scalars are looked at,
    /// and the length that fits is found by bisection (about ten measurements).
    public func fitting(_ text: String, keeping suffix: String = "", maxWidth: Double, size: Double,
                        weight: FontWeight = .regular) -> String {
        fit(text, keeping: suffix, maxWidth: maxWidth, size: size, weight: weight).text
    }

    /// `fitting`, with the width of its result.
    private func fit(_ text: String, keeping suffix: String, maxWidth: Double, size: Double,
                     weight: FontWeight) -> (text: String, width: Double) {
        var head = Self.drawable(text), tail = Self.drawable(suffix)
        func measured(_ scalars: [Unicode.Scalar]) -> (text: String, width: Double) {
            let text = Self.string(scalars)
            return (text, measure(text, size: size, weight: weight))
        }
        if !tail.isEmpty && (tail.count >= Self.characterLimit || !(measured(tail + ["…"]).width <= maxWidth)) {
            head += tail
            tail = []
        }
        if head.count + tail.count <= Self.characterLimit {
            let whole = measured(head + tail)
            if whole.width <= maxWidth { return whole }
        }
        func shortened(_ count: Int) -> (text: String, width: Double) { measured(Array(head.prefix(count)) + ["…"] + tail) }
        // Invariant: `best` (`fits` scalars kept) fits; keeping `tooLong` does not, or passes the limit.
        var best = shortened(0), fits = 0, tooLong = min(head.count, Self.characterLimit - tail.count)
        guard !head.isEmpty, best.width <= maxWidth else { return ("", 0) }
        while tooLong - fits > 1 {
            let middle = (fits + tooLong) / 2, candidate = shortened(middle)
            if candidate.width <= maxWidth { (best, fits) = (candidate, middle) } else { tooLong = middle }
        }
        return best
    }

    /// The first `characterLimit + 1` scalars of `text` (one more, to tell that it goes on), each
    /// safe to hand to Cairo: its toy text API rejects noncharacters such as U+FFFF with a sticky
    /// error, and has no glyphs for control characters. Whitespace controls become spaces, the
    /// rest U+FFFD.
    static func drawable(_ text: String) -> [Unicode.Scalar] {
        text.unicodeScalars.prefix(characterLimit + 1).map { scalar in
            if scalar.properties.generalCategory == .control { return scalar.properties.isWhitespace ? " " : "\u{FFFD}" }
            return scalar.properties.isNoncharacterCodePoint ? "\u{FFFD}" : scalar
        }
    }

    private static func string(_ scalars: [Unicode.Scalar]) -> String {
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars)
        return text
    }

    /// Draws what `body` draws inside `clip` at `opacity`, as one layer: overlapping parts of it
    /// do not show through each other (a cross-fade, not a double exposure). The layer is only as
    /// large as `clip`.
    public func withOpacity<Failure: Error>(_ opacity: Double, clip: Rect, _ body: () throws(Failure) -> Void) throws(Failure) {
        guard opacity > 0 else { return }
        guard opacity < 1 else { return try body() }
        cairo_save(handle)
        cairo_rectangle(handle, clip.x, clip.y, clip.width, clip.height)
        cairo_clip(handle)
        cairo_push_group(handle)
        defer {
            cairo_pop_group_to_source(handle)
            cairo_paint_with_alpha(handle, opacity)
            cairo_restore(handle)
        }
        try body()
    }

    /// Fills the polygon through `corners`.
    public func fillPolygon(_ corners: [(Double, Double)], _ color: Color) {
        guard let first = corners.first else { return }
        setColor(color)
        cairo_move_to(handle, first.0, first.1)
        for p in corners.dropFirst() { cairo_line_to(handle, p.0, p.1) }
        cairo_close_path(handle)
        cairo_fill(handle)
    }

    /// Paints `image` scaled into `rect`; `pixelated` keeps hard pixel edges (nearest-neighbour).
    public func draw(_ image: ImageSurface, in rect: Rect, pixelated: Bool) {
        cairo_save(handle)
        cairo_rectangle(handle, rect.x, rect.y, rect.width, rect.height)
        cairo_clip(handle)
        cairo_translate(handle, rect.x, rect.y)
        cairo_scale(handle, rect.width / Double(image.width), rect.height / Double(image.height))
        cairo_set_source_surface(handle, image.handle, 0, 0)
        let pattern = cairo_get_source(handle)
        cairo_pattern_set_filter(pattern, pixelated ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD)
        cairo_pattern_set_extend(pattern, CAIRO_EXTEND_PAD)
        cairo_paint(handle)
        cairo_restore(handle)
    }
}
