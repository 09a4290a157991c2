/// The frame sizes, rates and counts the encoders accept. Each is checked before anything is
/// allocated or opened, so no arithmetic on them can overflow or trap, whatever the caller passes.
public enum MediaLimits {
    /// Width and height in pixels, for videos and PNGs: 16384 is as far as libx264 and libavcodec's
    /// size checks go, and it keeps GIF's 16-bit sizes and every byte count well inside `Int32`.
    public static let dimensions = 1...16_384

    /// Frames per second of a video. At the low end a frame shows for 100 s; GIF delays are 16-bit
    /// centiseconds (at most 655 s), and a rate this low still has an exact rational time base.
    /// 120 is the most a screen shows.
    public static let framesPerSecond: ClosedRange<Double> = 0.01...120

    /// Frames in one video: frame times in centiseconds and time-base units stay exact in `Int64`
    /// (2^31 frames at 120 fps is over 200 days).
    public static let maxFrames = Int(Int32.max)

    /// Throws unless a video of this size and rate can be encoded: even sizes (4:2:0 chroma
    /// halves each), within `dimensions`, and a rate within `framesPerSecond` (NaN and infinities are out).
    public static func checkVideo(width: Int, height: Int, fps: Double) throws(MediaError) {
        guard dimensions.contains(width), dimensions.contains(height), width % 2 == 0, height % 2 == 0 else {
            throw MediaError("frame size \(width)x\(height): width and height must be even, from 2 to \(dimensions.upperBound)")
        }
        guard framesPerSecond.contains(fps) else {
            throw MediaError("\(fps) frames per second: the rate must be from \(framesPerSecond.lowerBound) to \(Int(framesPerSecond.upperBound))")
        }
    }

    /// Throws unless a still image of this size can be encoded.
    public static func checkImage(width: Int, height: Int) throws(MediaError) {
        guard dimensions.contains(width), dimensions.contains(height) else {
            throw MediaError("image size \(width)x\(height): width and height must be from 1 to \(dimensions.upperBound)")
        }
    }
}
