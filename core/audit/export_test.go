package audit

import "github.com/secure-ai/runtime-attestor/core/bundle"

func canonicalJSON(raw []byte) ([]byte, error) { return bundle.Canonical(raw) }
