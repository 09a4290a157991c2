internal import CCairo

/// A Cairo error: the operation and Cairo's own message (`cairo_status_to_string`).
public struct CanvasError: Error, CustomStringConvertible {
    public let description: String

    init(_ operation: String, _ status: cairo_status_t) {
        description = "\(operation): \(String(cString: cairo_status_to_string(status)))"
    }
}

/// An owned Cairo ARGB32 image surface (`cairo_image_surface_create`).
///
/// Pixels are premultiplied, native-endian 32-bit ARGB: byte order B, G, R, A on this
/// little-endian machine, i.e. FFmpeg's `AV_PIX_FMT_BGRA`.
public final class ImageSurface {
    let handle: OpaquePointer
    public let width: Int
    public let height: Int

    /// Sizes Cairo cannot make (beyond 32767, negative) throw rather than trap.
    public convenience init(width: Int, height: Int) throws(CanvasError) {
        try self.init(taking: cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(clamping: width), Int32(clamping: height))!,
                      "cairo_image_surface_create \(width)x\(height)")
    }

    /// Owns a surface Cairo just made, or destroys it and throws if Cairo reports an error.
    private init(taking surface: OpaquePointer, _ operation: @autoclosure () -> String) throws(CanvasError) {
        let status = cairo_surface_status(surface)
        guard status == CAIRO_STATUS_SUCCESS else {
            cairo_surface_destroy(surface)
            throw CanvasError(operation(), status)
        }
        handle = surface
        width = Int(cairo_image_surface_get_width(surface))
        height = Int(cairo_image_surface_get_height(surface))
    }

    /// A surface holding an 8-bit image: `channels` 1 (grey), 3 (RGB) or 4 (RGBA, straight alpha).
    public convenience init(pixels: ArraySlice<UInt8>, width: Int, height: Int, channels: Int) throws(CanvasError) {
        try self.init(width: width, height: height)
        withMutablePixels { row, stride in
            var source = pixels.startIndex
            for y in 0..<height {
                for x in 0..<width {
                    let r, g, b, a: UInt32
                    switch channels {
                    case 1: r = UInt32(pixels[source]); g = r; b = r; a = 255
                    case 3: r = UInt32(pixels[source]); g = UInt32(pixels[source + 1]); b = UInt32(pixels[source + 2]); a = 255
                    default:
                        a = UInt32(pixels[source + 3])
                        r = UInt32(pixels[source]) * a / 255; g = UInt32(pixels[source + 1]) * a / 255; b = UInt32(pixels[source + 2]) * a / 255
                    }
                    row[y * stride + x] = a << 24 | r << 16 | g << 8 | b
                    source += channels
                }
            }
        }
    }

    /// A surface read from a PNG file (`cairo_image_surface_create_from_png`, libpng).
    public convenience init(contentsOfPNG path: String) throws(CanvasError) {
        try self.init(taking: cairo_image_surface_create_from_png(path)!, "cairo_image_surface_create_from_png \(path)")
    }

    deinit { cairo_surface_destroy(handle) }

    /// Calls `body` with the pixels (one `UInt32` per pixel, `stride` pixels per row) to change them.
    /// Flushes Cairo's pending drawing before and marks the surface dirty after.
    public func withMutablePixels<R>(_ body: (UnsafeMutablePointer<UInt32>, _ stride: Int) throws -> R) rethrows -> R {
        cairo_surface_flush(handle)
        defer { cairo_surface_mark_dirty(handle) }
        let stride = Int(cairo_image_surface_get_stride(handle)) / 4
        let data = cairo_image_surface_get_data(handle)!
        return try data.withMemoryRebound(to: UInt32.self, capacity: stride * height) { try body($0, stride) }
    }

    /// Copies `source`'s pixels, which must be of the same size, into this surface.
    public func copyPixels(from source: ImageSurface) {
        precondition(source.width == width && source.height == height, "surfaces of different sizes")
        cairo_surface_flush(source.handle)
        cairo_surface_flush(handle)
        let bytes = Int(cairo_image_surface_get_stride(handle)) * height
        cairo_image_surface_get_data(handle)!.update(from: cairo_image_surface_get_data(source.handle)!, count: bytes)
        cairo_surface_mark_dirty(handle)
    }

    /// Calls `body` with the BGRA bytes and the row length in bytes, read-only.
    public func withBGRABytes<R>(_ body: (UnsafePointer<UInt8>, _ bytesPerRow: Int) throws -> R) rethrows -> R {
        cairo_surface_flush(handle)
        return try body(UnsafePointer(cairo_image_surface_get_data(handle)!), Int(cairo_image_surface_get_stride(handle)))
    }
}
