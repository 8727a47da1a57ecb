package admin

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cuemta/cuemta/deliverylog"
)

// Actions reported to the OnAction hook.
const (
	ActionInject  = "inject"
	ActionSuspend = "suspend"
	ActionResume  = "resume"
	ActionRetry   = "retry"
	ActionBounce  = "bounce"
	ActionDelete  = "delete"
	ActionReload  = "reload"
	// ActionSuppress and ActionUnsuppress change the suppression list.
	ActionSuppress   = "suppress"
	ActionUnsuppress = "unsuppress"
)

// ActionEvent is one operator action that reached the Backend, successful
// or not (Err). Requests refused by authentication or validation are not
// actions: they changed nothing.
type ActionEvent struct {
	Time     time.Time
	Action   string // one of the Action* constants
	Actor    string // "cli:USER" from the cuemta commands (X-Cuemta-Actor), else "api"
	ClientIP string

	MessageID  string    // retry, bounce, delete
	Scope, Key string    // suspend, resume
	Until      time.Time // suspend
	Reason     string    // suspend, bounce
	Generation uint64    // reload: the generation in force afterwards
	Injected   int       // inject: messages enqueued
	Failed     int       // inject: recipients not enqueued
	Err        error     // why the action failed; nil when it succeeded
	Address    string    // suppress (of one entry), unsuppress; Scope "tenant", Key the tenant
	Count      int       // suppress: entries added
}

// LogEvent converts the action to a delivery log line of type "admin".
func (e ActionEvent) LogEvent() deliverylog.Event {
	ev := deliverylog.Event{
		Time:       e.Time,
		Type:       deliverylog.TypeAdmin,
		Action:     e.Action,
		Actor:      e.Actor,
		ClientIP:   e.ClientIP,
		MessageID:  e.MessageID,
		Generation: e.Generation,
	}
	switch e.Scope {
	case "site":
		ev.Site = e.Key
	case "source":
		ev.Source = e.Key
	case "tenant":
		ev.Tenant = e.Key
	case "campaign":
		ev.Campaign = e.Key
	}
	var why []string
	if e.Reason != "" {
		why = append(why, e.Reason)
	}
	if !e.Until.IsZero() {
		why = append(why, "until "+e.Until.UTC().Format(time.RFC3339))
	}
	if e.Action == ActionInject {
		why = append(why, fmt.Sprintf("%d injected, %d failed", e.Injected, e.Failed))
	}
	if e.Action == ActionSuppress && e.Count != 1 {
		why = append(why, fmt.Sprintf("%d entries", e.Count))
	}
	ev.Rcpt = e.Address
	if e.Err != nil {
		why = append(why, "failed: "+e.Err.Error())
	}
	ev.Reason = strings.Join(why, "; ")
	return ev
}

// actorHeader names the operator; set by the cuemta commands. It is
// informational: the token, not this header, authenticates.
const actorHeader = "X-Cuemta-Actor"

func actorOf(r *http.Request) string {
	a := r.Header.Get(actorHeader)
	if a == "" || len(a) > 64 {
		return "api"
	}
	for i := 0; i < len(a); i++ {
		if a[i] <= ' ' || a[i] > '~' {
			return "api"
		}
	}
	return a
}

// record reports an action to the hook, if any.
func (s *Server) record(r *http.Request, e ActionEvent) {
	if s.opts.onAction == nil {
		return
	}
	e.Time = s.opts.now()
	e.Actor = actorOf(r)
	e.ClientIP = clientIP(r)
	s.opts.onAction(e)
}
