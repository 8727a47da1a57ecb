package config

// Notes are remarks on a valid configuration that vet shows without
// failing: how a route and relay.domains combine, and a server allowed
// to run as root.
func (c *Config) Notes() Errors {
	return append(append(c.routeNotes(), c.privilegeNotes()...), c.dnssecNotes()...)
}

// privilegeNotes note allowRoot: true, which lets a start as root go on
// as root (package privdrop decides at start).
func (c *Config) privilegeNotes() Errors {
	if !c.AllowRoot {
		return nil
	}
	if c.User != "" {
		return Errors{{Pos: c.posAt("allowRoot"), Msg: "note: allowRoot: true has no effect while user is set: started as root, serve switches to user " + quote(c.User)}}
	}
	return Errors{{Pos: c.posAt("allowRoot"), Msg: "note: allowRoot: true: started as root, serve goes on as root, and every SMTP session and file it opens has root's privileges; set user to the account it should switch to once its listeners are bound"}}
}
