@testable import EmbedlapseCLI
import Testing

/// The command line's own value types, parsed as ArgumentParser parses them.
@Suite struct ArgumentTests {
    @Test(arguments: [("0:10", 0, 10), (":5", nil, 5), ("10:", 10, nil), (":", nil, nil), ("3:3", 3, 3)] as [(String, Int?, Int?)])
    func checkpointRangesParse(text: String, from: Int?, to: Int?) throws {
        let range = try #require(CheckpointRange(argument: text))
        #expect(range.from == from && range.to == to)
        #expect(range.description == text)
    }

    @Test(arguments: ["", "5", "a:b", "5:3", "-1:2", "1:2:3", "1234567890:", " 1:2", "１:2"])
    func badCheckpointRangesAreRefused(text: String) {
        #expect(CheckpointRange(argument: text) == nil)
    }

    @Test func aRangeSelectsByPositionAndClampsToTheRun() {
        let all = Array(10..<20)
        #expect(Array(CheckpointRange(from: 2, to: 5).select(all)) == [12, 13, 14])
        #expect(Array(CheckpointRange(from: 8, to: nil).select(all)) == [18, 19])
        #expect(Array(CheckpointRange(from: 30, to: 40).select(all)).isEmpty)
    }

    @Test(arguments: [3, 10, 31, 1])
    func shardsCoverEveryCheckpointExactlyOnce(checkpoints: Int) throws {
        for count in 1...5 {
            var covered: [Int] = []
            for index in 1...count {
                let shard = try #require(Shard(argument: "\(index)/\(count)"))
                covered += shard.range(of: checkpoints).select(Array(0..<checkpoints))
            }
            #expect(covered == Array(0..<checkpoints), "\(count) shards of \(checkpoints)")
        }
    }

    @Test(arguments: ["0/3", "4/3", "1/0", "1", "a/b", "1/2/3", "-1/2", "1/1234567"])
    func badShardsAreRefused(text: String) {
        #expect(Shard(argument: text) == nil)
    }
}
