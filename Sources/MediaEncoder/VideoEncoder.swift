internal import CFFmpeg
internal import FileOutput
#if canImport(Glibc)
import Glibc
#endif

/// The container and codec of a video file.
public enum VideoFormat: Sendable {
    /// H.264 (libx264), yuv420p, BT.709, in an MP4 with the index at the front (`movflags=+faststart`).
    case mp4
    /// The same stream as a fragmented MP4 that plays up to its last frame while it is still being
    /// written: one fragment per frame, flushed at once, and no encoder delay (x264 `zerolatency`:
    /// no lookahead, no B-frames, sliced threads), so the file holds every frame handed to it.
    case liveMP4
    /// An animated GIF: a quantised palette per frame, delays in centiseconds, loops forever.
    /// Each frame is written with the GIF trailer after it, so the file is a whole GIF after every
    /// frame (and, being a GIF, equally suited to a live watch).
    case gif

    /// The format for a video path, by its extension in either case (`.mp4`, `.gif`): a live MP4
    /// when `live`; nil for any other path.
    public init?(forPath path: String, live: Bool) {
        let lowered = path.lowercased()
        if lowered.hasSuffix(".mp4") {
            self = live ? .liveMP4 : .mp4
        } else if lowered.hasSuffix(".gif") {
            self = .gif
        } else {
            return nil
        }
    }
}

/// Encodes BGRA frames into an MP4 or GIF file through libavcodec (and libavformat for MP4).
///
/// Owns every FFmpeg object it creates; `finish()` drains the encoder and completes the file,
/// after which it plays. A writer released without `finish()` closes the file unfinished: callers
/// remove it, or keep its whole frames with `closeKeepingWholeFrames()`.
public final class VideoEncoder {
    public let width: Int
    public let height: Int
    public let format: VideoFormat
    /// Frames `append` has taken.
    public private(set) var framesWritten = 0
    /// Frames the file holds whole right now: after every frame for a live MP4 and a GIF, after
    /// `finish()` for an MP4 (whose index is written last).
    public var framesInFile: Int { file?.wholeFrames ?? 0 }

    private let path: String
    private let frameRate: AVRational
    private var codecContext: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var scaler: OpaquePointer?
    private var file: (any EncodedFile)?
    private var quantizer = PaletteQuantizer()
    /// Set by `finish()` and by any failure: a failed encoder takes no more frames.
    private var closed = false

    /// - Parameters:
    ///   - width, height: even, within `MediaLimits.dimensions`.
    ///   - fps: frames per second, within `MediaLimits.framesPerSecond`; anything else (NaN and
    ///     infinities included) is refused with a `MediaError`.
    ///   - preset: libx264's speed/size trade-off (MP4 only).
    public init(path: String, format: VideoFormat, width: Int, height: Int, fps: Double,
                preset: String = "veryfast", crf: Int = 20) throws(MediaError) {
        try MediaLimits.checkVideo(width: width, height: height, fps: fps)
        cffmpeg_quiet_logs()
        self.width = width
        self.height = height
        self.format = format
        self.path = path
        frameRate = av_d2q(fps, 100_000)

        // Every stored property is set by now, so a throw below runs deinit, which frees what was made.
        let codec: UnsafePointer<AVCodec>?
        switch format {
        case .mp4, .liveMP4: codec = avcodec_find_encoder_by_name("libx264")
        case .gif: codec = avcodec_find_encoder(AV_CODEC_ID_GIF)
        }
        guard let codec else { throw MediaError("\(path): FFmpeg has no \(format == .gif ? "GIF" : "libx264") encoder") }
        guard let context = avcodec_alloc_context3(codec) else { throw MediaError("\(path): out of memory") }
        codecContext = context
        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        switch format {
        case .mp4, .liveMP4:
            context.pointee.pix_fmt = AV_PIX_FMT_YUV420P
            context.pointee.time_base = AVRational(num: frameRate.den, den: frameRate.num)
            context.pointee.framerate = frameRate
            context.pointee.gop_size = 2 * Int32(max(1, fps.rounded()))
            // Two x264 threads: libavcodec's default of one halves the encode rate; the automatic
            // three cost more memory (peak 337 MB against 320 MB on a 10,000 x 768 render) for no gain here.
            context.pointee.thread_count = 2
            context.pointee.colorspace = AVCOL_SPC_BT709
            context.pointee.color_primaries = AVCOL_PRI_BT709
            context.pointee.color_trc = AVCOL_TRC_BT709
            context.pointee.color_range = AVCOL_RANGE_MPEG
            context.pointee.flags |= Int32(AV_CODEC_FLAG_GLOBAL_HEADER)  // MP4 keeps SPS/PPS in its header
            av_opt_set(context.pointee.priv_data, "preset", preset, 0)
            av_opt_set(context.pointee.priv_data, "crf", String(crf), 0)
            if format == .liveMP4 {
                // No frame held back: each frame's packet comes out of the encoder as it goes in.
                av_opt_set(context.pointee.priv_data, "tune", "zerolatency", 0)
            } else {
                // x264 keeps lookahead frames in flight, and more in a threaded lookahead's buffer:
                // veryfast's defaults peaked at 310 MB on a 100-checkpoint 10,000 x 768 render,
                // these at 282 MB, for the same file size (within 1%) and encode time per frame.
                av_opt_set(context.pointee.priv_data, "x264-params", "rc-lookahead=5:sync-lookahead=0", 0)
            }
        case .gif:
            context.pointee.pix_fmt = AV_PIX_FMT_PAL8
            context.pointee.time_base = AVRational(num: 1, den: 100)  // GIF delays are centiseconds
        }
        try check(avcodec_open2(context, codec, nil), "\(path): cannot open the encoder")

        guard let newFrame = av_frame_alloc(), let newPacket = av_packet_alloc() else { throw MediaError("\(path): out of memory") }
        frame = newFrame
        packet = newPacket
        newFrame.pointee.format = context.pointee.pix_fmt.rawValue
        newFrame.pointee.width = Int32(width)
        newFrame.pointee.height = Int32(height)
        try check(av_frame_get_buffer(newFrame, 0), "\(path): frame buffer")
        if format != .gif {
            scaler = sws_getContext(Int32(width), Int32(height), AV_PIX_FMT_BGRA, Int32(width), Int32(height),
                                    AV_PIX_FMT_YUV420P, SWS_BILINEAR | SWS_ACCURATE_RND, nil, nil, nil)
            guard let scaler else { throw MediaError("\(path): cannot convert BGRA to yuv420p") }
            // BT.709 coefficients, limited range: what the stream is tagged with.
            let coefficients = sws_getCoefficients(SWS_CS_ITU709)
            sws_setColorspaceDetails(scaler, coefficients, 1, coefficients, 0, 0, 1 << 16, 1 << 16)
        }

        // The file last, so that nothing above can fail with a file already made. If making it
        // fails, what it left is the caller's to remove (it may be a live video's old file).
        switch format {
        case .mp4, .liveMP4: file = try MP4File(path: path, live: format == .liveMP4, codec: context)
        case .gif:
            let rate = frameRate
            file = try GIFFile(path: path) { index in
                UInt16(Self.centiseconds(index + 1, rate: rate) - Self.centiseconds(index, rate: rate))
            }
        }
    }

    deinit {
        if let scaler { sws_freeContext(scaler) }
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codecContext)
    }

    /// Encodes one frame of `height` rows of `width` BGRA pixels, `bytesPerRow` apart.
    public func append(bgra: UnsafePointer<UInt8>, bytesPerRow: Int) throws(MediaError) {
        guard !closed, let frame, let codecContext else { throw MediaError("the video is already closed") }
        guard bytesPerRow >= 4 * width, bytesPerRow <= Int(Int32.max) else {
            throw MediaError("rows of \(bytesPerRow) bytes do not fit \(width) BGRA pixels")
        }
        guard framesWritten < MediaLimits.maxFrames else { throw MediaError("more than \(MediaLimits.maxFrames) frames") }
        do {
            try check(av_frame_make_writable(frame), "frame buffer")
            switch format {
            case .mp4, .liveMP4:
                var sourceData: [UnsafePointer<UInt8>?] = [bgra, nil, nil, nil]
                var sourceStride: [Int32] = [Int32(bytesPerRow), 0, 0, 0]
                withUnsafeMutablePointer(to: &frame.pointee.data) { data in
                    data.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { planes in
                        withUnsafeMutablePointer(to: &frame.pointee.linesize) { lines in
                            lines.withMemoryRebound(to: Int32.self, capacity: 8) { strides in
                                _ = sws_scale(scaler, &sourceData, &sourceStride, 0, Int32(height), planes, strides)
                            }
                        }
                    }
                }
                frame.pointee.pts = Int64(framesWritten)
            case .gif:
                let indices = frame.pointee.data.0!, palette = frame.pointee.data.1!
                quantizer.quantize(bgra: bgra, bytesPerRow: bytesPerRow, width: width, height: height,
                                   into: indices, indexStride: Int(frame.pointee.linesize.0),
                                   palette: UnsafeMutableRawPointer(palette).assumingMemoryBound(to: UInt32.self))
                frame.pointee.pts = Self.centiseconds(framesWritten, rate: frameRate)
            }
            try check(avcodec_send_frame(codecContext, frame), "encoding frame \(framesWritten)")
            try drain()
            try file?.endFrame()
        } catch {
            closed = true
            throw error
        }
        framesWritten += 1
    }

    /// Flushes the encoder and completes the file; it plays afterwards. Runs once.
    public func finish() throws(MediaError) {
        guard !closed, let codecContext else { return }
        closed = true
        try check(avcodec_send_frame(codecContext, nil), "flushing the encoder")
        try drain()
        try file?.finish()
    }

    /// After a failure (a full disk, say): closes the file, cut back to its last whole frame, and
    /// returns how many frames it keeps. A live MP4 or a GIF keeps every frame it held, and plays;
    /// an unfinished MP4 keeps none (its index is missing) and is the caller's to remove.
    public func closeKeepingWholeFrames() -> Int {
        closed = true
        return file?.closeKeepingWholeFrames() ?? 0
    }

    /// The presentation time of frame `index` in centiseconds, rounded so delays average 1/fps.
    /// Exact in `Int64`: index < 2^31 and the rate's denominator <= 100,000 (`av_d2q`'s bound).
    private static func centiseconds(_ index: Int, rate: AVRational) -> Int64 {
        (2 * Int64(index) * 100 * Int64(rate.den) + Int64(rate.num)) / (2 * Int64(rate.num))
    }

    /// Moves every packet the encoder has ready into the file. EAGAIN and EOF are the two ways of "no more for now".
    private func drain() throws(MediaError) {
        guard let codecContext, let packet else { return }
        while true {
            let status = avcodec_receive_packet(codecContext, packet)
            if status == cffmpeg_error_eagain() || status == cffmpeg_error_eof() { return }
            try check(status, "encoding")
            defer { av_packet_unref(packet) }
            try file?.write(packet, timeBase: codecContext.pointee.time_base)
        }
    }
}

/// Where encoded packets go: an MP4 through libavformat, or a GIF written here.
private protocol EncodedFile: AnyObject {
    /// Frames the file holds whole: complete on disk, ready to play.
    var wholeFrames: Int { get }
    /// Writes one encoded packet (one frame: neither encoder reorders).
    func write(_ packet: UnsafeMutablePointer<AVPacket>, timeBase: AVRational) throws(MediaError)
    /// Called after each frame: a live file makes everything so far readable on disk now.
    func endFrame() throws(MediaError)
    /// Completes and closes the file.
    func finish() throws(MediaError)
    /// Closes the file after a failure, cut back to its last whole frame; returns the frames kept.
    func closeKeepingWholeFrames() -> Int
}

/// An MP4 through libavformat. Live, it is fragmented: after each frame its fragment is flushed
/// to disk and the file's length noted, so a failure can cut it back to a playable prefix.
private final class MP4File: EncodedFile {
    private let path: String
    private let live: Bool
    private var context: UnsafeMutablePointer<AVFormatContext>?
    private var stream: UnsafeMutablePointer<AVStream>?
    private var packetsWritten = 0
    private(set) var wholeFrames = 0
    /// The file's length after the last whole frame (live only).
    private var wholeLength: Int64 = 0

    init(path: String, live: Bool, codec: UnsafeMutablePointer<AVCodecContext>) throws(MediaError) {
        self.path = path
        self.live = live
        var output: UnsafeMutablePointer<AVFormatContext>?
        try check(avformat_alloc_output_context2(&output, nil, "mp4", path), "\(path): cannot set up the container")
        context = output
        guard let newStream = avformat_new_stream(output, nil) else { throw MediaError("\(path): cannot add a video stream") }
        stream = newStream
        try check(avcodec_parameters_from_context(newStream.pointee.codecpar, codec), "\(path): codec parameters")
        newStream.pointee.time_base = codec.pointee.time_base
        try check(avio_open(&output!.pointee.pb, path, AVIO_FLAG_WRITE), path)
        do {
            var options: OpaquePointer?
            defer { av_dict_free(&options) }
            av_dict_set(&options, "movflags", live ? "frag_every_frame+empty_moov+default_base_moof" : "+faststart", 0)
            try check(avformat_write_header(output, &options), "\(path): cannot write the header")
            if live { try flush("\(path): cannot write the header") }
        } catch {
            avio_closep(&output!.pointee.pb)  // the file stays: the caller removes what it asked for
            throw error
        }
    }

    deinit {
        if let context {
            if context.pointee.pb != nil { avio_closep(&context.pointee.pb) }
            avformat_free_context(context)
        }
    }

    func write(_ packet: UnsafeMutablePointer<AVPacket>, timeBase: AVRational) throws(MediaError) {
        guard let stream else { return }
        packet.pointee.duration = 1  // libx264 leaves durations at 0; without them the last frame has no length
        av_packet_rescale_ts(packet, timeBase, stream.pointee.time_base)
        packet.pointee.stream_index = stream.pointee.index
        try check(av_interleaved_write_frame(context, packet), "writing frame \(packetsWritten)")
        packetsWritten += 1
    }

    func endFrame() throws(MediaError) {
        guard live else { return }
        // Close this frame's fragment and push it to the file, so a player sees it before the next frame exists.
        try check(av_write_frame(context, nil), "writing frame \(packetsWritten - 1)")
        try flush("writing frame \(packetsWritten - 1)")
    }

    /// Writes out libavformat's buffer; notes the length and frames a failure can go back to.
    private func flush(_ operation: @autoclosure () -> String) throws(MediaError) {
        guard let io = context?.pointee.pb else { return }
        avio_flush(io)
        // avio keeps the first write error rather than returning it.
        guard io.pointee.error >= 0 else { throw MediaError(operation(), code: io.pointee.error) }
        wholeLength = avio_tell(io)
        wholeFrames = packetsWritten
    }

    func finish() throws(MediaError) {
        try check(av_write_trailer(context), "writing the index")
        try check(avio_closep(&context!.pointee.pb), "closing the file")
        wholeFrames = packetsWritten
    }

    func closeKeepingWholeFrames() -> Int {
        guard let context, context.pointee.pb != nil else { return wholeFrames }  // finished: complete
        avio_closep(&context.pointee.pb)  // its last write may fail again: what counts is the cut below
        guard live else { return 0 }
        truncate(path, off_t(wholeLength))
        return wholeFrames
    }
}

/// An animated GIF, written here rather than by libavformat's GIF muxer, which holds each frame
/// back until the next one arrives (to learn its delay), so a live GIF would trail the MP4 by a
/// frame and lack its trailer until the end. The delay of every frame is known in advance, so each
/// frame goes out at once, followed by the trailer byte, which the next frame overwrites: after
/// every frame the file is a whole, playable GIF.
private final class GIFFile: EncodedFile {
    private static let extensionIntroducer: UInt8 = 0x21
    private static let graphicControlLabel: UInt8 = 0xF9
    private static let trailer: UInt8 = 0x3B
    /// The application extension that makes a GIF loop: "NETSCAPE2.0", loop count 0 (forever).
    private static let loopForever: [UInt8] = [0x21, 0xFF, 0x0B] + Array("NETSCAPE2.0".utf8) + [0x03, 0x01, 0x00, 0x00, 0x00]

    private let path: String
    private let delay: (Int) -> UInt16
    private var descriptor: Int32
    private(set) var wholeFrames = 0
    /// Where the next frame goes: the trailer's offset.
    private var end: off_t = 0

    /// - Parameter delay: how long frame `index` shows, in centiseconds.
    init(path: String, delay: @escaping (Int) -> UInt16) throws(MediaError) {
        self.path = path
        self.delay = delay
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else { throw MediaError(path, errno: errno) }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// libavcodec's GIF encoder gives, per frame: (the first frame only) the header and global
    /// palette, then a graphic control extension with a delay we set here, then the image.
    func write(_ packet: UnsafeMutablePointer<AVPacket>, timeBase: AVRational) throws(MediaError) {
        guard descriptor >= 0 else { throw MediaError("the file is closed") }
        var data = Array(UnsafeBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size)))[...]
        var bytes: [UInt8] = []
        bytes.reserveCapacity(data.count + 32)
        if wholeFrames == 0 {
            // "GIF89a", the logical screen descriptor (its byte 10 flags a global palette and its size), the palette.
            guard data.count > 13 else { throw MediaError("the GIF encoder gave a \(data.count)-byte first frame") }
            let flags = data[data.startIndex + 10]
            let headerLength = 13 + (flags & 0x80 != 0 ? 3 << (Int(flags & 0x07) + 1) : 0)
            guard data.count > headerLength else { throw MediaError("the GIF encoder gave a short header") }
            bytes += data.prefix(headerLength)
            data = data.dropFirst(headerLength)
            bytes += Self.loopForever
        }
        let frameDelay = delay(wholeFrames)
        if let field = Self.delayField(in: data) {
            data[field] = UInt8(frameDelay & 0xFF)
            data[field + 1] = UInt8(frameDelay >> 8)
        } else {
            // No graphic control extension: add one (keep the previous frame under this one, no transparency).
            bytes += [Self.extensionIntroducer, Self.graphicControlLabel, 0x04, 0x04, UInt8(frameDelay & 0xFF), UInt8(frameDelay >> 8), 0x00, 0x00]
        }
        bytes += data
        bytes.append(Self.trailer)
        do {
            try writeAll(bytes, at: end)
        } catch {
            restoreLastWholeFrame()
            throw error
        }
        end += off_t(bytes.count - 1)
        wholeFrames += 1
    }

    func endFrame() {}

    func finish() throws(MediaError) {
        guard descriptor >= 0 else { return }
        guard wholeFrames > 0 else { throw MediaError("a GIF needs at least one frame") }
        let status = close(descriptor)
        descriptor = -1
        guard status == 0 else { throw MediaError("closing the file", errno: errno) }
    }

    func closeKeepingWholeFrames() -> Int {
        guard descriptor >= 0 else { return wholeFrames }
        restoreLastWholeFrame()
        close(descriptor)
        descriptor = -1
        return wholeFrames
    }

    /// Cuts off a frame written in part and puts the trailer back (a write that failed may have
    /// overwritten it); freeing the partial frame leaves room for the one byte.
    private func restoreLastWholeFrame() {
        guard wholeFrames > 0 else {
            ftruncate(descriptor, 0)
            return
        }
        ftruncate(descriptor, end)
        _ = try? writeAll([Self.trailer], at: end)
    }

    private func writeAll(_ bytes: [UInt8], at offset: off_t) throws(MediaError) {
        let failure = FileOutput.writeAll(bytes, to: descriptor, at: offset)
        guard failure == 0 else { throw MediaError("writing frame \(wholeFrames)", errno: failure) }
    }

    /// The offset of the delay in the frame's graphic control extension (0x21 0xF9 0x04 flags
    /// delay-low delay-high ...), found among the extension blocks before the image, as libavformat does.
    private static func delayField(in data: ArraySlice<UInt8>) -> Int? {
        var i = data.startIndex
        while i + 1 < data.endIndex, data[i] == extensionIntroducer {
            if data[i + 1] == graphicControlLabel { return i + 5 < data.endIndex ? i + 4 : nil }
            // Another extension: skip its sub-blocks, each a length byte then that many bytes, up to a zero length.
            var j = i + 2
            while j < data.endIndex {
                let length = Int(data[j])
                j += 1 + length
                if length == 0 { break }
            }
            i = j
        }
        return nil
    }
}
