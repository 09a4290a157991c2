internal import CFFmpeg

/// The container and codec of a video file.
public enum VideoFormat: Sendable {
    /// H.264 (libx264), yuv420p, BT.709, in an MP4 with the index at the front (`movflags=+faststart`).
    case mp4
    /// The same stream as a fragmented MP4 that plays up to its last frame while it is still being
    /// written: one fragment per frame, flushed at once, and no encoder delay (x264 `zerolatency`).
    case liveMP4
    /// An animated GIF: a quantised palette per frame, delays in centiseconds, loops forever.
    case gif
}

/// Encodes BGRA frames into an MP4 or GIF file through libavcodec and libavformat.
///
/// Owns every FFmpeg object it creates; `finish()` drains the encoder and writes the
/// trailer, after which the file plays. A writer released without `finish()` closes the
/// file unfinished: callers remove it (see `OutputFile`).
public final class VideoEncoder {
    public let width: Int
    public let height: Int
    public let format: VideoFormat
    public private(set) var framesWritten = 0

    private var formatContext: UnsafeMutablePointer<AVFormatContext>?
    private var codecContext: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var scaler: OpaquePointer?
    private var stream: UnsafeMutablePointer<AVStream>?
    private var frameRate = AVRational(num: 1, den: 1)
    private var quantizer = PaletteQuantizer()
    private var finished = false

    /// - Parameters:
    ///   - fps: frames per second of the video.
    ///   - preset: libx264's speed/size trade-off (MP4 only).
    public init(path: String, format: VideoFormat, width: Int, height: Int, fps: Double,
                preset: String = "veryfast", crf: Int = 20) throws(MediaError) {
        guard width > 0, height > 0, width % 2 == 0, height % 2 == 0 else {
            throw MediaError("frame size \(width)x\(height): width and height must be even and positive")
        }
        guard fps > 0, fps <= 120 else { throw MediaError("--fps \(fps): must be between 0 and 120") }
        cffmpeg_quiet_logs()
        self.width = width
        self.height = height
        self.format = format

        // Every stored property is set by now, so a throw below runs deinit, which frees what was made.
        var output: UnsafeMutablePointer<AVFormatContext>?
        try check(avformat_alloc_output_context2(&output, nil, format == .gif ? "gif" : "mp4", path), "\(path): cannot set up the container")
        formatContext = output
        let codec: UnsafePointer<AVCodec>?
        switch format {
        case .mp4, .liveMP4: codec = avcodec_find_encoder_by_name("libx264")
        case .gif: codec = avcodec_find_encoder(AV_CODEC_ID_GIF)
        }
        guard let codec else { throw MediaError("\(path): FFmpeg has no \(format == .gif ? "GIF" : "libx264") encoder") }
        guard let newStream = avformat_new_stream(output, nil) else { throw MediaError("\(path): cannot add a video stream") }
        stream = newStream
        guard let context = avcodec_alloc_context3(codec) else { throw MediaError("\(path): out of memory") }
        codecContext = context
        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        let rate = av_d2q(fps, 100_000)
        frameRate = rate
        switch format {
        case .mp4, .liveMP4:
            context.pointee.pix_fmt = AV_PIX_FMT_YUV420P
            context.pointee.time_base = AVRational(num: rate.den, den: rate.num)
            context.pointee.framerate = rate
            context.pointee.gop_size = 2 * Int32(max(1, fps.rounded()))
            // Two x264 threads: libavcodec's default of one halves the encode rate; the automatic
            // three cost more memory (peak 337 MB against 320 MB on a 10,000 x 768 render) for no gain here.
            context.pointee.thread_count = 2
            context.pointee.colorspace = AVCOL_SPC_BT709
            context.pointee.color_primaries = AVCOL_PRI_BT709
            context.pointee.color_trc = AVCOL_TRC_BT709
            context.pointee.color_range = AVCOL_RANGE_MPEG
            av_opt_set(context.pointee.priv_data, "preset", preset, 0)
            av_opt_set(context.pointee.priv_data, "crf", String(crf), 0)
            if format == .liveMP4 {
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
        if (output!.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER) != 0 {
            context.pointee.flags |= Int32(AV_CODEC_FLAG_GLOBAL_HEADER)
        }
        try check(avcodec_open2(context, codec, nil), "\(path): cannot open the encoder")
        try check(avcodec_parameters_from_context(newStream.pointee.codecpar, context), "\(path): codec parameters")
        newStream.pointee.time_base = context.pointee.time_base

        try check(avio_open(&output!.pointee.pb, path, AVIO_FLAG_WRITE), path)
        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        switch format {
        case .mp4: av_dict_set(&options, "movflags", "+faststart", 0)
        case .liveMP4: av_dict_set(&options, "movflags", "frag_every_frame+empty_moov+default_base_moof", 0)
        case .gif: av_dict_set(&options, "loop", "0", 0)
        }
        try check(avformat_write_header(output, &options), "\(path): cannot write the header")

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
    }

    deinit { release() }

    private func release() {
        if let scaler { sws_freeContext(scaler) }
        scaler = nil
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codecContext)
        if let formatContext {
            if formatContext.pointee.pb != nil { avio_closep(&formatContext.pointee.pb) }
            avformat_free_context(formatContext)
        }
        formatContext = nil
    }

    /// Encodes one frame of `height` rows of `width` BGRA pixels, `bytesPerRow` apart.
    public func append(bgra: UnsafePointer<UInt8>, bytesPerRow: Int) throws(MediaError) {
        guard !finished, let frame, let codecContext else { throw MediaError("video already finished") }
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
            frame.pointee.pts = centiseconds(framesWritten)
        }
        try check(avcodec_send_frame(codecContext, frame), "encoding frame \(framesWritten)")
        framesWritten += 1
        try drain()
        if format == .liveMP4 {
            // Push the fragment to the file now, so a player sees this frame before the next one exists.
            av_write_frame(formatContext, nil)
            avio_flush(formatContext!.pointee.pb)
        }
    }

    /// Flushes the encoder and writes the trailer; the file is complete afterwards. Runs once.
    public func finish() throws(MediaError) {
        guard !finished, let codecContext else { return }
        finished = true
        try check(avcodec_send_frame(codecContext, nil), "flushing the encoder")
        try drain()
        try check(av_write_trailer(formatContext), "writing the trailer")
        try check(avio_closep(&formatContext!.pointee.pb), "closing the file")
    }

    /// The presentation time of frame `index` in GIF centiseconds, rounded so delays average 1/fps.
    private func centiseconds(_ index: Int) -> Int64 {
        Int64((Double(index) * 100 * Double(frameRate.den) / Double(frameRate.num)).rounded())
    }

    /// Moves every packet the encoder has ready into the file. EAGAIN and EOF are the two ways of "no more for now".
    private func drain() throws(MediaError) {
        guard let codecContext, let packet, let stream else { return }
        while true {
            let status = avcodec_receive_packet(codecContext, packet)
            if status == cffmpeg_error_eagain() || status == cffmpeg_error_eof() { return }
            try check(status, "encoding")
            // libx264 leaves durations at 0; without them the last frame has no length.
            switch format {
            case .mp4, .liveMP4: packet.pointee.duration = 1
            case .gif:
                let index = Int((Double(packet.pointee.pts) * Double(frameRate.num) / Double(frameRate.den) / 100).rounded())
                packet.pointee.duration = centiseconds(index + 1) - centiseconds(index)
            }
            av_packet_rescale_ts(packet, codecContext.pointee.time_base, stream.pointee.time_base)
            packet.pointee.stream_index = stream.pointee.index
            let written = av_interleaved_write_frame(formatContext, packet)
            av_packet_unref(packet)
            try check(written, "writing a packet")
        }
    }
}
