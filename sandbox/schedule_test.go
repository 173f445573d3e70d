package sandbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testNote is a notification that no loop sends: the test plays the
// loop.
func testNote() *notification { return &notification{wake: make(chan struct{}, 1)} }

// The handshake between a notification's retry loop and the page's
// resends, step by step on the store, with no loop running: whoever
// claims the schedule's next attempt sends it, the other waits or sends
// one beside it, and recording an attempt moves the schedule on or ends
// it.
func TestScheduleHandshake(t *testing.T) {
	h := newTestSandbox(t, withRetry(time.Hour, time.Hour, time.Hour))
	ts := h.trades
	tr := testNote()
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
	assert.True(t, tr.delivered)
	assert.False(t, tr.gaveUp)
	assert.Equal(t, 4, tr.attemptsTotal)

	// Due, not yet claimed by the loop: a resend is beside the schedule,
	// and accepted it ends it, so the loop finds nothing to send.
	tr2 := testNote()
	tr2.next, tr2.nextNumber = now().Add(-time.Second), 2
	assert.Zero(t, ts.claimForResend(tr2, now()))
	ts.recordAttempt(tr2, notifyAttempt{resend: true, accepted: true}, 0)
	assert.False(t, ts.claim(tr2, 2))
	_, _, ok = ts.scheduled(tr2)
	assert.False(t, ok)

	// The last attempt of the schedule, not accepted: given up.
	tr3 := testNote()
	tr3.next, tr3.nextNumber = now(), 4
	assert.True(t, ts.claim(tr3, 4))
	ts.recordAttempt(tr3, notifyAttempt{}, 4)
	assert.True(t, tr3.gaveUp)
	assert.True(t, tr3.next.IsZero())
}

// A trade's notifications have schedules of their own: the payment's
// waits while a refund's is sent, accepted, and ended; the trade sums
// them up.
func TestScheduleEachNotification(t *testing.T) {
	h := newTestSandbox(t, withRetry(time.Hour, time.Hour))
	ts := h.trades
	// No notify_url: the store makes no notification, and the test adds
	// two of its own, with no loop.
	tr, err := ts.open(&trade{appID: testAppID, outTradeNo: "H4", amount: 100, subject: "s"})
	require.NoError(t, err)
	require.Nil(t, ts.markPaid(tr, now()))
	pay, refund := testNote(), testNote()
	pay.id, refund.id = "p", "r"
	pay.next, pay.nextNumber = now().Add(time.Hour), 2
	refund.next, refund.nextNumber = now(), 1
	tr.addNote(pay) // no other goroutine has tr
	tr.addNote(refund)
	assert.Same(t, pay, ts.note(tr, ""), "the first, without an id")
	assert.Same(t, refund, ts.note(tr, "r"))
	assert.Nil(t, ts.note(tr, "x"))

	assert.True(t, ts.claim(refund, 1))
	assert.False(t, ts.claim(pay, 1), "the payment's schedule is at its attempt 2")
	ts.recordAttempt(refund, notifyAttempt{accepted: true}, 1)
	s := ts.snapshot(tr)
	require.Len(t, s.notices, 2)
	assert.True(t, s.notices[1].delivered)
	assert.True(t, s.notices[1].next.IsZero())
	assert.False(t, s.notices[0].delivered)
	assert.Equal(t, pay.next, s.nextDue(), "the payment's wait goes on")
	assert.Equal(t, 2, ts.claimForResend(pay, now()), "a resend of the payment takes its wait's place")
	ts.recordAttempt(pay, notifyAttempt{resend: true}, 2)
	n, _, ok := ts.scheduled(pay)
	assert.True(t, ok)
	assert.Equal(t, 3, n)
	_, _, ok = ts.scheduled(refund)
	assert.False(t, ok, "the refund's loop stays ended")
}
