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
// The exported API of package sdk and package sdktest follows semantic
// versioning within major version 1 of this module: identifiers are not
// removed or changed incompatibly; new optional interfaces, struct fields and
// functions may be added. The wire protocol is versioned separately
// (ProtocolVersion); a daemon speaks every protocol version it has ever
// shipped, so a plugin built against an older SDK keeps working with a newer
// daemon. Finding codes that a plugin documents are part of that plugin's
// contract: operators key severity overrides and alerts on them, so a code
// keeps its meaning once released.
package sdk
