package sandbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The handshake between a trade's retry loop and the page's resends, step
// by step on the store, with no loop running: whoever claims the
// schedule's next attempt sends it, the other waits or sends one beside
// it, and recording an attempt moves the schedule on or ends it.
func TestScheduleHandshake(t *testing.T) {
	h := newTestSandbox(t, withRetry(time.Hour, time.Hour, time.Hour))
	ts := h.trades
	// No notify_url: markPaid starts no loop, and the test plays it.
	tr, err := ts.open(&trade{appID: testAppID, outTradeNo: "H1", amount: 100, subject: "s"})
	require.NoError(t, err)
	require.Nil(t, ts.markPaid(tr, now()))
	tr.next, tr.nextNumber = now().Add(time.Hour), 2 // attempt 1 failed; the loop waits

	// A resend while the loop waits takes attempt 2.
	assert.Equal(t, 2, ts.claimForResend(tr, now()))
	assert.False(t, ts.claim(tr, 2), "the loop's timer, too late: the resend has it")
	n, _, ok := ts.scheduled(tr)
	assert.True(t, ok)
	assert.Zero(t, n, "the loop waits for the resend's attempt")
	assert.Zero(t, ts.claimForResend(tr, now()), "a second resend meanwhile is beside the schedule")
	ts.recordAttempt(tr, notifyAttempt{resend: true}, 0)
	ts.recordAttempt(tr, notifyAttempt{resend: true}, 2)
	select {
	case <-tr.wake:
	default:
		t.Fatal("the resend's attempt did not wake the loop")
	}
	n, due, ok := ts.scheduled(tr)
	assert.True(t, ok)
	assert.Equal(t, 3, n)
	assert.WithinDuration(t, now().Add(time.Hour), due, time.Minute, "the next wait of the schedule")

	// The loop sends attempt 3; a resend meanwhile, accepted, is beside
	// it, and the loop's attempt, recorded, ends the schedule.
	assert.True(t, ts.claim(tr, 3))
	assert.Zero(t, ts.claimForResend(tr, now()))
	ts.recordAttempt(tr, notifyAttempt{resend: true, accepted: true}, 0)
	_, _, ok = ts.scheduled(tr)
	assert.True(t, ok, "attempt 3 is still being sent")
	ts.recordAttempt(tr, notifyAttempt{}, 3)
	_, _, ok = ts.scheduled(tr)
	assert.False(t, ok, "delivered: the loop ends")
	s := ts.snapshot(tr)
	assert.True(t, s.delivered)
	assert.False(t, s.gaveUp)
	assert.Equal(t, 4, s.attemptsTotal)

	// Due, not yet claimed by the loop: a resend is beside the schedule,
	// and accepted it ends it, so the loop finds nothing to send.
	tr2, err := ts.open(&trade{appID: testAppID, outTradeNo: "H2", amount: 100, subject: "s"})
	require.NoError(t, err)
	require.Nil(t, ts.markPaid(tr2, now()))
	tr2.next, tr2.nextNumber = now().Add(-time.Second), 2
	assert.Zero(t, ts.claimForResend(tr2, now()))
	ts.recordAttempt(tr2, notifyAttempt{resend: true, accepted: true}, 0)
	assert.False(t, ts.claim(tr2, 2))
	_, _, ok = ts.scheduled(tr2)
	assert.False(t, ok)

	// The last attempt of the schedule, not accepted: given up.
	tr3, err := ts.open(&trade{appID: testAppID, outTradeNo: "H3", amount: 100, subject: "s"})
	require.NoError(t, err)
	require.Nil(t, ts.markPaid(tr3, now()))
	tr3.next, tr3.nextNumber = now(), 4
	assert.True(t, ts.claim(tr3, 4))
	ts.recordAttempt(tr3, notifyAttempt{}, 4)
	s = ts.snapshot(tr3)
	assert.True(t, s.gaveUp)
	assert.True(t, s.next.IsZero())
}
