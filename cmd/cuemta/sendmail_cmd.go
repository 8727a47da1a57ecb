package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/internal/msgheader"
)

// Exit codes of sendmail, from sysexits.h: callers such as cron and PHP's
// mail() tell a temporary failure (75) from a permanent one by them.
const (
	exUsage       = 64 // bad flags, no recipients
	exDataErr     = 65 // the message or a header is unusable, or too large
	exUnavailable = 69 // the server refused permanently (5xx)
	exIOErr       = 74 // standard input could not be read
	exTempFail    = 75 // the server is unreachable or refused temporarily (4xx)
	exConfig      = 78 // the config cannot be loaded
)

// defaultSendmailLimit bounds the message read from standard input when
// the listener sets no maxMessageSize.
const defaultSendmailLimit = 64 << 20

// sendmailOpts are the parsed sendmail flags.
type sendmailOpts struct {
	extract    bool   // -t: recipients from To, Cc and Bcc
	ignoreDots bool   // -i, -oi: a line with a lone dot does not end the message
	from       string // -f, -r: envelope sender
	fromSet    bool
	fullName   string // -F: display name for a From header we add
	config     string // -c, -C
	verbose    bool   // -v
	mode       string // "" (send), "mailq" (-bp), "newaliases" (-bi), "flush" (-q)
	recipients []string
}

// sendmailUsage is printed for usage errors.
const sendmailUsage = `usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-c CONFIG] [-v] [RECIPIENT...] < message
  -t         read recipients from the To, Cc and Bcc headers (added to RECIPIENTs)
  -i, -oi    a line with a single dot does not end the message
  -f SENDER  envelope sender (-f "<>" for the null sender); default USER@hostname
  -F NAME    full name for the From header when the message has none
  -c CONFIG  config to find the local listener ($CUEMTA_CONFIG; default: the embedded one)
  -v         report progress on standard error
Ignored for compatibility: -bm -odb -odi -odq -oem -oee -om -n -m -U -G -Am -Ac -B -N -R -V -X -L -h -d -e
`

// parseSendmailArgs parses sendmail's command line the way getopt does:
// boolean flags may be bundled (-ti), values may be attached (-fuser@x)
// or separate (-f user@x), and -- ends the flags.
func parseSendmailArgs(args []string) (*sendmailOpts, error) {
	o := &sendmailOpts{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.recipients = append(o.recipients, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			o.recipients = append(o.recipients, a)
			continue
		}
		// value returns the value of the flag at a[j]: the rest of the
		// argument, else the next argument.
		value := func(j int) (string, error) {
			if j+1 < len(a) {
				return a[j+1:], nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag -%c needs a value", a[j])
			}
			i++
			return args[i], nil
		}
	chars:
		for j := 1; j < len(a); j++ {
			switch c := a[j]; c {
			case 't':
				o.extract = true
			case 'i':
				o.ignoreDots = true
			case 'v':
				o.verbose = true
			case 'n', 'm', 'U', 'G':
				// aliases, me-too, initial submission, gateway: meaningless here
			case 'f', 'r', 'F', 'c', 'C', 'B', 'N', 'R', 'V', 'X', 'L', 'h':
				v, err := value(j)
				if err != nil {
					return nil, err
				}
				switch c {
				case 'f', 'r':
					o.from, o.fromSet = v, true
				case 'F':
					o.fullName = v
				case 'c', 'C':
					o.config = v
				}
				break chars
			case 'o':
				opt := a[j+1:]
				if opt == "" {
					v, err := value(j)
					if err != nil {
						return nil, err
					}
					opt = v
				}
				if opt == "i" {
					o.ignoreDots = true
				}
				break chars // -oem, -odi, -oQ...: delivery options of sendmail's own queue
			case 'b':
				switch mode := a[j+1:]; mode {
				case "m", "":
				case "p":
					o.mode = "mailq"
				case "i":
					o.mode = "newaliases"
				default:
					return nil, fmt.Errorf("-b%s is not supported (only -bm, -bp and -bi)", mode)
				}
				break chars
			case 'q':
				o.mode = "flush" // the server runs its queue itself
				break chars
			case 'd', 'e', 'A':
				break chars // debug, error mode, -Am/-Ac: ignored with their values
			default:
				return nil, fmt.Errorf("unknown flag -%c", c)
			}
		}
	}
	return o, nil
}

// sendmailEnv is what sendmail needs from the outside, replaced in tests.
type sendmailEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
	user           string
	loadConfig     func(path string) (*config.Config, error)
	submit         func(addr, helo, from string, rcpts []string, msg []byte) (string, error)
}

// runSendmail implements `cuemta sendmail`.
func runSendmail(args []string, stdout, stderr io.Writer) int {
	return sendmail(args, defaultSendmailEnv(os.Stdin, stdout, stderr))
}

// sendmailMain is the entry point when the binary is invoked as sendmail,
// mailq or newaliases (argv[0]'s base name), as /usr/sbin/sendmail is by
// cron, mail(1) and PHP.
func sendmailMain(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := defaultSendmailEnv(stdin, stdout, stderr)
	if len(argv) == 0 {
		return sendmail(nil, env)
	}
	switch filepath.Base(argv[0]) {
	case "mailq":
		// mailq's own flags (-v, -Ac) have no equivalent: the config
		// comes from $CUEMTA_CONFIG.
		return runQueue([]string{"ls"}, stdout, stderr)
	case "newaliases":
		return sendmail([]string{"-bi"}, env)
	}
	return sendmail(argv[1:], env)
}

func defaultSendmailEnv(stdin io.Reader, stdout, stderr io.Writer) *sendmailEnv {
	return &sendmailEnv{
		stdin: stdin, stdout: stdout, stderr: stderr,
		now:        time.Now,
		user:       userName(),
		loadConfig: loadConfig,
		submit:     submitSMTP,
	}
}

func sendmail(args []string, env *sendmailEnv) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(env.stderr, "sendmail: "+format+"\n", a...)
		return code
	}
	o, err := parseSendmailArgs(args)
	if err != nil {
		fmt.Fprint(env.stderr, sendmailUsage)
		return fail(exUsage, "%v", err)
	}
	if o.config == "" {
		o.config = os.Getenv(envConfig)
	}
	switch o.mode {
	case "mailq":
		qargs := []string{"ls"}
		if o.config != "" {
			qargs = append(qargs, "-c", o.config)
		}
		return runQueue(qargs, env.stdout, env.stderr)
	case "newaliases":
		fmt.Fprintln(env.stderr, "sendmail: cuemta has no aliases database; nothing to do")
		return 0
	case "flush":
		return 0
	}

	cfg, err := env.loadConfig(o.config)
	if err != nil {
		where := o.config
		if where == "" {
			where = "the embedded default config"
		}
		return fail(exConfig, "cannot load %s: %v", where, err)
	}
	l, err := pickListener(cfg)
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	dial, err := admin.DialAddr(l.Addr)
	if err != nil {
		return fail(exConfig, "listener %s: %v", l.Name, err)
	}
	limit := int64(defaultSendmailLimit)
	if l.Limits.MaxMessageSize > 0 {
		limit = l.Limits.MaxMessageSize
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = "localhost"
	}

	data, err := readSendmailInput(env.stdin, o.ignoreDots, limit)
	switch {
	case errors.Is(err, errTooLarge):
		return fail(exDataErr, "the message is larger than %d bytes (listener %s maxMessageSize)", limit, l.Name)
	case err != nil:
		return fail(exIOErr, "cannot read the message: %v", err)
	}
	sender := o.from
	if !o.fromSet {
		sender = env.user + "@" + hostname
	}
	sender = strings.Trim(strings.TrimSpace(sender), "<>") // -f "<>" is the null sender
	if sender != "" {
		if sender, err = qualify(sender, hostname); err != nil {
			return fail(exUsage, "-f: %v", err)
		}
	}
	rcpts, err := qualifyAll(o.recipients, hostname)
	if err != nil {
		return fail(exUsage, "%v", err)
	}
	now := env.now()
	msg, extracted, err := prepareSendmailMessage(data, &messageDefaults{
		extract:   o.extract,
		from:      sender,
		fullName:  o.fullName,
		fallback:  env.user + "@" + hostname,
		hostname:  hostname,
		now:       now,
		messageID: msgheader.MessageID(hostname),
	})
	if err != nil {
		return fail(exDataErr, "%v", err)
	}
	rcpts = dedupe(append(rcpts, extracted...))
	if len(rcpts) == 0 {
		fmt.Fprint(env.stderr, sendmailUsage)
		return fail(exUsage, "no recipients: give them as arguments, or use -t to read them from the headers")
	}
	reply, err := env.submit(dial, hostname, sender, rcpts, msg)
	if err != nil {
		return fail(smtpExitCode(err), "%s (listener %s at %s); nothing was sent", err, l.Name, dial)
	}
	if o.verbose {
		fmt.Fprintf(env.stderr, "sendmail: %d recipients accepted by %s (listener %s): %s\n", len(rcpts), dial, l.Name, reply)
	}
	return 0
}

// pickListener chooses the listener sendmail submits to: "submission"
// unless it requires AUTH (sendmail has no credentials), else "mx" (which
// relays for relay.networks, loopback by default), else the first by name
// that requires no AUTH.
func pickListener(cfg *config.Config) (*config.Listener, error) {
	usable := func(l *config.Listener) bool { return l != nil && !l.Auth.Enabled }
	if l := cfg.Listeners["submission"]; usable(l) {
		return l, nil
	}
	if l := cfg.Listeners["mx"]; usable(l) {
		return l, nil
	}
	names := make([]string, 0, len(cfg.Listeners))
	for n := range cfg.Listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if usable(cfg.Listeners[n]) {
			return cfg.Listeners[n], nil
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the config has no SMTP listener to submit to")
	}
	return nil, errors.New("every listener requires AUTH, which sendmail cannot do: add a listener without auth on loopback (relay.networks allows 127.0.0.0/8)")
}

var errTooLarge = errors.New("message too large")

// readSendmailInput reads the message until EOF or, unless ignoreDots, a
// line holding a single dot, and at most limit bytes.
func readSendmailInput(r io.Reader, ignoreDots bool, limit int64) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, limit+1))
	var buf bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if !ignoreDots && strings.TrimRight(line, "\r\n") == "." && strings.HasSuffix(line, "\n") {
			break
		}
		buf.WriteString(line)
		if int64(buf.Len()) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			// A last line "." without a newline also ends the message.
			if !ignoreDots && line == "." {
				buf.Truncate(buf.Len() - 1)
			}
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// qualify checks an address and gives a bare local name ("root") the
// hostname as its domain, as sendmail does.
func qualify(addr, hostname string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr != "" && !strings.ContainsAny(addr, "@<>\" \t,;:") {
		return addr + "@" + hostname, nil
	}
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not an address", addr)
	}
	return a.Address, nil
}

func qualifyAll(addrs []string, hostname string) ([]string, error) {
	var out []string
	for _, a := range addrs {
		// One argument may hold several addresses: "a@x, b@y".
		for _, part := range splitAddressList(a) {
			q, err := qualify(part, hostname)
			if err != nil {
				return nil, fmt.Errorf("recipient %v", err)
			}
			out = append(out, q)
		}
	}
	return out, nil
}

// splitAddressList splits at commas outside quotes and angle brackets.
func splitAddressList(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' && (i == 0 || s[i-1] != '\\'):
			quoted = !quoted
		case quoted:
		case c == '<' || c == '(':
			depth++
		case (c == '>' || c == ')') && depth > 0:
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	out = append(out, s[start:])
	var trimmed []string
	for _, p := range out {
		if p = strings.TrimSpace(p); p != "" {
			trimmed = append(trimmed, p)
		}
	}
	return trimmed
}

func dedupe(addrs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		k := strings.ToLower(a)
		if !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}

// smtpExitCode maps a submission error to sysexits: 5xx replies are
// permanent, everything else (4xx, network) temporary.
func smtpExitCode(err error) int {
	var r *smtpclient.Reply
	if errors.As(err, &r) && r.Permanent() {
		return exUnavailable
	}
	return exTempFail
}

// submitTimeout bounds a whole submission to the local listener.
const submitTimeout = 10 * time.Minute

// submitSMTP sends the message in one SMTP transaction, all or nothing: if
// any recipient is refused, nothing is sent, so that the caller can fix
// and resend without duplicates. It returns the server's reply to the end
// of data.
func submitSMTP(addr, helo, from string, rcpts []string, msg []byte) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	// No STARTTLS: the connection stays on this host, and a local
	// certificate would not verify for 127.0.0.1.
	c, err := smtpclient.Dial(ctx, smtpclient.Options{Addr: addr, EHLO: helo, TLS: smtpclient.TLSNone,
		ConnectTimeout: 10 * time.Second})
	if err != nil {
		var ne *smtpclient.NetError
		if errors.As(err, &ne) && ne.Stage == smtpclient.StageConnect {
			return "", fmt.Errorf("cannot connect to the local MTA: %w; is `cuemta serve` running?", ne.Err)
		}
		return "", err
	}
	defer c.Close()
	res, err := c.SendAll(ctx, from, rcpts, msg)
	if err != nil {
		return "", err
	}
	if !res.Mail.Positive() {
		return "", fmt.Errorf("MAIL FROM:<%s>: %w", from, &res.Mail)
	}
	var refused []string
	var worst *smtpclient.Reply
	for i := range res.Rcpt {
		r := &res.Rcpt[i]
		if r.Positive() {
			continue
		}
		refused = append(refused, fmt.Sprintf("%s: %s", rcpts[i], r))
		if worst == nil || r.Permanent() {
			worst = r
		}
	}
	if len(refused) > 0 {
		c.Quit()
		return "", &rcptError{refused: refused, err: worst}
	}
	if !res.Data.Positive() {
		return "", &res.Data
	}
	c.Quit()
	return res.Data.String(), nil
}

// rcptError lists the refused recipients; it unwraps to the most severe
// reply for the exit code.
type rcptError struct {
	refused []string
	err     error
}

func (e *rcptError) Error() string {
	return "recipients refused: " + strings.Join(e.refused, "; ")
}

func (e *rcptError) Unwrap() error { return e.err }

// messageDefaults say how to complete a message read by sendmail.
type messageDefaults struct {
	extract   bool   // -t
	from      string // envelope sender, "" for the null sender
	fullName  string // -F
	fallback  string // From address when the sender is null
	hostname  string // for bare local names
	now       time.Time
	messageID string // used when the message has none
}

// prepareSendmailMessage completes a message read from standard input:
// CRLF line ends, a From, Date and Message-ID when missing, Bcc removed
// (always: a blind copy must not show in what every recipient receives),
// and with -t the recipients of To, Cc and Bcc. A leading mbox "From "
// line is dropped; text that does not start with a header field is all
// body, and a header section that ends without an empty line ends at the
// first line that is not a field (RFC 5322 §2.1).
func prepareSendmailMessage(data []byte, d *messageDefaults) ([]byte, []string, error) {
	text := msgheader.CRLF(data)
	if end, _ := msgheader.End(text); end == 0 && bytes.HasPrefix(text, []byte("From ")) {
		_, text, _ = bytes.Cut(text, []byte("\r\n")) // "From alice Sat Mar 14 ...", not a field
	}
	if len(text) > 0 && !bytes.HasSuffix(text, []byte("\r\n")) {
		text = append(text, '\r', '\n')
	}
	m, err := msgheader.Parse(text)
	if err != nil {
		return nil, nil, err
	}

	var rcpts []string
	if d.extract {
		for name, value := range m.Header.Fields() {
			if strings.EqualFold(name, "To") || strings.EqualFold(name, "Cc") || strings.EqualFold(name, "Bcc") {
				addrs, err := headerAddresses(value, d.hostname)
				if err != nil {
					return nil, nil, fmt.Errorf("-t: header %s: %v", name, err)
				}
				rcpts = append(rcpts, addrs...)
			}
		}
	}
	m.Header.Del("Bcc")
	var missing [][2]string
	if !m.Header.Has("From") {
		addr := d.from
		if addr == "" {
			addr = d.fallback
		}
		from := addr
		if d.fullName != "" {
			from = (&mail.Address{Name: d.fullName, Address: addr}).String()
		}
		missing = append(missing, [2]string{"From", from})
	}
	if !m.Header.Has("Date") {
		missing = append(missing, [2]string{"Date", d.now.Format(time.RFC1123Z)}) // RFC 5322 §3.6.1
	}
	if !m.Header.Has("Message-ID") {
		missing = append(missing, [2]string{"Message-ID", d.messageID}) // RFC 5322 §3.6.4
	}
	for _, f := range missing {
		if err := m.Header.Append(f[0], f[1]); err != nil {
			return nil, nil, fmt.Errorf("header %s: %w", f[0], err)
		}
	}
	m.Sep = true
	return m.Bytes(), rcpts, nil
}

// headerAddresses returns the addresses of an address-list header, with
// bare local names qualified.
func headerAddresses(v, hostname string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, len(list))
		for i, a := range list {
			out[i] = a.Address
		}
		return out, nil
	}
	// Local mail often says "To: root": parse entry by entry.
	var out []string
	for _, part := range splitAddressList(v) {
		if strings.HasSuffix(part, ":;") {
			continue // an empty group such as undisclosed-recipients:;
		}
		if a, err := mail.ParseAddress(part); err == nil {
			out = append(out, a.Address)
			continue
		}
		q, err := qualify(part, hostname)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}
