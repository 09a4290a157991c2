import Embedlapse
import Foundation

/// Turns Ctrl-C and SIGTERM into a stop request, so the render finishes the frames in flight
/// and finalises its outputs instead of dying with half a file. A second one aborts, still
/// leaving a playable video or none: the frame being written is completed, temporaries are
/// removed (`UnfinishedOutputs`), and live videos are whole after every frame.
final class SignalTrap {
    private let sources: [any DispatchSourceSignal]

    init(stop: StopFlag) {
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                // Signals that arrive together are merged into one event: `data` counts them.
                if stop.isRaised || source.data > 1 {
                    note("")
                    note("aborting: unfinished outputs removed")
                    UnfinishedOutputs.removeTemporariesAndExit(status: 130)
                }
                stop.raise()
                note("")
                note("stopping: finishing the frames in flight (Ctrl-C again to abort)")
            }
            source.resume()
            return source
        }
    }

    func restore() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
