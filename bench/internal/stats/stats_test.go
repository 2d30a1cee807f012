package stats

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	sorted := []float64{1, 2, 3, 4, 5}
	for i, tc := range []struct {
		p, want float64
	}{
		{0, 1}, {25, 2}, {50, 3}, {75, 4}, {100, 5}, {10, 1.4}, {99, 4.96}, {-5, 1}, {150, 5},
	} {
		if got := Percentile(sorted, tc.p); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Test %d: Percentile(%v) = %v, want %v", i, tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil) = %v, want NaN", got)
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("Percentile of one sample = %v, want 7", got)
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	in := []float64{5, 1, 4, 2, 3}
	s := Summarize(in)
	want := Summary{N: 5, Min: 1, P25: 2, Median: 3, P75: 4, P90: 4.6, P99: 4.96, Max: 5, Mean: 3}
	if math.Abs(s.P90-want.P90) > 1e-9 || math.Abs(s.P99-want.P99) > 1e-9 {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	s.P90, s.P99 = want.P90, want.P99
	if s != want {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	if in[0] != 5 {
		t.Fatal("Summarize reordered its input")
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("Summarize(nil) is not the zero Summary")
	}
}

func TestRatio(t *testing.T) {
	t.Parallel()
	if got := Ratio(3, 2); got != 1.5 {
		t.Fatalf("Ratio(3, 2) = %v", got)
	}
	if got := Ratio(3, 0); !math.IsNaN(got) {
		t.Fatalf("Ratio(3, 0) = %v, want NaN", got)
	}
}
