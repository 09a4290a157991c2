#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

// Function-like macros that Swift cannot import.

/// `AVERROR(EAGAIN)`: the encoder wants input or has no output yet.
static inline int cffmpeg_error_eagain(void) { return AVERROR(EAGAIN); }
/// `AVERROR_EOF`: the encoder is fully drained.
static inline int cffmpeg_error_eof(void) { return AVERROR_EOF; }

/// `av_log` is variadic; errors are reported by the wrappers through `av_strerror`, so silence the library log.
static inline void cffmpeg_quiet_logs(void) { av_log_set_level(AV_LOG_QUIET); }
