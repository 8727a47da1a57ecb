package smtpclient

import "github.com/cuemta/cuemta/smtpreply"

// Stages of an SMTP session, as recorded in Reply.Stage and NetError.Stage.
const (
	StageConnect  = "connect"
	StageGreeting = "greeting"
	StageEHLO     = "ehlo"
	StageSTARTTLS = "starttls"
	StageAuth     = "auth"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data" // the DATA command
	StageEOD      = "eod"  // the reply after the final "."
	StageRset     = "rset"
	StageQuit     = "quit"
)

// Reply is one server reply: the project's one reply type, with Stage
// and Lines filled in by the client.
type Reply = smtpreply.Reply
