package smtpclient

import "context"

// SendAll runs one mail transaction that sends the message only if every
// recipient is accepted, as a submission client such as sendmail must:
// its caller can then fix the refused addresses and send again without
// duplicating the message to the others. It never pipelines, since with
// PIPELINING the DATA command is already on its way when a refusal is
// read. Refusals are in the Result, as for Send; after any refusal
// nothing is sent, the transaction is reset and the connection stays
// usable.
func (c *Conn) SendAll(ctx context.Context, from string, rcpts []string, body []byte) (*Result, error) {
	mail, err := c.begin(from, rcpts, body, MailOptions{})
	if err != nil {
		return nil, err
	}
	defer c.w.bind(ctx)()
	c.w.setTimeout(c.opts.CommandTimeout)
	res := &Result{Rcpt: make([]Reply, 0, len(rcpts))}
	if _, err := c.envelope(res, mail, rcpts, DSNOptions{}); err != nil {
		return res, err
	}
	if !res.Mail.Positive() {
		return res, c.rset()
	}
	for i, r := range res.Rcpt {
		if r.Positive() {
			res.Accepted = append(res.Accepted, i)
		}
	}
	if len(res.Accepted) < len(rcpts) {
		res.Accepted = nil // nothing was sent to anyone
		return res, c.rset()
	}
	return res, c.data(res, body, true)
}
