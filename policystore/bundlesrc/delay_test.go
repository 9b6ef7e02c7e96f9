package bundlesrc

import (
	"testing"
	"time"
)

func TestPollDelay(t *testing.T) {
	t.Parallel()
	c := PollConfig{Interval: time.Second, Jitter: 0.1, MaxBackoff: 10 * time.Second}
	cases := []struct {
		failures int
		u        float64
		want     time.Duration
	}{
		{0, 0.5, time.Second},
		{0, 0, 900 * time.Millisecond},
		{0, 1, 1100 * time.Millisecond},
		{1, 0.5, 2 * time.Second},
		{3, 0.5, 8 * time.Second},
		{4, 0.5, 10 * time.Second},
		{1000, 0.5, 10 * time.Second},
	}
	for _, tc := range cases {
		if got := c.delay(tc.failures, tc.u); got != tc.want {
			t.Errorf("delay(%d, %v) = %v, want %v", tc.failures, tc.u, got, tc.want)
		}
	}
}
