package apitest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
)

func TestRefreshSharesAndOutlivesCallers(t *testing.T) {
	t.Parallel()
	a := apitest.New(engine.Snapshot{State: state.Pending})
	a.SetNext(apitest.To(state.Degraded, []byte(`{}`)))
	release := a.Hold()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A caller that gives up does not stop the attestation.
	quit, quitCancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := a.Refresh(quit); gaveUp <- err }()
	if !a.WaitFor(ctx, func(runs, _, waiting int) bool { return runs == 1 && waiting == 1 }) {
		t.Fatal("first refresh never started")
	}
	quitCancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	if !a.Running() {
		t.Fatal("attestation stopped with its caller")
	}

	var wg sync.WaitGroup
	got := make([]engine.Snapshot, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := a.Refresh(ctx)
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		}()
	}
	if !a.WaitFor(ctx, func(_, _, waiting int) bool { return waiting == 4 }) {
		t.Fatal("joiners never arrived")
	}
	if s := a.Snapshot(); s.State != state.Pending {
		t.Fatalf("Snapshot during the attestation = %s", s.State)
	}
	release()
	wg.Wait()
	runs, joins, _ := a.Stats()
	if runs != 1 || joins != 4 {
		t.Errorf("runs %d joins %d, want 1 and 4", runs, joins)
	}
	for i, s := range got {
		if s.State != state.Degraded || s.AttestCount != 1 || s.DegradeCount != 1 || s.RefreshCount != 1 {
			t.Errorf("caller %d got %+v", i, s)
		}
	}
	if a.Running() || a.Snapshot().State != state.Degraded {
		t.Error("attestation did not finish")
	}
}
