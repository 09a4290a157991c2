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

    /// The advance width of `text` in the given font.
    public func textWidth(_ text: String, size: Double, weight: FontWeight = .regular) -> Double {
        selectFont(size: size, weight: weight)
        var extents = cairo_text_extents_t()
        cairo_text_extents(handle, text, &extents)
        return extents.x_advance
    }

    /// Draws `text` with its baseline at `y`, anchored at `x`; returns the text's width.
    @discardableResult
    public func text(_ text: String, x: Double, y: Double, size: Double, weight: FontWeight = .regular,
                     color: Color, anchor: TextAnchor = .left) -> Double {
        let width = textWidth(text, size: size, weight: weight)
        let left: Double
        switch anchor {
        case .left: left = x
        case .center: left = x - width / 2
        case .right: left = x - width
        }
        setColor(color)
        cairo_move_to(handle, left, y)
        cairo_show_text(handle, text)
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

    /// `text`, shortened with an ellipsis until it fits in `maxWidth`.
    public func fitting(_ text: String, maxWidth: Double, size: Double, weight: FontWeight = .regular) -> String {
        if textWidth(text, size: size, weight: weight) <= maxWidth { return text }
        var shortened = text
        while !shortened.isEmpty {
            shortened.removeLast()
            let candidate = shortened + "…"
            if textWidth(candidate, size: size, weight: weight) <= maxWidth { return candidate }
        }
        return ""
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
