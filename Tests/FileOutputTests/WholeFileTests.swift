import FileOutput
import Foundation
import Testing

@Suite struct WholeFileTests {
    let folder: String = {
        let path = NSTemporaryDirectory() + "embedlapse-fileoutput-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func names() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: folder).sorted()) ?? [] }
    func contents(_ name: String) -> [UInt8]? { FileManager.default.contents(atPath: folder + "/" + name).map(Array.init) }

    @Test func nothingIsSeenUntilTheFileIsCommittedWhole() throws {
        let path = folder + "/table.csv"
        try WholeFile.write("old", to: path)
        let file = try WholeFile(path: path)
        try file.append(Array("new, ".utf8))
        try file.append(Array("whole".utf8))
        #expect(names() == ["table.csv"], "an unnamed file leaves no name in the folder while it is written")
        #expect(contents("table.csv") == Array("old".utf8))
        try file.commit()
        #expect(names() == ["table.csv"])
        #expect(contents("table.csv") == Array("new, whole".utf8))
        #expect(Authorship.wrote(path))
    }

    @Test func anAbandonedFileLeavesTheOldOneAsItWas() throws {
        let path = folder + "/film.mp4"
        _ = FileManager.default.createFile(atPath: path, contents: Data("someone else's".utf8))
        #expect(!Authorship.wrote(path), "a file Embedlapse did not write carries no mark")
        let file = try WholeFile(path: path)
        try file.append(Array(repeating: 7, count: 100_000))
        file.abandon()
        #expect(names() == ["film.mp4"])
        #expect(contents("film.mp4") == Array("someone else's".utf8))
    }

    @Test func anotherLibraryCanWriteThroughTheWritingPath() throws {
        let path = folder + "/video.gif"
        let file = try WholeFile(path: path)
        let descriptor = open(file.writingPath, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        #expect(descriptor >= 0)
        _ = "GIF89a".withCString { write(descriptor, $0, 6) }
        close(descriptor)
        try file.commit()
        #expect(contents("video.gif") == Array("GIF89a".utf8))
    }

    @Test func aMissingFolderIsOneLineNamingTheFile() throws {
        let path = folder + "/no/such/out.png"
        #expect(throws: FileOutputError.self) { try WholeFile.write([1], to: path) }
        do { try WholeFile.write([1], to: path) } catch {
            #expect(error.description.hasPrefix(path + ": cannot write: "))
        }
    }

    @Test func leftoversAreRemovedOnlyWhenTheirWriterIsGoneAndTheNameIsOurs() throws {
        // A PID that cannot be running (above pid_max) and this process's own.
        let gone = ".film.mp4.2147483646.partial", running = ".film.mp4.\(getpid()).partial"
        let unmarked = ".film.mp4.2147483645.partial"  // the same shape, but not Embedlapse's: someone else's
        for name in [gone, running, ".notes.txt.2147483646.partial", "film.mp4", unmarked] {
            _ = FileManager.default.createFile(atPath: folder + "/" + name, contents: Data("x".utf8))
            if name != unmarked { Authorship.mark(path: folder + "/" + name) }
        }
        Temporaries.removeLeftovers(in: folder) { $0 == "film.mp4" }
        #expect(names() == [".film.mp4.\(getpid()).partial", ".notes.txt.2147483646.partial", "film.mp4", unmarked].sorted())
        #expect(Temporaries.parse(gone)?.file == "film.mp4")
        #expect(Temporaries.parse("film.mp4") == nil && Temporaries.parse(".x.12a.partial") == nil)
    }

    @Test func foldersAreMadeWithTheirParents() throws {
        try Folders.make(folder + "/a/b/c")
        var isFolder: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: folder + "/a/b/c", isDirectory: &isFolder) && isFolder.boolValue)
        _ = FileManager.default.createFile(atPath: folder + "/file", contents: nil)
        #expect(throws: FileOutputError.self) { try Folders.make(folder + "/file") }
    }

    @Test func stagedFilesAppearTogetherOrNotAtAll() throws {
        let frames = folder + "/frames"
        try Folders.make(frames)
        _ = FileManager.default.createFile(atPath: frames + "/frame-0000.png", contents: Data("earlier".utf8))
        let failed = try StagedFolder(directory: frames, staged: true)
        try failed.write([1], named: "frame-0000.png")
        try failed.write([2], named: "frame-0001.png")
        #expect(Temporaries.names(in: frames).filter { !$0.hasPrefix(".") } == ["frame-0000.png"])
        failed.abandon()
        #expect(Temporaries.names(in: frames) == ["frame-0000.png"], "nothing staged is left")
        #expect(FileManager.default.contents(atPath: frames + "/frame-0000.png") == Data("earlier".utf8))

        let done = try StagedFolder(directory: frames, staged: true)
        try done.write([1], named: "frame-0000.png")
        try done.write([2], named: "frame-0001.png")
        try done.publish()
        #expect(Temporaries.names(in: frames).sorted() == ["frame-0000.png", "frame-0001.png"])
        #expect(FileManager.default.contents(atPath: frames + "/frame-0001.png") == Data([2]))
    }

    @Test func aKilledWritersStagingIsRemovedWithOnlyItsOwnFiles() throws {
        let staging = folder + "/.embedlapse-staging.2147483646.partial"
        try Folders.make(staging)
        _ = FileManager.default.createFile(atPath: staging + "/frame-0003.png", contents: Data([3]))
        Authorship.mark(path: staging + "/frame-0003.png")
        StagedFolder.removeLeftovers(in: folder) { $0.hasPrefix("frame-") }
        #expect(Temporaries.names(in: folder).isEmpty)
        try Folders.make(staging)
        _ = FileManager.default.createFile(atPath: staging + "/notes.txt", contents: Data([3]))
        Authorship.mark(path: staging + "/notes.txt")
        _ = FileManager.default.createFile(atPath: staging + "/frame-0004.png", contents: Data([4]))  // not marked
        StagedFolder.removeLeftovers(in: folder) { $0.hasPrefix("frame-") }
        #expect(Temporaries.names(in: staging).sorted() == ["frame-0004.png", "notes.txt"],
                "a file that is not the output's, or not Embedlapse's, stays")
    }
}
