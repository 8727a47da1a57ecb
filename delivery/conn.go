package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/internal/mime7bit"
	"github.com/cuemta/cuemta/smtpreply"
)

// work is one connection's life: dial, send up to the per-connection
// message limit, QUIT. p is the provider whose connection slot it holds
// (nil for none); the slot is given back when the connection ends.
func (l *lane) work(p *provider) {
	e := l.site.sched
	ctx := e.runContext()
	defer func() {
		l.mu.Lock()
		l.active--
		l.mu.Unlock()
		now := e.opts.Now()
		if p != nil {
			p.release(now) // may let this lane or another open one
		}
		// Jobs may have arrived while this connection was closing.
		l.mu.Lock()
		if l.eff != nil && ctx.Err() == nil {
			l.spawnLocked(now)
		}
		l.mu.Unlock()
	}()
	first := l.next(ctx, e.opts.IdleTimeout)
	if first == nil {
		return
	}
	// In a cluster, the slot under the cluster's cap (shared.go); a node
	// alone has its local slot (active) and nothing more.
	releaseShared, ok := l.acquireShared(ctx, p, first)
	if !ok {
		return
	}
	defer releaseShared()
	if err := l.waitConnect(ctx, p); err != nil {
		// Shutting down: the job was not tried, and the spool still has
		// the message due (its lease is in memory only).
		return
	}
	dialCtx, tlsNote := withTLSNote(ctx) // TLS-RPT (tlsrpt.go)
	conn, host, err := l.dial(dialCtx, first)
	tlsSeen := map[string]bool{}
	if err != nil {
		l.recordTLS(first, nil, host, tlsNote, tlsSeen)
		l.connectFailed(first, host, err)
		return
	}
	e.opts.OnConn(l.site.key, 1)
	defer e.opts.OnConn(l.site.key, -1)
	defer conn.Close()
	defer l.forget(conn)
	l.mu.Lock()
	l.connFailures = 0
	l.lastHost = host
	l.mu.Unlock()
	j := first
	for sent := 0; j != nil; {
		if err := l.waitMessage(ctx, p); err != nil {
			return // shutting down; as above
		}
		l.recordTLS(j, conn, host, tlsNote, tlsSeen)
		ok := l.send(ctx, conn, host, j)
		sent++
		if !ok || sent >= l.profile().MaxMessagesPerConnection() || !l.retainShared(p) {
			break
		}
		j = l.next(ctx, e.idleTimeout())
	}
	conn.Quit()
}

// waitConnect waits for the lane's and the provider's connection rates,
// on the scheduler's clock.
func (l *lane) waitConnect(ctx context.Context, p *provider) error {
	l.mu.Lock()
	lim := l.connLim
	l.mu.Unlock()
	if err := l.site.sched.waitToken(ctx, lim); err != nil {
		return err
	}
	if p != nil {
		if err := p.waitConnect(ctx); err != nil {
			return err
		}
	}
	return l.waitShared(ctx, p, "conn")
}

// waitMessage waits for the lane's and the provider's message rates, on
// the scheduler's clock.
func (l *lane) waitMessage(ctx context.Context, p *provider) error {
	l.mu.Lock()
	lim := l.msgLim
	l.mu.Unlock()
	if err := l.site.sched.waitToken(ctx, lim); err != nil {
		return err
	}
	if p != nil {
		if err := p.waitMessage(ctx); err != nil {
			return err
		}
	}
	return l.waitShared(ctx, p, "msg")
}

// dial connects to the first reachable host of the site, from the lane's
// source address, with the profile's TLS policy. An opportunistic TLS
// handshake that fails is retried in plaintext, and the site is sent
// plaintext for a while (RFC 7435: opportunistic means never worse than
// plaintext).
//
// An address that is one of this MTA's own listeners is skipped (RFC 5321
// §5.1: a host must not deliver to itself), and so is an MX host whose
// greeting names this MTA's hostname (see greetsAsUs): when that leaves
// nothing to try, the error wraps errMailLoop.
//
// The connection is made for first (nil: no job in particular): when its
// domain's MTA-STS policy is in enforce mode, only the MX hosts the
// policy names are tried, and STARTTLS is required (the certificate is
// checked per job, checkSTS), whatever the profile says.
func (l *lane) dial(ctx context.Context, first *job) (*smtpclient.Conn, string, error) {
	l.mu.Lock()
	hosts := l.hop.hosts
	l.mu.Unlock()
	return l.dialHosts(ctx, stsHosts(first, hosts), first)
}

// dialHosts is dial over the given hosts of the lane's hop.
func (l *lane) dialHosts(ctx context.Context, hosts []string, first *job) (*smtpclient.Conn, string, error) {
	e := l.site.sched
	pol := e.opts.Policy()
	cfg := pol.Config
	eff := l.profile()
	l.mu.Lock()
	h := l.hop
	tlsPolicy := eff.TLS()
	if tlsPolicy == TLSProfileMTASTS || tlsPolicy == "" {
		tlsPolicy = smtpclient.TLSOpportunistic // MTA-STS when published (checkSTS), else opportunistic
	}
	var plainCause error
	if tlsPolicy == smtpclient.TLSOpportunistic && e.opts.Now().Before(l.plainUntil) {
		tlsPolicy, plainCause = "none", l.plainCause
	}
	l.mu.Unlock()
	// RFC 8461 §5: an enforce policy overrides the profile: TLS or nothing.
	// The handshake accepts any certificate; checkSTS verifies it for
	// each job, so that the log says why a job was refused.
	stsRequired := first.stsEnforced() && !h.static
	// A profile that requires TLS keeps verifying in the handshake: the
	// connection also carries the lane's other domains, which it promised
	// a verified certificate.
	skipVerify := tlsPolicy == smtpclient.TLSOpportunistic || stsRequired && tlsPolicy != smtpclient.TLSRequired
	if stsRequired {
		tlsPolicy = smtpclient.TLSRequired
	}
	var auth *smtpclient.Auth
	if h.static && cfg.Smarthost != nil && cfg.Routes["*"] != "" && h.key == "route:"+cfg.Routes["*"] {
		tlsPolicy = cfg.Smarthost.TLS
		if cfg.Smarthost.Username != "" {
			auth = &smtpclient.Auth{Username: cfg.Smarthost.Username, Password: cfg.Smarthost.Password}
		}
	}
	src := sourceOf(cfg, l.pool, l.source)
	ehlo := src.EHLO
	if ehlo == "" {
		ehlo = cfg.Hostname
	}
	var local netip.Addr
	if src.Addr != "" {
		local, _ = netip.ParseAddr(src.Addr)
	}
	var lastErr, loop error
	lastHost := ""
	self := e.self()
	for _, host := range hosts {
		addrs, err := l.addrs(ctx, host)
		if err != nil {
			lastErr, lastHost = err, host
			continue
		}
		dh, err := l.daneFor(ctx, h, host, eff)
		if err != nil {
			l.daneLookupFailed(h, host, err)
			lastErr, lastHost = err, host // RFC 7672 §2.1.1: this host is not usable
			continue
		}
		for _, a := range addrs {
			if local.IsValid() && local.Is4() != a.Is4() {
				continue // cannot reach an IPv6 host from an IPv4 source
			}
			if self.has(a, h.port) {
				if loop == nil {
					loop = fmt.Errorf("%w: %s (%s) is this server's own listener", errMailLoop, host, net.JoinHostPort(a.String(), h.port))
				}
				if lastHost == "" {
					lastHost = host
				}
				continue
			}
			opts := smtpclient.Options{
				Addr:           net.JoinHostPort(a.String(), h.port),
				LocalAddr:      local,
				ServerName:     host,
				EHLO:           ehlo,
				TLS:            tlsPolicy,
				TLSConfig:      &tls.Config{ServerName: host, RootCAs: pol.TLSRoots, InsecureSkipVerify: skipVerify},
				ConnectTimeout: eff.Settings.ConnectTimeout.D(),
				CommandTimeout: eff.Settings.CommandTimeout.D(),
				DataTimeout:    eff.Settings.DataTimeout.D(),
				Auth:           auth,
			}
			if dh != nil {
				dh.configure(&opts, daneNames(h, host), e.opts.Now) // DANE before MTA-STS and the profile
			}
			conn, err := e.opts.Dial(ctx, opts)
			if dh != nil {
				err = l.daneDialed(h, dh, a.String(), local, conn, err) // reports its own TLS-RPT results
			} else {
				noteTLSAttempt(ctx, host, opts, plainCause, err) // TLS-RPT, no policy (tlsrpt.go)
			}
			if err != nil && opts.TLS == smtpclient.TLSOpportunistic && smtpclient.IsTLSFailure(err) {
				l.mu.Lock()
				l.plainUntil, l.plainCause = e.opts.Now().Add(time.Hour), err
				l.mu.Unlock()
				opts.TLS = "none"
				conn, err = e.opts.Dial(ctx, opts)
			}
			if err == nil && !h.static && greetsAsUs(conn.Greeting(), cfg.Hostname) {
				// Our own listener behind an address that is not ours
				// (NAT, a load balancer): the address check cannot see it.
				conn.Quit()
				if loop == nil {
					loop = fmt.Errorf("%w: %s (%s) greeted with this server's own hostname %s", errMailLoop, host, opts.Addr, cfg.Hostname)
				}
				if lastHost == "" {
					lastHost = host
				}
				continue
			}
			if err == nil {
				return conn, host, nil
			}
			lastErr, lastHost = err, host
			// A reply (such as 421 at the greeting) is the site speaking:
			// another MX of the same site would say the same.
			var r *smtpclient.Reply
			if errors.As(err, &r) {
				return nil, host, err
			}
		}
	}
	if lastErr == nil && loop != nil {
		return nil, lastHost, loop // nothing but ourselves to try
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no usable address for %v", hosts)
	}
	return nil, lastHost, lastErr
}

func (l *lane) addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return l.site.sched.opts.Resolver.LookupHost(ctx, host)
}

func sourceOf(cfg *config.Config, pool, source string) config.Source {
	if p, ok := cfg.Pools[pool]; ok {
		if s, ok := p.Sources[source]; ok && s != nil {
			return *s
		}
	}
	if p, ok := cfg.Pools[cfg.Delivery.DefaultPool]; ok {
		if s, ok := p.Sources[source]; ok && s != nil {
			return *s
		}
	}
	return config.Source{}
}

func (l *lane) lastMX() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastHost
}

// connectFailed handles a connection that could not be set up: the reply
// (or network error) goes through the response rules like any other, the
// job is retried, and after the profile's threshold of consecutive
// failures the whole site waits instead of every message trying alone.
func (l *lane) connectFailed(j *job, host string, err error) {
	e := l.site.sched
	if errors.Is(err, errMailLoop) {
		// Permanent and ours, not the remote's: no rule or retry changes
		// that the next hop is this server.
		j.failAll(loopReply(j, err))
		return
	}
	if r, ok := l.stsDialFailed(j, host, err); ok {
		j.tries++
		j.deferAll(time.Time{}, r)
		return
	}
	reply := replyOfError(err, smtpclient.StageConnect)
	d := l.evaluate(j, host, reply)
	outs := l.outcomes(j, j.rcpts, reply, d)
	eff := l.profile()
	l.mu.Lock()
	l.connFailures++
	n := l.connFailures
	l.mu.Unlock()
	if reply.Code == 0 && n >= *eff.Settings.ConnectFailures.Threshold {
		e.suspend(ScopeSite+":"+l.site.key, e.opts.Now().Add(eff.Settings.ConnectFailures.Delay.D()),
			fmt.Sprintf("site unreachable (%d consecutive connection failures)", n), originConnectFailures)
	}
	j.tries++
	j.complete(outs)
}

// send delivers one job on an open connection and applies the replies.
// It returns false when the connection must not be used again.
func (l *lane) send(ctx context.Context, conn *smtpclient.Conn, host string, j *job) bool {
	if l.daneRequeue(ctx, conn, host, j) {
		return false
	}
	t := tlsOutcomeOf(conn)
	j.tls = &t
	if !l.checkSTS(conn, host, j, &t) {
		return true // deferred, nothing sent: the connection serves other mail
	}
	body, err := j.att.body()
	if err != nil {
		// The spool could not give the body: retry later, never lose it.
		l.site.sched.opts.Logger.Error("spool: read body", "id", j.att.env.ID, "err", err)
		j.deferAll(time.Time{}, smtpreply.New(451, "4.3.0", "local spool read error"))
		return true
	}
	if !conn.Extensions().Has("8BITMIME") && mime7bit.BodyHas8bit(body) {
		// RFC 6152 §3: 8-bit data goes to a server without 8BITMIME only
		// converted to 7-bit.
		if body, err = j.att.body7bit(); err != nil {
			// RFC 3463 §3.7: X.6.3 conversion required but not supported.
			j.failAll(smtpreply.New(554, "5.6.3", fmt.Sprintf("Conversion required but not supported: %s does not offer 8BITMIME and %v", host, err)))
			return true // nothing was sent
		}
	}
	res, err := conn.SendWith(ctx, mailFrom(j), j.rcpts, body, smtpclient.MailOptions{SMTPUTF8: j.att.env.SMTPUTF8, DSN: j.dsnOptions()})
	if errors.Is(err, smtpclient.ErrSMTPUTF8Unsupported) {
		return l.sendUTF8Elsewhere(ctx, conn, host, j, err)
	}
	if res == nil {
		reply := replyOfError(err, smtpclient.StageData)
		d := l.evaluate(j, host, reply)
		j.complete(l.outcomes(j, j.rcpts, reply, d))
		return false
	}
	perReply := map[string][]string{}
	replies := map[string]smtpclient.Reply{}
	var order []string
	for i, rcpt := range j.rcpts {
		r, known := res.Outcome(i)
		if !known {
			// The connection broke before the server answered for this
			// recipient: nobody knows, so it is retried, never bounced.
			r = smtpclient.Reply{Code: 0, Enhanced: "4.4.2", Text: "connection lost before the server answered", Stage: r.Stage}
		}
		k := replyKey(r)
		if _, ok := replies[k]; !ok {
			order = append(order, k)
			replies[k] = r
		}
		perReply[k] = append(perReply[k], rcpt)
	}
	var outs []outcome
	for _, k := range order {
		r := replies[k]
		d := l.evaluate(j, host, r)
		outs = append(outs, l.outcomes(j, perReply[k], r, d)...)
	}
	if conn.Extensions().Has("DSN") {
		for i := range outs {
			outs[i].hopDSN = true
		}
	}
	j.complete(outs)
	if err != nil {
		return false
	}
	_, suspended := l.suspension(l.site.sched.opts.Now())
	return !suspended
}

// dsnOptions are the message's RFC 3461 parameters for the job's
// recipients, passed on to a next hop that offers DSN (RFC 3461 §4.1:
// it then reports on them itself).
func (j *job) dsnOptions() smtpclient.DSNOptions {
	env := &j.att.env
	o := smtpclient.DSNOptions{Ret: env.Ret.String(), EnvID: env.EnvID}
	for _, r := range j.rcpts {
		rec := j.att.recipient(r)
		o.Rcpt = append(o.Rcpt, smtpclient.RcptDSN{Notify: rec.Notify.String(), ORCPT: rec.ORCPT})
	}
	return o
}

func replyKey(r smtpclient.Reply) string {
	return r.Stage + "\x00" + strconv.Itoa(r.Code) + "\x00" + r.Enhanced + "\x00" + r.Text
}

// replyOfError turns a dial or send error into the reply the rules see: a
// protocol reply as it came, a network failure as a synthetic code 0.
func replyOfError(err error, stage string) smtpclient.Reply {
	if r, ok := daneReply(err); ok {
		return r
	}
	var r *smtpclient.Reply
	if errors.As(err, &r) {
		return *r
	}
	var ne *smtpclient.NetError
	if errors.As(err, &ne) && ne.Stage != "" {
		stage = ne.Stage
	}
	return smtpclient.Reply{Code: 0, Enhanced: "4.4.1", Text: fmt.Sprint(err), Stage: stage}
}

// recorded is a reply as the spool, the log and DSNs keep it: a network
// failure, code 0 to the response rules (no server replied), is recorded
// as the 451 a server that cannot go on would give (RFC 5321 §4.2.3).
func recorded(r smtpreply.Reply) smtpreply.Reply {
	if r.Code == 0 {
		r.Code = 451
	}
	return r
}

// runContext is the context deliveries run under.
func (e *Scheduler) runContext() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil {
		return context.Background()
	}
	return e.ctx
}
