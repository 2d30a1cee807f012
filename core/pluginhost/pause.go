package pluginhost

import "context"

// pauseKey is the context key of WithPause.
type pauseKey struct{}

// WithPause returns a copy of ctx that makes Measure call pause before it
// hands each plugin its turn (the engine paces attestations with it so
// that they leave CPU to the API under the unit's quota). pause is called
// from the goroutine that called Measure, one call at a time; it returns
// when the turn may begin, at the latest when its ctx ends.
func WithPause(ctx context.Context, pause func(context.Context)) context.Context {
	return context.WithValue(ctx, pauseKey{}, pause)
}

// pauseBeforeTurn calls the pause ctx carries, if any.
func pauseBeforeTurn(ctx context.Context) {
	if pause, ok := ctx.Value(pauseKey{}).(func(context.Context)); ok && pause != nil {
		pause(ctx)
	}
}
