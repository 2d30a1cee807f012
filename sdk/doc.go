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
//	func main() { sdk.Serve(check{}) }
//
// go-plugin, gRPC and protobuf never appear in an author's code; they live in
// the wire package, which the daemon and the sdktest harness use.
//
// # Compatibility promise
//
// Releases of the module are tagged vMAJOR.MINOR.PATCH (docs/plugins.md,
// "Depending on the SDK"). While MAJOR is 0, a PATCH release never changes
// an exported name of sdk, sdk/sdktest or sdk/sandbox incompatibly and a
// MINOR release may, listing each such change in its release notes; from
// v1.0.0 on, no incompatible change without a new major version. Names
// documented as used by the daemon or the wire layer (Handshake,
// PluginName, NewConfig, DeclaredSandbox) are outside the promise. New
// optional interfaces, struct fields and functions may be added in any
// release. The wire protocol is versioned separately (ProtocolVersion); a
// daemon speaks every protocol version it has ever shipped, so a plugin
// built against an older SDK keeps working with a newer daemon. Finding
// codes that a plugin documents are part of that plugin's contract:
// operators key severity overrides and alerts on them, so a code keeps its
// meaning once released.
package sdk
