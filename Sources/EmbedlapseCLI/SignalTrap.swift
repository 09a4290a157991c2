import Embedlapse
import Foundation

/// Turns Ctrl-C and SIGTERM into a stop request, so the render finishes the frames in flight
/// and finalises its outputs instead of dying with half a file.
final class SignalTrap {
    private let sources: [any DispatchSourceSignal]

    init(stop: StopFlag) {
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if stop.isRaised { exit(130) }  // a second Ctrl-C: give up at once
                stop.raise()
                note("\nstopping: finishing the frames in flight (Ctrl-C again to abort)")
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
