import Pipeline
import Foundation
import Synchronization

/// Turns Ctrl-C and SIGTERM into a stop request, so the render finishes the frames in flight
/// and finalises its outputs instead of dying with half a file. A second one aborts, still
/// leaving a playable video or none: the frame being written is completed, temporaries are
/// removed (`UnfinishedOutputs`), and live videos are whole after every frame.
///
/// Signals within half a second of the first are the same request: a parent that dies can deliver
/// its death signal (PR_SET_PDEATHSIG) twice, and that must not abort what one signal finalises.
final class SignalTrap {
    private let sources: [any DispatchSourceSignal]
    static let sameRequest = Duration.milliseconds(500)

    init(stop: StopFlag) {
        let firstSignal = Mutex<ContinuousClock.Instant?>(nil)
        // One serial queue for both signals, so that their handlers never race.
        let queue = DispatchQueue(label: "embedlapse.signals")
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                let now = ContinuousClock.now
                let first = firstSignal.withLock { first in
                    defer { if first == nil { first = now } }
                    return first
                }
                if let first {
                    guard now - first > Self.sameRequest else { return }
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
