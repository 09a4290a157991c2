@testable import Pipeline
import FileOutput
import MediaEncoder
import RunFormat
import Testing

/// Pipeline errors keep the lower modules' errors as they are, and print the one line users read.
@Suite struct PipelineErrorTests {
    @Test func aRunsFileKeepsItsOwnErrorAndWords() {
        let input = RunFormatError("run/checkpoint-5/embeddings.npy", "truncated")
        let error = PipelineError(input)
        guard case .input(let kept) = error.reason else { Issue.record("not an input error: \(error.reason)"); return }
        #expect(kept == input)
        #expect(error.description == "run/checkpoint-5/embeddings.npy: truncated")
    }

    @Test func aSubjectIsWrittenBeforeTheReason() {
        let error = PipelineError("drawing step 40", MediaError("out of memory"))
        guard case .media = error.reason else { Issue.record("not a media error: \(error.reason)"); return }
        #expect(error.description == "drawing step 40: out of memory")
        let wrapped = PipelineError("cannot write the analysis cache c", FileOutputError("c/analysis-5", writing: 28))
        guard case .output(let output) = wrapped.reason else { Issue.record("not an output error"); return }
        #expect(output.code == 28 && wrapped.description == "cannot write the analysis cache c: c/analysis-5: disk full")
    }

    @Test func aPipelineErrorWrappedAgainReadsAsBefore() {
        let inner = PipelineError("the checkpoint has 5 samples, unlike the ones before it")
        #expect(PipelineError("run/checkpoint-9/embeddings.npy", inner).description
                == "run/checkpoint-9/embeddings.npy: the checkpoint has 5 samples, unlike the ones before it")
    }
}
