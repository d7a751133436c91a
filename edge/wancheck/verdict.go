package wancheck

import (
	"time"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// lossWindow is how many rounds LossPct looks back over.
const lossWindow = 10

// roundResult is the outcome of one round of one WAN.
type roundResult struct {
	// OK: at least one target answered within the timeout.
	OK bool
	// Target and RTT are the fastest answer's (OK only); the status keeps
	// the last answer's through failed rounds.
	Target string
	RTT    time.Duration
	// Sent and Lost count the round's echoes. Echoes that could not be
	// sent (no address, no link, a send error) count as sent and lost.
	Sent, Lost int
	// Local: the WAN itself is not usable (no interface, link down, no
	// address): unreachable at once, whatever FailRounds says.
	Local bool
	// Err says why the round failed ("" when OK).
	Err string
}

// verdict is the reachability state machine of one WAN. It knows nothing
// until its first verdict: the first good round (reachable), FailRounds
// failed rounds in a row, or a round that found the WAN unusable
// (unreachable).
type verdict struct {
	started time.Time // when checks began: Since of the first verdict
	known   bool
	st      devproto.InternetStatus
	fails   int // failed rounds in a row
	window  [lossWindow]struct{ sent, lost int }
	rounds  int // rounds recorded (the window holds min(rounds, lossWindow))
}

func newVerdict(started time.Time) verdict { return verdict{started: started} }

// record takes in a round finished at now and reports whether Reachable
// changed (the first verdict counts as a change).
func (v *verdict) record(r roundResult, now time.Time, failRounds int) bool {
	v.window[v.rounds%lossWindow] = struct{ sent, lost int }{r.Sent, r.Lost}
	v.rounds++
	var sent, lost int
	for i := 0; i < min(v.rounds, lossWindow); i++ {
		sent += v.window[i].sent
		lost += v.window[i].lost
	}
	v.st.LossPct = 0
	if sent > 0 {
		v.st.LossPct = 100 * float64(lost) / float64(sent)
	}
	v.st.CheckedAt = now
	var reachable, decided bool
	if r.OK {
		v.fails = 0
		v.st.Target, v.st.RTTMillis, v.st.Error = r.Target, float64(r.RTT.Microseconds())/1000, ""
		reachable, decided = true, true
	} else {
		v.fails++
		// Target and RTTMillis stay those of the last answer.
		v.st.Error = truncate(r.Err, MaxErrorLen)
		if r.Local || v.fails >= max(failRounds, 1) {
			reachable, decided = false, true
		}
	}
	switch {
	case !decided:
		return false
	case !v.known:
		v.known = true
		v.st.Reachable, v.st.Since = reachable, v.started
		return true
	case v.st.Reachable != reachable:
		v.st.Reachable, v.st.Since = reachable, now
		return true
	}
	return false
}

// status returns the WAN's status, nil before the first verdict.
func (v *verdict) status() *devproto.InternetStatus {
	if !v.known {
		return nil
	}
	st := v.st
	return &st
}
