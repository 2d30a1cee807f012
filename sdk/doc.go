// Package sdk is the public SDK for runtime-attestor check plugins.
//
// A check plugin is a separate executable named attestor-check-<name> that
// the runtime-attestor daemon starts, describes, configures and asks for
// measurements. An author implements the small Check interface (and, when
// the plugin takes configuration, Configurer) and calls Serve from main:
//
//	type check struct{}
//
//	func (check) Describe() sdk.Description {
//		return sdk.Description{
//			Name:    "hello",
//			Version: "1.0.0",
//			Findings: []sdk.FindingSpec{
//				{Code: "hello.absent", DefaultSeverity: sdk.SeverityMedium, Description: "/etc/hello is missing"},
//			},
//		}
//	}
//
//	func (check) Measure(ctx context.Context, req sdk.Request) (*sdk.Result, error) {
//		res := sdk.NewResult()
//		if _, err := os.Stat("/etc/hello"); err != nil {
//			res.Addf("hello.absent", sdk.SeverityMedium, "/etc/hello", "stat /etc/hello: %v", err)
//		}
//		return res, nil
//	}
//
//	func main() { plugin.Serve(check{}) }
//
// main lives in a package of its own that imports sdk/plugin; plugin.Serve
// is its one call. Package sdk itself is plain Go (the standard library and
// hclog, the logger of Request): go-plugin, gRPC, protobuf and the sandbox
// implementation never appear in an author's code; sdk/plugin links them
// for the executable, and sdk/sdktest runs a check over the real protocol
// in go test.
//
// # Compatibility promise
//
// This is version 0.1.0 of the SDK. Releases of the module are tagged
// vMAJOR.MINOR.PATCH (docs/plugins.md, "Depending on the SDK"). The promise
// covers every exported name of sdk, sdk/plugin and sdk/sdktest; nothing
// else of the module is part of the SDK (internal/ cannot be imported
// from outside it). While MAJOR is 0, a PATCH release never changes such a
// name incompatibly and a MINOR release may, listing each such change in
// its release notes; from v1.0.0 on, no incompatible change without a new
// major version. New optional interfaces, struct fields and functions may
// be added in any release. The wire protocol is versioned separately; a
// daemon speaks every protocol version it has ever shipped, so a plugin
// built against an older SDK keeps working with a newer daemon. Finding
// codes that a plugin documents are part of that plugin's contract:
// operators key severity overrides and alerts on them, so a code keeps its
// meaning once released.
package sdk
