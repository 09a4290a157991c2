import Foundation
import LinearAlgebra
import Synchronization
import Testing
@testable import RunFormat

#if canImport(Glibc)
import Glibc
#endif

/// Inputs that crashed, hung or were misread before the input boundary was hardened: each must
/// now be refused with a message naming the file, or read correctly.
@Suite struct HostileInputTests {
    let directory = temporaryDirectory()

    func write(_ bytes: [UInt8], _ name: String) -> String {
        let path = directory + "/" + name
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func npy(_ header: String, payload: [UInt8] = [], _ name: String = "a.npy") -> String {
        write(npyBytes(version: 1, header: header, payload: payload), name)
    }

    func problem(_ body: () throws(RunFormatError) -> Void) -> RunFormatError? {
        do { try body() } catch { return error }
        return nil
    }

    @Test(arguments: ["(9223372036854775807, 9223372036854775807)", "(4294967296, 4294967296, 4294967296)",
                      "(3037000500, 3037000500)", "(99999999999999999999, 2)", "(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33)"])
    func shapesWhoseSizeOverflowsAreRefused(shape: String) {
        let path = npy("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }", payload: [UInt8](repeating: 0, count: 64))
        let error = problem { () throws(RunFormatError) in _ = try NPYArray(path: path).floatMatrix() }
        #expect(error?.path == path)
    }

    @Test func aHeaderAnnouncingGigabytesIsRefusedWithoutReadingThem() {
        var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 2, 0, 0xFF, 0xFF, 0xFF, 0x7F]
        bytes += Array("{'descr': '<f4'".utf8)
        let path = write(bytes, "huge-header.npy")
        #expect(problem { () throws(RunFormatError) in _ = try NPYArray(path: path) }?.problem.contains("header") == true)
    }

    @Test func aFIFONamedLikeAnArrayIsRefusedAtOnce() throws {
        let path = directory + "/fifo.npy"
        #expect(mkfifo(path, 0o644) == 0)
        let error = problem { () throws(RunFormatError) in _ = try NPYArray(path: path) }
        #expect(error?.problem.contains("not a regular file (a FIFO)") == true)
        #expect(error?.kind == .unreadable)
    }

    @Test func aFileRewrittenAfterItsHeaderWasReadIsReportedNotMisread() throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
        let path = npy(header, payload: values.withUnsafeBytes(Array.init))
        let array = try NPYArray(path: path)
        usleep(10_000)  // a later modification time
        _ = npy(header, payload: [Float](repeating: 9, count: 6).withUnsafeBytes(Array.init))
        let error = problem { () throws(RunFormatError) in _ = try array.floatMatrix() }
        #expect(error?.kind == .changing)
    }

    @Test(arguments: ["1e300", "9223372036854775808", "18446744073709551616", "-1", "2.5", "nan", "inf"])
    func lossStepsOutOfRangeAreRefusedNotWrapped(step: String) {
        let path = write(Array("step,loss\n1,0.5\n\(step),0.25\n".utf8), "losses-\(step).csv")
        let error = problem { () throws(RunFormatError) in _ = try LossHistory.read(csv: path) }
        #expect(error?.problem.contains("line 3") == true)
    }

    @Test func absurdLossValuesAreKeptForTheChartToHandle() throws {
        let path = write(Array("step,loss\n1,1e300\n2,-1e308\n3,nan\n".utf8), "losses-absurd.csv")
        let history = try LossHistory.read(csv: path)
        #expect(history.training.count == 3 && history.training[0].loss == 1e300)
    }

    @Test func trainerStateStepsOutOfRangeAreLeftOutWithAWarning() throws {
        let folder = directory + "/checkpoint-1"
        _ = write(Array(#"{"log_history": [{"step": 1e20, "loss": 1.0}, {"step": 3, "loss": 2.0}, {"step": true, "loss": 3.0}]}"#.utf8),
                  "checkpoint-1/trainer_state.json")
        var log = LossLog()
        var warnings: [String] = []
        _ = try log.absorb(trainerStateIn: folder, warnings: &warnings)
        #expect(log.history.training == [.init(step: 3, loss: 2.0)])
        #expect(warnings.count == 1 && warnings[0].contains("trainer_state.json"))
    }

    @Test(arguments: [
        ([Float](repeating: 1e-40, count: 6), "below"),                    // subnormal
        ([Float](repeating: 0, count: 6), "below"),
        ([1, 2, 3, 4, 5, 3e38], "within"),                                 // near the float32 limit
        ([0.5, 0.25, 0.5, 0.25, 0.5, 0.25], "identical"),
    ])
    func embeddingsThatCannotBeProjectedAreRefused(values: [Float], reason: String) {
        let error = problem { () throws(RunFormatError) in try EmbeddingValues.validate(Matrix(rows: 3, columns: 2, storage: values), path: "e.npy") }
        #expect(error?.problem.contains(reason) == true, "\(String(describing: error))")
    }

    @Test func smallButOrdinaryEmbeddingsAreAccepted() throws {
        try EmbeddingValues.validate(Matrix(rows: 3, columns: 2, storage: [1e-6, 0, 0, 1e-6, 1e-6, 1e-6]), path: "e.npy")
    }

    @Test func invalidUTF8ClassNamesAreRefused() {
        let run = directory + "/names"
        _ = write([0x5B, 0x22, 0xFF, 0xFE, 0x22, 0x5D], "names/class_names.json")
        let annotations = SampleAnnotations.read(runPath: run, sampleCount: 3)
        #expect(annotations.problems.first?.problem.contains("UTF-8") == true)
    }
}

/// The run scanner: ordering, duplicates, completeness of live checkpoints.
@Suite struct RunScannerTests {
    let run = temporaryDirectory()

    func checkpoint(_ name: String, rows: Int = 4, marker: Bool = false) {
        let folder = run + "/" + name
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let values = (0..<(rows * 2)).map { Float($0 % 7) }
        FileManager.default.createFile(atPath: folder + "/embeddings.npy",
                                       contents: Data(NPYWriter.encode(float32: values, shape: [rows, 2])))
        if marker { FileManager.default.createFile(atPath: folder + "/embeddings.npy.complete", contents: Data()) }
    }

    @Test func stepsAreOrderedNumericallyAndOddNamesIgnored() {
        for name in ["checkpoint-10", "checkpoint-9", "checkpoint-100", "checkpoint-+5", "checkpoint- 7", "checkpoint-best"] { checkpoint(name) }
        var scanner = RunScanner(path: run, mode: .finished)
        let snapshot = scanner.scan()
        #expect(snapshot.problems.isEmpty)
        #expect(snapshot.ready.map(\.step) == [9, 10, 100])
    }

    @Test func twoFoldersOfOneStepAreRefusedNamingBoth() {
        for name in ["checkpoint-5", "checkpoint-05", "checkpoint-6"] { checkpoint(name) }
        var scanner = RunScanner(path: run, mode: .finished)
        let problem = scanner.scan().problems.first
        #expect(problem?.problem.contains("checkpoint-05") == true && problem?.problem.contains("checkpoint-5 ") == true)
    }

    @Test func stepsBeyondTwoToTheFiftyThreeAreSkippedWithAWarning() {
        checkpoint("checkpoint-1")
        checkpoint("checkpoint-99999999999999999999")
        var scanner = RunScanner(path: run, mode: .finished)
        let snapshot = scanner.scan()
        #expect(snapshot.ready.map(\.step) == [1])
        #expect(snapshot.warnings.contains { $0.contains("99999999999999999999") })
    }

    @Test func aLiveCheckpointWithoutItsMarkerWaitsToSettle() {
        var scanner = RunScanner(path: run, mode: .live(settle: .seconds(30)))
        let start = ContinuousClock.now, elapsed = Mutex(Duration.zero)
        scanner.now = { start + elapsed.withLock { $0 } }
        checkpoint("checkpoint-1")  // just written, no marker: could be a pre-sized file still being filled
        #expect(scanner.scan().ready.isEmpty)
        elapsed.withLock { $0 = .seconds(29) }
        #expect(scanner.scan().ready.isEmpty, "not settled yet")
        elapsed.withLock { $0 = .seconds(31) }
        #expect(scanner.scan().ready.map(\.step) == [1])
        checkpoint("checkpoint-2", marker: true)  // marked complete: at once
        #expect(scanner.scan().ready.map(\.step) == [2])
        #expect(scanner.scan().ready.isEmpty, "each checkpoint is handed out once")
    }

    @Test func aLiveCheckpointHoldsBackLaterOnesAndLateOnesAreSkipped() {
        var scanner = RunScanner(path: run, mode: .live(settle: .seconds(60)))
        checkpoint("checkpoint-1")
        checkpoint("checkpoint-2", marker: true)
        #expect(scanner.scan().ready.isEmpty, "step 2 waits for step 1")
        checkpoint("checkpoint-1", marker: true)
        #expect(scanner.scan().ready.map(\.step) == [1, 2])
        checkpoint("checkpoint-0", marker: true)
        let snapshot = scanner.scan()
        #expect(snapshot.ready.isEmpty && snapshot.warnings.contains { $0.contains("checkpoint-0") })
    }

    @Test func aDeletedRunIsReported() throws {
        var scanner = RunScanner(path: run, mode: .live(settle: .zero))
        #expect(scanner.scan().exists)
        try FileManager.default.removeItem(atPath: run)
        #expect(!scanner.scan().exists)
    }
}

/// What a watch scans many times a second: read again only when it changed, reported once.
@Suite struct LiveScanTests {
    let run = temporaryDirectory()

    @Test func aBrokenLossLogOrRunFileIsReportedOnceAndTheLastGoodOneKept() throws {
        var scanner = RunScanner(path: run, mode: .live(settle: .zero))
        try #"{"run_id": "first"}"#.write(toFile: run + "/run.json", atomically: true, encoding: .utf8)
        try "step,loss\n1,0.5\n".write(toFile: run + "/losses.csv", atomically: true, encoding: .utf8)
        let first = scanner.scan()
        #expect(first.runID == "first" && first.warnings.isEmpty)
        #expect(scanner.losses.history.training.count == 1)
        try "{not json".write(toFile: run + "/run.json", atomically: true, encoding: .utf8)
        try "step,loss\n1,0.5\n2,abc\n".write(toFile: run + "/losses.csv", atomically: true, encoding: .utf8)
        let second = scanner.scan(), third = scanner.scan()
        #expect(second.runID == "first" && second.problems.isEmpty)
        #expect(second.warnings.count == 2, "\(second.warnings)")
        #expect(third.warnings.isEmpty && third.runID == "first")
        #expect(scanner.losses.history.training.count == 1)
    }
}

extension RunScannerTests {
    @Test func aFileRenamedIntoPlaceIsWholeAtOnce() throws {
        var scanner = RunScanner(path: run, mode: .live(settle: .seconds(60)))
        let folder = run + "/checkpoint-3"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(scanner.scan().ready.isEmpty)  // the folder is watched from now on
        let bytes = NPYWriter.encode(float32: (0..<8).map { Float($0 % 5) }, shape: [4, 2])
        FileManager.default.createFile(atPath: folder + "/.tmp", contents: Data(bytes))
        #expect(rename(folder + "/.tmp", folder + "/embeddings.npy") == 0)
        #expect(scanner.scan().ready.map(\.step) == [3], "renamed into place: no settle interval")
        checkpoint("checkpoint-4")  // written in place, no marker: waits to settle
        #expect(scanner.scan().ready.isEmpty)
    }
}
