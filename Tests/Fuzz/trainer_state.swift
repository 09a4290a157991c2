// A checkpoint's HuggingFace trainer_state.json.
import RunFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTrainerState(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let path = Scratch.write(FuzzInput(data, size).bytes, to: "trainer_state.json")
    _ = try? TrainerState(path: path)
    return 0
}
