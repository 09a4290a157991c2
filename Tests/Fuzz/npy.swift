// The .npy reader, as render, watch and inspect use it: the header (NPYArray.init), then each value accessor.
import RunFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let path = Scratch.write(FuzzInput(data, size).bytes, to: "array.npy")
    guard let array = try? NPYArray(path: path) else { return 0 }
    _ = try? array.floatMatrix()
    _ = try? array.integers()
    _ = try? array.bytes()
    return 0
}
