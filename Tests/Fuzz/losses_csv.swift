// A run's losses.csv, read as a finished run (render, inspect) and as a growing one (watch).
import RunFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLossesCSV(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let path = Scratch.write(FuzzInput(data, size).bytes, to: "losses.csv")
    for growing in [false, true] {
        if let history = try? LossHistory.read(csv: path, growing: growing), let last = history.training.last {
            _ = history.upTo(step: last.step / 2).epoch(atStep: last.step)
        }
    }
    return 0
}
