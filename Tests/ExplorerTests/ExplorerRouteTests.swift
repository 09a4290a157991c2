import Testing
@testable import Explorer

/// The explorer's URL space: its routes exactly, and nothing that decodes, normalises or
/// resolves to anything (the HTTP tests send the same targets over raw sockets).
@Suite struct ExplorerRouteTests {
    @Test(arguments: [
        ("/", ExplorerRoute.page), ("/index.html", .page), ("/app.js", .asset("app.js")), ("/style.css", .asset("style.css")),
        ("/favicon.svg", .asset("favicon.svg")), ("/api/run", .run), ("/api/run?x=1", .run), ("/api/events", .events),
        ("/api/checkpoints/0/points", .points(step: 0)), ("/api/checkpoints/1200/scores", .scores(step: 1200)),
        ("/api/checkpoints/9007199254740992/points", .points(step: 9_007_199_254_740_992)), ("/api/loss", .loss),
        ("/api/samples/0", .sample(index: 0)), ("/api/samples/417/image.png", .sampleImage(index: 417)),
        ("/api/export.csv", .table), ("/api/export.csv?download=1", .table), ("/api/runs", .runs),
    ])
    func routes(target: String, route: ExplorerRoute) {
        let matched = ExplorerRoute.match(target: target)
        #expect(matched?.route == route && matched?.run == 0)
    }

    @Test(arguments: [
        ("/api/runs/0/run", 0, ExplorerRoute.run), ("/api/runs/1/run", 1, .run), ("/api/runs/1/events", 1, .events),
        ("/api/runs/1/checkpoints/40/points", 1, .points(step: 40)), ("/api/runs/0/samples/3/image.png", 0, .sampleImage(index: 3)),
        ("/api/runs/1/export.csv", 1, .table), ("/api/runs/7/loss", 7, .loss),
    ])
    func routesOfOneRun(target: String, run: Int, route: ExplorerRoute) {
        let matched = ExplorerRoute.match(target: target)
        #expect(matched?.route == route && matched?.run == run)
    }

    @Test(arguments: [
        "", "..", "/..", "/../etc/passwd", "/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd", "/%252e%252e/etc/passwd",
        "//etc/passwd", "/etc/passwd", "http://127.0.0.1/app.js", "/app.js%00", "/app.js\u{0}", "/./app.js", "/app.js/",
        "/api/../app.js", "/..\\app.js", "/api/checkpoints/00/points", "/api/checkpoints/+1/points", "/api/checkpoints/-1/points",
        "/api/checkpoints/12345678901234567/points", "/api/checkpoints//points", "/api/checkpoints/1/points/",
        "/api/checkpoints/1/../points", "/API/RUN", "/api/run/", "/index.html/..", "/assets/explorer/app.js",
        "/\u{FF0E}\u{FF0E}/etc/passwd", String(repeating: "a", count: 600), "/api/samples", "/api/samples/",
        "/api/samples/01", "/api/samples/1/", "/api/samples/1/image.jpg", "/api/samples/1/image.png/",
        "/api/samples/1/points", "/api/checkpoints/1/image.png", "/api/checkpoints/1", "/api/samples/..%2f1",
        "/api/export.csv/", "/api/loss/1", "/api/samples/1/../../run", "/api/runs/", "/api/runs/1", "/api/runs/1/",
        "/api/runs/01/run", "/api/runs/-1/run", "/api/runs/1/runs", "/api/runs/1/app.js", "/api/runs/1/index.html",
        "/api/runs/1/api/run", "/api/runs/1/runs/0/run", "/api/runs/1//run", "/api/runs/x/run", "/api/runs/1/../run",
    ])
    func everythingElseIsNotARoute(target: String) {
        #expect(ExplorerRoute.match(target: target) == nil)
    }

    @Test(arguments: [("127.0.0.1:8737", true), ("localhost:1", true), ("LOCALHOST", true), ("[::1]:8737", true),
                      ("attacker.example:8737", false), ("127.0.0.1.attacker.example", false), ("[::1", false),
                      ("0.0.0.0:8737", false)])
    func onlyLoopbackHostHeadersAreAnsweredOnLoopback(authority: String, answered: Bool) {
        #expect(ExplorerResponder.isLoopback(authority: authority) == answered)
    }

    @Test func pointsAreLittleEndianFloat32() {
        #expect(APIDocuments.littleEndianFloat32([1, -2.5]) == [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0])
    }
}
