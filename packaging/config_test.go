package packaging

import (
	"path/filepath"
	"strings"
	"testing"
)

// productionSecrets are the files the production config names.
var productionSecrets = map[string]secret{
	"/etc/cuemta/tls/fullchain.pem":    tlsCert,
	"/etc/cuemta/tls/privkey.pem":      tlsKey,
	"/etc/cuemta/dkim/example.com.pem": dkimKey,
}

// TestProductionConfig checks the README's production config: it is the
// file packaging/config/cuemta.cue word for word, it loads and vets once
// its certificate and keys exist, and it is what the README says: port 25
// with TLS, a DKIM key, the system resolver.
func TestProductionConfig(t *testing.T) {
	src := readFile(t, "config/cuemta.cue")
	readme := readFile(t, filepath.Join(root, "README.md"))
	body := src[strings.Index(src, "import "):] // the README leaves out the file's header comment
	if !strings.Contains(readme, "```cue\n"+body+"```\n") {
		t.Errorf("README.md does not show packaging/config/cuemta.cue (from its import line) as a cue block:\n%s", body)
	}
	cfg := loadWithSecrets(t, "packaging/config/cuemta.cue", src, productionSecrets)
	var tls25 bool
	for _, l := range cfg.Listeners {
		tls25 = tls25 || (strings.HasSuffix(l.Addr, ":25") && l.TLS != nil)
	}
	if !tls25 {
		t.Error("no listener on port 25 with TLS")
	}
	if len(cfg.DKIM.Keys) == 0 {
		t.Error("no DKIM key")
	}
	if len(cfg.DNS.Servers) != 0 {
		t.Errorf("dns.servers = %v; the production config leaves DNS to the system resolver", cfg.DNS.Servers)
	}
}
