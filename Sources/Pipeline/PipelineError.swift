import Canvas
import CheckpointCache
import FileOutput
import MediaEncoder
import RunFormat

/// A failure anywhere in the pipeline: what it is about (a file, a folder, a step) and why, with
/// the lower modules' own errors kept as they are. Its description is the one line the user sees.
public struct PipelineError: Error, CustomStringConvertible {
    /// A file or folder path, or a stage ("drawing step 40"); nil when the reason names its own.
    public let subject: String?
    public let reason: Reason

    public enum Reason: Sendable {
        /// A run's file could not be read or is wrong (it names the file).
        case input(RunFormatError)
        /// A file or folder could not be written (it names the path).
        case output(FileOutputError)
        case media(MediaError)
        case canvas(CanvasError)
        case cache(CacheError)
        /// In words: a rule of the pipeline's own, or an error of another kind.
        case problem(String)
    }

    public init(_ subject: String? = nil, _ reason: Reason) {
        self.subject = subject
        self.reason = reason
    }

    /// A rule of the pipeline's own, in words (the subject, if any, written into them).
    public init(_ problem: String) { self.init(nil, .problem(problem)) }

    public init(_ error: RunFormatError) { self.init(nil, .input(error)) }
    public init(_ error: FileOutputError) { self.init(nil, .output(error)) }
    public init(_ error: CacheError) { self.init(nil, .cache(error)) }

    /// `error` about `subject`: typed when it is one of the lower modules', in words otherwise.
    public init(_ subject: String, _ error: any Error) {
        switch error {
        case let error as PipelineError: self.init(subject, .problem(error.description))
        case let error as RunFormatError: self.init(subject, .input(error))
        case let error as FileOutputError: self.init(subject, .output(error))
        case let error as MediaError: self.init(subject, .media(error))
        case let error as CanvasError: self.init(subject, .canvas(error))
        case let error as CacheError: self.init(subject, .cache(error))
        default: self.init(subject, .problem("\(error)"))
        }
    }

    public var description: String {
        let why: String
        switch reason {
        case .input(let error): why = error.description
        case .output(let error): why = error.description
        case .media(let error): why = error.description
        case .canvas(let error): why = error.description
        case .cache(let error): why = error.description
        case .problem(let text): why = text
        }
        return subject.map { "\($0): \(why)" } ?? why
    }
}
