import FileOutput
import Foundation
import LinearAlgebra
import Testing
@testable import RunFormat

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "embedlapse-tests-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A `.npy` file built by hand, byte by byte, for a given version and header text.
func npyBytes(version: UInt8, header: String, payload: [UInt8]) -> [UInt8] {
    var dict = Array(header.utf8)
    let prefix = version == 1 ? 10 : 12
    while (prefix + dict.count + 1) % 64 != 0 { dict.append(0x20) }
    dict.append(0x0A)
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0]
    if version == 1 {
        out += [UInt8(dict.count & 0xFF), UInt8(dict.count >> 8)]
    } else {
        out += withUnsafeBytes(of: UInt32(dict.count).littleEndian, Array.init)
    }
    return out + dict + payload
}

@Suite struct NPYTests {
    let directory = temporaryDirectory()

    func write(_ bytes: [UInt8], _ name: String = "a.npy") -> String {
        let path = directory + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    @Test(arguments: [UInt8(1), 2, 3])
    func readsEveryFormatVersion(version: UInt8) throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let payload = values.withUnsafeBytes(Array.init)
        let path = write(npyBytes(version: version, header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", payload: payload))
        let matrix = try NPYArray(path: path).floatMatrix()
        #expect(matrix == Matrix(rows: 2, columns: 3, storage: values))
    }

    @Test func readsBigEndianDoublesInFortranOrder() throws {
        // Column-major (2, 3): columns [1, 4], [2, 5], [3, 6].
        let columnMajor: [Double] = [1, 4, 2, 5, 3, 6]
        let payload = columnMajor.flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian, Array.init) }
        let path = write(npyBytes(version: 1, header: "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", payload: payload))
        #expect(try NPYArray(path: path).floatMatrix() == Matrix(rows: 2, columns: 3, storage: [1, 2, 3, 4, 5, 6]))
    }

    @Test func readsHalfPrecision() throws {
        let halves: [Float16] = [0.5, -2, 1024, 0.099975586]
        let payload = halves.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        let path = write(npyBytes(version: 1, header: "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }", payload: payload))
        #expect(try NPYArray(path: path).floatMatrix().storage == halves.map(Float.init))
    }

    @Test(arguments: ["<i8", "<u2", "|u1", ">i4", "|i1", "|b1"])
    func readsAnyIntegerLabels(descr: String) throws {
        let size = Int(descr.dropFirst(2))!
        let bigEndian = descr.hasPrefix(">")
        let values = [0, 1, 2, 1]
        let payload = values.flatMap { v -> [UInt8] in
            let bytes = (0..<size).map { UInt8((v >> (8 * $0)) & 0xFF) }
            return bigEndian ? bytes.reversed() : bytes
        }
        let path = write(npyBytes(version: 1, header: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (4,), }", payload: payload))
        #expect(try NPYArray(path: path).integers() == (descr == "|b1" ? [0, 1, 2, 1] : values))
    }

    @Test func writerRoundTrips() throws {
        let values: [Float] = (0..<20).map { Float($0) * 0.25 }
        let path = directory + "/w.npy"
        try WholeFile.write(NPYWriter.encode(float32: values, shape: [10, 2]), to: path)
        let array = try NPYArray(path: path)
        #expect(array.shape == [10, 2] && array.element == .float(bytes: 4))
        #expect(try array.floatMatrix().storage == values)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect((bytes.count - values.count * 4) % 64 == 0, "data starts on a 64-byte boundary")
    }

    @Test func namesTheFileAndTheProblem() throws {
        let truncated = write(npyBytes(version: 1, header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", payload: [0, 0, 0]), "t.npy")
        #expect(throws: RunFormatError(truncated, "truncated: shape (4, 4) needs 64 bytes of data, the file has 3")) {
            try NPYArray(path: truncated)
        }
        let complex = write(npyBytes(version: 1, header: "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", payload: Array(repeating: 0, count: 8)), "c.npy")
        #expect(throws: RunFormatError(complex, "unsupported dtype '<c8'")) { try NPYArray(path: complex) }
        let empty = write([], "e.npy")
        #expect(throws: RunFormatError(empty, "empty file, not a .npy array")) { try NPYArray(path: empty) }
    }
}

@Suite struct LossHistoryTests {
    @Test func csvKeepsStepAndLossAndEpoch() throws {
        let path = temporaryDirectory() + "/losses.csv"
        try "epoch,step,loss,lr\n0.5,10,2.5,1e-3\n1.0,20,1.25,1e-3\n".write(toFile: path, atomically: true, encoding: .utf8)
        let history = try LossHistory.read(csv: path)
        #expect(history.training == [.init(step: 10, loss: 2.5), .init(step: 20, loss: 1.25)])
        #expect(history.epoch(atStep: 15) == 0.5)
        #expect(history.upTo(step: 10).training.count == 1)
    }

    @Test func trainerStatesSkipEvalRowsAndLaterFilesWin() throws {
        let run = temporaryDirectory()
        for (name, log) in [("a", #"[{"step": 5, "loss": 3.0, "epoch": 0.1}, {"step": 10, "eval_loss": 2.0}]"#),
                            ("b", #"[{"step": 5, "loss": 2.9}, {"step": 15, "loss": 1.0}]"#)] {
            try FileManager.default.createDirectory(atPath: "\(run)/\(name)", withIntermediateDirectories: true)
            try #"{"epoch": 1.5, "log_history": \#(log)}"#.write(toFile: "\(run)/\(name)/trainer_state.json", atomically: true, encoding: .utf8)
        }
        var log = LossLog()
        var warnings: [String] = []
        #expect(try log.absorb(trainerStateIn: "\(run)/a", warnings: &warnings) == 1.5)
        _ = try log.absorb(trainerStateIn: "\(run)/b", warnings: &warnings)
        let history = log.history
        #expect(history.training == [.init(step: 5, loss: 2.9), .init(step: 15, loss: 1.0)])
        #expect(history.evaluation == [.init(step: 10, loss: 2.0)])
        #expect(history.source == "trainer_state.json")
        #expect(warnings.isEmpty)
    }
}
