import AsyncAlgorithms
import Compositor
import Foundation
import LinearAlgebra
import RunFormat
import Synchronization
import Testing
@testable import Pipeline

/// Emits prepared events and counts how many the pipeline has taken.
final class ScriptedSource: CheckpointSource {
    let events: [CheckpointEvent]
    let failAfter: Int?
    let sent = Atomic<Int>(0)

    init(count: Int, n: Int = 120, d: Int = 6, failAfter: Int? = nil) {
        var state: UInt64 = 7
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        events = (0..<count).map { index in
            var x = Matrix(zeros: n, d)
            for i in 0..<n { for j in 0..<d { x[i, j] = next() + (j == i % 3 ? Float(index) * 0.3 : 0) } }
            return CheckpointEvent(index: index, step: index * 10, epoch: Double(index) / 4, embeddings: x,
                                   losses: LossHistory(training: [.init(step: index * 10, loss: 1 / Double(index + 1))]),
                                   origin: "scripted checkpoint \(index)")
        }
        self.failAfter = failAfter
    }

    func emit(into channel: AsyncThrowingChannel<CheckpointEvent, any Error>, stop: StopFlag) async {
        for event in events {
            if stop.isRaised { break }
            if let failAfter, event.index == failAfter {
                channel.fail(PipelineError("scripted failure"))
                return
            }
            await channel.send(event)
            sent.add(1, ordering: .relaxed)
        }
        channel.finish()
    }
}

@Suite struct PipelineTests {
    let directory: String = {
        let path = NSTemporaryDirectory() + "embedlapse-pipeline-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func options(_ name: String) -> RenderOptions {
        var options = RenderOptions()
        options.videoPaths = [directory + "/" + name]
        options.dumpDirectory = directory + "/dump-" + name
        options.width = 640
        options.height = 360
        options.tween = 1  // one frame per checkpoint: these tests are about the stages, not motion
        return options
    }

    func setting(n: Int = 120) -> FilmSetting {
        FilmSetting(sampleCount: n, dimension: 6, labels: (0..<n).map { $0 % 3 }, classNames: ["a", "b", "c"], thumbnails: nil,
                    wholeRunLosses: nil, checkpointCount: nil, title: nil, alignment: "test")
    }

    @Test func everyEventBecomesAFrameAndTheSourceNeverRunsAhead() async throws {
        let source = ScriptedSource(count: 9)
        let lead = Mutex<[Int]>([])
        let summary = try await RenderPipeline.run(source: source, setting: setting(), options: options("all.mp4"), stop: StopFlag(),
                                                   progress: { done in lead.withLock { $0.append(source.sent.load(ordering: .relaxed) - done) } })
        #expect(summary.frames == 9 && !summary.interrupted)
        let alignment = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/dump-all.mp4/alignment.json"))) as! [String: Any]
        #expect((alignment["checkpoints"] as! [Any]).count == 9)
        // Unbuffered channels: at most the event in analysis and the one being handed over are ahead of the frames.
        #expect(lead.withLock { $0.max()! } <= 2, "lead \(lead.withLock { $0 })")
        #expect(FileManager.default.fileExists(atPath: directory + "/all.mp4"))
    }

    @Test func aTweenedFilmHasNMinusOneFramesBetweenCheckpoints() async throws {
        var tweened = options("tweened.mp4")
        tweened.tween = 3
        tweened.trails = 2
        let summary = try await RenderPipeline.run(source: ScriptedSource(count: 5), setting: setting(), options: tweened, stop: StopFlag())
        #expect(summary.frames == 4 * 3 + 1 && !summary.interrupted)
        let labels = try FileManager.default.contentsOfDirectory(atPath: directory + "/dump-tweened.mp4").filter { $0.hasPrefix("labels-") }
        #expect(labels.count == 5, "one label layout per checkpoint")
    }

    @Test func aStopRequestEndsEarlyWithAFinishedVideo() async throws {
        let source = ScriptedSource(count: 30)
        let stop = StopFlag()
        let summary = try await RenderPipeline.run(source: source, setting: setting(), options: options("stopped.gif"), stop: stop,
                                                   progress: { done in if done == 2 { stop.raise() } })
        #expect(summary.interrupted && summary.frames >= 2 && summary.frames <= 5)
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/stopped.gif"))
        #expect(data.last == 0x3B, "a finished GIF ends with its trailer byte")
    }

    @Test func aFailingSourceLeavesNoVideo() async throws {
        let source = ScriptedSource(count: 6, failAfter: 3)
        await #expect(throws: PipelineError.self) {
            try await RenderPipeline.run(source: source, setting: setting(), options: options("failed.mp4"), stop: StopFlag())
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains("failed.mp4") && !$0.hasPrefix("dump") }
        #expect(left.isEmpty, "left behind: \(left)")
    }
}
